"""speech-resynthesis / textlesslib / fairseq unit HiFi-GAN -> a [`UnitHifiGanVocoder`] folder.

The source is the `CodeGenerator` of speech-resynthesis (`models.py`), which fairseq (`CodeHiFiGANVocoder`,
`models/text_to_speech/codehifigan.py`) and textlesslib (`textless/vocoders/hifigan`) ship too: a checkpoint
`{'generator': state_dict}` (weight-normed convolutions: `weight_g` / `weight_v`) plus a JSON config. Its generator
is the HiFi-GAN V1 body that transformers' `SeamlessM4THifiGan` (inside our vocoder) implements: leaky ReLU slope
0.1 inside, the stock slope 0.01 before `conv_post`, tanh output. Durations are `clamp(round(exp(x) - 1), min=1)`,
as our duration predictor rounds them.

Supported: unit embedding (`dict`), speaker table (`spkr`, `multispkr`), duration predictor (`dur_predictor`).
Refused with a clear error: F0 conditioning (`f0`, `f0_quant_embed`: raw or quantised F0 inputs our vocoder does not
take), speaker-embedder inputs (`embedder_params`), ResBlock2 generators (`resblock: "2"`), F0 / code VQ encoders.
"""

from __future__ import annotations

import math
import os

import torch

from ..models.unit_vocoder import UnitHifiGanVocoder, UnitHifiGanVocoderConfig
from ._common import fold_weight_norm, load_strict, load_torch_checkpoint, read_json

#: leaky ReLU slope inside speech-resynthesis' generator (`LRELU_SLOPE`); the one before conv_post is torch's 0.01.
LRELU_SLOPE = 0.1


def _rename(key: str) -> str:
    if key == "dict.weight":
        return "unit_embedding.weight"
    if key == "spkr.weight":
        return "speaker_embedding.weight"
    if key.startswith("ups."):
        return "hifi_gan.upsampler." + key[len("ups.") :]
    if key.startswith(("conv_pre.", "conv_post.", "resblocks.")):
        return "hifi_gan." + key
    if key.startswith("dur_predictor."):
        rest = key[len("dur_predictor.") :].replace("conv1.0.", "conv1.").replace("conv2.0.", "conv2.")
        return "duration_predictor." + rest
    raise ValueError(f"unsupported key {key!r} in the unit HiFi-GAN checkpoint")


def _check_supported(cfg: dict, state: dict) -> None:
    if cfg.get("f0") or any(k.startswith("f0_quant_embed.") for k in state):
        raise ValueError(
            "F0-conditioned unit HiFi-GANs (config `f0`, keys `f0_quant_embed`) are not supported: our vocoder "
            "takes F0 in Hz and embeds (log-F0, voicing) itself, not the source's normalised or quantised F0 input"
        )
    if cfg.get("embedder_params"):
        raise ValueError("speaker-embedder vocoders (`embedder_params`, a d-vector input) are not supported")
    if str(cfg.get("resblock", "1")) != "1":
        raise ValueError(f"only ResBlock1 generators are supported, this config has resblock={cfg['resblock']!r}")
    known = ("dict.", "spkr.", "ups.", "conv_pre.", "conv_post.", "resblocks.", "dur_predictor.")
    unknown = sorted({k.split(".")[0] for k in state if not k.startswith(known)})
    if unknown:
        raise ValueError(f"unsupported modules in the unit HiFi-GAN checkpoint: {unknown} (F0 / code VQ encoders?)")


def _duration_settings(cfg: dict, state: dict, embedding_dim: int) -> dict:
    if "dur_predictor.proj.weight" not in state:
        return {"use_duration_predictor": False}
    weight = state["dur_predictor.conv1.0.weight"]
    hidden, _, kernel = weight.shape
    if hidden != embedding_dim:
        raise ValueError(
            f"duration predictor hidden size {hidden} != embedding_dim {embedding_dim}: not supported (our predictor "
            "keeps the embedding width)"
        )
    if kernel != 3:
        raise ValueError(f"duration predictor kernel {kernel}: only 3 is supported (fairseq pads conv2 by 1)")
    params = cfg.get("dur_predictor_params") or {}
    return {
        "use_duration_predictor": True,
        "duration_predictor_kernel_size": kernel,
        "duration_predictor_dropout": float(params.get("var_pred_dropout", 0.5)),
    }


