"""Unit vocoders: configs, generators, discriminators, HiFi-GAN losses (hand-checked), duration/speaker/F0 paths,
Griffin-Lim, and short CPU training runs on espeak-ng speech (plain Trainer for UnitMelVocoder, VocoderGanTrainer for
the HiFi-GAN, including checkpoint resume of both optimisers). The common checks (save/load, Auto classes, remote
code, padded batch, dtype, device, export) run through `ComponentTesterMixin`."""

from __future__ import annotations

import copy
import math
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio
from safetensors import safe_open
from transformers import AutoModel, Trainer, TrainerCallback, TrainingArguments

import hf_slm  # noqa: F401  (registers the Auto classes)
from hf_slm.models.unit_vocoder import (
    HifiGanDiscriminator,
    LogMelSpectrogram,
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
    UnitHifiGanVocoder,
    UnitHifiGanVocoderConfig,
    UnitMelVocoder,
    UnitMelVocoderConfig,
    UnitVocoderOutput,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
    griffin_lim_from_mel,
    mel_l1_loss,
)
from hf_slm.training import UnitVocoderCollator, VocoderGanTrainer
from hf_slm.training.gan_trainer import DISCRIMINATOR_OPTIMIZER_NAME
from component_tester import ComponentTesterMixin

SR, HOP, NUM_UNITS = 16000, 320, 20


class UnitVocoderTester:
    """Tiny configs: hop 320 (8*8*5) at 16 kHz, 32 initial channels, one resblock; 2 periods + 2 scales."""

    def hifigan_config(self, **overrides):
        kwargs = dict(
            num_units=NUM_UNITS,
            embedding_dim=16,
            upsample_rates=(8, 8, 5),
            upsample_kernel_sizes=(16, 16, 5),
            upsample_initial_channel=32,
            resblock_kernel_sizes=(3,),
            resblock_dilation_sizes=((1, 3),),
            mpd_periods=(2, 3),
            mpd_channels=(4, 8, 8, 8, 8),
            msd_num_scales=2,
            msd_channels=(16,) * 7,
            speaker_embedding_dim=4,
            f0_embedding_dim=4,
        )
        kwargs.update(overrides)
        return UnitHifiGanVocoderConfig(**kwargs)

    def mel_config(self, **overrides):
        kwargs = dict(num_units=NUM_UNITS, hidden_size=32, num_unit_layers=1, num_mel_layers=1, griffin_lim_iters=4)
        kwargs.update(overrides)
        return UnitMelVocoderConfig(**kwargs)

    def model(self, kind, seed=0, **overrides):
        torch.manual_seed(seed)
        if kind == "hifigan":
            return UnitHifiGanVocoder(self.hifigan_config(**overrides))
        return UnitMelVocoder(self.mel_config(**overrides))


tester = UnitVocoderTester()
PADDED_IDS = torch.tensor([[3, 3, 7, 9, 1], [5, 1, -1, -1, -1]])  # -1 = the unit tokenizer's padding id
PADDED_MASK = (PADDED_IDS >= 0).long()


# ---------------------------------------------------------------------------------------------- common checks
class VocoderComponentTester(ComponentTesterMixin):
    def get_batch_and_items(self):
        return {"input_ids": PADDED_IDS, "attention_mask": PADDED_MASK}, [
            {"input_ids": PADDED_IDS[:1]},
            {"input_ids": PADDED_IDS[1:, :2]},
        ]


class TestUnitHifiGanVocoder(VocoderComponentTester):
    component = "unit_hifigan"
    model_class = UnitHifiGanVocoder
    compared_outputs = ("waveform", "waveform_lengths")


class TestUnitMelVocoder(VocoderComponentTester):
    component = "unit_mel_vocoder"
    model_class = UnitMelVocoder
    compared_outputs = ("mel", "mel_lengths", "waveform", "waveform_lengths")
    bf16_rtol = 0.3  # 4 Griffin-Lim iterations are phase-sensitive: a bfloat16 mel moves the phase (seen: 0.14)


class TestUnitMelVocoderIstft(VocoderComponentTester):
    component = "unit_mel_vocoder_istft"
    model_class = UnitMelVocoder
    compared_outputs = ("mel", "mel_lengths", "waveform", "waveform_lengths")


def test_hifigan_padded_batch_with_durations_speakers_f0_matches_each_item_alone():
    """Beyond the tester's plain units: duration expansion pads too, and two resblocks per stage are summed; the
    valid part of each padded item equals that item vocoded alone (conv biases must not leak through padding)."""
    model = tester.model("hifigan", resblock_kernel_sizes=(3, 5), resblock_dilation_sizes=((1, 3), (1, 2)),
                         num_speakers=2, use_f0=True).eval()  # fmt: skip
    ids, durations = torch.tensor([[3, 7, 9, 1], [5, 1, 2, 4]]), torch.tensor([[2, 1, 3, 1], [1, 2, 0, 0]])
    f0 = torch.tensor([[120.0] * 7, [0.0, 110.0, 130.0, 0.0, 0.0, 0.0, 0.0]])
    with torch.no_grad():
        batch = model(ids, attention_mask=torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]]), durations=durations,
                      speaker_id=torch.tensor([0, 1]), f0=f0).waveform  # fmt: skip
        alone = model(ids[1:, :2], durations=durations[1:, :2], speaker_id=torch.tensor([1]), f0=f0[1:, :3]).waveform
    assert alone.shape == (1, 3 * HOP) and batch.shape == (2, 7 * HOP)
    torch.testing.assert_close(batch[1, : 3 * HOP], alone[0], rtol=0, atol=1e-6)
    assert not batch[1, 3 * HOP :].any()


