"""Cost of the vocal tract length warp search (`UnitEncoderConfig.vtln_warps`) when tokenising with MFCC units.

Times, in one process, on the same espeak-ng sentences (8 voices, ~2-4 s each) and one fitted 100-unit MFCC + CMVN
codebook (`utterance_normalization=True`):
  (a) plain     - our tokenizer without warps (`vtln_warps=None`): one MFCC pass, k-means;
  (b) ours      - the same codebook with the 17-factor search (`DEFAULT_VTLN_WARPS`), batched: the power spectrum
                  once, then per factor the warped mel bank, DCT, deltas, CMVN and nearest-centroid distances;
  (c) baseline  - the same search done with a plain library's VTLN: per utterance and factor, torchaudio's Kaldi
                  `compliance.kaldi.mfcc(vtln_warp=...)` (its own framing and warped mel bank), deltas, CMVN and
                  distances, then the chosen factor's features quantised.
Prints audio-seconds per second for each, (b) / (a) (what the search costs) and last `ratio: X` = (b) / (c).
(b) and (c) use different MFCC definitions (torchaudio's MelSpectrogram vs Kaldi's povey window and pre-emphasis),
so (c) is timed with its own codebook fitted the same way; their units are not compared.

    python benchmarks/bench_vtln.py --threads 1 --repeats 3
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
import torchaudio

from hf_slm.data import EspeakSynthesizer, load_text_corpus
from hf_slm.models.unit_encoder import DEFAULT_VTLN_WARPS, SpeechFeatureExtractor, UnitEncoderConfig, UnitEncoderModel
from hf_slm.models.unit_encoder.modeling_unit_encoder import compute_deltas
from hf_slm.training.kmeans import fit_unit_tokenizer

VOICES = ("en-us", "en-us+m3", "en-us+f2", "en-us+f3", "en-gb", "en-us+m1", "en-us+f1", "en-us+m6")


def kaldi_features(wave: torch.Tensor, warp: float) -> torch.Tensor:
    """13 Kaldi MFCCs (25 / 20 ms, 40 bins, c0 not energy) + deltas, CMVN per utterance: [frames, 39]."""
    mfcc = torchaudio.compliance.kaldi.mfcc(
        wave[None], sample_frequency=16000, frame_length=25.0, frame_shift=20.0, num_mel_bins=40, num_ceps=13,
        use_energy=False, vtln_warp=warp, vtln_low=100.0, vtln_high=-500.0, dither=0.0,
    ).T[None]  # fmt: skip
    lengths = torch.tensor([mfcc.shape[-1]])
    delta = compute_deltas(mfcc, lengths)
    features = torch.cat([mfcc, delta, compute_deltas(delta, lengths)], 1)[0].T
    return (features - features.mean(0)) / features.std(0, unbiased=False).add(1e-5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sentences", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    texts = load_text_corpus("open-eval", limit=args.sentences, seed=2)
    fe = SpeechFeatureExtractor()
    waves = []
    for i, text in enumerate(texts):
        speech = EspeakSynthesizer(voice=VOICES[i % len(VOICES)]).synthesize(text)
        waves.append(torch.as_tensor(fe(speech.waveform, sampling_rate=speech.sampling_rate)["input_values"][0]))
    audio_seconds = sum(w.shape[-1] for w in waves) / 16000
    inputs = fe([w.numpy() for w in waves], sampling_rate=16000, return_tensors="pt")

    plain = UnitEncoderModel(UnitEncoderConfig(utterance_normalization=True)).eval()
    with torch.no_grad():
        features, mask = plain.extract_features(**inputs)
    fit_unit_tokenizer(plain, features[mask], seed=0, show_progress=False)
    ours = UnitEncoderModel(UnitEncoderConfig(utterance_normalization=True, vtln_warps=list(DEFAULT_VTLN_WARPS))).eval()
    ours.load_state_dict(plain.state_dict())

    kaldi_frames = torch.cat([kaldi_features(w, 1.0) for w in waves])
    kaldi_mean, kaldi_std = kaldi_frames.mean(0), kaldi_frames.std(0).clamp_min(1e-5)
    kaldi_centers = UnitEncoderModel(UnitEncoderConfig()).eval()
    fit_unit_tokenizer(kaldi_centers, kaldi_frames, seed=0, show_progress=False)
    centers = kaldi_centers.cluster_centers

    def baseline():
        units = []
        for wave in waves:
            best, best_score = None, float("inf")
            for warp in DEFAULT_VTLN_WARPS:
                flat = (kaldi_features(wave, warp) - kaldi_mean) / kaldi_std
                score = float(torch.cdist(flat, centers).min(-1).values.pow(2).mean())
                if score < best_score:
                    best, best_score = flat, score
            units.append(torch.cdist(best, centers).argmin(-1))
        return units

    runs = {"plain": lambda: plain(**inputs).units, "ours": lambda: ours(**inputs).units, "baseline": baseline}
    times = {name: [] for name in runs}
    with torch.inference_mode():
        for fn in runs.values():
            fn()  # warm-up
        for _ in range(args.repeats):  # interleaved, so that load hits all three alike
            for name, fn in runs.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    speed = {name: audio_seconds / statistics.median(t) for name, t in times.items()}
    print(f"{platform.processor() or platform.machine()}, {args.threads} thread(s), {len(waves)} utterances, "
          f"{audio_seconds:.1f} s of audio, median of {args.repeats}")  # fmt: skip
    for name, value in speed.items():
        print(f"  ({'abc'[list(runs).index(name)]}) {name:<9} {value:8.1f} audio-s/s")
    print(f"search cost: ours / plain = {speed['ours'] / speed['plain']:.2f} of plain's speed")
    print(f"ratio: {speed['ours'] / speed['baseline']:.2f}")


if __name__ == "__main__":
    main()
