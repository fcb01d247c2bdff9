"""Converters from published checkpoint formats, each tested on a format-faithful fake.

Every test writes a tiny checkpoint exactly as the source project writes it (key names, nesting, weight norm, a real
joblib pickle of a real scikit-learn `MiniBatchKMeans`), converts it, and compares the converted component with a
reference forward written here from the source project's equations (not with our own classes).
"""

from __future__ import annotations

import argparse
import json
import os
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from hf_slm.converters import (
    assemble_variant,
    convert_kmeans,
    convert_seamless_vocoder,
    convert_slamkit_lm,
    convert_unit_hifigan,
    seamless_speaker_id,
)
from hf_slm.cli.convert import add_convert_parser, run_convert


def _weight_norm(module: nn.Module) -> nn.Module:
    """The legacy weight-norm hook (state keys `weight_g` / `weight_v`), as the source checkpoints were written,
    with a random gain so that folding must use `g` and not just the direction."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch deprecates the hook; the checkpoints still hold it
        module = nn.utils.weight_norm(module)
    with torch.no_grad():
        module.weight_g.mul_(0.5 + torch.rand_like(module.weight_g))
    return module


# ------------------------------------------------------------------------------------------------------------ k-means
def _tiny_hubert(path):
    from transformers import HubertConfig, HubertModel

    torch.manual_seed(0)
    config = HubertConfig(
        hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, conv_dim=(16, 16),
        conv_stride=(5, 4), conv_kernel=(10, 8), num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2,
    )  # fmt: skip
    model = HubertModel(config).eval()
    model.save_pretrained(path)
    return model


def test_kmeans_units_equal_sklearn_argmin_on_hubert_layer(tmp_path):
    joblib = pytest.importorskip("joblib")
    cluster = pytest.importorskip("sklearn.cluster")
    hubert = _tiny_hubert(tmp_path / "hubert")
    wave = torch.randn(2, 4000, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        feats = hubert(wave, output_hidden_states=True).hidden_states[1]  # textlesslib: output of layer 1
    km = cluster.MiniBatchKMeans(n_clusters=6, n_init=1, random_state=0, batch_size=32)
    km.fit(feats.reshape(-1, 16).numpy())
    joblib.dump(km, tmp_path / "km.bin")

    with pytest.raises(ValueError, match="trust_pickle"):
        convert_kmeans(tmp_path / "km.bin", tmp_path / "hubert", 1, tmp_path / "out")
    tokenizer = convert_kmeans(tmp_path / "km.bin", tmp_path / "hubert", 1, tmp_path / "out", trust_pickle=True)

    from hf_slm import SpeechFeatureExtractor, UnitEncoderModel

    loaded = UnitEncoderModel.from_pretrained(tmp_path / "out").eval()
    assert loaded.config.num_units == 6 and loaded.config.ssl_layer == 1
    assert SpeechFeatureExtractor.from_pretrained(tmp_path / "out").do_normalize is False  # HuBERT base
    with torch.no_grad():
        units = loaded(input_values=wave).units
    # reference: textlesslib's quantiser, argmin_k ||x - c_k||^2 over the sklearn centroids (and sklearn's predict)
    flat = feats.reshape(-1, 16).numpy()
    dist = ((flat[:, None, :] - km.cluster_centers_[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(units.reshape(-1).numpy(), dist.argmin(1))
    np.testing.assert_array_equal(units.reshape(-1).numpy(), km.predict(flat))
    assert torch.equal(tokenizer.cluster_centers, loaded.cluster_centers)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_kmeans_restricted_unpickler_refuses_other_globals(tmp_path):
    joblib = pytest.importorskip("joblib")
    import pickle

    from hf_slm.converters import load_kmeans_centroids

    joblib.dump({"cluster_centers_": np.zeros((2, 3)), "x": _Exploit()}, tmp_path / "evil.bin")
    with pytest.raises(pickle.UnpicklingError, match="refusing to unpickle"):
        load_kmeans_centroids(tmp_path / "evil.bin", trust_pickle=True)
    np.save(tmp_path / "c.npy", np.ones((4, 3), dtype=np.float32))  # .npy needs no trust
    assert load_kmeans_centroids(tmp_path / "c.npy").shape == (4, 3)


# ------------------------------------------------------------------------------------------------- unit HiFi-GAN
# Reference: speech-resynthesis `models.py` (Generator, ResBlock1, CodeGenerator) and fairseq's `VariancePredictor`.
LRELU_SLOPE = 0.1


def _get_padding(kernel_size, dilation=1):
    return int((kernel_size * dilation - dilation) / 2)


class RefResBlock1(nn.Module):
    def __init__(self, channels, kernel_size=3, dilation=(1, 3, 5)):
        super().__init__()
        self.convs1 = nn.ModuleList(
            [_weight_norm(nn.Conv1d(channels, channels, kernel_size, 1, dilation=d, padding=_get_padding(kernel_size, d)))
             for d in dilation]
        )  # fmt: skip
        self.convs2 = nn.ModuleList(
            [_weight_norm(nn.Conv1d(channels, channels, kernel_size, 1, dilation=1, padding=_get_padding(kernel_size)))
             for _ in dilation]
        )  # fmt: skip

    def forward(self, x):
        for c1, c2 in zip(self.convs1, self.convs2):
            xt = F.leaky_relu(x, LRELU_SLOPE)
            xt = c1(xt)
            xt = F.leaky_relu(xt, LRELU_SLOPE)
            xt = c2(xt)
            x = xt + x
        return x


class RefVariancePredictor(nn.Module):
    def __init__(self, p):
        super().__init__()
        k = p["var_pred_kernel_size"]
        self.conv1 = nn.Sequential(
            nn.Conv1d(p["encoder_embed_dim"], p["var_pred_hidden_dim"], kernel_size=k, padding=(k - 1) // 2), nn.ReLU()
        )
        self.ln1 = nn.LayerNorm(p["var_pred_hidden_dim"])
        self.dropout = nn.Dropout(p["var_pred_dropout"])
        self.conv2 = nn.Sequential(
            nn.Conv1d(p["var_pred_hidden_dim"], p["var_pred_hidden_dim"], kernel_size=k, padding=1), nn.ReLU()
        )
        self.ln2 = nn.LayerNorm(p["var_pred_hidden_dim"])
        self.proj = nn.Linear(p["var_pred_hidden_dim"], 1)

    def forward(self, x):  # B x T x C -> B x T
        x = self.conv1(x.transpose(1, 2)).transpose(1, 2)
        x = self.dropout(self.ln1(x))
        x = self.conv2(x.transpose(1, 2)).transpose(1, 2)
        x = self.dropout(self.ln2(x))
        return self.proj(x).squeeze(dim=2)


class RefCodeGenerator(nn.Module):
    def __init__(self, h):
        super().__init__()
        self.num_kernels = len(h["resblock_kernel_sizes"])
        self.num_upsamples = len(h["upsample_rates"])
        ch0 = h["upsample_initial_channel"]
        self.conv_pre = _weight_norm(nn.Conv1d(h["model_in_dim"], ch0, 7, 1, padding=3))
        self.ups = nn.ModuleList(
            [_weight_norm(nn.ConvTranspose1d(ch0 // 2**i, ch0 // 2 ** (i + 1), k, u, padding=(k - u) // 2))
             for i, (u, k) in enumerate(zip(h["upsample_rates"], h["upsample_kernel_sizes"]))]
        )  # fmt: skip
        self.resblocks = nn.ModuleList()
        for i in range(len(self.ups)):
            ch = ch0 // 2 ** (i + 1)
            for k, d in zip(h["resblock_kernel_sizes"], h["resblock_dilation_sizes"]):
                self.resblocks.append(RefResBlock1(ch, k, d))
        self.conv_post = _weight_norm(nn.Conv1d(ch, 1, 7, 1, padding=3))
        self.dict = nn.Embedding(h["num_embeddings"], h["embedding_dim"])
        self.multispkr = h.get("multispkr")
        if self.multispkr:
            self.spkr = nn.Embedding(h["num_speakers"], h["embedding_dim"])
        self.dur_predictor = RefVariancePredictor(h["dur_predictor_params"]) if h.get("dur_predictor_params") else None

    @staticmethod
    def _upsample(signal, max_frames):
        bsz, channels, cond_length = signal.size()
        signal = signal.unsqueeze(3).repeat(1, 1, 1, max_frames // cond_length)
        if max_frames % cond_length != 0:
            signal = torch.cat([signal, torch.zeros_like(signal)[:, :, :, : max_frames % cond_length]], dim=3)
        return signal.view(bsz, channels, max_frames)

    def generator(self, x):
        x = self.conv_pre(x)
        for i in range(self.num_upsamples):
            x = F.leaky_relu(x, LRELU_SLOPE)
            x = self.ups[i](x)
            xs = None
            for j in range(self.num_kernels):
                y = self.resblocks[i * self.num_kernels + j](x)
                xs = y if xs is None else xs + y
            x = xs / self.num_kernels
        x = F.leaky_relu(x)  # the trap: torch's default slope 0.01, not LRELU_SLOPE
        x = self.conv_post(x)
        return torch.tanh(x)

    def forward(self, code, spkr=None, dur_prediction=False):
        x = self.dict(code).transpose(1, 2)
        dur_out = None
        if self.dur_predictor is not None and dur_prediction:
            assert x.size(0) == 1, "only support single sample"
            log_dur_pred = self.dur_predictor(x.transpose(1, 2))
            dur_out = torch.clamp(torch.round(torch.exp(log_dur_pred) - 1).long(), min=1)
            x = torch.repeat_interleave(x, dur_out.view(-1), dim=2)
        if self.multispkr:
            s = self._upsample(self.spkr(spkr).transpose(1, 2), x.shape[-1])
            x = torch.cat([x, s], dim=1)
        return self.generator(x), dur_out


def _hifigan_config(multispkr: bool, durations: bool) -> dict:
    cfg = {
        "resblock": "1", "upsample_rates": [2, 2], "upsample_kernel_sizes": [4, 4], "upsample_initial_channel": 16,
        "resblock_kernel_sizes": [3, 5], "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5]], "num_embeddings": 12,
        "embedding_dim": 8, "model_in_dim": 16 if multispkr else 8, "code_hop_size": 4, "sampling_rate": 16000,
        "segment_size": 64, "f0": False, "multispkr": "from_input_file" if multispkr else None, "num_speakers": 3,
    }  # fmt: skip
    if durations:
        cfg["dur_predictor_params"] = {
            "encoder_embed_dim": 8, "var_pred_hidden_dim": 8, "var_pred_kernel_size": 3, "var_pred_dropout": 0.5
        }  # fmt: skip
    return cfg


def _write_hifigan(tmp_path, cfg):
    torch.manual_seed(0)
    ref = RefCodeGenerator(cfg)
    if ref.dur_predictor is not None:
        with torch.no_grad():
            ref.dur_predictor.proj.bias.fill_(1.2)  # durations around 2-3 frames, so rounding matters
    ref.eval()
    torch.save({"generator": ref.state_dict()}, tmp_path / "g_00500000")
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    return ref


def test_unit_hifigan_matches_speech_resynthesis_generator(tmp_path):
    ref = _write_hifigan(tmp_path, _hifigan_config(multispkr=False, durations=False))
    state = torch.load(tmp_path / "g_00500000", weights_only=True)["generator"]
    assert "conv_pre.weight_g" in state and "resblocks.3.convs2.2.weight_v" in state and "ups.1.weight_v" in state

    convert_unit_hifigan(tmp_path / "g_00500000", tmp_path / "config.json", tmp_path / "out")
    from hf_slm import UnitHifiGanVocoder

    vocoder = UnitHifiGanVocoder.from_pretrained(tmp_path / "out").eval()
    codes = torch.randint(0, 12, (2, 9), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected, _ = ref(codes)
        got = vocoder(codes).waveform
    assert got.shape == (2, 9 * 4)
    torch.testing.assert_close(got, expected[:, 0], atol=1e-5, rtol=1e-4)
    assert expected.abs().max() > 1e-3  # a real signal, not all zeros


def test_unit_hifigan_speakers_and_predicted_durations(tmp_path):
    ref = _write_hifigan(tmp_path, _hifigan_config(multispkr=True, durations=True))
    vocoder = convert_unit_hifigan(tmp_path / "g_00500000", tmp_path / "config.json", tmp_path / "out")
    assert vocoder.config.num_speakers == 3 and vocoder.config.use_duration_predictor
    codes = torch.randint(0, 12, (1, 7), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected, durations = ref(codes, spkr=torch.tensor([[2]]), dur_prediction=True)
        out = vocoder(codes, speaker_id=torch.tensor([2]))
    assert torch.equal(out.durations, durations)
    assert int(durations.max()) > 1
    torch.testing.assert_close(out.waveform, expected[:, 0], atol=1e-5, rtol=1e-4)


def test_unit_hifigan_refuses_f0_conditioning(tmp_path):
    cfg = _hifigan_config(multispkr=False, durations=False)
    _write_hifigan(tmp_path, cfg)
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "f0": True}))
    with pytest.raises(ValueError, match="F0-conditioned"):
        convert_unit_hifigan(tmp_path / "g_00500000", tmp_path / "config.json", None)


# -------------------------------------------------------------------------------------------- SeamlessM4T vocoder
_SEAMLESS_SIZES = dict(
    unit_hifi_gan_vocab_size=12, unit_embed_dim=8, lang_embed_dim=4, spkr_embed_dim=4, vocoder_num_langs=3,
    vocoder_num_spkrs=2, upsample_initial_channel=16, upsample_rates=[2, 2], upsample_kernel_sizes=[4, 4],
    resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3]], variance_predictor_kernel_size=3,
)  # fmt: skip


def _seamless_vocoder(v2: bool):
    from transformers.models.seamless_m4t.modeling_seamless_m4t import SeamlessM4TCodeHifiGan
    from transformers.models.seamless_m4t_v2.modeling_seamless_m4t_v2 import SeamlessM4Tv2CodeHifiGan
    from transformers import SeamlessM4TConfig, SeamlessM4Tv2Config

    torch.manual_seed(0)
    config = (SeamlessM4Tv2Config if v2 else SeamlessM4TConfig)(**_SEAMLESS_SIZES)
    model = (SeamlessM4Tv2CodeHifiGan if v2 else SeamlessM4TCodeHifiGan)(config)
    with torch.no_grad():
        for p in model.parameters():  # post_init gives near-zero weights; the comparison needs a real signal
            p.normal_(0, 0.3)
        model.dur_predictor.proj.bias.fill_(1.2)
    return config, model.eval()


def test_seamless_v2_checkpoint_folder(tmp_path):
    config, ref = _seamless_vocoder(v2=True)
    # the published layout: the whole model's config + `vocoder.*` tensors inside model.safetensors
    config.save_pretrained(tmp_path / "seamless")
    save_file({f"vocoder.{k}": v.contiguous() for k, v in ref.state_dict().items()},
              str(tmp_path / "seamless" / "model.safetensors"))  # fmt: skip
    (tmp_path / "seamless" / "generation_config.json").write_text(
        json.dumps({"vocoder_lang_code_to_id": {"eng": 0, "fra": 1, "deu": 2}})
    )
    convert_seamless_vocoder(tmp_path / "seamless", tmp_path / "out")
    from hf_slm import UnitHifiGanVocoder

    vocoder = UnitHifiGanVocoder.from_pretrained(tmp_path / "out").eval()
    units = torch.randint(0, 12, (1, 6), generator=torch.Generator().manual_seed(4))
    for lang, spkr in ((1, 1), (2, 0)):
        with torch.no_grad():
            expected, lengths = ref(units, speaker_id=torch.tensor([[spkr]]), lang_id=torch.tensor([[lang]]))
            code = ["eng", "fra", "deu"][lang]
            out = vocoder(units, speaker_id=torch.tensor([seamless_speaker_id(vocoder.config, code, spkr)]))
        assert out.waveform.shape[1] == int(lengths)
        torch.testing.assert_close(out.waveform, expected, atol=1e-5, rtol=1e-4)


def test_seamless_v1_model_object(tmp_path):
    _, ref = _seamless_vocoder(v2=False)
    vocoder = convert_seamless_vocoder(ref, None)
    units = torch.randint(0, 12, (1, 5), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected, _ = ref(units, spkr_id=torch.tensor([[1]]), lang_id=torch.tensor([[0]]))
        out = vocoder(units, speaker_id=torch.tensor([seamless_speaker_id(vocoder.config, 0, 1)]))
    torch.testing.assert_close(out.waveform, expected, atol=1e-5, rtol=1e-4)


# ---------------------------------------------------------------------------------------------- slamkit unit LM
def _write_slamkit(path, backbone: str, num_units: int = 10):
    """slamkit's `UnitLM.save_pretrained`: config with model_type "speech_language_model" + base_config, weights
    under `lm.*`, the tied output embedding stored once (safetensors drops shared tensors)."""
    from transformers import AutoModelForCausalLM, OPTConfig, Qwen2Config

    torch.manual_seed(0)
    vocab = num_units + 2
    if backbone == "opt":
        base = OPTConfig(vocab_size=vocab, hidden_size=16, num_hidden_layers=2, ffn_dim=32, num_attention_heads=2,
                         max_position_embeddings=64, word_embed_proj_dim=16, pad_token_id=0, bos_token_id=1,
                         eos_token_id=1)  # fmt: skip
    else:
        base = Qwen2Config(vocab_size=vocab, hidden_size=16, num_hidden_layers=2, intermediate_size=32,
                           num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
                           tie_word_embeddings=True, pad_token_id=0, bos_token_id=1, eos_token_id=1)  # fmt: skip
    lm = AutoModelForCausalLM.from_config(base).eval()
    state = {f"lm.{k}": v.contiguous() for k, v in lm.state_dict().items() if k != "lm_head.weight"}
    path.mkdir(parents=True)
    save_file(state, str(path / "model.safetensors"))
    config = {"model_type": "speech_language_model", "architectures": ["UnitLM"], "base_model_name": "facebook/opt-125m",
              "base_config": base.to_dict(), "vocab_size": vocab, "twist_init": True, "use_cache": True,
              "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 1, "tie_word_embeddings": True}  # fmt: skip
    (path / "config.json").write_text(json.dumps(config))
    return lm


def _slamkit_token_nll(lm, units):
    """slamkit's `UnitLM.log_likelihood` on `<S> u+2 ... <S>`: cross-entropy of every next token, its softmax over
    slamkit's own vocabulary (PAD, <S>, the units) only."""
    tokens = torch.tensor([[1] + [u + 2 for u in units] + [1]])
    logits = lm(input_ids=tokens).logits
    logp = logits[0, :-1].log_softmax(-1)
    return -logp.gather(-1, tokens[0, 1:, None])[:, 0], logits[0]


