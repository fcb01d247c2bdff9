"""What loading and saving an instruct variant (a PEFT adapter over a base LM) needs.

An instruct variant's index may list task tags under its ``language_model`` entry (``add_task_tokens``): the loader
extends the base LM's vocabulary with them (`add_task_tokens`) and lets PEFT see a tied head
(`expose_tied_weights`) before it attaches the adapter. Tuning an adapter stays in `hf_slm.instruct`.
"""

from __future__ import annotations

import contextlib
import copy
import json
import warnings
from pathlib import Path

import torch

from ..utils import atomic_open


@contextlib.contextmanager
def peft_wrapping():
    """Around a PEFT call that wraps a model (`PeftModel.from_pretrained`, `get_peft_model`): peft 0.21's
    `PeftModel.__init__` reads `is_gradient_checkpointing`, which transformers 5.24 deprecated, so every load of an
    instruct variant printed a FutureWarning users could do nothing about. Only that notice is silenced."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        yield


def module_local_name(model, module) -> str | None:
    """The last part of the name under which `module` sits in `model` (``"embed_tokens"``), or None."""
    for name, candidate in model.named_modules():
        if candidate is module:
            return name.rsplit(".", 1)[-1]
    return None


def add_task_tokens(model, tokens, init: str = "mean", seed: int = 0):
    """A `SpeechLMForCausalLM` whose vocabulary also holds the task tags ``tokens`` (e.g. `INSTRUCT_TOKENS`).

    Task tags come last in the layout, so every existing id keeps its meaning; the new rows of the input embedding
    and output head are initialised like `from_text_lm` does (``"mean"``: transformers' mean resizing, seeded;
    ``"normal"``). Tokens already present are skipped (the same model is returned when none is new). The returned
    model reuses ``model``'s backbone, resized in place: keep using the returned one only.
    """
    if init not in ("mean", "normal"):
        raise ValueError(f"init must be 'mean' or 'normal', got {init!r}")
    tokens = [tokens] if isinstance(tokens, str) else list(tokens)
    existing = list(model.config.task_tokens)
    new = [t for t in dict.fromkeys(tokens) if t not in existing]
    if not new:
        return model
    if getattr(model.config, "num_extra_tokens", 0):
        raise ValueError(
            "task tags follow the named tokens, and this model has unnamed extra rows after them "
            "(resize_token_embeddings): add task tags before resizing"
        )
    config = copy.deepcopy(model.config)
    config.task_tokens = existing + new
    config.text_config.vocab_size = config.vocab_layout.vocab_size
    backbone = model.language_model
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        backbone.resize_token_embeddings(config.vocab_layout.vocab_size, mean_resizing=init == "mean")
    return type(model)(config, language_model=backbone)


def expose_tied_weights(model):
    """Let PEFT see a tied head (before `get_peft_model` or `PeftModel.from_pretrained`); returns ``model``.

    PEFT finds tied layers only through a dict ``_tied_weights_keys`` on the top model (it then gathers the
    sub-models' entries, here the backbone's ``lm_head -> embed_tokens``); without it a tied head would not see the
    trained token rows, in training or after loading a saved adapter.
    """
    if getattr(model, "_tied_weights_keys", None) is None and has_tied_embeddings(model):
        model._tied_weights_keys = {}
    return model


def has_tied_embeddings(model) -> bool:
    """Whether the output head shares its weight with the input embedding (also through PEFT wrappers)."""
    output = model.get_output_embeddings()
    return output is not None and _own_weight(output) is _own_weight(model.get_input_embeddings())


def _own_weight(module):
    """The weight of the layer a PEFT wrapper wraps (a trainable-tokens wrapper's ``.weight`` is a fresh merged
    tensor), else the module's own."""
    original = getattr(module, "original_module", None)
    return (original if isinstance(original, torch.nn.Module) else module).weight


def adapter_holds_embeddings(peft_model) -> bool:
    """Whether the adapter itself stores every row the vocabulary extension added (embedding and head in
    ``modules_to_save``, or the tag rows among the trainable tokens): then PEFT's "auto" copy of the whole resized
    embedding is redundant (the loader extends the base LM first) and would be most of a small adapter's size."""
    config = peft_model.peft_config[peft_model.active_adapter]
    model = peft_model.get_base_model()
    embedding = module_local_name(model, model.get_input_embeddings())
    saved = set(config.modules_to_save or [])
    head = model.get_output_embeddings()
    if embedding in saved and (head is None or has_tied_embeddings(model) or module_local_name(model, head) in saved):
        return True
    indices = config.trainable_token_indices
    indices = indices.get(embedding) if isinstance(indices, dict) else indices
    if not indices or not has_tied_embeddings(model) or not hasattr(model.config, "task_tokens"):
        return False
    return {model.config.token_id(t) for t in model.config.task_tokens} <= set(indices)


def save_adapter(peft_model, folder, state_dict: dict | None = None, base_model_name_or_path: str | None = None) -> None:
    """``peft_model.save_pretrained`` without PEFT's copy of a resized embedding when the adapter already stores
    the new rows (`adapter_holds_embeddings`). ``base_model_name_or_path``: what the saved ``adapter_config.json``
    names as its base (a variant names the repo its pipeline index reads the language model from), in place of
    where the base was loaded from on this machine."""
    peft_model.save_pretrained(folder, state_dict=state_dict,
                               save_embedding_layers=False if adapter_holds_embeddings(peft_model) else "auto")  # fmt: skip
    if base_model_name_or_path is not None:  # after saving: PEFT's "auto" check reads the base it was loaded from
        config_file = Path(folder) / "adapter_config.json"
        config = json.loads(config_file.read_text(encoding="utf-8"))
        config["base_model_name_or_path"] = base_model_name_or_path
        with atomic_open(config_file) as f:
            f.write(json.dumps(config, indent=2, sort_keys=True) + "\n")


__all__ = [
    "adapter_holds_embeddings",
    "add_task_tokens",
    "expose_tied_weights",
    "has_tied_embeddings",
    "module_local_name",
    "peft_wrapping",
    "save_adapter",
]
