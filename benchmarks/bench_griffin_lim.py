"""Griffin-Lim iterations of the default vocoder: quality against time, to place the knee.

For the embedded default pipeline (`UnitMelVocoder`: units -> log-mel -> Griffin-Lim), on the units of espeak-ng
sentences (the built-in grammar, voice en-us), each `n_iter` in `--iters` vocodes the same predicted log-mels and
reports, averaged over the sentences:
  - mel distance: mean |log-mel of the output - predicted log-mel| over valid frames (what the vocoder can be
    asked to match; the resynthesis figure of docs/benchmarks.md is the same measure against the original audio);
  - spectral convergence: || |STFT(output)| - M || / || M || with M the least-squares magnitude Griffin-Lim
    inverts (its own objective);
  - CPU seconds of Griffin-Lim per second of audio (one thread).
Last line `knee: N` = the fewest iterations whose mel distance is within `--tolerance` (default 2 %) of the best.

    python benchmarks/bench_griffin_lim.py --iters 1,2,4,8,12,16,24,32,64
"""

from __future__ import annotations

import argparse
import time

import torch

from hf_slm.models.unit_vocoder.audio_unit_vocoder import slaney_mel_filterbank


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iters", default="1,2,4,8,12,16,24,32,64")
    parser.add_argument("--sentences", type=int, default=6)
    parser.add_argument("--tolerance", type=float, default=0.02)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    from hf_slm.data import EspeakSynthesizer
    from hf_slm.data.corpus import generate_sentences
    from hf_slm.pipelines import SpeechLMPipeline

    pipe = SpeechLMPipeline.from_pretrained("default")
    vocoder, config = pipe.vocoder, pipe.vocoder.config
    synth = EspeakSynthesizer(voice="en-us")
    sentences = generate_sentences(args.sentences, seed=1)
    units = [pipe.encode({"array": synth.synthesize(s).waveform, "sampling_rate": 16000})[0] for s in sentences]
    mels = []
    with torch.inference_mode():
        for u in units:
            log_mel, _, _ = vocoder.units_to_mel(u[None])
            mels.append(log_mel)
    transform = vocoder.mel_transform()
    filters = slaney_mel_filterbank(config.n_fft // 2 + 1, config.mel_fmin, config.mel_fmax or config.sampling_rate / 2,
                                    config.num_mel_bins, config.sampling_rate)  # fmt: skip
    inverse = torch.linalg.pinv(filters.transpose(0, 1))
    window = torch.hann_window(config.win_length or config.n_fft)
    rows = []
    for n_iter in [int(x) for x in args.iters.split(",")]:
        distance, convergence, cpu, seconds = 0.0, 0.0, 0.0, 0.0
        for log_mel in mels:
            start = time.process_time()
            with torch.inference_mode():
                wave, _ = vocoder.mel_to_waveform(log_mel, n_iter=n_iter)
            cpu += time.process_time() - start
            seconds += wave.shape[-1] / config.sampling_rate
            with torch.inference_mode():
                out_mel = transform(wave)[:, : log_mel.shape[1]]
                distance += (out_mel - log_mel[:, : out_mel.shape[1]]).abs().mean().item()
                target = torch.relu(inverse @ torch.exp(log_mel[0]).T)
                spec = torch.stft(wave[0], config.n_fft, config.mel_hop_length, config.win_length or config.n_fft,
                                  window, return_complex=True).abs()[:, : target.shape[1]]  # fmt: skip
                convergence += ((spec - target[:, : spec.shape[1]]).norm() / target.norm()).item()
        rows.append((n_iter, distance / len(mels), convergence / len(mels), cpu / seconds))
        print(f"n_iter {n_iter:3d}: mel distance {rows[-1][1]:.4f}  spectral convergence {rows[-1][2]:.4f}  "
              f"{rows[-1][3]:.3f} CPU-s per audio-s", flush=True)  # fmt: skip
    best = min(r[1] for r in rows)
    knee = min(r[0] for r in rows if r[1] <= best * (1 + args.tolerance))
    print(f"{len(mels)} sentences, {seconds:.1f} s of audio; best mel distance {best:.4f}")
    print(f"knee: {knee}")


if __name__ == "__main__":
    main()