def test_vocoders_still_check_units_in_eager_mode():
    """The unit-range checks left the traced path (so the vocoders export), not the eager one: a unit out of range
    is a clear error, before and through `validate_inputs` (what a caller of a compiled or exported vocoder runs
    first)."""
    for kind in ("hifigan", "mel"):
        model = tester.model(kind)
        bad = torch.tensor([[1, 2, NUM_UNITS]])
        with pytest.raises(ValueError, match=rf"unit ids must be in \[0, {NUM_UNITS}\)"):
            model(input_ids=bad)
        with pytest.raises(ValueError, match=rf"unit ids must be in \[0, {NUM_UNITS}\)"):
            model.validate_inputs(bad)
        model.validate_inputs(bad, attention_mask=torch.tensor([[1, 1, 0]]))  # masked padding may hold anything


# ---------------------------------------------------------------------------------------------- speech fixtures
def _kmeans_units(features, k, iters=10, seed=0):
    generator = torch.Generator().manual_seed(seed)
    centroids = features[torch.randperm(len(features), generator=generator)[:k]].clone()
    for _ in range(iters):
        assign = torch.cdist(features, centroids).argmin(1)
        for j in range(k):
            if (assign == j).any():
                centroids[j] = features[assign == j].mean(0)
    return torch.cdist(features, centroids).argmin(1)


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """~3 s of espeak-ng speech at 16 kHz and 50 Hz MFCC k-means units (20 clusters), aligned (unit t = samples
    [320 t, 320 (t + 1)))."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    path = tmp_path_factory.mktemp("espeak") / "speech.wav"
    text = "The quick brown fox jumps over the lazy dog. Speech resynthesis from discrete units."
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True)
    audio, rate = sf.read(path, dtype="float32")
    wave = torchaudio.functional.resample(torch.from_numpy(audio), rate, SR)
    frames = wave.numel() // HOP
    wave = wave[: frames * HOP]
    mfcc = torchaudio.transforms.MFCC(SR, n_mfcc=13, melkwargs=dict(n_fft=400, hop_length=HOP, n_mels=40))(wave)
    units = _kmeans_units(mfcc[:, :frames].T, NUM_UNITS)
    return units, wave


def _clips(speech, starts=(10, 60), num_units=16):
    """Two fixed aligned (units, audio) clips, as dataset rows."""
    units, wave = speech
    return [{"input_ids": units[s : s + num_units], "audio": wave[s * HOP : (s + num_units) * HOP]} for s in starts]


# ---------------------------------------------------------------------------------------------- configs
def test_default_configs_reproduce_speech_resynthesis_and_a_small_mel_model():
    hifigan = UnitHifiGanVocoderConfig()
    assert (hifigan.hop_length, hifigan.frame_rate, hifigan.sampling_rate) == (320, 50.0, 16000)
    assert hifigan.upsample_rates == [5, 4, 4, 2, 2] and hifigan.upsample_initial_channel == 512
    assert hifigan.mpd_periods == [2, 3, 5, 7, 11] and hifigan.msd_num_scales == 3
    assert (hifigan.lambda_fm, hifigan.lambda_mel) == (2.0, 45.0) and hifigan.keep_discriminators is False
    assert UnitHifiGanVocoderConfig(upsample_rates=(10, 8, 2, 2), upsample_kernel_sizes=(20, 16, 4, 4)).hop_length == 320
    mel = UnitMelVocoderConfig()
    assert (mel.hop_length, mel.mel_frames_per_unit, mel.frame_rate) == (320, 2, 50.0)
    params = sum(p.numel() for p in UnitMelVocoder(mel).parameters())
    assert 1e6 <= params <= 3e6, params


@pytest.mark.parametrize(
    "cls, kwargs, match",
    [
        (UnitHifiGanVocoderConfig, dict(upsample_kernel_sizes=(11, 8, 8, 4, 3)), "upsample_kernel_sizes\\[4\\]=3"),
        (UnitHifiGanVocoderConfig, dict(upsample_rates=(5, 4), upsample_kernel_sizes=(11,)), "2 entries"),
        (UnitHifiGanVocoderConfig, dict(num_units=0), "num_units"),
        (UnitHifiGanVocoderConfig, dict(msd_channels=(8,) * 7), "msd_channels\\[1\\] and msd_channels\\[2\\] must"),
        (UnitHifiGanVocoderConfig, dict(msd_channels=(6, 16, 16, 16, 16, 16, 16)), "multiples of 4"),
        (UnitHifiGanVocoderConfig, dict(mel_fmax=9000.0), "mel_fmax"),
        (UnitHifiGanVocoderConfig, dict(duration_predictor_kernel_size=4), "odd"),
        (UnitHifiGanVocoderConfig, dict(mpd_periods=(), msd_num_scales=0), "at least one discriminator"),
        (UnitHifiGanVocoderConfig, dict(resblock_dilation_sizes=((1, 3),)), "resblock_dilation_sizes"),
        (UnitMelVocoderConfig, dict(unit_hop_length=320, mel_hop_length=128), "multiple of mel_hop_length"),
        (UnitMelVocoderConfig, dict(kernel_size=4), "kernel_size"),
        (UnitMelVocoderConfig, dict(win_length=2048), "win_length"),
        (UnitMelVocoderConfig, dict(log_mel_std=0.0), "log_mel_std"),
        (UnitMelVocoderConfig, dict(waveform_head="hifigan"), "waveform_head must be one of"),
        (UnitMelVocoderConfig, dict(keep_discriminators=True), "needs waveform_head='istft'"),
        (UnitMelVocoderConfig, dict(waveform_head="istft", msd_channels=(8,) * 7), "multiples of 16"),
        (UnitMelVocoderConfig, dict(istft_num_layers=-1), "istft_num_layers"),
    ],
)
def test_configs_reject_bad_arguments(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


def test_scale_discriminator_channels_follow_each_convolutions_groups():
    """The check is the convolutions' own rule: 8 channels before the 4-group convolution are valid (half the
    recipe's 16), and a config that passes builds discriminators that run forward and backward."""
    config = UnitHifiGanVocoderConfig(mpd_periods=(), msd_num_scales=1, msd_channels=(8, 16, 16, 32, 32, 32, 32))
    discriminator = HifiGanDiscriminator.from_config(config)
    waveform = torch.randn(2, 640, requires_grad=True)
    scores, features = discriminator(waveform)
    sum(score.sum() for score in scores).backward()
    assert [f.shape[1] for f in features[0]] == [8, 16, 16, 32, 32, 32, 32, 1]  # + conv_post
    assert waveform.grad.abs().sum() > 0


