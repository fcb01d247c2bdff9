"""Codec tokenizers: configs, the wrappers of transformers' codecs (EnCodec, DAC, Mimi, X-codec: round trips, padded
batches, save/load), our RVQ codec (shapes, padding, EMA codebooks, k-means init, dead-code restart, commitment,
bitrate prefixes, D-axis distillation loss), the codec as a pipeline vocoder, GAN training steps, and the mixed
tokenizer: level-1 distillation toward MFCC features makes level-1 codes predict MFCC k-means units better."""

from __future__ import annotations

import copy
import math
import random
import shutil

import numpy as np
import pytest
import torch
from safetensors import safe_open
from transformers import AutoModel, DacConfig, EncodecConfig, HubertConfig, MimiConfig, TrainingArguments, XcodecConfig

import hf_slm  # noqa: F401  (registers the Auto classes)
from hf_slm.models.codec import (
    CodecConfig,
    CodecModel,
    EMACodebook,
    MelRVQCodecConfig,
    MelRVQCodecModel,
    RVQCodecConfig,
    RVQCodecModel,
    semantic_distillation_loss,
)
from hf_slm.training.codec_trainer import CodecCollator, CodecGanTrainer, codes_used_per_level, teacher_features
from hf_slm.training.gan_trainer import DISCRIMINATOR_OPTIMIZER_NAME
from component_tester import ComponentTesterMixin
from tiny_components import random_codebooks, tiny_codec, tiny_mel_rvq_codec, tiny_rvq_codec, tiny_unit_encoder

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: ~10x faster on one thread than on two


def _padded_audio(lengths, seed=0):
    generator = torch.Generator().manual_seed(seed)
    audio = torch.randn(len(lengths), max(lengths), generator=generator) * 0.3
    mask = (torch.arange(max(lengths))[None] < torch.tensor(lengths)[:, None]).long()
    return audio * mask, mask


# ---------------------------------------------------------------------------------------------------- common checks
class CodecComponentTester(ComponentTesterMixin):
    compared_outputs = ("codes", "codes_mask", "waveform", "waveform_lengths")
    hop = 16  # both tiny codecs
    export_blocked = fullgraph_blocked = (
        "codecs pad a batch to `ceil(max(lengths) / hop)` frames, lengths read from the attention mask "
        "(`_pad_to_frames`: `int(frames.max())`), so the output length depends on the data"
    )

    def get_batch_and_items(self):
        lengths = [12 * self.hop, 9 * self.hop + 7, 2 * self.hop + 3]
        audio, mask = _padded_audio(lengths, seed=1)
        items = [{"input_values": audio[i : i + 1, :n]} for i, n in enumerate(lengths)]
        return {"input_values": audio, "attention_mask": mask}, items


class TestCodecModel(CodecComponentTester):
    """A tiny DAC behind the wrapper (the other wrapped codecs: the `wrapped` tests below)."""

    component = "codec"
    model_class = CodecModel


class TestRVQCodecModel(CodecComponentTester):
    """Causal, the default (the centred codec: `test_rvq_centred_padded_batch_equals_each_item_alone`)."""

    component = "rvq_codec"
    model_class = RVQCodecModel
    bf16_rtol = 0.3  # a code that flips in bfloat16 decodes to another codebook vector (seen: 0.19 relative error)


class TestMelRVQCodecModel(CodecComponentTester):
    component = "mel_rvq_codec"
    model_class = MelRVQCodecModel

    def test_bfloat16_is_finite_and_close_to_float32(self):
        """Judged on what the codec keeps, the codes and the decoding's log-mel: Griffin-Lim from zero phase is
        chaotic in its phase (codebooks rounded to bfloat16 gave a waveform 0.57 away in relative L2, its log-mel
        0.04; white noise is 0.3 away)."""
        model, inputs = self.get_model(), self.get_inputs()
        reference = self.outputs(model, inputs)
        half = self.outputs(model.to(torch.bfloat16), self._to(inputs, dtype=torch.bfloat16))
        assert (half["codes"] == reference["codes"]).float().mean() >= self.bf16_min_agreement
        model = model.float()
        got, expected = (model.log_mel(out["waveform"].float())[0] for out in (half, reference))
        assert torch.isfinite(got).all()
        error = (got - expected).norm() / expected.norm()
        assert error < 0.1, f"log-mel of the decoding: relative error {error:.3g} in bfloat16"


