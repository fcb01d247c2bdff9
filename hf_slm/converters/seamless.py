"""SeamlessM4T (v1 / v2) unit vocoder (transformers' `SeamlessM4TCodeHifiGan` / `SeamlessM4Tv2CodeHifiGan`) ->
a [`UnitHifiGanVocoder`] folder.

The Seamless vocoder feeds `[language embedding, unit embedding (duration-expanded), speaker embedding]` into the
same code HiFi-GAN body our vocoder uses. Our vocoder has one per-utterance table, the speaker table, so the
converter folds language and speaker into it: row `lang_id * vocoder_num_spkrs + spkr_id` holds
`[language_embedding[lang_id], speaker_embedding[spkr_id]]`, and `conv_pre`'s input channels are permuted to our
order (units first). Both embedding tables are kept exactly; [`seamless_speaker_id`] computes the row. The
`vocoder_lang_code_to_id` map of the generation config (when found) is stored in the converted config as
`seamless_lang_code_to_id`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from transformers import AutoConfig

from ..models.unit_vocoder import UnitHifiGanVocoder, UnitHifiGanVocoderConfig
from ._common import fold_weight_norm, load_strict


def _source_state(source, load_kwargs: dict) -> tuple[object, dict, dict]:
    """(seamless config, vocoder state dict without prefix, vocoder_lang_code_to_id or {})."""
    if isinstance(source, torch.nn.Module):
        vocoder = getattr(source, "vocoder", source)
        lang_map = getattr(getattr(source, "generation_config", None), "vocoder_lang_code_to_id", None) or {}
        return vocoder.config, dict(vocoder.state_dict()), dict(lang_map)
    config = AutoConfig.from_pretrained(source, **load_kwargs)
    if not hasattr(config, "unit_hifi_gan_vocab_size"):
        raise ValueError(f"{source} is not a SeamlessM4T checkpoint (its config has no vocoder fields)")
    state = _read_safetensors(source, load_kwargs)
    prefixed = {k[len("vocoder.") :]: v for k, v in state.items() if k.startswith("vocoder.")}
    state = prefixed or state
    return config, state, _lang_map(source, load_kwargs)


def _resolve(source, filename: str, load_kwargs: dict) -> str | None:
    if Path(source).is_dir():
        path = Path(source) / filename
        return str(path) if path.is_file() else None
    from transformers.utils import cached_file

    return cached_file(source, filename, _raise_exceptions_for_missing_entries=False, **load_kwargs)


def _read_safetensors(source, load_kwargs: dict) -> dict:
    """Only the vocoder tensors of a (possibly sharded) safetensors checkpoint: the 2B-parameter rest is not read."""
    from safetensors import safe_open

    index = _resolve(source, "model.safetensors.index.json", load_kwargs)
    if index is not None:
        weight_map = json.loads(Path(index).read_text(encoding="utf-8"))["weight_map"]
        shards = sorted({f for k, f in weight_map.items() if k.startswith("vocoder.")} or set(weight_map.values()))
        files = [_resolve(source, shard, load_kwargs) for shard in shards]
    else:
        files = [_resolve(source, "model.safetensors", load_kwargs)]
    if not files or None in files:
        raise FileNotFoundError(f"no safetensors weights found for {source}")
    state = {}
    for file in files:
        with safe_open(file, framework="pt") as handle:
            keys = [k for k in handle.keys() if k.startswith("vocoder.")] or list(handle.keys())
            state.update({k: handle.get_tensor(k) for k in keys})
    return state


def _lang_map(source, load_kwargs: dict) -> dict:
    path = _resolve(source, "generation_config.json", load_kwargs)
    if path is None:
        return {}
    return json.loads(Path(path).read_text(encoding="utf-8")).get("vocoder_lang_code_to_id") or {}


def seamless_speaker_id(config, lang, speaker: int = 0) -> int:
    """Row of the converted speaker table for a Seamless `(lang_id or language code, spkr_id)` pair."""
    if isinstance(lang, str):
        codes = getattr(config, "seamless_lang_code_to_id", None) or {}
        if lang not in codes:
            raise ValueError(f"unknown language code {lang!r}; known: {sorted(codes)}")
        lang = codes[lang]
    num_langs, num_spkrs = config.seamless_num_languages, config.seamless_num_speakers
    if not (0 <= lang < num_langs and 0 <= speaker < num_spkrs):
        raise ValueError(f"lang_id must be in [0, {num_langs}) and spkr_id in [0, {num_spkrs}), got {lang}, {speaker}")
    return int(lang) * num_spkrs + int(speaker)


def convert_seamless_vocoder(source, output_dir: str | os.PathLike | None, **load_kwargs) -> UnitHifiGanVocoder:
    """Convert the vocoder of a SeamlessM4T (v1 or v2) checkpoint into a [`UnitHifiGanVocoder`].

    Args:
        source: a Hub id or folder of a SeamlessM4T(v2) model (`facebook/seamless-m4t-v2-large`; only the
            `vocoder.*` tensors are read) or of a saved `SeamlessM4T(v2)CodeHifiGan`, or such a model object (or a
            model with a `.vocoder`).
        output_dir: where the vocoder folder is written (`None`: do not save).
        load_kwargs: `revision`, `token`, `cache_dir`, `local_files_only` for Hub downloads.
    """
    config, state, lang_map = _source_state(source, load_kwargs)
    state = fold_weight_norm(state)
    v2 = "v2" in type(config).__name__.lower() or getattr(config, "model_type", "") == "seamless_m4t_v2"
    kernel = config.variance_predictor_kernel_size
    if not v2 and kernel != 3:
        raise ValueError(f"SeamlessM4T v1 duration predictor with kernel {kernel}: only 3 is supported (padding=1)")
    num_langs, num_spkrs = config.vocoder_num_langs, config.vocoder_num_spkrs
    lang_dim, unit_dim, spkr_dim = config.lang_embed_dim, config.unit_embed_dim, config.spkr_embed_dim
    ours = UnitHifiGanVocoderConfig(
        num_units=config.unit_hifi_gan_vocab_size,
        embedding_dim=unit_dim,
        sampling_rate=config.sampling_rate,
        upsample_rates=list(config.upsample_rates),
        upsample_kernel_sizes=list(config.upsample_kernel_sizes),
        upsample_initial_channel=config.upsample_initial_channel,
        resblock_kernel_sizes=list(config.resblock_kernel_sizes),
        resblock_dilation_sizes=[list(d) for d in config.resblock_dilation_sizes],
        leaky_relu_slope=config.leaky_relu_slope,
        use_duration_predictor=True,
        duration_predictor_kernel_size=kernel,
        duration_predictor_dropout=float(config.var_pred_dropout),
        num_speakers=num_langs * num_spkrs,
        speaker_embedding_dim=lang_dim + spkr_dim,
        seamless_num_languages=num_langs,
        seamless_num_speakers=num_spkrs,
        seamless_lang_code_to_id=dict(lang_map),
    )
    lang, spkr = state.pop("language_embedding.weight"), state.pop("speaker_embedding.weight")
    table = torch.cat([lang.repeat_interleave(num_spkrs, dim=0), spkr.repeat(num_langs, 1)], dim=1)
    pre = state["hifi_gan.conv_pre.weight"]  # [out, lang | unit | spkr, k] -> [out, unit | lang | spkr, k]
    state["hifi_gan.conv_pre.weight"] = torch.cat(
        [pre[:, lang_dim : lang_dim + unit_dim], pre[:, :lang_dim], pre[:, lang_dim + unit_dim :]], dim=1
    )
    state["speaker_embedding.weight"] = table
    state = {("duration_predictor." + k[len("dur_predictor.") :] if k.startswith("dur_predictor.") else k): v.float()
             for k, v in state.items()}  # fmt: skip
    vocoder = UnitHifiGanVocoder(ours)
    load_strict(vocoder, state, "SeamlessM4T vocoder")
    vocoder.eval()
    if output_dir is not None:
        vocoder.save_pretrained(output_dir, safe_serialization=True)
    return vocoder


__all__ = ["convert_seamless_vocoder", "seamless_speaker_id"]
