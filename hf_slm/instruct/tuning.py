"""LoRA instruction tuning of a `SpeechLMForCausalLM` through PEFT: defaults, merge, instruct variants. The vocabulary
extension and the adapter loading helpers live in `hf_slm.pipelines.adapters` (re-exported here)."""

from __future__ import annotations

import copy
import os
from pathlib import Path

from ..pipelines.adapters import (
    adapter_holds_embeddings,
    add_task_tokens,
    expose_tied_weights,
    has_tied_embeddings,
    module_local_name,
    peft_wrapping,
)

#: LoRA target modules per backbone ``model_type``: attention and MLP projections (QLoRA's "all linear layers"
#: finding: adapting the MLPs as well matters more than the rank).
LORA_TARGET_MODULES = {
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "qwen3": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "mistral": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "gemma": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "gpt2": ["c_attn", "c_proj", "c_fc"],
    "opt": ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"],
}


def _backbone_type(model) -> str:
    config = model.config
    backbone = getattr(config, "text_config", None)
    return getattr(backbone, "model_type", None) or config.model_type


def default_lora_config(
    model,
    r: int = 8,
    lora_alpha: int = 16,
    lora_dropout: float = 0.0,
    train_embeddings: bool = True,
    target_modules: list[str] | str | None = None,
    **kwargs,
):
    """A `peft.LoraConfig` with sensible targets for the model's backbone (Llama / Qwen2 / GPT-2 / OPT / ...).

    Args:
        r, lora_alpha, lora_dropout: the LoRA hyper-parameters.
        train_embeddings (`bool`, defaults to `True`): put the input embedding and the output head in
            ``modules_to_save`` (trained in full and saved with the adapter). Needed whenever the vocabulary was
            extended (new role / task tags, speech units over a text LM): LoRA on the other layers cannot learn the
            rows of tokens the base model never saw. A tied embedding / head (GPT-2) instead trains its non-text rows
            through PEFT's ``trainable_token_indices``, which keeps the two tied.
        target_modules: overrides the per-backbone default (`LORA_TARGET_MODULES`; ``"all-linear"`` otherwise).
        kwargs: any other `LoraConfig` field.
    """
    from peft import LoraConfig

    backbone_type = _backbone_type(model)
    if target_modules is None:
        target_modules = LORA_TARGET_MODULES.get(backbone_type, "all-linear")
    modules_to_save = None
    if train_embeddings:
        input_embeddings, output_embeddings = model.get_input_embeddings(), model.get_output_embeddings()
        tied = has_tied_embeddings(model)
        names = [module_local_name(model, input_embeddings)]
        if output_embeddings is not None:
            names.append(module_local_name(model, output_embeddings))
        modules_to_save = [n for n in dict.fromkeys(names) if n]
        if tied:
            # Two modules_to_save copies would untie the head from the embedding (and a re-tie on load would drop
            # the head's updates): train the non-text rows of the shared table instead (PEFT's trainable tokens).
            first = getattr(model.config, "text_vocab_size", 0)
            kwargs.setdefault("trainable_token_indices", {names[0]: list(range(first, model.config.vocab_size))})
            modules_to_save = None
    if backbone_type == "gpt2":
        kwargs.setdefault("fan_in_fan_out", True)  # GPT-2's Conv1D stores weights transposed
    return LoraConfig(
        r=r,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        target_modules=target_modules,
        modules_to_save=modules_to_save,
        task_type="CAUSAL_LM",
        **kwargs,
    )


def attach_adapter(model, lora_config=None, **config_kwargs):
    """Wrap ``model`` in a `peft.PeftModel` with ``lora_config`` (default: `default_lora_config(model, **kw)`)."""
    from peft import get_peft_model

    if lora_config is None:
        lora_config = default_lora_config(model, **config_kwargs)
    elif config_kwargs:
        raise TypeError("give either lora_config or default_lora_config keyword arguments, not both")
    with peft_wrapping():
        return get_peft_model(expose_tied_weights(model), lora_config)