@pytest.mark.parametrize("backbone", ["opt", "qwen2"])
def test_slamkit_lm_scores_like_the_original_id_mapping(tmp_path, backbone):
    ref = _write_slamkit(tmp_path / "slam", backbone)
    convert_slamkit_lm(tmp_path / "slam", tmp_path / "out")
    from hf_slm import SpeechLMForCausalLM

    model = SpeechLMForCausalLM.from_pretrained(tmp_path / "out").eval()
    layout = model.config.vocab_layout
    assert model.config.num_units == 10 and not model.config.use_modality_tokens
    # the specials slamkit lacks are out of the softmax, after the save / load round trip too
    lacking = [layout.bos_token_id, layout.speech_token_id, layout.text_token_id]
    assert model.config.suppressed_token_ids == lacking and model.generation_config.suppress_tokens == lacking
    gen = torch.Generator().manual_seed(6)
    pairs = [[torch.randint(0, 10, (n,), generator=gen).tolist() for _ in range(2)] for n in (5, 9, 12)]
    with torch.no_grad():
        for pair in pairs:
            ours, theirs = [], []
            for units in pair:
                ref_nll, ref_logits = _slamkit_token_nll(ref, units)
                input_ids, mask = model.units_to_input_ids(torch.tensor(units), add_eos=True)
                out = model.log_likelihood(input_ids, attention_mask=mask)
                logits = model(input_ids=input_ids).logits[0]
                # every logit slamkit has is reproduced: units (i + 2 -> i), PAD (0 -> <pad>), <S> (1 -> </s>)
                torch.testing.assert_close(logits[:, :10], ref_logits[:, 2:], atol=1e-5, rtol=1e-5)
                torch.testing.assert_close(logits[:, layout.eos_token_id], ref_logits[:, 1], atol=1e-5, rtol=1e-5)
                torch.testing.assert_close(logits[:, layout.pad_token_id], ref_logits[:, 0], atol=1e-5, rtol=1e-5)
                # and so is every per-token log-probability, hence every sequence score
                torch.testing.assert_close(out.token_nll[0], ref_nll, atol=1e-5, rtol=1e-5)
                ours.append(float(out.sum_nll[0]))
                theirs.append(float(ref_nll.sum()))
            assert ours == pytest.approx(theirs, abs=1e-4)
            assert (ours[0] < ours[1]) == (theirs[0] < theirs[1])
        # the same pairs batched (padding on either side) score the same
        flat = [units for pair in pairs for units in pair]
        for side in ("left", "right"):
            input_ids, mask = model.units_to_input_ids(flat, add_eos=True, padding_side=side)
            batched = model.log_likelihood(input_ids, attention_mask=mask).sum_nll
            expected = torch.stack([_slamkit_token_nll(ref, units)[0].sum() for units in flat])
            torch.testing.assert_close(batched, expected, atol=1e-4, rtol=1e-5)