# ---------------------------------------------------------------------------------------------------- configs
def test_default_configs_reproduce_encodec_24khz_and_a_4kbps_seanet_codec():
    wrapper = CodecConfig()
    assert (wrapper.codec_type, wrapper.sampling_rate, wrapper.hop_length, wrapper.frame_rate) == ("encodec", 24000, 320, 75.0)
    assert (wrapper.num_codebooks, wrapper.max_codebooks, wrapper.codebook_size, wrapper.bitrate) == (2, 32, 1024, 1500.0)
    rvq = RVQCodecConfig()
    assert (rvq.hop_length, rvq.frame_rate, rvq.bitrate, rvq.causal) == (320, 50.0, 4000.0, True)
    assert (rvq.ema_decay, rvq.dead_code_threshold, rvq.lambda_mel, rvq.lambda_fm, rvq.lambda_distillation) == (
        0.99, 2.0, 45.0, 2.0, 120.0
    )
    assert RVQCodecConfig(num_codebooks=2).bitrate == 1000.0
    params = sum(p.numel() for p in RVQCodecModel(rvq).parameters())
    assert 1e6 < params < 2e7, params


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(upsampling_ratios=()), "upsampling_ratios"),
        (dict(upsampling_ratios=(4, 0)), "upsampling_ratios"),
        (dict(ema_decay=1.0), "ema_decay"),
        (dict(codebook_size=1), "codebook_size"),
        (dict(num_codebooks=0), "num_codebooks"),
        (dict(quantizer_dropout=1.5), "quantizer_dropout"),
        (dict(semantic_distillation_dim=0), "semantic_distillation_dim"),
        (dict(mel_win_length=2048), "mel_win_length"),
        (dict(mel_fmax=9000.0), "mel_fmax"),
        (dict(pad_code_id=0), "pad_code_id"),
        (dict(lambda_mel=-1.0), "lambda_mel"),
    ],
)
def test_rvq_config_rejects_bad_values_by_name(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RVQCodecConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(codec_config={"model_type": "no_such_codec"}), "no_such_codec"),
        (dict(codec_config=HubertConfig()), "not a supported codec"),
        (dict(codec_config=EncodecConfig(chunk_length_s=1.0, overlap=0.01)), "chunked"),
        (dict(codec_config=EncodecConfig(audio_channels=2)), "audio_channels"),
        (dict(num_codebooks=33), "exceeds the 32 codebooks"),
        (dict(num_codebooks=0), "num_codebooks"),
        (dict(codec_config="encodec"), "dict or a PretrainedConfig"),
    ],
)
def test_codec_config_rejects_bad_values_by_name(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CodecConfig(**kwargs)


# ---------------------------------------------------------------------------------------------------- wrappers
def _hubert_tiny():
    return HubertConfig(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16, conv_dim=(8,) * 7,
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
    )


#: codec type -> (tiny transformers config, codebooks kept, expected hop, causal)
WRAPPED = {
    "encodec": (
        lambda: EncodecConfig(
            sampling_rate=16000, hidden_size=16, num_filters=4, upsampling_ratios=[4, 4], num_lstm_layers=1,
            codebook_size=64, target_bandwidths=[6.0, 12.0, 24.0],
        ),
        2, 16, True,
    ),
    "dac": (
        lambda: DacConfig(
            encoder_hidden_size=4, downsampling_ratios=[4, 4], decoder_hidden_size=16, n_codebooks=4,
            codebook_size=64, codebook_dim=4,
        ),
        2, 16, False,
    ),
    "mimi": (
        lambda: MimiConfig(
            sampling_rate=16000, hidden_size=16, num_filters=4, upsampling_ratios=[4, 2], num_hidden_layers=1,
            intermediate_size=32, num_attention_heads=2, num_key_value_heads=2, codebook_size=64, codebook_dim=8,
            num_quantizers=4, vector_quantization_hidden_dimension=8, upsample_groups=16,
        ),
        3, 16, True,
    ),
    "xcodec": (
        lambda: XcodecConfig(
            acoustic_model_config=dict(
                model_type="dac", encoder_hidden_size=4, downsampling_ratios=[8, 5, 4, 2],
                upsampling_ratios=[8, 5, 4, 2], decoder_hidden_size=16, hidden_size=16,
            ),
            semantic_model_config=_hubert_tiny(),
            codebook_size=64,
            target_bandwidths=[0.3, 0.6],
        ),
        2, 320, False,
    ),
}


@pytest.fixture(scope="module", params=sorted(WRAPPED))
def wrapped(request):
    make_config, num_codebooks, hop, causal = WRAPPED[request.param]
    torch.manual_seed(0)
    codec = CodecModel(CodecConfig(codec_config=make_config(), num_codebooks=num_codebooks)).eval()
    return request.param, random_codebooks(codec), num_codebooks, hop, causal


def test_wrapper_round_trip_shapes_masks_and_padding_codes(wrapped):
    name, codec, num_codebooks, hop, causal = wrapped
    assert (codec.hop_length, codec.is_causal, codec.num_codebooks) == (hop, causal, num_codebooks)
    lengths = [4 * hop + 5, 2 * hop + 3]
    audio, mask = _padded_audio(lengths)
    with torch.no_grad():
        encoded = codec.encode(audio, mask)
        frames = [math.ceil(n / hop) for n in lengths]
        assert encoded.codes.shape == (2, num_codebooks, max(frames)), name
        assert encoded.codes_mask.sum(-1).tolist() == frames
        assert (encoded.codes[1, :, frames[1]:] == codec.config.pad_code_id).all()
        valid = encoded.codes[encoded.codes_mask[:, None].expand_as(encoded.codes)]
        assert valid.min() >= 0 and valid.max() < codec.codebook_size
        assert valid.unique().numel() > 1, "codes do not vary: the comparisons below would be vacuous"
        decoded = codec.decode(encoded.codes, encoded.codes_mask)
        assert decoded.waveform.shape == (2, max(frames) * hop)
        assert decoded.waveform_lengths.tolist() == [f * hop for f in frames]
        assert (decoded.waveform[1, frames[1] * hop :] == 0).all() and decoded.waveform[0].abs().sum() > 0
        # the pipeline's vocoder call decodes the same codes to the same audio
        as_vocoder = codec(input_ids=encoded.codes, attention_mask=encoded.codes_mask)
        torch.testing.assert_close(as_vocoder.waveform, decoded.waveform)
        autoencoded = codec(input_values=audio, attention_mask=mask)
        assert torch.equal(autoencoded.codes, encoded.codes) and autoencoded.waveform_lengths.tolist() == lengths


def test_wrapper_padded_batch_gives_each_item_its_own_codes_and_audio(wrapped):
    name, codec, _, hop, _ = wrapped
    # EnCodec (reflect padding) runs a batch in one call only when every item has >= 8 frames: test both paths
    for lengths in ([12 * hop, 9 * hop + 7], [12 * hop, 9 * hop + 7, 2 * hop + 3]):
        _check_batch_against_items(name, codec, lengths, hop)


def _check_batch_against_items(name, codec, lengths, hop):
    audio, mask = _padded_audio(lengths, seed=1)
    with torch.no_grad():
        batch = codec.encode(audio, mask)
        decoded = codec.decode(batch.codes, batch.codes_mask)
        for i, n in enumerate(lengths):
            alone = codec.encode(audio[i : i + 1, :n])
            frames = alone.codes.shape[-1]
            assert torch.equal(alone.codes[0], batch.codes[i, :, :frames]), (name, i)
            solo = codec.decode(alone.codes).waveform[0]
            torch.testing.assert_close(solo, decoded.waveform[i, : solo.numel()], atol=1e-5, rtol=1e-4)
        shifted = batch.codes.clone()
        shifted[0, 0, 1] = (shifted[0, 0, 1] + 1) % codec.codebook_size
        assert not torch.equal(codec.decode(shifted, batch.codes_mask).waveform[0], decoded.waveform[0]), name


def test_wrapper_fewer_codebooks_are_a_prefix_and_decode_at_lower_bitrate(wrapped):
    name, codec, num_codebooks, hop, _ = wrapped
    audio, _ = _padded_audio([3 * hop])
    with torch.no_grad():
        full = codec.encode(audio).codes
        one = codec.encode(audio, num_codebooks=1).codes
        assert torch.equal(one[:, 0], full[:, 0]), name
        assert codec.decode(one).waveform.shape == codec.decode(full).waveform.shape
    with pytest.raises(ValueError, match="num_codebooks"):
        codec.encode(audio, num_codebooks=codec.config.max_codebooks + 1)


def test_wrapper_saves_and_loads_through_automodel(wrapped, tmp_path):
    name, codec, _, hop, _ = wrapped
    codec.save_pretrained(tmp_path / name)
    loaded = AutoModel.from_pretrained(tmp_path / name).eval()
    assert type(loaded) is CodecModel and loaded.config.codec_type == name
    audio, _ = _padded_audio([3 * hop + 1], seed=2)
    with torch.no_grad():
        before, after = codec(input_values=audio), loaded(input_values=audio)
    assert torch.equal(before.codes, after.codes)
    torch.testing.assert_close(before.waveform, after.waveform)


def test_from_codec_pretrained_wraps_a_saved_transformers_codec_with_its_weights(tmp_path):
    torch.manual_seed(0)
    dac = AutoModel.from_config(WRAPPED["dac"][0]()).eval()
    dac.save_pretrained(tmp_path / "dac")
    codec = CodecModel.from_codec_pretrained(str(tmp_path / "dac"), num_codebooks=3)
    assert (codec.num_codebooks, codec.config.codec_type, codec.training) == (3, "dac", False)
    for key, value in dac.state_dict().items():
        assert torch.equal(codec.codec.state_dict()[key], value), key
    audio = torch.randn(1, 64)
    with torch.no_grad():
        assert torch.equal(codec.encode(audio).codes, dac.encode(audio[:, None], n_quantizers=3).audio_codes)


def test_wrapper_errors_name_the_problem():
    codec = tiny_codec()
    with pytest.raises(ValueError, match="mono"):
        codec.encode(torch.zeros(1, 2, 64))
    with pytest.raises(ValueError, match="right-padded"):
        codec.encode(torch.zeros(1, 4), attention_mask=torch.tensor([[0, 1, 1, 1]]))
    with pytest.raises(ValueError, match="exactly one"):
        codec()
    with pytest.raises(ValueError, match=r"codes must be in \[0, 64\)"):
        codec.decode(torch.tensor([[[1, 64]]]))
    with pytest.raises(ValueError, match="codes_mask"):
        codec.decode(torch.tensor([[[1, -1]]]))  # padding without a mask
    with pytest.raises(ValueError, match="this codec has 4"):
        codec.decode(torch.zeros(1, 5, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        codec.decode(torch.zeros(1, 2, 3))


# ---------------------------------------------------------------------------------------------------- RVQ codec
def test_rvq_centred_padded_batch_equals_each_item_alone():
    codec = tiny_rvq_codec(causal=False)
    audio, mask = _padded_audio([300, 170, 33])
    with torch.no_grad():
        batch = codec.encode(audio, mask)
        assert batch.codes.shape == (3, 3, 19) and batch.codes_mask.sum(-1).tolist() == [19, 11, 3]
        assert batch.latents.shape == (3, 8, 19)
        decoded = codec.decode(batch.codes, batch.codes_mask)
        for i, n in enumerate([300, 170, 33]):
            alone = codec.encode(audio[i : i + 1, :n])
            frames = alone.codes.shape[-1]
            assert torch.equal(alone.codes[0], batch.codes[i, :, :frames])
            solo = codec.decode(alone.codes).waveform[0]
            # float32: a batch of 3 and a batch of 1 block the convolutions differently (seen: 1.7e-6)
            torch.testing.assert_close(solo, decoded.waveform[i, : solo.numel()], atol=1e-5, rtol=1e-5)
            assert (decoded.waveform[i, frames * 16 :] == 0).all()


def test_rvq_causal_codes_ignore_the_future_and_centred_ones_do_not():
    audio, _ = _padded_audio([320])
    changed = audio.clone()
    changed[:, 200:] = 0.5
    for causal, same_prefix in ((True, True), (False, False)):
        codec = tiny_rvq_codec(causal=causal)
        with torch.no_grad():
            a, b = codec.encode(audio).latents, codec.encode(changed).latents
        assert torch.equal(a[..., :12], b[..., :12]) is same_prefix  # frame 11 ends at sample 192
        assert not torch.equal(a, b)


def test_rvq_forward_backward_reaches_encoder_decoder_and_projection_not_codebooks():
    codec = tiny_rvq_codec(semantic_distillation_dim=5).train()
    audio, mask = _padded_audio([400, 250])
    teacher = torch.randn(2, 25, 5)
    out = codec(audio, mask, labels=audio, labels_mask=mask, semantic_features=teacher)
    for name in ("loss", "loss_mel", "loss_commitment", "loss_distillation"):
        assert torch.isfinite(getattr(out, name)), name
    expected = 45 * out.loss_mel + out.loss_commitment + 120 * out.loss_distillation
    torch.testing.assert_close(out.loss.detach(), expected)
    out.loss.backward()
    for module in (codec.encoder.conv_in.conv, codec.decoder.conv_out.conv, codec.semantic_projection):
        assert module.weight.grad is not None and module.weight.grad.abs().sum() > 0
    assert all(not b.requires_grad for b in codec.quantizer.buffers())
    assert out.semantic_embeddings.shape == (2, 25, 5) and out.waveform.shape == audio.shape


def test_rvq_first_levels_are_a_prefix_and_decoding_fewer_levels_works():
    codec = tiny_rvq_codec()
    audio, _ = _padded_audio([160])
    with torch.no_grad():
        full, two = codec.encode(audio).codes, codec.encode(audio, num_codebooks=2).codes
        assert torch.equal(two, full[:, :2])
        one_level = codec.decode(full[:, 0]).waveform  # [B, T] = level 1 only
        assert one_level.shape == (1, 160) and not torch.equal(one_level, codec.decode(full).waveform)
    assert codec.bitrate == 3 * 4 * 1000.0


def test_rvq_codec_as_a_one_codebook_pipeline_vocoder():
    """SpeechLMPipeline.decode pads 1-D unit tensors to [B, T]: a 1-codebook codec decodes them like a vocoder."""
    from tiny_components import tiny_pipeline

    pipe = tiny_pipeline()
    codec = tiny_rvq_codec(num_codebooks=1)
    pipe.register_modules(vocoder=codec)
    units = [torch.tensor([1, 5, 9, 3]), torch.tensor([2, 2])]
    waves = pipe.decode(units)
    assert [w.shape[0] for w in waves] == [64, 32] and pipe.sampling_rate == 16000
    with torch.no_grad():
        np.testing.assert_allclose(waves[1], codec.decode(units[1][None]).waveform[0].numpy(), atol=1e-6)


def test_rvq_saves_codebooks_and_drops_discriminators_unless_asked(tmp_path):
    from hf_slm.models.unit_vocoder import HifiGanDiscriminator

    codec = tiny_rvq_codec().train()
    audio, _ = _padded_audio([320])
    codec(audio)  # k-means init + one EMA update
    codec.eval()
    codec.discriminator = HifiGanDiscriminator.from_config(codec.config)
    codec.save_pretrained(tmp_path / "codec")
    with safe_open(str(tmp_path / "codec" / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
    assert "quantizer.codebooks.0.embed" in keys and not any(k.startswith("discriminator.") for k in keys)
    loaded = AutoModel.from_pretrained(tmp_path / "codec").eval()
    assert type(loaded) is RVQCodecModel and loaded.discriminator is None
    assert float(loaded.quantizer.codebooks[0].initialized) == 1.0
    with torch.no_grad():
        assert torch.equal(loaded.encode(audio).codes, codec.encode(audio).codes)
    codec.save_pretrained(tmp_path / "with_d", keep_discriminators=True)
    with safe_open(str(tmp_path / "with_d" / "model.safetensors"), "pt") as f:
        assert any(k.startswith("discriminator.") for k in f.keys())


def test_rvq_errors_name_the_problem():
    codec = tiny_rvq_codec(semantic_distillation_dim=5)
    audio, _ = _padded_audio([64])
    with pytest.raises(ValueError, match="empty"):
        codec.encode(torch.zeros(1, 0))
    with pytest.raises(ValueError, match="float"):
        codec.encode(torch.zeros(1, 64, dtype=torch.long))
    with pytest.raises(ValueError, match="all 0"):
        codec.encode(torch.zeros(2, 8), attention_mask=torch.tensor([[1] * 8, [0] * 8]))
    with pytest.raises(ValueError, match="semantic_features"):
        codec.train()(audio, labels=audio)
    with pytest.raises(ValueError, match="dim 4"):
        codec(audio, labels=audio, semantic_features=torch.zeros(1, 4, 4))
    with pytest.raises(ValueError, match="num_codebooks"):
        codec.eval().encode(audio, num_codebooks=4)
    with pytest.raises(ValueError, match="labels"):
        codec.eval()(audio, labels=torch.zeros(2, 64))


# ---------------------------------------------------------------------------------------------------- quantizer
def test_ema_update_matches_the_hand_computed_rule():
    book = EMACodebook(dim=2, size=3, decay=0.5, epsilon=0.0, dead_code_threshold=0.0, kmeans_init=False).train()
    book.embed.copy_(torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]]))
    book.embed_avg.copy_(book.embed * 2)
    book.cluster_size.fill_(2.0)
    vectors = torch.tensor([[1.0, 1.0], [3.0, -1.0], [9.0, 1.0]])  # codes 0, 0, 1
    quantized, codes = book(vectors, torch.ones(3, dtype=torch.bool))
    assert codes.tolist() == [0, 0, 1]
    assert torch.equal(quantized, torch.tensor([[0.0, 0.0], [0.0, 0.0], [10.0, 0.0]]))  # codes before the update
    assert book.cluster_size.tolist() == [2.0, 1.5, 1.0]  # 0.5 * 2 + 0.5 * counts (2, 1, 0)
    avg = torch.tensor([[0.0, 0.0], [20.0, 0.0], [0.0, 20.0]]) * 0.5 + torch.tensor([[4.0, 0.0], [9.0, 1.0], [0.0, 0.0]]) * 0.5
    torch.testing.assert_close(book.embed_avg, avg)
    torch.testing.assert_close(book.embed, avg / torch.tensor([2.0, 1.5, 1.0])[:, None])


def test_padded_frames_never_touch_the_codebook_statistics():
    book = EMACodebook(dim=2, size=2, decay=0.0, epsilon=0.0, dead_code_threshold=0.0, kmeans_init=False).train()
    book.embed.copy_(torch.tensor([[0.0, 0.0], [5.0, 5.0]]))
    book(torch.tensor([[1.0, 0.0], [100.0, 100.0]]), torch.tensor([True, False]))
    assert book.cluster_size.tolist() == [1.0, 0.0] and book.embed[0].tolist() == [1.0, 0.0]


def test_kmeans_init_runs_once_on_the_first_training_batch():
    torch.manual_seed(0)
    book = EMACodebook(dim=2, size=4, kmeans_init=True, kmeans_iters=10, dead_code_threshold=0.0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    vectors = (centres[:, None] + 0.1 * torch.randn(4, 25, 2)).reshape(-1, 2)
    book.eval()(vectors, torch.ones(100, dtype=torch.bool))
    assert float(book.initialized) == 0.0  # evaluation never initialises
    book.train()(vectors, torch.ones(100, dtype=torch.bool))
    assert float(book.initialized) == 1.0
    found = sorted(book.embed.round().tolist())
    assert found == sorted(centres.tolist()), found
    snapshot = book.embed.clone()
    book(vectors + 100, torch.ones(100, dtype=torch.bool))  # a second batch only moves codes by EMA
    assert not torch.equal(book.embed, snapshot) and float(book.initialized) == 1.0


def test_dead_codes_restart_from_batch_vectors_and_stay_put():
    torch.manual_seed(0)
    book = EMACodebook(dim=2, size=4, decay=0.99, dead_code_threshold=2.0, kmeans_init=False).train()
    book.embed.copy_(torch.tensor([[0.0, 0.0], [1e3, 1e3], [-1e3, 1e3], [1e3, -1e3]]))
    book.embed_avg.copy_(book.embed * 10)
    book.cluster_size.copy_(torch.tensor([10.0, 10.0, 1.0, 0.5]))  # codes 2 and 3 are dead
    vectors = torch.randn(50, 2)
    book(vectors, torch.ones(50, dtype=torch.bool))
    assert book.last_restarts == 2
    for code in (2, 3):
        assert (book.embed[code] == vectors).all(-1).any(), code  # each restarted code IS a batch vector
        assert book.cluster_size[code] == 2.0
    torch.testing.assert_close(book.embed[1], torch.tensor([1e3, 1e3]) * 10 * 0.99 / (10 * 0.99), rtol=1e-2, atol=0)
    restarted = book.embed[2:].clone()
    book.decay = 0.5
    book(restarted, torch.ones(2, dtype=torch.bool))  # the restarted codes now win their vectors: no drift
    torch.testing.assert_close(book.embed[2:], restarted)
    off = EMACodebook(dim=2, size=4, dead_code_threshold=0.0, kmeans_init=False).train()
    off(vectors, torch.ones(50, dtype=torch.bool))
    assert off.last_restarts == 0


def test_commitment_loss_is_the_mean_squared_distance_to_the_codes():
    codec = tiny_rvq_codec(num_codebooks=1)
    quantizer = codec.quantizer.eval()
    latents = torch.randn(2, 8, 5)
    mask = torch.tensor([[True] * 5, [True] * 2 + [False] * 3])
    quantized, codes, loss, first = quantizer(latents, mask)
    manual = (latents - quantizer.codebooks[0].embed[codes[:, 0]].transpose(1, 2)) ** 2
    expected = manual.permute(0, 2, 1)[mask].mean()
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(first, quantized)  # one level: level 1 is everything
    assert (quantized[1, :, 2:] == 0).all()


def test_quantizer_dropout_trains_random_prefixes():
    codec = tiny_rvq_codec(quantizer_dropout=1.0, num_codebooks=3).train()
    torch.manual_seed(0)
    audio, _ = _padded_audio([64])
    levels = {codec(audio).codes.shape[1] for _ in range(12)}
    assert levels == {1, 2, 3}
    assert codec.eval().encode(audio).codes.shape[1] == 3


# ---------------------------------------------------------------------------------------------------- distillation loss
def test_distillation_loss_is_the_d_axis_cosine_of_speechtokenizer():
    teacher = torch.randn(2, 30, 4)
    mask = torch.ones(2, 30, dtype=torch.bool)
    same = semantic_distillation_loss(teacher, teacher, mask)
    torch.testing.assert_close(same, -torch.nn.functional.logsigmoid(torch.tensor(1.0)))
    opposite = semantic_distillation_loss(-teacher, teacher, mask)
    torch.testing.assert_close(opposite, -torch.nn.functional.logsigmoid(torch.tensor(-1.0)))
    # along time, per feature dimension: rescaling a dimension changes nothing, rescaling a frame does
    per_dimension = teacher * torch.tensor([1.0, 5.0, 0.1, 3.0])
    torch.testing.assert_close(semantic_distillation_loss(per_dimension, teacher, mask), same)
    per_frame = teacher * torch.linspace(0.1, 5.0, 30)[None, :, None]
    assert semantic_distillation_loss(per_frame, teacher, mask) > same + 1e-3
    # padded frames do not count
    padded = teacher.clone()
    padded[1, 20:] = 99.0
    short_mask = mask.clone()
    short_mask[1, 20:] = False
    torch.testing.assert_close(
        semantic_distillation_loss(padded, teacher, short_mask), semantic_distillation_loss(teacher, teacher, short_mask)
    )


def test_teacher_features_are_standardised_and_resampled_to_the_codec_rate():
    teacher = tiny_unit_encoder("mfcc")
    audio, mask = _padded_audio([16000, 8000])
    features, frames = teacher.extract_features(audio, mask)
    same, same_mask = teacher_features(teacher, audio, mask, 50.0)
    expected = (features - teacher.feature_mean) / teacher.feature_std * frames[..., None]
    torch.testing.assert_close(same, expected)
    assert torch.equal(same_mask, frames)
    fast, fast_mask = teacher_features(teacher, audio, mask, 100.0)
    assert fast.shape[1] == 2 * features.shape[1] and fast_mask.sum(-1).tolist() == [2 * int(n) for n in frames.sum(-1)]


# ---------------------------------------------------------------------------------------------------- training
def test_codec_collator_pads_crops_and_checks_the_sampling_rate():
    random.seed(0)
    batch = CodecCollator(segment_samples=100)([{"audio": np.ones(300, np.float32)}, {"audio": np.ones(40, np.float32)}])
    assert batch["input_values"].shape == (2, 100) and batch["attention_mask"].sum(-1).tolist() == [100, 40]
    assert torch.equal(batch["labels"], batch["input_values"]) and torch.equal(batch["labels_mask"], batch["attention_mask"])
    with pytest.raises(ValueError, match="8000 Hz"):
        CodecCollator(sampling_rate=16000)([{"audio": {"array": np.ones(10), "sampling_rate": 8000}}])
    with pytest.raises(ValueError, match="mono"):
        CodecCollator()([{"audio": np.ones((2, 10))}])


def test_codec_collator_noise_floor_fills_digital_silence_in_input_and_target_alike():
    torch.manual_seed(0)
    silence_then_tone = np.concatenate([np.zeros(8000), 0.5 * np.sin(np.arange(8000) / 5)]).astype(np.float32)
    batch = CodecCollator(noise_floor=1e-3)([{"audio": silence_then_tone}])
    noise = batch["input_values"][0] - torch.from_numpy(silence_then_tone)
    assert noise.std().item() == pytest.approx(1e-3, rel=0.05) and abs(noise.mean().item()) < 1e-4
    assert torch.equal(batch["labels"], batch["input_values"])  # the codec reconstructs the noisy crop
    assert torch.equal(CodecCollator()([{"audio": silence_then_tone}])["input_values"][0], torch.from_numpy(silence_then_tone))
    for bad in (-1e-3, float("nan")):
        with pytest.raises(ValueError, match="noise_floor must be"):
            CodecCollator(noise_floor=bad)


def _clips(seconds=0.25, count=4):
    """A few short espeak-ng utterances at 16 kHz (synthesised once per session)."""
    return [{"audio": w[3200 : 3200 + int(seconds * 16000)]} for w in _espeak_waves()[:count]]


_WAVES = []


def _espeak_waves():
    if not _WAVES:
        if shutil.which("espeak-ng") is None:
            pytest.skip("espeak-ng is not installed")
        from hf_slm.data import EspeakSynthesizer

        synth = EspeakSynthesizer()
        for text in ("speech codecs compress audio", "the cat sat on the mat", "one two three four five",
                     "a quick brown fox"):
            _WAVES.append(_as_16k(synth, text))
    return _WAVES


def _as_16k(synth, text):
    result = synth.synthesize(text)
    import torchaudio

    return torchaudio.functional.resample(torch.as_tensor(result.waveform).float(), result.sampling_rate, 16000).numpy()


def _args(out, **overrides):
    kwargs = dict(
        output_dir=str(out), per_device_train_batch_size=4, max_steps=4, learning_rate=3e-3, adam_beta1=0.8,
        adam_beta2=0.99, lr_scheduler_type="constant", logging_steps=1, save_strategy="no", report_to=[],
        use_cpu=True, disable_tqdm=True, remove_unused_columns=False, dataloader_pin_memory=False, seed=0,
    )
    kwargs.update(overrides)
    return TrainingArguments(**kwargs)


def _mel_loss(codec, rows):
    batch = CodecCollator()(rows)
    with torch.no_grad():
        return float(codec.eval()(**batch).loss_mel)


def test_codes_used_per_level_counts_distinct_codes_in_real_frames_only():
    codes = torch.tensor([[[1, 1, 2, 7], [0, 0, 0, 7]], [[3, 3, 3, 3], [5, 5, 5, 5]]])  # [B=2, Q=2, T=4]
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])  # the 7s and the second row's tail are padding
    assert codes_used_per_level(codes, mask) == [3, 2]  # level 1: {1, 2, 3}; level 2: {0, 5}
    assert codes_used_per_level(codes) == [4, 3]
    assert codes_used_per_level(codes, torch.zeros(2, 4)) == [0, 0]  # no real frame


def test_gan_steps_lower_the_mel_loss_update_ema_codebooks_and_checkpoint_both_players(tmp_path):
    rows = _clips()
    codec = tiny_rvq_codec(dead_code_threshold=1.0, ema_decay=0.9)
    before = _mel_loss(codec, rows)
    embed_before = codec.quantizer.codebooks[0].embed.clone()
    args = _args(tmp_path, max_steps=6, save_strategy="steps", save_steps=3)
    trainer = CodecGanTrainer(model=codec, args=args, train_dataset=rows, data_collator=CodecCollator())
    discriminator_before = {k: v.clone() for k, v in codec.discriminator.state_dict().items()}
    trainer.train()
    assert _mel_loss(codec, rows) < before
    assert not torch.equal(codec.quantizer.codebooks[0].embed, embed_before)
    assert float(codec.quantizer.codebooks[0].initialized) == 1.0
    logs = [h for h in trainer.state.log_history if "loss" in h]
    for name in ("loss_mel", "loss_commitment", "codes_restarted", "codes_used", "loss_disc", "loss_gen_adv", "loss_fm"):
        assert all(name in h and math.isfinite(h[name]) for h in logs), name
    assert all(1 <= h["codes_used"] <= codec.config.codebook_size for h in logs)
    assert any(not torch.equal(v, discriminator_before[k]) for k, v in codec.discriminator.state_dict().items())
    generator_ids = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert generator_ids == {id(p) for _, p in codec.generator_parameters()}
    checkpoint = tmp_path / "checkpoint-3"
    assert (checkpoint / DISCRIMINATOR_OPTIMIZER_NAME).is_file()
    with safe_open(str(checkpoint / "model.safetensors"), "pt") as f:
        assert any(k.startswith("discriminator.") for k in f.keys())
    trainer.save_model(str(tmp_path / "export"))
    assert AutoModel.from_pretrained(tmp_path / "export").discriminator is None


def test_discriminator_warmup_trains_reconstruction_only(tmp_path):
    rows = _clips(count=2)
    codec = tiny_rvq_codec()
    trainer = CodecGanTrainer(
        model=codec, args=_args(tmp_path, max_steps=2), train_dataset=rows, data_collator=CodecCollator(),
        discriminator_warmup_steps=10,
    )
    before = {k: v.clone() for k, v in codec.discriminator.state_dict().items()}
    trainer.train()
    assert all(torch.equal(v, before[k]) for k, v in codec.discriminator.state_dict().items())
    assert not any("loss_disc" in h for h in trainer.state.log_history)


def test_codec_gan_trainer_checks_model_and_teacher(tmp_path):
    args = _args(tmp_path)
    with pytest.raises(ValueError, match="RVQCodecModel"):
        CodecGanTrainer(model=tiny_codec(), args=args)
    with pytest.raises(ValueError, match="semantic_teacher"):
        CodecGanTrainer(model=tiny_rvq_codec(semantic_distillation_dim=39), args=args)
    with pytest.raises(ValueError, match="dim 39"):
        CodecGanTrainer(model=tiny_rvq_codec(semantic_distillation_dim=8), args=args,
                        semantic_teacher=tiny_unit_encoder("mfcc"))
    with pytest.raises(ValueError, match="no semantic_distillation_dim"):
        CodecGanTrainer(model=tiny_rvq_codec(), args=args, semantic_teacher=tiny_unit_encoder("mfcc"))


# ---------------------------------------------------------------------------------------------------- mixed tokenizer
def _nmi_and_probe(codes, units, groups, num_codes, num_units):
    """NMI(codes; units) and the accuracy of the best code -> unit lookup (a linear probe on one-hot codes) fitted on
    the first half of the utterances and scored on the second half."""
    joint = np.zeros((num_codes, num_units))
    np.add.at(joint, (codes, units), 1)
    p = joint / joint.sum()
    pc, pu = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
    nz = p > 0
    mi = (p[nz] * np.log(p[nz] / (pc @ pu)[nz])).sum()
    entropy_c = -(pc[pc > 0] * np.log(pc[pc > 0])).sum()
    entropy_u = -(pu[pu > 0] * np.log(pu[pu > 0])).sum()
    fit = groups < groups.max() / 2
    table = np.zeros((num_codes, num_units))
    np.add.at(table, (codes[fit], units[fit]), 1)
    fallback = np.bincount(units[fit], minlength=num_units).argmax()
    predicted = np.where(table.sum(1)[codes[~fit]] > 0, table.argmax(1)[codes[~fit]], fallback)
    return mi / math.sqrt(entropy_c * entropy_u), float((predicted == units[~fit]).mean())


@pytest.fixture(scope="module")
def espeak_corpus(tmp_path_factory):
    """40 espeak-ng utterances (3 voices, 2 rates): 32 to train on, 8 held out."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    from hf_slm.data import load_text_corpus, synthesize_dataset

    texts = load_text_corpus("builtin", limit=40, seed=0)
    ds = synthesize_dataset(texts, voices=["en-us", "en-us+f3", "en-gb+m3"], rates=[160, 190], assignment="random",
                            seed=0, show_progress=False, cache_dir=tmp_path_factory.mktemp("espeak_cache"))
    split = ds.train_test_split(test_size=8, seed=0)
    waves = {name: [a.get_all_samples().data.mean(0) for a in split[name]["audio"]] for name in ("train", "test")}
    return split["train"], waves


def test_distillation_makes_level1_codes_predict_mfcc_units(espeak_corpus, tmp_path):
    """SpeechTokenizer's claim at toy scale: the same codec trained for the same 60 steps, with vs without level-1
    distillation toward standardised MFCC features, and level-1 codes of held-out speech compared with the MFCC
    k-means units (the teacher's own units) by normalised mutual information and a lookup probe."""
    from hf_slm.models.unit_encoder import SpeechFeatureExtractor, UnitEncoderConfig, UnitEncoderModel
    from hf_slm.training.kmeans import fit_unit_tokenizer_on_dataset

    train, waves = espeak_corpus
    num_units, num_codes = 20, 32
    teacher = UnitEncoderModel(UnitEncoderConfig(num_units=num_units)).eval()
    fit_unit_tokenizer_on_dataset(teacher, train, SpeechFeatureExtractor(), show_progress=False, max_steps=50)
    rows = [{"audio": w.numpy()} for w in waves["train"]]
    scores = {}
    for distill in (False, True):
        torch.manual_seed(0)
        codec = RVQCodecModel(RVQCodecConfig(
            upsampling_ratios=(8, 5, 4, 2), num_filters=4, hidden_size=16, num_codebooks=2, codebook_size=num_codes,
            ema_decay=0.9, mel_n_fft=512, mel_hop_length=128, mel_win_length=512, num_mel_bins=40,
            semantic_distillation_dim=39 if distill else None,
        ))
        trainer = CodecGanTrainer(
            model=codec, args=_args(tmp_path / str(distill), max_steps=60, per_device_train_batch_size=8,
                                    logging_steps=20),
            train_dataset=rows, data_collator=CodecCollator(segment_samples=8000),
            semantic_teacher=teacher if distill else None, discriminator_warmup_steps=10**6,
        )
        trainer.train()
        codec.eval()
        codes, units, groups = [], [], []
        with torch.no_grad():
            for i, wave in enumerate(waves["test"]):
                level1 = codec.encode(wave[None]).codes[0, 0]
                unit = teacher(wave[None]).units[0]
                n = min(len(level1), len(unit))
                codes.append(level1[:n].numpy()), units.append(unit[:n].numpy()), groups.append(np.full(n, i))
        scores[distill] = _nmi_and_probe(*map(np.concatenate, (codes, units, groups)), num_codes, num_units)
    print("level-1 (NMI, probe accuracy): plain", scores[False], "distilled", scores[True])
    (nmi_plain, probe_plain), (nmi_distilled, probe_distilled) = scores[False], scores[True]
    assert nmi_distilled > nmi_plain + 0.1, scores
    assert probe_distilled > probe_plain, scores


def test_quantizer_bypass_feeds_continuous_latents_while_training_only():
    codec = tiny_rvq_codec(quantizer_bypass=1.0, kmeans_init=False)
    audio, _ = _padded_audio([160])
    with torch.no_grad():
        latents = codec.encode(audio).latents
        continuous = codec.decoder(latents, torch.tensor([10]))
        torch.testing.assert_close(codec.train()(audio).waveform, continuous)
        quantized = codec.eval()(audio).waveform
        torch.testing.assert_close(quantized, codec.decode(codec.encode(audio).codes).waveform)
        assert not torch.allclose(quantized, continuous)


# ---------------------------------------------------------------------------------------------------- example
def _example_script():
    from example_loader import ROOT, load_script

    path = ROOT / "examples" / "codec" / "train_codec.py"
    return load_script(path), path.parent / "config_tiny.json"


def test_example_trains_two_steps_then_resumes(tmp_path):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    script, config = _example_script()
    flags = [str(config), "--output_dir", str(tmp_path), "--num_sentences", "12", "--num_eval_utterances", "2",
             "--segment_seconds", "0.25", "--per_device_train_batch_size", "4", "--discriminator_warmup_steps", "1",
             "--save_steps", "2", "--logging_steps", "1", "--teacher_num_units", "8", "--disable_tqdm", "true",
             "--quantizer_bypass", "0.5"]  # fmt: skip
    results = script.main(flags + ["--max_steps", "2"])
    assert results["steps"] == 2 and len(results["codes_used_per_level"]) == 4 and results["bitrate_bps"] == 1200.0
    assert math.isfinite(results["eval_mel_l1"]) and 0 <= results["level1_unit_nmi"] <= 1
    assert (tmp_path / "semantic_teacher" / "config.json").is_file() and (tmp_path / "checkpoint-2").is_dir()
    codec = AutoModel.from_pretrained(tmp_path)
    assert type(codec) is RVQCodecModel and codec.config.semantic_distillation_dim == 39 and codec.discriminator is None
    assert codec.config.quantizer_bypass == 0.5  # every model flag the README lists reaches the config
    saved = (tmp_path / "results.json").read_bytes()
    assert script.main(flags + ["--max_steps", "2"])["steps"] == 2  # finished: a rerun is a no-op
    assert (tmp_path / "results.json").read_bytes() == saved and not (tmp_path / "checkpoint-3").exists()
    (tmp_path / "results.json").unlink()  # killed after checkpoint-2, before its results: ends on that checkpoint
    again = script.main(flags + ["--max_steps", "2"])
    assert again["steps"] == 2 and again["eval_mel_l1"] == results["eval_mel_l1"]
    assert not (tmp_path / "checkpoint-3").exists()
    resumed = script.main(flags + ["--max_steps", "3"])  # same output_dir: continues from checkpoint-2
    assert resumed["steps"] == 3 and resumed["resumed_from"] == "checkpoint-2" and results["resumed_from"] is None


# ---------------------------------------------------------------------------------------------------- log-mel RVQ codec
def _held_out_log_mel_error(codec, waves, num_codebooks):
    """Mean log-mel L1 between each held-out utterance and its decoding at `num_codebooks` levels (the codec's own
    analysis on both sides)."""
    errors = []
    with torch.no_grad():
        for wave in waves:
            encoded = codec.encode(wave[None], num_codebooks=num_codebooks)
            decoded = codec.decode(encoded.codes).waveform
            original, again = codec.log_mel(wave[None])[0], codec.log_mel(decoded)[0]
            errors.append(float((original - again).abs().mean()))
    return float(np.mean(errors))


def test_mel_codec_fit_lowers_the_error_level_by_level_and_is_seeded(espeak_corpus):
    from hf_slm.models.unit_encoder import SpeechFeatureExtractor
    from hf_slm.training.kmeans import fit_mel_rvq_codec_on_dataset

    train, waves = espeak_corpus
    config = MelRVQCodecConfig(num_codebooks=3, codebook_size=32, griffin_lim_iters=16)
    fe = SpeechFeatureExtractor(do_normalize=False)
    torch.manual_seed(0)
    random_codec = MelRVQCodecModel(config).eval()
    codec = copy.deepcopy(random_codec)
    errors = fit_mel_rvq_codec_on_dataset(codec, train, fe, show_progress=False, max_steps=40)
    assert len(errors) == 3 and errors[0] > errors[1] > errors[2] > 0  # each level quantizes what the last left
    again = copy.deepcopy(random_codec)
    fit_mel_rvq_codec_on_dataset(again, train, fe, show_progress=False, max_steps=40)
    assert torch.equal(again.codebooks, codec.codebooks)  # seeded: the same fit twice
    held_out = waves["test"][:4]
    fitted = [_held_out_log_mel_error(codec, held_out, q) for q in (1, 3)]
    random_error = _held_out_log_mel_error(random_codec, held_out, 3)
    assert fitted[1] < fitted[0] < random_error, (fitted, random_error)
    codes = codec.encode(torch.stack([w[:16000] for w in held_out])).codes
    assert all(n > 8 for n in codes_used_per_level(codes))  # the levels use their codes, not a handful


def test_mel_codec_refuses_bad_values_by_name():
    with pytest.raises(ValueError, match="hop_length=2048 must be <= the window"):
        MelRVQCodecConfig(hop_length=2048)
    with pytest.raises(ValueError, match="codebook_size must be an int >= 2"):
        MelRVQCodecConfig(codebook_size=1)
    with pytest.raises(ValueError, match="win_length=2048 must be <= n_fft=1024"):
        MelRVQCodecConfig(win_length=2048)
    codec = tiny_mel_rvq_codec()
    with pytest.raises(ValueError, match=r"num_codebooks must be in \[1, 3\], got 4"):
        codec.encode(torch.randn(1, 400), num_codebooks=4)
    with pytest.raises(ValueError, match=r"codes must be in \[0, 16\)"):
        codec.decode(torch.full((1, 3, 5), 16))
    with pytest.raises(ValueError, match=r"frames must be \[N, 16\] log-mel frames"):
        from hf_slm.training.kmeans import fit_mel_rvq_codec

        fit_mel_rvq_codec(codec, torch.randn(100, 8))


def test_mel_codec_example_fits_saves_atomically_and_a_rerun_keeps_it(tmp_path):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    from example_loader import ROOT, load_script

    script = load_script(ROOT / "examples" / "codec" / "fit_mel_codec.py")
    config = ROOT / "examples" / "codec" / "config_mel.json"
    out = tmp_path / "codec"
    flags = [str(config), "--output_dir", str(out), "--num_sentences", "12", "--num_eval_utterances", "2",
             "--codebook_size", "16", "--kmeans_steps", "20"]  # fmt: skip
    results = script.main(flags)
    assert results["bitrate_bps"] == 4 * 4 * 50.0 and len(results["eval_codes_used_per_level"]) == 4
    assert results["eval_log_mel_rmse_per_level"] == sorted(results["eval_log_mel_rmse_per_level"], reverse=True)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left behind
    codec = AutoModel.from_pretrained(out)
    assert type(codec) is MelRVQCodecModel and codec.config.codebook_size == 16
    saved = (out / "model.safetensors").read_bytes()
    assert script.main(flags) == results and (out / "model.safetensors").read_bytes() == saved  # fitted: kept


def test_mel_codec_docstring_examples_run():
    import doctest

    from hf_slm.models.codec import configuration_codec, modeling_mel_rvq_codec

    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    tests = finder.find(configuration_codec.MelRVQCodecConfig) + finder.find(modeling_mel_rvq_codec.MelRVQCodecModel)
    assert sum(len(t.examples) for t in tests) >= 4
    for test in tests:
        runner.run(test)
    assert runner.failures == 0
