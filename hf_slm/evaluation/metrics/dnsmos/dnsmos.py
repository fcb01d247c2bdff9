"""DNSMOS P.835: a reference-free *quality* score of speech (noise, distortion), not a naturalness MOS.

Self-contained `evaluate` module: ``evaluate.load("hf_slm/evaluation/metrics/dnsmos")`` or
``hf_slm.evaluation.load_metric("dnsmos")``. Needs `speechmos` (Microsoft's DNSMOS ONNX models ship in its wheel, so
it runs offline) with `onnxruntime` and `librosa`, which speechmos does not declare: ``pip install hf_slm[eval]``.
"""

from __future__ import annotations

from functools import lru_cache

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
DNSMOS P.835 (Reddy et al., 2022) predicts, from the degraded speech alone, the three ratings of ITU-T P.835 that
listeners give noisy / noise-suppressed speech: SIG (speech signal distortion), BAK (background noise intrusiveness)
and OVRL (overall quality), each on 1-5, plus the P.808 overall MOS of its older model. It was trained on ratings of
real speech through noise suppressors, so it scores *audio quality* (noise, clipping, artefacts), not whether speech
sounds natural or human: a clean robotic voice can score high. Read it as a quality score next to mel distance and
WER, never as a naturalness MOS. Audio is resampled to 16 kHz and peak-normalised if it overshoots [-1, 1]; clips
shorter than 9 s are looped to 9 s by the model's own preprocessing, longer ones scored in 9 s windows and averaged.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[list[float]]`): mono waveforms to score (no reference needed).
    sampling_rate (`int`): their sampling rate.
    personalized (`bool`, defaults to `False`): use the personalised DNSMOS model (which also penalises interfering
        talkers) instead of the standard one.
Returns:
    dnsmos_ovrl, dnsmos_sig, dnsmos_bak, dnsmos_p808 (`float`): means over utterances; dnsmos_per_item
    (`list[dict]`): the four scores of each utterance.
"""

DNSMOS_SAMPLING_RATE = 16000
_SCORES = ("ovrl", "sig", "bak", "p808")
_INSTALL = "pip install speechmos onnxruntime librosa (or pip install hf_slm[eval])"


@lru_cache(maxsize=2)
def _model(personalized: bool):
    """speechmos' DNSMOS (the P.835 model + the P.808 model), loaded once from the ONNX files in its wheel."""
    try:
        import speechmos
        from speechmos.dnsmos import DNSMOS
    except ImportError as error:  # speechmos itself, or its undeclared onnxruntime / librosa
        raise ImportError(f"dnsmos needs speechmos, onnxruntime and librosa: {_INSTALL} ({error})") from error
    from pathlib import Path

    root = Path(speechmos.__file__).parent
    primary = root / ("pdnsmos_models" if personalized else "dnsmos_models") / "sig_bak_ovr.onnx"
    return DNSMOS(str(primary), str(root / "dnsmos_models" / "model_v8.onnx"))


def dnsmos(waveform, sampling_rate: int, personalized: bool = False) -> dict:
    """``{"ovrl", "sig", "bak", "p808"}`` DNSMOS scores (1-5) of one mono waveform."""
    waveform = np.asarray(waveform, dtype=np.float32)
    if waveform.ndim != 1 or waveform.size == 0:
        raise ValueError(f"dnsmos takes one non-empty mono waveform [T], got shape {waveform.shape}")
    if not isinstance(sampling_rate, (int, np.integer)) or sampling_rate <= 0:
        raise ValueError(f"sampling_rate must be a positive integer, got {sampling_rate!r}")
    if not np.any(waveform):
        raise ValueError("DNSMOS is undefined for a silent (all-zero) waveform")
    model = _model(bool(personalized))
    if sampling_rate != DNSMOS_SAMPLING_RATE:
        import torch
        import torchaudio.functional as F

        waveform = F.resample(torch.from_numpy(waveform), int(sampling_rate), DNSMOS_SAMPLING_RATE).numpy()
    peak = float(np.abs(waveform).max())
    if peak > 1.0:
        waveform = waveform / peak
    scores = model(waveform.astype(np.float32), DNSMOS_SAMPLING_RATE, bool(personalized))
    return {"ovrl": float(scores["ovrl_mos"]), "sig": float(scores["sig_mos"]), "bak": float(scores["bak_mos"]),
            "p808": float(scores["p808_mos"])}  # fmt: skip


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Dnsmos(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Reddy et al., 2022, DNSMOS P.835: A Non-Intrusive Perceptual Objective Speech Quality Metric to "
            "Evaluate Noise Suppressors (ICASSP); Microsoft, speechmos",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Sequence(datasets.Value("float32"))}),
        )

    def _compute(self, predictions, sampling_rate=None, personalized=False):
        if sampling_rate is None:
            raise ValueError("the dnsmos metric needs sampling_rate=")
        items = [dnsmos(p, sampling_rate, personalized=personalized) for p in predictions]
        means = {f"dnsmos_{key}": float(np.mean([item[key] for item in items])) for key in _SCORES}
        return means | {"dnsmos_per_item": items}


__all__ = ["Dnsmos", "dnsmos"]
