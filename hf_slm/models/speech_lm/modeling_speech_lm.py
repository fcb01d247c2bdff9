"""`SpeechLMForCausalLM`: a causal LM over units (GSLM) or over text + units (TWIST, SpiRit-LM), with scoring."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pad_sequence
from transformers import AutoModelForCausalLM, GenerationMixin, LogitsProcessor, LogitsProcessorList, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast
from transformers.utils import ModelOutput, logging

from .configuration_speech_lm import SpeechLMConfig, as_unit_sequences

logger = logging.get_logger(__name__)

_NEW_EMBEDDINGS_INIT = ("mean", "normal")


@dataclass
class LogLikelihoodOutput(ModelOutput):
    """
    Negative log-likelihoods of a batch of sequences (see [`SpeechLMForCausalLM.log_likelihood`]).

    Args:
        sum_nll (`torch.FloatTensor` of shape `(batch_size,)`):
            Sum of the scored tokens' NLL (nats); divided by `num_tokens` when `normalize=True`. Lower = more likely.
        token_nll (`torch.FloatTensor` of shape `(batch_size, sequence_length - 1)`):
            NLL of token `t + 1` given tokens `<= t`; 0 where a token is not scored (padding, masked out).
        num_tokens (`torch.LongTensor` of shape `(batch_size,)`):
            Number of scored tokens per sequence.
    """

    sum_nll: torch.FloatTensor | None = None
    token_nll: torch.FloatTensor | None = None
    num_tokens: torch.LongTensor | None = None


class AllowedTokensLogitsProcessor(LogitsProcessor):
    """Sets every logit outside `allowed_token_ids` to -inf (e.g. to sample units and EOS only)."""

    def __init__(self, allowed_token_ids: Sequence[int] | torch.Tensor, vocab_size: int):
        allowed = torch.as_tensor(allowed_token_ids, dtype=torch.long)
        if allowed.numel() == 0 or int(allowed.min()) < 0 or int(allowed.max()) >= vocab_size:
            raise ValueError(f"allowed_token_ids must be a non-empty subset of [0, {vocab_size})")
        self.mask = torch.zeros(vocab_size, dtype=torch.bool)
        self.mask[allowed] = True

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.mask.device != scores.device:
            self.mask = self.mask.to(scores.device)
        return scores.masked_fill(~self.mask[: scores.shape[-1]], -float("inf"))


class SpeechLMPreTrainedModel(PreTrainedModel):
    config_class = SpeechLMConfig
    base_model_prefix = "language_model"
    supports_gradient_checkpointing = True
    # The backbone checks its own support when it is built; these let the wrapper pass any choice through.
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _can_compile_fullgraph = True


class SpeechLMForCausalLM(SpeechLMPreTrainedModel, GenerationMixin):
    r"""
    A causal language model over the joint vocabulary of [`SpeechLMConfig`]: the backbone is any
    `AutoModelForCausalLM` (kept as `self.language_model`), so every attention implementation, cache, PEFT method
    and `generate()` option of that backbone works unchanged.

    - GSLM: `SpeechLMForCausalLM(SpeechLMConfig(num_units=...))`, trained from scratch on unit sequences.
    - TWIST: [`~SpeechLMForCausalLM.from_text_lm`] warm-starts from a pretrained text LM and keeps its text rows.
    - Mixed speech / text training data (SpiRit-LM, SUTLM modes) comes from [`SpeechLMProcessor`].

    Args:
        config ([`SpeechLMConfig`]): Model configuration.
        language_model (`PreTrainedModel`, *optional*):
            An already-built causal LM to wrap instead of building one from `config.text_config`. Its weights
            are taken as initialised and are never re-initialised (used by `from_text_lm`).
    """

    def __init__(self, config: SpeechLMConfig, language_model: PreTrainedModel | None = None):
        super().__init__(config)
        if language_model is None:
            language_model = AutoModelForCausalLM.from_config(config.text_config)
        else:
            rows = language_model.get_input_embeddings().weight.shape[0]
            if rows != config.vocab_size:
                raise ValueError(
                    f"language_model has {rows} embedding rows but the vocabulary layout needs {config.vocab_size}"
                )
            config.text_config = language_model.config
            _mark_initialized(language_model)
        self.language_model = language_model
        self.post_init()
        self._suppress_in_generation()

    def _suppress_in_generation(self) -> None:
        """Copy `config.suppressed_token_ids` into `generation_config.suppress_tokens` (transformers'
        `SuppressTokensLogitsProcessor` then masks them in every `generate` call; a saved generation config keeps
        them)."""
        suppressed = getattr(self.config, "suppressed_token_ids", None)
        if suppressed and self.generation_config is not None:
            already = self.generation_config.suppress_tokens or []
            self.generation_config.suppress_tokens = sorted(set(already) | set(suppressed))

    # ------------------------------------------------------------------ delegation to the backbone
    @property
    def base_model(self) -> nn.Module:
        """
        The backbone's body without its LM head (e.g. `LlamaModel`), which is what `base_model` is for transformers'
        own causal LMs (and what TRL's fused LM head calls for `last_hidden_state`). `base_model_prefix` stays
        `"language_model"`, the prefix of every weight name, so checkpoints keep loading as before.
        """
        return self.language_model.base_model

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module):
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module | None:
        return self.language_model.get_output_embeddings()

    def set_output_embeddings(self, new_embeddings: nn.Module):
        self.language_model.set_output_embeddings(new_embeddings)

    def get_decoder(self):
        return self.language_model.get_decoder()

    def resize_token_embeddings(
        self,
        new_num_tokens: int | None = None,
        pad_to_multiple_of: int | None = None,
        mean_resizing: bool = True,
    ) -> nn.Embedding:
        """
        Resize the backbone's input embeddings and LM head (transformers' `resize_token_embeddings`, on the backbone)
        and record the change in the config.

        Rows are added or removed at the end, after the layout's named tokens (text, units, specials, task tags), so
        every named id keeps its row and its logit; the rows past the layout are counted in
        `config.num_extra_tokens` and are saved and reloaded with the model. It refuses to remove a named row. New
        task tags with names go through `hf_slm.instruct.add_task_tokens`; this is for tokens whose meaning the caller
        manages (e.g. ids a text tokenizer's `add_tokens` hands out after the layout) and for padding the table.

        Args:
            new_num_tokens, pad_to_multiple_of, mean_resizing: as in `PreTrainedModel.resize_token_embeddings`
                (`mean_resizing=True` starts each new row at the mean of the old ones).

        Returns:
            `nn.Embedding`: the (new) input embeddings.
        """
        named = self.config.vocab_layout.vocab_size
        target = self.config.vocab_size if new_num_tokens is None else new_num_tokens
        if pad_to_multiple_of is not None:
            target = math.ceil(target / pad_to_multiple_of) * pad_to_multiple_of
        if target < named:
            raise ValueError(
                f"cannot resize to {target} rows: the vocabulary layout names {named} tokens (text, units, specials, "
                "task tags), and only the extra rows after them can be removed"
            )
        embeddings = self.language_model.resize_token_embeddings(new_num_tokens, pad_to_multiple_of, mean_resizing)
        rows = embeddings.weight.shape[0]
        # `from_config` may have built the backbone on a copy of `text_config`: write the size on both.
        self.config.text_config.vocab_size = rows
        self.language_model.config.vocab_size = rows
        self.config.num_extra_tokens = rows - named
        self.vocab_size = rows
        if getattr(self.config, "suppressed_token_ids", None):  # drop the ids of removed extra rows
            kept = [t for t in self.config.suppressed_token_ids if t < rows]
            self.config.suppressed_token_ids = kept or None
            if self.generation_config is not None and self.generation_config.suppress_tokens:
                self.generation_config.suppress_tokens = [t for t in self.generation_config.suppress_tokens if t < rows]
        return embeddings

    def check_token_ids(self, input_ids: torch.Tensor) -> None:
        """Refuse ids outside the embedding, naming the id and the range (instead of an IndexError deep inside)."""
        if input_ids.numel() == 0:
            return
        low, high = int(input_ids.min()), int(input_ids.max())
        size = self.config.vocab_size
        if low < 0 or high >= size:
            bad, layout = (low if low < 0 else high), self.config.vocab_layout
            raise ValueError(
                f"input_ids holds id {bad}, outside this LM's vocabulary [0, {size}): units are ids "
                f"{layout.unit_token_offset}..{layout.unit_token_offset + layout.num_units - 1}; convert units with "
                "units_to_input_ids"
            )

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache=None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> CausalLMOutputWithPast | tuple:
        r"""
        Same arguments as the backbone's causal-LM forward. `labels` use -100 for positions without loss and are
        shifted inside (as in every transformers causal LM). Extra keyword arguments (`cache_position`,
        `output_attentions`, `num_items_in_batch`, ...) go to the backbone unchanged.
        """
        return_dict = kwargs.pop("return_dict", None)
        if input_ids is not None and not (torch.compiler.is_compiling() or torch.compiler.is_exporting()):
            self.check_token_ids(input_ids)  # eager calls only: a value check would stop export and fullgraph
        if use_cache is None:
            # Decide here: the backbone's own config says use_cache=True, and a cache built while training turns
            # off transformers' packed-sequence detection (packed rows would attend across utterances).
            use_cache = False if (self.training or labels is not None) else getattr(self.config, "use_cache", True)
        outputs = self.language_model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            labels=labels,
            use_cache=use_cache,
            logits_to_keep=logits_to_keep,
            return_dict=True,
            **kwargs,
        )
        output = CausalLMOutputWithPast(
            loss=outputs.loss,
            logits=outputs.logits,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )
        return output if return_dict is not False else output.to_tuple()

    # ------------------------------------------------------------------ units in, units out
    def units_to_input_ids(
        self,
        units,
        padding_side: str = "left",
        add_eos: bool = False,
        task: str | Sequence[str] | None = None,
    ) -> tuple[torch.LongTensor, torch.LongTensor]:
        """
        Speech-only model inputs for a batch of unit sequences: `<s> [task tags] [Speech] u_1 ... u_T [</s>]`
        (`[Speech]` only when `config.use_modality_tokens`), padded with `<pad>`.

        Args:
            units: a `LongTensor` `[T]` or `[B, T]` (no padding), or a list of 1-D unit sequences of any lengths.
            padding_side: `"left"` (default; what `generate` needs) or `"right"`.
            add_eos: append `</s>` (for scoring complete utterances / training); prompts leave it out.
            task: task / language tag name(s) placed after `<s>`.

        Returns:
            `(input_ids, attention_mask)`, both `[B, L]` on the model's device.
        """
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        layout = self.config.vocab_layout
        prefix = torch.tensor(layout.speech_prefix_ids(task), dtype=torch.long)
        suffix = torch.tensor([layout.eos_token_id] if add_eos else [], dtype=torch.long)
        sequences = [torch.cat([prefix, layout.units_to_token_ids(u), suffix]) for u in as_unit_sequences(units)]
        input_ids, attention_mask = _pad(sequences, layout.pad_token_id, padding_side)
        return input_ids.to(self.device), attention_mask.to(self.device)

    @torch.no_grad()
    def generate_units(
        self,
        units_prompt,
        max_new_tokens: int = 100,
        do_sample: bool = True,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        streamer=None,
        **generate_kwargs,
    ) -> list[torch.LongTensor]:
        """
        Continue unit prompts (GSLM's speech continuation). Only unit tokens and `</s>` can be generated; each
        sequence stops at `</s>` or after `max_new_tokens`.

        Args:
            units_prompt: prompt units, as for [`~SpeechLMForCausalLM.units_to_input_ids`]; an empty sequence
                generates unconditionally.
            max_new_tokens, do_sample, temperature, top_k, top_p, streamer: as in `generate()`; `None` keeps the
                generation config's value.
            generate_kwargs: anything else `generate()` takes (`num_beams`, `repetition_penalty`, `logits_processor`,
                `task=` for a task tag, ...).

        Returns:
            One 1-D `LongTensor` of units per sequence: the continuation only, without the prompt and `</s>`.
        """
        layout = self.config.vocab_layout
        task = generate_kwargs.pop("task", None)
        input_ids, attention_mask = self.units_to_input_ids(units_prompt, padding_side="left", task=task)
        allowed = list(range(layout.unit_token_offset, layout.special_token_offset)) + [layout.eos_token_id]
        logits_processor = LogitsProcessorList([AllowedTokensLogitsProcessor(allowed, self.config.vocab_size)])
        logits_processor.extend(generate_kwargs.pop("logits_processor", None) or [])
        sampling = {"temperature": temperature, "top_k": top_k, "top_p": top_p} if do_sample else {}
        sequences = self.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            max_new_tokens=max_new_tokens,
            do_sample=do_sample,
            streamer=streamer,
            logits_processor=logits_processor,
            eos_token_id=layout.eos_token_id,
            pad_token_id=layout.pad_token_id,
            **{k: v for k, v in sampling.items() if v is not None},
            **generate_kwargs,
        )
        if not isinstance(sequences, torch.Tensor):  # return_dict_in_generate=True
            sequences = sequences.sequences
        return [self._continuation_units(row) for row in sequences[:, input_ids.shape[1] :]]

    def _continuation_units(self, new_tokens: torch.LongTensor) -> torch.LongTensor:
        layout = self.config.vocab_layout
        eos = (new_tokens == layout.eos_token_id).nonzero()
        if len(eos):
            new_tokens = new_tokens[: int(eos[0, 0])]
        return layout.token_ids_to_units(new_tokens, strict=False)

    # ------------------------------------------------------------------ scoring
    @torch.no_grad()
    def log_likelihood(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        score_mask: torch.Tensor | None = None,
        normalize: bool = False,
    ) -> LogLikelihoodOutput:
        """
        Negative log-likelihood of each sequence of a batch: the quantity sWUGGY / sBLIMP-style benchmarks compare
        within a pair (lower = more likely).

        Token `t` (for `t >= 1`) is scored when it and its predecessor are real tokens (`attention_mask`) and
        `score_mask[t]` is set, so left or right padding give the same result, and a `score_mask` that is 1 only
        on a continuation scores that continuation given its prompt. Position ids follow the attention mask. The
        softmax leaves out `config.suppressed_token_ids` (ids the model never produces), which cannot be scored.

        Args:
            input_ids (`LongTensor` `[B, T]`): token ids (e.g. from `units_to_input_ids(..., add_eos=...)`).
            attention_mask (`Tensor` `[B, T]`, *optional*): 1 for real tokens, 0 for padding.
            score_mask (`Tensor` `[B, T]`, *optional*): 1 for the tokens to score (default: all real tokens).
            normalize (`bool`): divide `sum_nll` by the number of scored tokens (length normalisation).
        """
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be [batch, time], got shape {tuple(input_ids.shape)}")
        if input_ids.shape[1] < 2:
            raise ValueError("log_likelihood needs sequences of at least 2 tokens (a context and a scored token)")
        if int(input_ids.min()) < 0 or int(input_ids.max()) >= self.config.vocab_size:
            raise ValueError(f"input_ids must lie in [0, {self.config.vocab_size}), got values outside it")
        attention_mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask.to(input_ids.device)
        for name, mask in (("attention_mask", attention_mask), ("score_mask", score_mask)):
            if mask is not None and mask.shape != input_ids.shape:
                raise ValueError(
                    f"{name} must have the shape of input_ids {tuple(input_ids.shape)}, got {tuple(mask.shape)}"
                )
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        logits = self(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
        ).logits
        scored = attention_mask[:, 1:].bool() & attention_mask[:, :-1].bool()
        if score_mask is not None:
            scored &= score_mask[:, 1:].to(scored.device).bool()
        logits = self._without_suppressed(logits[:, :-1].float(), input_ids[:, 1:][scored])
        token_nll = nn.functional.cross_entropy(logits.transpose(1, 2), input_ids[:, 1:], reduction="none")
        token_nll = token_nll.masked_fill(~scored, 0.0)
        num_tokens = scored.sum(-1)
        sum_nll = token_nll.sum(-1)
        if normalize:
            sum_nll = sum_nll / num_tokens.clamp(min=1)
        return LogLikelihoodOutput(sum_nll=sum_nll, token_nll=token_nll, num_tokens=num_tokens)

    def _without_suppressed(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """`logits` with the suppressed ids at -inf (out of the softmax); refuses to score a suppressed target."""
        suppressed = getattr(self.config, "suppressed_token_ids", None)
        if not suppressed:
            return logits
        ids = torch.tensor(suppressed, dtype=torch.long, device=logits.device)
        hit = torch.isin(targets, ids)
        if bool(hit.any()):
            bad, layout = int(targets[hit][0]), self.config.vocab_layout
            name = layout.token_name(bad) if bad < layout.vocab_size else "an extra row"
            raise ValueError(
                f"token id {bad} ({name}) is scored, but this model never produces it (config.suppressed_token_ids="
                f"{suppressed}): leave it out of the scored tokens"
            )
        return logits.index_fill(-1, ids, -float("inf"))

    # ------------------------------------------------------------------ TWIST warm start
    @classmethod
    def from_text_lm(
        cls,
        text_lm_path_or_id: str | os.PathLike | PreTrainedModel,
        unit_tokenizer,
        task_tokens: list[str] | None = None,
        use_modality_tokens: bool = True,
        new_embeddings_init: str = "mean",
        seed: int | None = 0,
        **from_pretrained_kwargs,
    ) -> SpeechLMForCausalLM:
        """
        Warm-start a speech LM from a pretrained text LM (TWIST): keep the whole text LM, append unit, special and
        tag rows to its input and output embeddings.

        Every text row of the input and output embeddings stays bit-identical, so text-only input gives exactly the
        text LM's logits on the text vocabulary. The new rows are initialised once, here:

        - `"mean"` (default): transformers' `resize_token_embeddings(..., mean_resizing=True)`: each new row is the
          mean of the old rows (sampled from a normal with the old rows' covariance scaled by 1e-9). New logits then
          start at the average text logit, which barely moves the text distribution (Hewitt, 2021).
        - `"normal"`: `N(0, initializer_range)` (transformers' `mean_resizing=False`).

        The wrapped text LM is then marked as initialised, so `post_init` cannot overwrite any row (the pitfall of
        transformers issue 35141, where a resized untied `lm_head` was re-initialised).

        Args:
            text_lm_path_or_id: a causal text LM: a folder / Hub id for `AutoModelForCausalLM.from_pretrained`, or
                an already-loaded model (used in place).
            unit_tokenizer: the speech tokenizer (anything with `config.num_units` or `num_units`), its config, or
                the number of units as an `int`.
            task_tokens, use_modality_tokens: see [`SpeechLMConfig`].
            new_embeddings_init: `"mean"` or `"normal"`, see above.
            seed: seed of the new rows' initialisation (`None`: the global RNG).
            from_pretrained_kwargs: passed to `from_pretrained` (`dtype`, `revision`, `attn_implementation`, ...).
        """
        if new_embeddings_init not in _NEW_EMBEDDINGS_INIT:
            raise ValueError(f"new_embeddings_init must be one of {_NEW_EMBEDDINGS_INIT}, got {new_embeddings_init!r}")
        if isinstance(text_lm_path_or_id, PreTrainedModel):
            text_lm = text_lm_path_or_id
        else:
            text_lm = AutoModelForCausalLM.from_pretrained(text_lm_path_or_id, **from_pretrained_kwargs)
        text_vocab_size = text_lm.get_input_embeddings().weight.shape[0]
        config = SpeechLMConfig(
            text_config=text_lm.config,
            text_vocab_size=text_vocab_size,
            num_units=_num_units(unit_tokenizer),
            task_tokens=task_tokens,
            use_modality_tokens=use_modality_tokens,
        )
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            text_lm.resize_token_embeddings(config.vocab_size, mean_resizing=new_embeddings_init == "mean")
        # `resize_token_embeddings` wrote `vocab_size` on text_lm.config, which is config.text_config
        return cls(config, language_model=text_lm)


# ---------------------------------------------------------------------- helpers
def _mark_initialized(model: nn.Module) -> None:
    """Flag every module, parameter and buffer as initialised so `post_init` / `_init_weights` leave them alone."""
    for module in model.modules():
        module._is_hf_initialized = True
    for tensor in [*model.parameters(), *model.buffers()]:
        tensor._is_hf_initialized = True


def _num_units(unit_tokenizer) -> int:
    if isinstance(unit_tokenizer, int) and not isinstance(unit_tokenizer, bool):
        return unit_tokenizer
    for owner in (getattr(unit_tokenizer, "config", None), unit_tokenizer):
        value = getattr(owner, "num_units", None)
        if isinstance(value, int):
            return value
    raise ValueError(
        f"cannot read the number of units from {type(unit_tokenizer).__name__}: pass the speech tokenizer (with "
        "`config.num_units`), its config, or an int"
    )


def _pad(sequences: list[torch.Tensor], pad_id: int, padding_side: str) -> tuple[torch.LongTensor, torch.LongTensor]:
    input_ids = pad_sequence(sequences, batch_first=True, padding_value=pad_id, padding_side=padding_side)
    ones = [torch.ones(len(s), dtype=torch.long) for s in sequences]
    return input_ids.long(), pad_sequence(ones, batch_first=True, padding_value=0, padding_side=padding_side)


__all__ = ["AllowedTokensLogitsProcessor", "LogLikelihoodOutput", "SpeechLMForCausalLM", "SpeechLMPreTrainedModel"]
