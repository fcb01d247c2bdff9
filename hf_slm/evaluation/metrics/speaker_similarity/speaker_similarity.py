"""Speaker similarity: cosine similarity of utterance-level speaker embeddings (Resemblyzer's GE2E d-vectors).

Self-contained `evaluate` module: ``evaluate.load("hf_slm/evaluation/metrics/speaker_similarity")`` or
``hf_slm.evaluation.load_metric("speaker_similarity")``. Needs `resemblyzer`, whose wheel bundles its encoder's weights
(17 MB), so it runs offline; see `_INSTALL` for its webrtcvad quirk.
"""

from __future__ import annotations

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
Cosine similarity between the speaker embeddings of each prediction and its reference: Resemblyzer's VoiceEncoder
(a 3-layer LSTM trained with the GE2E loss, Wan et al. 2018, 256-d L2-normalised d-vectors averaged over 1.6 s
windows) after its own preprocessing (resampled to 16 kHz, volume-normalised, long silences cut by WebRTC VAD).
In [-1, 1], 1 = same embedding; it measures whether resynthesis or voice conversion keeps the speaker. On espeak-ng
speech, two sentences in one voice score ~0.86 and a male vs a female voice ~0.6: compare systems, not thresholds.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[list[float]]`): generated / converted waveforms.
    references (`list[list[float]]`): waveforms of the target speaker (any text).
    sampling_rate (`int`): the sampling rate of both.
Returns:
    speaker_similarity (`float`): mean cosine similarity; speaker_similarity_per_item (`list[float]`).
"""

_INSTALL = (
    "pip install resemblyzer webrtcvad-wheels (with setuptools >= 81, resemblyzer's webrtcvad 2.0.10 fails on "
    "'import pkg_resources'; webrtcvad-wheels provides the same module without it: pip uninstall webrtcvad first)"
)
_ENCODER = None
_RESEMBLYZER = None


def _resemblyzer():
    """The resemblyzer module. Its import uses `scipy.ndimage.morphology`, deprecated in SciPy 1.8: that one
    DeprecationWarning of resemblyzer's own code is silenced, at the import only, so that it does not reach (or, under
    strict warning filters, fail) whoever measures speaker similarity."""
    global _RESEMBLYZER
    if _RESEMBLYZER is None:  # once: catch_warnings swaps the process's warning filters, not for every utterance
        import warnings

        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Please import `binary_dilation`", category=DeprecationWarning)
                import resemblyzer
        except ImportError as error:
            raise ImportError(f"the speaker_similarity metric needs resemblyzer: {_INSTALL} ({error})") from error
        _RESEMBLYZER = resemblyzer
    return _RESEMBLYZER


def _encoder():
    """The VoiceEncoder on CPU, loaded once from the weights in resemblyzer's wheel."""
    global _ENCODER
    if _ENCODER is None:
        _ENCODER = _resemblyzer().VoiceEncoder(device="cpu", verbose=False)
    return _ENCODER


def speaker_embedding(waveform, sampling_rate: int) -> np.ndarray:
    """The 256-d L2-normalised speaker embedding of one mono utterance."""
    waveform = np.asarray(waveform, dtype=np.float32)
    if waveform.ndim != 1 or waveform.size == 0:
        raise ValueError(f"speaker_embedding takes one non-empty mono waveform [T], got shape {waveform.shape}")
    if not isinstance(sampling_rate, (int, np.integer)) or sampling_rate <= 0:
        raise ValueError(f"sampling_rate must be a positive integer, got {sampling_rate!r}")
    if not np.any(waveform):
        raise ValueError("no speech found: the waveform is silent (all zeros)")
    encoder = _encoder()
    speech = _resemblyzer().preprocess_wav(waveform, source_sr=int(sampling_rate))
    if speech.size < 1600:  # Resemblyzer's VAD left under 0.1 s at 16 kHz
        seconds = waveform.size / sampling_rate
        raise ValueError(f"no speech found in the waveform ({seconds:.2f} s) after voice activity detection")
    return encoder.embed_utterance(speech)


def speaker_similarity(prediction, reference, sampling_rate: int) -> float:
    """Cosine similarity of the two utterances' speaker embeddings."""
    a, b = speaker_embedding(prediction, sampling_rate), speaker_embedding(reference, sampling_rate)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SpeakerSimilarity(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Wan et al., 2018, Generalized End-to-End Loss for Speaker Verification; Resemble AI, Resemblyzer",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("float32")),
                 "references": datasets.Sequence(datasets.Value("float32"))}
            ),  # fmt: skip
        )

    def _compute(self, predictions, references, sampling_rate=None):
        if sampling_rate is None:
            raise ValueError("the speaker_similarity metric needs sampling_rate=")
        values = [speaker_similarity(p, r, sampling_rate) for p, r in zip(predictions, references)]
        return {"speaker_similarity": float(np.mean(values)), "speaker_similarity_per_item": values}


__all__ = ["SpeakerSimilarity", "speaker_embedding", "speaker_similarity"]