def merge_adapter(peft_model):
    """Fold the LoRA weights (and saved modules) into the base weights and return the plain base model."""
    if not hasattr(peft_model, "merge_and_unload"):
        raise TypeError(f"expected a peft.PeftModel, got {type(peft_model).__name__}")
    return peft_model.merge_and_unload()


def save_instruct_variant(pipeline, save_directory: str | os.PathLike, base: str | None = None,
                          base_revision: str | None = None, merge: bool = False) -> Path:  # fmt: skip
    """Save a tuned pipeline (its ``language_model`` a `PeftModel`) as an instruct variant.

    - ``merge=False`` with ``base`` (the base variant's folder or repo id): an adapter-only variant; every other
      component is an index reference to ``base`` (nothing copied; a component that ``base`` itself references
      elsewhere is referenced where it lives, since ``base`` holds no folder for it), and when the tuned model added
      task tokens the ``language_model`` entry lists them under ``add_task_tokens`` so the loader extends the base
      LM before the adapter (which holds the trained rows: modules to save or trainable tokens) is attached.
    - ``merge=False`` without ``base``: the base LM and the adapter are both written (``language_model/`` +
      ``adapter/``).
    - ``merge=True``: the adapter is merged into the weights and a plain variant is written (``base``, if given,
      still shares the non-LM components by reference).
    """
    from ..pipelines.pipeline_utils import (
        class_name_of,
        library_of,
        read_index,
        resolve_pipeline_path,
        resolve_reference,
    )

    lm = pipeline.language_model
    if library_of(lm) != "peft":
        raise ValueError("pipeline.language_model is not a peft.PeftModel: there is no adapter to save")
    variant = type(pipeline)(**{k: v for k, v in pipeline.components.items() if k != "adapter"})
    shared = {}
    if base is not None:
        base_path = resolve_pipeline_path(base, revision=base_revision)
        base_index = read_index(base_path)
        # a local base as an absolute path here; save_pretrained stores it relative to the variant's folder
        base_repo = str(base_path.resolve()) if Path(str(base)).expanduser().is_dir() else str(base)
        for name in ("feature_extractor", "speech_tokenizer", "tokenizer", "vocoder", "language_model"):
            component = variant.components.get(name)
            if component is None or (merge and name == "language_model"):
                continue
            base_spec = base_index.get(name)
            if base_spec is None:
                if name == "language_model" or name == "tokenizer":
                    raise ValueError(f"the base variant {base} has no {name} to point at")
                continue
            if name == "language_model":
                component = lm.get_base_model()
            if isinstance(base_spec, dict) and base_spec.get("repo"):  # the base shares it too: point where it does
                where = {k: base_spec[k] for k in ("repo", "subfolder", "revision") if base_spec.get(k)}
                where["repo"] = resolve_reference(where["repo"], base_path)  # relative to the base's own folder
            else:
                where = {"repo": base_repo, "subfolder": name, **({"revision": base_revision} if base_revision else {})}
            shared[name] = {"library": library_of(component), "class": class_name_of(component), **where}
        if "language_model" in shared:
            base_config = _base_lm_config(base, base_revision)
            added = [t for t in lm.get_base_model().config.task_tokens if t not in base_config.task_tokens]
            if added:
                shared["language_model"]["add_task_tokens"] = added
    if merge:
        variant.register_modules(language_model=merge_adapter(copy.deepcopy(lm)))
    variant._shared_components = shared
    return variant.save_pretrained(save_directory)


def _base_lm_config(base, revision):
    from ..models.speech_lm import SpeechLMConfig
    from ..pipelines.pipeline_utils import resolve_pipeline_path

    path = resolve_pipeline_path(base, revision=revision)
    return SpeechLMConfig.from_pretrained(str(Path(path) / "language_model"))


__all__ = [
    "LORA_TARGET_MODULES",
    "adapter_holds_embeddings",
    "add_task_tokens",
    "attach_adapter",
    "default_lora_config",
    "expose_tied_weights",
    "merge_adapter",
    "save_instruct_variant",
]
