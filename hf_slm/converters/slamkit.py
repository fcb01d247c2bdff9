"""slamkit / TWIST unit LMs -> a [`SpeechLMForCausalLM`] folder.

slamkit (`slamkit/model/unit_lm.py`) saves a `UnitLM`: `config.json` with `model_type "speech_language_model"`, the
text LM's config as `base_config` and the unit vocabulary size as `vocab_size` (e.g. 502 for 500 units), weights
under `lm.*` (the wrapped `AutoModelForCausalLM`, whose vocabulary was replaced). Its tokenizer puts `<PAD>` at 0,
one `<S>` at 1 used as both BOS and EOS, and unit *i* at *i + 2*; an utterance is `<S> u_1 ... u_T <S>`. A plain
causal-LM checkpoint with the same id layout (no `lm.` prefix) converts the same way.

Our layout (speech only, no modality tokens) is `<s> u_1 ... u_T </s>` with unit *k* at *k*, then `<pad> <s> </s>
[Speech] [Text]`. The converter copies rows, never retrains: unit rows, PAD, and `<S>` (as both `<s>` and `</s>`
inputs and as the `</s>` output). The model is untied, because `<s>` must read the `<S>` input row but must not be
predicted a second time: the output rows of `<s>`, `[Speech]` and `[Text]`, which slamkit does not have, copy PAD's
output row, and the config lists them as `suppressed_token_ids`, so scoring normalises over slamkit's vocabulary
only and generation never picks them. Every logit slamkit has is reproduced exactly, and so is every per-token
log-probability and pair score.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM

from ..models.speech_lm import SpeechLMConfig, SpeechLMForCausalLM, SpeechLMVocabularyLayout
from ._common import load_torch_checkpoint, strip_prefix

#: slamkit's UnitTokeniser defaults: `<PAD>` id, the shared `<S>` (BOS and EOS) id, and unit i -> i + 2.
SLAMKIT_PAD_ID, SLAMKIT_BOS_EOS_ID, SLAMKIT_UNIT_OFFSET = 0, 1, 2


def _file(source, name: str, load_kwargs: dict) -> str | None:
    if Path(source).is_dir():
        path = Path(source) / name
        return str(path) if path.is_file() else None
    from transformers.utils import cached_file

    return cached_file(str(source), name, _raise_exceptions_for_missing_entries=False, **load_kwargs)


def _read_state(source, load_kwargs: dict) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    index = _file(source, "model.safetensors.index.json", load_kwargs)
    if index is not None:
        shards = sorted(set(json.loads(Path(index).read_text(encoding="utf-8"))["weight_map"].values()))
        state = {}
        for shard in shards:
            state.update(load_file(_file(source, shard, load_kwargs)))
        return state
    single = _file(source, "model.safetensors", load_kwargs)
    if single is not None:
        return load_file(single)
    legacy = _file(source, "pytorch_model.bin", load_kwargs)
    if legacy is not None:
        return load_torch_checkpoint(legacy)
    raise FileNotFoundError(f"no model.safetensors(.index.json) or pytorch_model.bin in {source}")


def _source_lm(source, load_kwargs: dict) -> tuple[nn.Module, dict]:
    """The wrapped causal LM with the checkpoint's weights, and the slamkit config dict."""
    path = _file(source, "config.json", load_kwargs)
    if path is None:
        raise FileNotFoundError(f"no config.json in {source}")
    cfg = json.loads(Path(path).read_text(encoding="utf-8"))
    slamkit = cfg.get("model_type") == "speech_language_model"
    base = dict(cfg["base_config"] if slamkit else cfg)
    if "model_type" not in base:
        raise ValueError(f"{source}: the base LM config has no model_type")
    for key in ("torch_dtype", "dtype", "architectures", "auto_map", "transformers_version"):
        base.pop(key, None)
    base_config = AutoConfig.for_model(base.pop("model_type"), **base)
    base_config.vocab_size = cfg["vocab_size"]
    lm = AutoModelForCausalLM.from_config(base_config)
    state = _read_state(source, load_kwargs)
    state = strip_prefix(state, "lm.") if slamkit else state
    _fill_tied(lm, state)
    result = lm.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"{source}: weights do not fit {type(lm).__name__}: missing {result.missing_keys[:8]}, unexpected "
            f"{result.unexpected_keys[:8]}"
        )
    return lm.eval(), cfg