def test_slamkit_lm_never_generates_the_specials_slamkit_lacks(tmp_path):
    _write_slamkit(tmp_path / "slam", "opt")
    model = convert_slamkit_lm(tmp_path / "slam", None)
    suppressed = model.config.suppressed_token_ids
    input_ids, mask = model.units_to_input_ids([[3, 4, 5]])
    torch.manual_seed(0)
    out = model.generate(input_ids=input_ids, attention_mask=mask, do_sample=True, max_new_tokens=8, min_new_tokens=8,
                         output_scores=True, return_dict_in_generate=True)  # fmt: skip
    for scores in out.scores:
        assert torch.isinf(scores[:, suppressed]).all() and torch.isfinite(scores[:, :10]).all()
    assert not torch.isin(out.sequences[:, input_ids.shape[1] :], torch.tensor(suppressed)).any()


# ------------------------------------------------------------------------------------------- CLI and whole variant
def _convert(argv):
    parser = argparse.ArgumentParser(prog="hf-slm")
    add_convert_parser(parser.add_subparsers(dest="command"))
    return run_convert(parser.parse_args(argv))


def test_convert_help_lists_every_kind(capsys):
    parser = argparse.ArgumentParser(prog="hf-slm")
    add_convert_parser(parser.add_subparsers(dest="command"))
    with pytest.raises(SystemExit):
        parser.parse_args(["convert", "--help"])
    help_text = capsys.readouterr().out
    for kind in ("kmeans", "unit-hifigan", "seamless", "slamkit", "variant"):
        assert kind in help_text


