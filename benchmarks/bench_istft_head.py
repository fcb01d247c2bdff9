"""The mel vocoder's inverse-STFT head: why it calls torch.istft per padded item, and the vocoder's real-time factor.

(1) Overlap-add of a padded batch, same process, same magnitudes and phases (random, `--batch` items of up to
  `--frames` 100 Hz frames, n_fft 1024, hop 160); a whole-batch `torch.istft` would divide the last samples of a
  shorter item by the envelope of its padding frames, so a padded batch needs one of:
  (a) baseline - `torch.istft` per item over its own frames (what `UnitMelVocoder`'s inverse-STFT head does);
  (b) batched  - one inverse FFT + `fold` overlap-add with each item's own window envelope (the first version).
  Checks that both give the same samples, then times both: `ratio: X` = batched / baseline in audio-s per second
  (below 1: the per-item calls are faster, hence kept).
(2) The whole vocoder, units -> waveform, one utterance of `--units` 50 Hz units, default sizes, random weights:
  Griffin-Lim (32 iterations, the shipped `default`'s) against the inverse-STFT head; CPU seconds per audio second.

    python benchmarks/bench_istft_head.py --threads 1

docs/benchmarks.md figures: 2-core AMD EPYC VM, one thread, medians of `--repeats` interleaved rounds.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from hf_slm import UnitMelVocoder, UnitMelVocoderConfig


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--frames", type=int, default=400, help="frames of the longest item (100 Hz)")
    parser.add_argument("--units", type=int, default=500, help="units of the vocoder utterance (50 Hz)")
    parser.add_argument("--repeats", type=int, default=7)
    return parser.parse_args()


def timed(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    vocoder = UnitMelVocoder(UnitMelVocoderConfig(waveform_head="istft")).eval()
    config = vocoder.config
    n_fft, hop, n_freqs = config.n_fft, config.mel_hop_length, config.n_fft // 2 + 1

    # (1) overlap-add: the head's own path on given magnitudes / phases vs torch.istft per item
    lengths = torch.linspace(args.frames // 2, args.frames, args.batch).long()
    mask = torch.arange(args.frames)[None] < lengths[:, None]
    magnitude = torch.rand(args.batch, args.frames, n_freqs)
    phase = (torch.rand(args.batch, args.frames, n_freqs) * 2 - 1) * torch.pi
    assert config.win_length == n_fft, "the batched path below assumes a window as long as the FFT"
    window = torch.hann_window(config.win_length)

    def batched():
        frames = torch.roll(torch.fft.irfft(torch.polar(magnitude, phase), n=n_fft, dim=-1), n_fft // 2, dims=-1)
        frames = frames * window  # win_length == n_fft in the default config (checked above)
        keep = mask[..., None].float()
        total = (args.frames - 1) * hop + n_fft

        def overlap_add(values):
            return nn.functional.fold(values.transpose(1, 2), (1, total), (1, n_fft), stride=(1, hop))[:, 0, 0]

        signal = overlap_add(frames * keep)
        envelope = overlap_add((window**2).expand(args.batch, args.frames, -1) * keep)
        signal = torch.where(envelope > 1e-8, signal / envelope.clamp(min=1e-8), torch.zeros_like(signal))
        return signal[:, n_fft // 2 : n_fft // 2 + args.frames * hop]

    # the same spectra for torch.istft: the centre shift (the roll above) is a (-1)^k factor on bin k
    sign = torch.where(torch.arange(n_freqs) % 2 == 0, 1.0, -1.0)

    def baseline():
        out = torch.zeros(args.batch, args.frames * hop)
        for i, length in enumerate(lengths.tolist()):
            spectrum = torch.polar(magnitude[i, :length], phase[i, :length]) * sign
            out[i, : length * hop] = torch.istft(spectrum.T, n_fft, hop, config.win_length, window, center=True,
                                                 length=length * hop)  # fmt: skip
        return out

    with torch.no_grad():
        valid = torch.arange(args.frames * hop)[None] < lengths[:, None] * hop
        difference = (batched() * valid - baseline()).abs().max()
        assert difference < 1e-4, f"the batched overlap-add differs from torch.istft by {difference}"
        rounds = [(timed(baseline, 1), timed(batched, 1)) for _ in range(args.repeats)]
    audio_seconds = lengths.sum().item() * hop / config.sampling_rate
    base_s, batched_s = (statistics.median(r[i] for r in rounds) for i in (0, 1))
    print(f"overlap-add, {args.batch} items, {audio_seconds:.1f} audio-s, max |batched - torch.istft| = "
          f"{difference:.2e}")
    print(f"baseline torch.istft per item: {audio_seconds / base_s:,.0f} audio-s/s")
    print(f"batched fold:                  {audio_seconds / batched_s:,.0f} audio-s/s")
    print(f"ratio: {base_s / batched_s:.2f}")

    # (2) the whole vocoder
    units = torch.randint(0, config.num_units, (1, args.units))
    griffin_lim = UnitMelVocoder(UnitMelVocoderConfig()).eval()
    seconds = args.units * config.hop_length / config.sampling_rate
    with torch.no_grad():
        vocoder(units), griffin_lim(units)  # warm-up
        rounds = [(timed(lambda: griffin_lim(units), 1), timed(lambda: vocoder(units), 1)) for _ in range(args.repeats)]
    gl, head = (statistics.median(r[i] for r in rounds) for i in (0, 1))
    print(f"vocoder, {seconds:.0f} s of audio: Griffin-Lim (32 iterations) {gl / seconds:.4f} CPU-s per audio-s "
          f"({seconds / gl:.0f}x real time); inverse-STFT head {head / seconds:.4f} ({seconds / head:.0f}x real time)")


if __name__ == "__main__":
    main()