# ---------------------------------------------------------------------------------------------- generators
@pytest.mark.parametrize("kind", ["hifigan", "mel"])
def test_padded_batch_shapes_silence_and_backward(kind):
    model = tester.model(kind).eval()
    out = model(PADDED_IDS, attention_mask=PADDED_MASK)
    assert isinstance(out, UnitVocoderOutput)
    assert out.waveform.shape == (2, 5 * HOP)
    assert out.waveform_lengths.tolist() == [5 * HOP, 2 * HOP]
    assert out.waveform[1, 2 * HOP :].abs().max() == 0  # padding is silence
    assert out.waveform[1, : 2 * HOP].abs().max() > 0
    model.train()
    labels = torch.randn(2, 5 * HOP) * 0.1
    out = model(PADDED_IDS, attention_mask=PADDED_MASK, labels=labels, labels_mask=torch.ones_like(labels))
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    assert model.unit_embedding.weight.grad[[3, 7, 9, 5, 1]].abs().sum() > 0
    assert model.unit_embedding.weight.grad[[0, 2]].abs().sum() == 0  # masked padding reads nothing


def test_mel_vocoder_pads_with_the_silence_floor():
    """Padded frames are the log-mel floor (each item's own frames: `TestUnitMelVocoder`)."""
    mel, lengths, _ = tester.model("mel").eval().units_to_mel(PADDED_IDS, PADDED_MASK)
    assert lengths.tolist() == [10, 4]
    assert torch.all(mel[1, 4:] == math.log(1e-5)) and not torch.all(mel[1, :4] == math.log(1e-5))


def test_mel_vocoder_skips_griffin_lim_in_training_and_takes_mel_labels():
    model = tester.model("mel", dropout=0.0).train()
    ids = PADDED_IDS[:1]
    out = model(ids)
    assert out.waveform is None and out.mel.shape == (1, 10, 80)
    target = torch.full((1, 10, 80), -3.0)
    loss = model(ids, labels=target).loss
    torch.testing.assert_close(loss, (out.mel.detach() - target).abs().mean(), atol=1e-4, rtol=1e-4)
    assert model(ids, return_waveform=True).waveform.shape == (1, 5 * HOP)


@pytest.mark.parametrize("kind", ["hifigan", "mel"])
@pytest.mark.parametrize(
    "call, match",
    [
        (lambda m: m(torch.tensor([[1, NUM_UNITS]])), "unit ids must be in"),
        (lambda m: m(torch.tensor([[1, -1]])), "unit ids must be in"),
        (lambda m: m(PADDED_IDS, attention_mask=PADDED_MASK[:, :3]), "attention_mask shape"),
        (lambda m: m(torch.zeros(1, 0, dtype=torch.long)), "empty"),
        (lambda m: m(torch.rand(1, 4)), "integer"),
        (lambda m: m(PADDED_IDS, PADDED_MASK, labels=torch.randn(3, 100)), "labels"),
        (lambda m: m(PADDED_IDS, PADDED_MASK, durations=torch.ones(2, 3, dtype=torch.long)), "durations"),
        (lambda m: m(PADDED_IDS, PADDED_MASK, durations=-torch.ones(2, 5, dtype=torch.long)), ">= 0"),
    ],
)
def test_bad_inputs_raise_clear_errors(kind, call, match):
    with pytest.raises(ValueError, match=match):
        call(tester.model(kind))