def _embedding_names(lm: nn.Module) -> tuple[str, str]:
    """State-dict names of the input and output embedding weights (by module, so tied weights get both names)."""
    modules = {id(module): name for name, module in lm.named_modules(remove_duplicate=False)}
    return (f"{modules[id(lm.get_input_embeddings())]}.weight", f"{modules[id(lm.get_output_embeddings())]}.weight")


def _fill_tied(lm: nn.Module, state: dict) -> None:
    """A tied checkpoint stores one of the two embedding names (which one depends on the saver): supply the other."""
    if not getattr(lm.config, "tie_word_embeddings", False):
        return
    input_name, output_name = _embedding_names(lm)
    if input_name in state and output_name not in state:
        state[output_name] = state[input_name]
    elif output_name in state and input_name not in state:
        state[input_name] = state[output_name]


def convert_slamkit_lm(
    source: str | os.PathLike,
    output_dir: str | os.PathLike | None,
    num_units: int | None = None,
    unit_offset: int = SLAMKIT_UNIT_OFFSET,
    pad_token_id: int = SLAMKIT_PAD_ID,
    bos_eos_token_id: int = SLAMKIT_BOS_EOS_ID,
    **load_kwargs,
) -> SpeechLMForCausalLM:
    """Convert a slamkit `UnitLM` (or a plain causal LM with slamkit's id layout) into a [`SpeechLMForCausalLM`].

    Args:
        source: a folder or Hub id (e.g. `slprl/slam_scaled`).
        output_dir: where the LM folder is written (`None`: do not save).
        num_units: number of units; defaults to `vocab_size - unit_offset`, which must then cover the whole
            vocabulary (rows slamkit has beyond the units would be dropped, changing its normaliser).
        unit_offset, pad_token_id, bos_eos_token_id: the source's id layout (slamkit: 2, 0, 1).
        load_kwargs: `revision`, `token`, `cache_dir`, `local_files_only` for Hub downloads.
    """
    lm, cfg = _source_lm(source, load_kwargs)
    vocab = cfg["vocab_size"]
    num_units = vocab - unit_offset if num_units is None else num_units
    if num_units < 1 or unit_offset + num_units > vocab:
        raise ValueError(f"num_units={num_units} with unit_offset={unit_offset} does not fit vocab_size={vocab}")
    src_in = lm.get_input_embeddings().weight.detach().clone()
    src_out = lm.get_output_embeddings().weight.detach().clone()
    units = slice(unit_offset, unit_offset + num_units)
    pad, s = pad_token_id, bos_eos_token_id
    #                       units           <pad>        <s>        </s>       [Speech]     [Text]
    new_in = torch.cat([src_in[units], src_in[[pad, s, s, pad, pad]]])
    new_out = torch.cat([src_out[units], src_out[[pad, pad, s, pad, pad]]])

    lm.config.tie_word_embeddings = False
    lm.set_input_embeddings(nn.Embedding.from_pretrained(new_in, freeze=False, padding_idx=None))
    head = nn.Linear(new_out.shape[1], new_out.shape[0], bias=False)
    head.weight = nn.Parameter(new_out)
    lm.set_output_embeddings(head)
    # transformers caches the tying decided at construction; recompute it from the (now untied) config
    lm.all_tied_weights_keys = lm.get_expanded_tied_weights_keys(all_submodels=True)
    layout = SpeechLMVocabularyLayout(text_vocab_size=0, num_units=num_units, use_modality_tokens=False)
    config = SpeechLMConfig(
        text_config=lm.config, text_vocab_size=0, num_units=num_units, use_modality_tokens=False,
        # slamkit's softmax has no such rows: leave them out of scoring and generation
        suppressed_token_ids=[layout.bos_token_id, layout.speech_token_id, layout.text_token_id],
        source_token_ids={"unit_offset": unit_offset, "pad_token_id": pad, "bos_eos_token_id": s},
    )  # fmt: skip
    for name in ("vocab_size", "pad_token_id", "bos_token_id", "eos_token_id"):
        setattr(lm.config, name, getattr(config.text_config, name))
    model = SpeechLMForCausalLM(config, language_model=lm).eval()
    if output_dir is not None:
        model.save_pretrained(output_dir, safe_serialization=True)
    return model


__all__ = ["convert_slamkit_lm"]