def test_cli_converts_parts_and_assembles_a_checked_variant(tmp_path):
    joblib = pytest.importorskip("joblib")
    cluster = pytest.importorskip("sklearn.cluster")
    from hf_slm.pipelines import PipelineLoadError

    hubert = _tiny_hubert(tmp_path / "hubert")  # conv strides 5 * 4: 20 samples per unit
    wave = 0.3 * torch.randn(1, 4000, generator=torch.Generator().manual_seed(7)).clamp(-3, 3)
    with torch.no_grad():
        feats = hubert(wave, output_hidden_states=True).hidden_states[2].reshape(-1, 16).numpy()
    joblib.dump(cluster.MiniBatchKMeans(n_clusters=10, n_init=1, random_state=0, batch_size=32).fit(feats),
                tmp_path / "km.bin")  # fmt: skip
    _convert(["convert", "kmeans", str(tmp_path / "km.bin"), "--ssl-model", str(tmp_path / "hubert"), "--layer", "2",
              "--trust-pickle", "--output", str(tmp_path / "tok")])  # fmt: skip

    cfg = {**_hifigan_config(multispkr=False, durations=False), "num_embeddings": 10, "upsample_rates": [5, 4],
           "upsample_kernel_sizes": [11, 8], "code_hop_size": 20}  # fmt: skip
    (tmp_path / "voc_src").mkdir()
    _write_hifigan(tmp_path / "voc_src", cfg)
    _convert(["convert", "unit-hifigan", str(tmp_path / "voc_src" / "g_00500000"), "--config",
              str(tmp_path / "voc_src" / "config.json"), "--output", str(tmp_path / "voc")])  # fmt: skip
    _write_slamkit(tmp_path / "slam", "opt", num_units=10)
    _convert(["convert", "slamkit", str(tmp_path / "slam"), "--output", str(tmp_path / "lm")])

    pipe = _convert(["convert", "variant", str(tmp_path / "tok"), "--lm", str(tmp_path / "lm"), "--vocoder",
                     str(tmp_path / "voc"), "--output", str(tmp_path / "variant")])  # fmt: skip
    index = json.loads((tmp_path / "variant" / "pipeline_index.json").read_text())
    assert index["vocoder"] == ["hf_slm", "UnitHifiGanVocoder"] and index["language_model"][1] == "SpeechLMForCausalLM"
    audio = {"array": wave[0].numpy(), "sampling_rate": 16000}
    units = pipe.encode(audio)
    assert len(units[0]) == 198 and int(units[0].max()) < 10  # (4000 - 10) // 5 + 1 = 799 -> (799 - 8) // 4 + 1
    assert pipe.decode(units)[0].shape == (198 * 20,)
    short = {"array": wave[0, :1000].numpy(), "sampling_rate": 16000}  # 48 units: within the LM's 64 positions
    assert torch.isfinite(pipe.score(short)).all()

    # a vocoder for another unit inventory is refused by the load-time checks
    (tmp_path / "voc12").mkdir()
    _write_hifigan(tmp_path / "voc12", {**cfg, "num_embeddings": 12})
    _convert(["convert", "unit-hifigan", str(tmp_path / "voc12" / "g_00500000"), "--config",
              str(tmp_path / "voc12" / "config.json"), "--output", str(tmp_path / "voc_bad")])  # fmt: skip
    with pytest.raises(PipelineLoadError, match="units.num_units"):
        _convert(["convert", "variant", str(tmp_path / "tok"), "--vocoder", str(tmp_path / "voc_bad"),
                  "--output", str(tmp_path / "bad")])  # fmt: skip
    assert not (tmp_path / "bad").exists()