# ---------------------------------------------------------------------------------------------- duration / speaker / F0
def test_dedup_units_with_durations_reproduce_the_frame_level_units():
    model = tester.model("hifigan").eval()
    frames = torch.tensor([[4, 4, 4, 7, 7, 2, 9, 9, 9, 9]])
    dedup, durations = torch.unique_consecutive(frames[0], return_counts=True)
    full = model(frames).waveform
    expanded = model(dedup[None], durations=durations[None])
    torch.testing.assert_close(expanded.waveform, full)
    assert expanded.waveform_lengths.item() == 10 * HOP
    # batched dedup path with padding matches the unbatched one
    other = torch.tensor([5, 6])
    ids = torch.stack([dedup, torch.cat([other, torch.zeros(2, dtype=torch.long)])])
    durs = torch.stack([durations, torch.tensor([3, 1, 0, 0])])
    batch = model(ids, attention_mask=torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]]), durations=durs)
    assert batch.waveform_lengths.tolist() == [10 * HOP, 4 * HOP]
    assert batch.waveform[1, 4 * HOP :].abs().max() == 0


def test_duration_predictor_trains_on_durations_and_predicts_at_inference():
    model = tester.model("hifigan", use_duration_predictor=True)
    ids, durations = torch.tensor([[4, 7, 2, 9]]), torch.tensor([[3, 2, 1, 4]])
    labels = torch.randn(1, 10 * HOP) * 0.1
    out = model(ids, durations=durations, labels=labels)
    assert out.loss_duration is not None and out.waveform.shape == (1, 10 * HOP)
    torch.testing.assert_close(out.loss, model.config.lambda_mel * out.loss_mel + out.loss_duration)
    optimizer = torch.optim.Adam(model.duration_predictor.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        loss = model(ids, durations=durations).loss_duration
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert losses[-1] < 0.5 * losses[0], losses
    model.eval()
    predicted = model(ids)
    assert predicted.durations.min() >= 1
    assert predicted.waveform_lengths.item() == predicted.durations.sum().item() * HOP
    with pytest.raises(ValueError, match="true `durations`"):
        model.train()(ids, labels=labels)


def test_speaker_and_f0_conditioning_change_the_output():
    model = tester.model("hifigan", num_speakers=3, use_f0=True, f0_normalize=True).eval()
    ids = torch.tensor([[4, 7, 2, 9, 9, 1]])
    f0 = torch.tensor([[0.0, 120, 130, 140, 150, 0, 0, 110, 115, 120, 125, 0]])  # 100 Hz F0 -> 50 Hz units
    base = model(ids, speaker_id=torch.tensor([0]), f0=f0).waveform
    assert not torch.allclose(base, model(ids, speaker_id=torch.tensor([2]), f0=f0).waveform)
    assert not torch.allclose(base, model(ids, speaker_id=torch.tensor([0]), f0=f0.flip(1)).waveform)
    # per-utterance normalisation: a transposed contour (x1.5) is the same contour
    torch.testing.assert_close(base, model(ids, speaker_id=torch.tensor([0]), f0=f0 * 1.5).waveform)
    raw = tester.model("hifigan", use_f0=True, f0_normalize=False).eval()
    assert not torch.allclose(raw(ids, f0=f0).waveform, raw(ids, f0=f0 * 1.5).waveform)
    for kwargs, match in [
        (dict(f0=f0), "speaker_id"),
        (dict(speaker_id=torch.tensor([3]), f0=f0), "speaker_id must be in"),
        (dict(speaker_id=torch.tensor([0])), "f0"),
        (dict(speaker_id=torch.tensor([0]), f0=-f0), ">= 0 Hz"),
    ]:
        with pytest.raises(ValueError, match=match):
            model(ids, **kwargs)
    with pytest.raises(ValueError, match="no speaker"):
        tester.model("hifigan")(ids, speaker_id=torch.tensor([0]))
    with pytest.raises(ValueError, match="no speaker or F0"):
        tester.model("mel")(ids, f0=f0)


# ---------------------------------------------------------------------------------------------- discriminators
@pytest.mark.parametrize(
    "make, count, depth",
    [
        (lambda: MultiPeriodDiscriminator(periods=(2, 3, 5, 7, 11), channels=(4, 8, 8, 8, 8)), 5, 6),
        (lambda: MultiScaleDiscriminator(num_scales=3, channels=(16,) * 7), 3, 8),
    ],
)
def test_discriminators_forward_backward(make, count, depth):
    torch.manual_seed(0)
    discriminator = make()
    waveform = torch.randn(2, 3001, requires_grad=True)  # odd length: period discriminators pad by reflection
    scores, features = discriminator(waveform)
    assert len(scores) == len(features) == count
    assert all(s.shape[0] == 2 and s.dim() == 2 for s in scores)
    assert all(len(f) == depth for f in features)
    discriminator_loss(scores, [s * 0 for s in scores]).backward()
    assert waveform.grad.abs().sum() > 0
    assert all(p.grad is not None for p in discriminator.parameters())


def test_hifigan_discriminator_combines_mpd_and_msd_and_rejects_stereo():
    discriminator = HifiGanDiscriminator.from_config(tester.hifigan_config())
    scores, features = discriminator(torch.randn(1, 2000))
    assert len(scores) == 2 + 2 and [len(f) for f in features] == [6, 6, 8, 8]
    with pytest.raises(ValueError, match="mono"):
        discriminator(torch.randn(1, 2, 2000))


# ---------------------------------------------------------------------------------------------- losses (hand-checked)
def test_least_squares_gan_losses_match_hand_computed_values():
    real = [torch.tensor([[1.0, 0.0]]), torch.tensor([[0.5]])]
    fake = [torch.tensor([[0.0, 1.0]]), torch.tensor([[0.5]])]
    # eq. 7: ((0 + 1) / 2 + (0 + 1) / 2) + (0.25 + 0.25)
    assert discriminator_loss(real, fake).item() == pytest.approx(1.5)
    # eq. 6: mean((1 - [1, 3])^2) + mean((1 - 0)^2) = 2 + 1
    assert generator_adversarial_loss([torch.tensor([[1.0, 3.0]]), torch.tensor([[0.0]])]).item() == pytest.approx(3.0)
    with pytest.raises(ValueError, match="real and 1 generated"):
        discriminator_loss(real, fake[:1])


def test_feature_matching_loss_matches_hand_computed_value_and_trains_the_generator_only():
    real = [[torch.tensor([1.0, 2.0], requires_grad=True), torch.zeros(2, 2)], [torch.tensor([0.0])]]
    fake = [[torch.tensor([2.0, 4.0], requires_grad=True), torch.ones(2, 2)], [torch.tensor([-3.0])]]
    loss = feature_matching_loss(real, fake)  # mean(|1|, |2|) + mean(1 x 4) + 3 = 1.5 + 1 + 3
    assert loss.item() == pytest.approx(5.5)
    loss.backward()
    assert real[0][0].grad is None
    torch.testing.assert_close(fake[0][0].grad, torch.tensor([0.5, 0.5]))


def test_log_mel_matches_an_independent_stft_computation():
    torch.manual_seed(0)
    wave = torch.randn(1, 4000) * 0.3
    transform = LogMelSpectrogram(sampling_rate=SR, n_fft=512, hop_length=128, n_mels=40)
    window = torch.hann_window(512)
    spec = torch.stft(torch.nn.functional.pad(wave, (256, 256), mode="reflect"), 512, 128, window=window,
                      center=False, return_complex=True).abs()
    fbanks = torchaudio.functional.melscale_fbanks(257, 0.0, SR / 2, 40, SR, norm="slaney", mel_scale="slaney")
    expected = torch.log(torch.clamp(fbanks.T @ spec[0], min=1e-5)).T
    torch.testing.assert_close(transform(wave)[0], expected, atol=1e-4, rtol=1e-4)
    assert transform(wave).shape[1] == transform.num_frames(4000) == 4000 // 128 + 1


def test_mel_l1_loss_hand_checked_values_and_length_masking():
    torch.manual_seed(0)
    transform = LogMelSpectrogram(sampling_rate=SR, n_fft=512, hop_length=128, n_mels=40)
    wave = torch.randn(2, 4000) * 0.3
    assert mel_l1_loss(wave, wave.clone(), transform).item() == 0.0
    assert transform(wave).min() > math.log(1e-5)  # no bin at the floor, so doubling shifts every log-mel by log 2
    assert mel_l1_loss(wave, 2 * wave, transform).item() == pytest.approx(math.log(2.0), abs=1e-5)
    # differences beyond each item's length do not count
    lengths = torch.tensor([4000, 2000])
    generated = wave.clone()
    generated[1, 2000:] = 0.0
    real = wave.clone()
    real[1, 2000:] = torch.randn(2000)
    assert mel_l1_loss(real, generated, transform).item() > 0
    masked = mel_l1_loss(real, generated, transform, lengths=lengths).item()
    valid_frames = transform.num_frames(4000) + 2000 // 128 + 1  # frames centred before 2000 in item 1
    manual = torch.abs(transform(real) - transform(generated))[1, : 2000 // 128 + 1].sum() / (valid_frames * 40)
    assert masked == pytest.approx(manual.item(), rel=1e-5)


# ---------------------------------------------------------------------------------------------- Griffin-Lim baseline
def test_griffin_lim_from_mel_reconstructs_speech_spectra(speech):
    _, wave = speech
    clip = wave[: SR]
    transform = LogMelSpectrogram(sampling_rate=SR, n_fft=1024, hop_length=160, n_mels=80)
    log_mel = transform(clip)[0]
    recon = griffin_lim_from_mel(log_mel, sampling_rate=SR, n_fft=1024, hop_length=160, n_iter=16)
    assert recon.shape == ((log_mel.shape[0] - 1) * 160,)
    error = (transform(recon)[0] - log_mel[: transform.num_frames(recon.numel())]).abs().mean()
    silence_error = (math.log(1e-5) - log_mel).abs().mean()
    assert error < 0.35 * silence_error, (error, silence_error)
    with pytest.raises(ValueError, match="log_mel must be"):
        griffin_lim_from_mel(torch.randn(80))


@pytest.mark.parametrize("frames", [2, 3, 4])
def test_griffin_lim_from_mel_handles_mels_shorter_than_the_fft_window(speech, frames):
    """A one- or two-unit reply is a mel shorter than n_fft / 2 samples: audio of its own length, not an stft error."""
    transform = LogMelSpectrogram(sampling_rate=SR, n_fft=1024, hop_length=160, n_mels=80)
    log_mel = transform(speech[1][:SR])[0][20 : 20 + frames]
    recon = griffin_lim_from_mel(log_mel, sampling_rate=SR, n_fft=1024, hop_length=160, n_iter=4)
    assert recon.shape == ((frames - 1) * 160,) and torch.isfinite(recon).all() and recon.abs().max() > 0
    padded = griffin_lim_from_mel(log_mel, sampling_rate=SR, n_fft=1024, hop_length=160, n_iter=4, length=480)
    assert padded.shape == (480,)
    vocoder = UnitMelVocoder(UnitMelVocoderConfig(hidden_size=16, griffin_lim_iters=2)).eval()
    with torch.no_grad():
        out = vocoder(input_ids=torch.tensor([[3]]))
    assert out.waveform.shape[-1] == int(out.waveform_lengths[0]) > 0


# ---------------------------------------------------------------------------------------------- save / load
def _saved_keys(folder):
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        return set(f.keys())


def test_hifigan_saves_generator_only_unless_asked(tmp_path):
    model = tester.model("hifigan")
    model.setup_discriminators()
    model.save_pretrained(tmp_path / "generator")
    assert not any(k.startswith("discriminator.") for k in _saved_keys(tmp_path / "generator"))
    assert AutoModel.from_pretrained(tmp_path / "generator").discriminator is None
    assert model.discriminator is not None and model.config.keep_discriminators is False

    model.save_pretrained(tmp_path / "full", keep_discriminators=True)
    assert any(k.startswith("discriminator.") for k in _saved_keys(tmp_path / "full"))
    loaded = AutoModel.from_pretrained(tmp_path / "full")
    assert loaded.config.keep_discriminators is True and loaded.discriminator is not None
    for name, tensor in model.discriminator.state_dict().items():
        torch.testing.assert_close(loaded.discriminator.state_dict()[name], tensor)

    with pytest.raises(ValueError, match="no discriminators"):
        tester.model("hifigan").save_pretrained(tmp_path / "bad", keep_discriminators=True)


# ---------------------------------------------------------------------------------------------- training
def _args(out, **overrides):
    kwargs = dict(
        output_dir=str(out),
        per_device_train_batch_size=2,
        max_steps=4,
        learning_rate=3e-3,
        lr_scheduler_type="constant",
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        seed=0,
    )
    kwargs.update(overrides)
    return TrainingArguments(**kwargs)


def _batch_loss(model, rows, key="loss"):
    batch = UnitVocoderCollator(hop_length=HOP)(rows)
    kwargs = {"return_waveform": False} if isinstance(model, UnitMelVocoder) else {}
    model.eval()
    with torch.no_grad():
        return getattr(model(**batch, **kwargs), key).item()


def test_mel_vocoder_learns_with_the_plain_trainer(speech, tmp_path):
    rows = _clips(speech)
    model = tester.model("mel", dropout=0.0)
    before = _batch_loss(model, rows)
    trainer = Trainer(model=model, args=_args(tmp_path), train_dataset=rows, data_collator=UnitVocoderCollator(HOP))
    trainer.train()
    after = _batch_loss(model, rows)
    assert after < 0.9 * before, (before, after)
    logged = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(logged) == 4 and logged[-1] < logged[0]


@pytest.fixture(scope="module")
def gan_run(speech, tmp_path_factory):
    """Three VocoderGanTrainer steps on two fixed clips, checkpointing every 2 steps."""
    out = tmp_path_factory.mktemp("gan")
    rows = _clips(speech)
    model = tester.model("hifigan")
    before = _batch_loss(model, rows, "loss_mel")
    args = _args(out, max_steps=3, learning_rate=2e-3, adam_beta1=0.8, adam_beta2=0.99, save_strategy="steps",
                 save_steps=2)
    trainer = VocoderGanTrainer(model=model, args=args, train_dataset=rows, data_collator=UnitVocoderCollator(HOP))
    discriminator_before = {k: v.clone() for k, v in model.discriminator.state_dict().items()}
    trainer.train()
    return dict(out=out, rows=rows, args=args, trainer=trainer, model=model, before=before,
                discriminator_before=discriminator_before)


def test_gan_trainer_lowers_mel_loss_updates_both_players_and_logs_each_loss(gan_run):
    trainer, model = gan_run["trainer"], gan_run["model"]
    after = _batch_loss(model, gan_run["rows"], "loss_mel")
    assert after < gan_run["before"], (gan_run["before"], after)
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logs) == 3
    for name in ("loss_disc", "loss_gen_adv", "loss_fm", "loss_mel"):
        assert all(name in h and math.isfinite(h[name]) for h in logs), name
    changed = [not torch.equal(v, gan_run["discriminator_before"][k]) for k, v in model.discriminator.state_dict().items()]
    assert any(changed)
    generator_ids = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    discriminator_ids = {id(p) for group in trainer.optimizer_discriminator.param_groups for p in group["params"]}
    assert discriminator_ids == {id(p) for p in model.discriminator.parameters()}
    assert not generator_ids & discriminator_ids
    assert generator_ids == {id(p) for _, p in model.generator_parameters()}


def test_gan_checkpoints_keep_discriminators_but_save_model_exports_the_generator(gan_run, tmp_path):
    checkpoint = gan_run["out"] / "checkpoint-2"
    assert (checkpoint / DISCRIMINATOR_OPTIMIZER_NAME).is_file()
    assert any(k.startswith("discriminator.") for k in _saved_keys(checkpoint))
    gan_run["trainer"].save_model(str(tmp_path / "export"))
    assert not any(k.startswith("discriminator.") for k in _saved_keys(tmp_path / "export"))
    assert AutoModel.from_pretrained(tmp_path / "export").discriminator is None


def test_gan_trainer_resume_restores_both_optimisers_and_discriminators(gan_run, tmp_path):
    checkpoint = gan_run["out"] / "checkpoint-2"
    seen = {}

    class Capture(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            # deep copies: the (one) step the Trainer still runs after this callback updates the states in place
            seen["generator"] = copy.deepcopy(trainer.optimizer.state_dict()["state"])
            seen["discriminator"] = copy.deepcopy(trainer.optimizer_discriminator.state_dict()["state"])
            seen["weights"] = {k: v.clone() for k, v in trainer.model.discriminator.state_dict().items()}
            control.should_training_stop = True

    trainer = VocoderGanTrainer(
        model=tester.model("hifigan", seed=5),
        args=_args(tmp_path, **{k: getattr(gan_run["args"], k) for k in ("max_steps", "learning_rate", "save_steps")}),
        train_dataset=gan_run["rows"],
        data_collator=UnitVocoderCollator(HOP),
        callbacks=[Capture()],
    )
    trainer.train(resume_from_checkpoint=str(checkpoint))
    for name, file in (("generator", "optimizer.pt"), ("discriminator", DISCRIMINATOR_OPTIMIZER_NAME)):
        saved = torch.load(checkpoint / file, weights_only=True)["state"]
        assert saved and set(saved) == set(seen[name]), name
        for index, state in saved.items():
            torch.testing.assert_close(seen[name][index]["exp_avg"], state["exp_avg"])
    with safe_open(str(checkpoint / "model.safetensors"), "pt") as f:
        for key, value in seen["weights"].items():
            torch.testing.assert_close(value, f.get_tensor("discriminator." + key))


def test_gan_trainer_refuses_other_models(tmp_path):
    with pytest.raises(ValueError, match="waveform_head='istft'.*with_istft_head"):
        VocoderGanTrainer(model=tester.model("mel"), args=_args(tmp_path))
    with pytest.raises(ValueError, match="trains a UnitHifiGanVocoder or UnitMelVocoder, got Linear"):
        VocoderGanTrainer(model=torch.nn.Linear(2, 2), args=_args(tmp_path))


# ---------------------------------------------------------------------------------------------- inverse-STFT head
ISTFT_DISCRIMINATORS = dict(mpd_periods=(2, 3), mpd_channels=(4, 8, 8, 8, 8), msd_num_scales=2, msd_channels=(16,) * 7)


def test_istft_head_starts_from_the_least_squares_magnitude_of_its_own_mel():
    """At initialisation the head's magnitude is the least-squares inverse of the predicted mel (the correction
    starts at zero), so the waveform's analysis mel lies close to the predicted mel where it has energy; a random
    head would not. Its phase is learned, so the waveform is not Griffin-Lim's."""
    model = tester.model("mel", waveform_head="istft").eval()
    out = model(torch.tensor([[3, 3, 7, 9, 1, 1, 4, 4, 8, 2, 2, 6]]))
    assert out.waveform.shape == (1, 12 * HOP) and torch.isfinite(out.waveform).all()
    analysed = model.mel_transform()(out.waveform)[:, : out.mel.shape[1]]
    loud = out.mel > out.mel.median()
    assert (analysed - out.mel)[loud].abs().mean() < 1.0, (analysed - out.mel)[loud].abs().mean()
    with torch.no_grad():
        model.istft_head.weight.normal_(0, 1)
    shuffled = model.mel_transform()(model(out.mel.new_tensor([[3, 3, 7, 9, 1, 1, 4, 4, 8, 2, 2, 6]]).long()).waveform)
    assert (shuffled[:, : out.mel.shape[1]] - out.mel)[loud].abs().mean() > 2.0


def test_istft_head_returns_a_differentiable_waveform_and_its_mel_loss():
    model = tester.model("mel", waveform_head="istft", dropout=0.0).train()
    labels = torch.randn(2, 5 * HOP) * 0.1
    out = model(PADDED_IDS, attention_mask=PADDED_MASK, labels=labels)
    assert out.waveform.requires_grad and out.waveform.shape == (2, 5 * HOP)
    target = torch.full((2, 10, 80), -3.0)
    mel_only = model(PADDED_IDS, attention_mask=PADDED_MASK, labels=target)  # mel labels: no waveform term
    torch.testing.assert_close(mel_only.loss, mel_only.loss_mel)
    real, generated, lengths = model.align_with_labels(out.waveform, out.waveform_lengths, labels)
    expected_mel = mel_l1_loss(real, generated, model.mel_transform(), lengths=lengths)
    torch.testing.assert_close(out.loss_mel, expected_mel.detach())
    mel_head_l1 = out.loss - model.config.lambda_mel * out.loss_mel
    assert 0 < mel_head_l1.item() < out.loss.item()
    out.loss.backward()
    assert model.istft_head.weight.grad.abs().sum() > 0 and model.mel_head.weight.grad.abs().sum() > 0


def test_with_istft_head_keeps_the_mel_network_and_refuses_to_reshape_it():
    base = tester.model("mel")
    model = base.with_istft_head(istft_num_layers=1, **ISTFT_DISCRIMINATORS)
    assert model.config.waveform_head == "istft" and len(model.istft_layers) == 1 and model.discriminator is None
    ids = PADDED_IDS[:1]
    torch.testing.assert_close(model.eval().units_to_mel(ids)[0], base.eval().units_to_mel(ids)[0])
    assert base.config.waveform_head == "griffin_lim"  # the source is untouched
    with pytest.raises(ValueError, match=r"config_overrides \['hidden_size'\] change the units -> mel network"):
        base.with_istft_head(hidden_size=16)


def test_istft_head_trains_as_a_gan_and_saves_the_generator_only(speech, tmp_path):
    """`VocoderGanTrainer` on the warm-started head: both players update, the mel L1 of the generated audio falls,
    and the export loads back (Auto class) without the discriminators, giving the same audio."""
    rows = _clips(speech)
    model = tester.model("mel", dropout=0.0).with_istft_head(**ISTFT_DISCRIMINATORS)
    before = _batch_loss(model, rows, "loss_mel")
    args = _args(tmp_path / "run", max_steps=6, learning_rate=3e-3, adam_beta1=0.8, adam_beta2=0.99)
    trainer = VocoderGanTrainer(model=model, args=args, train_dataset=rows, data_collator=UnitVocoderCollator(HOP))
    discriminator_before = {k: v.clone() for k, v in model.discriminator.state_dict().items()}
    trainer.train()
    after = _batch_loss(model, rows, "loss_mel")
    assert after < before, (before, after)
    assert any(not torch.equal(v, discriminator_before[k]) for k, v in model.discriminator.state_dict().items())
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert all(math.isfinite(h["loss_disc"]) and math.isfinite(h["loss_gen_adv"]) for h in logs)
    trainer.save_model(str(tmp_path / "export"))
    assert not any(k.startswith("discriminator.") for k in _saved_keys(tmp_path / "export"))
    loaded = AutoModel.from_pretrained(tmp_path / "export").eval()
    assert type(loaded) is UnitMelVocoder and loaded.discriminator is None
    with torch.no_grad():
        torch.testing.assert_close(loaded(PADDED_IDS[:1]).waveform, model.eval()(PADDED_IDS[:1]).waveform)


def test_collator_aligns_crops_and_pads():
    units = torch.arange(10) % NUM_UNITS
    audio = np.arange(10 * HOP + 50, dtype=np.float32)  # 50 extra samples are cut
    rows = [{"input_ids": units, "audio": audio}, {"input_ids": units[:4], "audio": {"array": audio[: 3 * HOP]}}]
    batch = UnitVocoderCollator(hop_length=HOP)(rows)
    assert batch["labels"].shape == (2, 10 * HOP) and batch["labels_mask"].sum(1).tolist() == [10 * HOP, 3 * HOP]
    assert batch["attention_mask"].sum(1).tolist() == [10, 4]
    cropped = UnitVocoderCollator(hop_length=HOP, segment_units=3)(rows[:1])
    start = int(cropped["input_ids"][0, 0])
    assert cropped["labels"].shape == (1, 3 * HOP) and cropped["labels"][0, 0].item() == start * HOP
    with pytest.raises(ValueError, match="segment_units cannot crop"):
        UnitVocoderCollator(HOP, segment_units=3)([{"input_ids": units, "audio": audio, "durations": units * 0 + 1}])