def unit_hifigan_config(cfg: dict, state: dict) -> UnitHifiGanVocoderConfig:
    """Our config for a speech-resynthesis / fairseq config dict and its (weight-norm folded) generator state."""
    num_units, embedding_dim = state["dict.weight"].shape
    if cfg.get("num_embeddings", num_units) != num_units or cfg.get("embedding_dim", embedding_dim) != embedding_dim:
        raise ValueError(
            f"config num_embeddings/embedding_dim ({cfg.get('num_embeddings')}, {cfg.get('embedding_dim')}) disagree "
            f"with dict.weight {tuple(state['dict.weight'].shape)}"
        )
    speakers = {}
    if "spkr.weight" in state:
        rows, dim = state["spkr.weight"].shape
        speakers = {"num_speakers": rows, "speaker_embedding_dim": dim}
    in_dim = state["conv_pre.weight"].shape[1]
    expected = embedding_dim + speakers.get("speaker_embedding_dim", 0)
    if in_dim != expected or cfg.get("model_in_dim", in_dim) != in_dim:
        raise ValueError(
            f"conv_pre takes {in_dim} channels (config model_in_dim={cfg.get('model_in_dim')}), expected {expected} "
            "= unit embedding + speaker embedding"
        )
    upsample_rates = list(cfg["upsample_rates"])
    hop = cfg.get("code_hop_size", math.prod(upsample_rates))
    if hop != math.prod(upsample_rates):
        raise ValueError(f"code_hop_size={hop} differs from prod(upsample_rates)={math.prod(upsample_rates)}")
    return UnitHifiGanVocoderConfig(
        num_units=num_units,
        embedding_dim=embedding_dim,
        sampling_rate=int(cfg.get("sampling_rate", 16000)),
        upsample_rates=upsample_rates,
        upsample_kernel_sizes=list(cfg["upsample_kernel_sizes"]),
        upsample_initial_channel=int(state["conv_pre.weight"].shape[0]),
        resblock_kernel_sizes=list(cfg["resblock_kernel_sizes"]),
        resblock_dilation_sizes=[list(d) for d in cfg["resblock_dilation_sizes"]],
        leaky_relu_slope=LRELU_SLOPE,
        **speakers,
        **_duration_settings(cfg, state, embedding_dim),
    )


def convert_unit_hifigan(
    checkpoint_path: str | os.PathLike, config_path: str | os.PathLike, output_dir: str | os.PathLike | None
) -> UnitHifiGanVocoder:
    """Convert a unit HiFi-GAN checkpoint (`{'generator': state_dict}`, e.g. textlesslib's `g_00500000`) and its
    JSON config into a [`UnitHifiGanVocoder`], saved to `output_dir` (safetensors) unless it is `None`."""
    checkpoint = load_torch_checkpoint(checkpoint_path)
    state = checkpoint.get("generator", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or "dict.weight" not in state:
        raise ValueError(f"{checkpoint_path} is not a unit HiFi-GAN checkpoint: no generator `dict.weight`")
    state = fold_weight_norm(state)
    cfg = read_json(config_path)
    _check_supported(cfg, state)
    config = unit_hifigan_config(cfg, state)
    vocoder = UnitHifiGanVocoder(config)
    load_strict(vocoder, {_rename(k): v.float() for k, v in state.items()}, "unit HiFi-GAN")
    vocoder.eval()
    if output_dir is not None:
        vocoder.save_pretrained(output_dir, safe_serialization=True)
    return vocoder


__all__ = ["convert_unit_hifigan", "unit_hifigan_config"]
