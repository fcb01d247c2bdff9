"""`AcousticLMForCausalLM`: AudioLM's coarse / fine acoustic stage, a decoder over `<s> prefix <sep> codes`, the codes
flattened frame by frame."""

from __future__ import annotations

import torch
from torch import nn
from transformers import (
    AutoModel,
    LogitsProcessorList,
    PreTrainedModel,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)
from transformers.modeling_outputs import CausalLMOutputWithPast

from .configuration_acoustic_lm import AcousticLMConfig


class AcousticLMPreTrainedModel(PreTrainedModel):
    config_class = AcousticLMConfig
    base_model_prefix = "backbone"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_attention_backend = True
    accepts_loss_kwargs = False  # the loss is a mean over the predicted codes


class AcousticLMForCausalLM(AcousticLMPreTrainedModel):
    r"""
    AudioLM's coarse or fine acoustic model (see [`AcousticLMConfig`]): any transformers decoder (`self.backbone`,
    built with `AutoModel.from_config`) over `<s> prefix <sep> target`, the target being codebooks
    `first_codebook..last_codebook-1` flattened frame by frame, and one head of `num_codebooks x codebook_size`
    scores of which a position uses the slice of the codebook that comes next.

    - [`~AcousticLMForCausalLM.prepare_inputs`] builds training / scoring batches from codec codes (and units);
    - `forward(input_ids, attention_mask, labels)`: `logits [B, L, codebook_size]` (each position's next-codebook
      slice), `loss` the mean cross-entropy over the target codes;
    - [`~AcousticLMForCausalLM.generate`] continues the target codes of one or more equally long prompts.
    """

    def __init__(self, config: AcousticLMConfig):
        super().__init__(config)
        self.backbone = AutoModel.from_config(config.text_config)
        self.head = nn.Linear(config.text_config.hidden_size, config.num_codebooks * config.codebook_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.backbone.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module):
        self.backbone.set_input_embeddings(value)

    def get_output_embeddings(self):
        return None  # the head scores codes only: nothing to tie

    # ------------------------------------------------------------------ ids
    def condition_ids(self, condition: torch.Tensor) -> torch.LongTensor:
        """The prefix ids of one item: units `[T_u]` as they are, or conditioning codes `[>= first_codebook, T]`
        (codebooks `0..first_codebook-1` kept) flattened frame by frame, codebook `q` at `q * codebook_size`."""
        config = self.config
        condition = torch.as_tensor(condition).long()
        if config.condition == "units":
            if condition.dim() != 1:
                raise ValueError(f"units must be one sequence [frames], got shape {tuple(condition.shape)}")
            _check_range(condition, config.num_units, "units")
            return condition
        if condition.dim() != 2 or condition.shape[0] < config.first_codebook:
            raise ValueError(
                f"conditioning codes must be [>= {config.first_codebook} codebooks, frames], got shape "
                f"{tuple(condition.shape)}"
            )
        condition = condition[: config.first_codebook]
        _check_range(condition, config.codebook_size, "conditioning codes")
        offsets = torch.arange(config.first_codebook, device=condition.device)[:, None] * config.codebook_size
        return (condition + offsets).T.reshape(-1)

    def target_ids(self, codes: torch.Tensor) -> torch.LongTensor:
        """Target codes `[num_codebooks, T]` (real codes) -> flattened ids `[num_codebooks * T]`."""
        config = self.config
        codes = torch.as_tensor(codes).long()
        if codes.dim() != 2 or codes.shape[0] != config.num_codebooks:
            raise ValueError(f"target codes must be [{config.num_codebooks} codebooks, frames], got shape "
                             f"{tuple(codes.shape)}")  # fmt: skip
        _check_range(codes, config.codebook_size, "target codes")
        offsets = torch.arange(config.num_codebooks, device=codes.device)[:, None] * config.codebook_size
        return (codes + offsets + config.target_offset).T.reshape(-1)

    def prepare_inputs(self, codes, units=None) -> dict[str, torch.Tensor]:
        """
        Training / scoring batch: `<s> prefix <sep> target` per item, right-padded.

        Args:
            codes: a list of codec codes `[Q >= last_codebook, T_i]` (all codebooks of each utterance, real codes):
                the target codebooks, and for `condition="codes"` the prefix, are taken from them.
            units: for `condition="units"`, a list of semantic units `[T_u_i]`, one per item.

        Returns:
            `{"input_ids", "attention_mask", "labels"}` (`[B, L]`; labels -100 outside the target), on CPU.
        """
        config = self.config
        codes = [torch.as_tensor(c).long().cpu() for c in codes]
        if any(c.dim() != 2 or c.shape[0] < config.last_codebook or c.shape[1] == 0 for c in codes):
            raise ValueError(f"codes must be non-empty [>= {config.last_codebook} codebooks, frames] sequences, got "
                             f"shapes {[tuple(c.shape) for c in codes]}")  # fmt: skip
        if config.condition == "units":
            if units is None or len(units) != len(codes):
                raise ValueError(f"condition='units' needs one units sequence per item ({len(codes)}), got "
                                 f"{None if units is None else len(units)}")  # fmt: skip
            prefixes = [self.condition_ids(torch.as_tensor(u).cpu()) for u in units]
        else:
            prefixes = [self.condition_ids(c) for c in codes]
        rows, label_rows = [], []
        for prefix, c in zip(prefixes, codes):
            target = self.target_ids(c[config.first_codebook : config.last_codebook])
            head = torch.tensor([config.bos_token_id, *prefix.tolist(), config.sep_token_id])
            rows.append(torch.cat([head, target]))
            label_rows.append(torch.cat([torch.full_like(head, -100), target]))
        lengths = torch.tensor([len(r) for r in rows])
        input_ids = nn.utils.rnn.pad_sequence(rows, batch_first=True, padding_value=config.pad_token_id)
        labels = nn.utils.rnn.pad_sequence(label_rows, batch_first=True, padding_value=-100)
        attention_mask = (torch.arange(input_ids.shape[1])[None] < lengths[:, None]).long()
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}

    def next_codebook(self, input_ids: torch.LongTensor) -> torch.LongTensor:
        """Which predicted codebook (0..num_codebooks-1) follows each position: 0 after `<sep>` (and in the prefix,
        where nothing is scored), `k + 1` (mod `num_codebooks`) after a code of codebook `k`."""
        config = self.config
        local = input_ids - config.target_offset
        is_target = (local >= 0) & (local < config.num_codebooks * config.codebook_size)
        following = torch.remainder(torch.div(local, config.codebook_size, rounding_mode="floor") + 1,
                                    config.num_codebooks)  # fmt: skip
        return torch.where(is_target, following, torch.zeros_like(local))

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache=None,
        use_cache: bool | None = None,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        r"""
        Args:
            input_ids (`LongTensor` `[B, L]`): `<s> prefix <sep> target` ids
                ([`~AcousticLMForCausalLM.prepare_inputs`]).
            attention_mask (`Tensor` `[B, L]`, *optional*): 1 for real positions.
            labels (`LongTensor` `[B, L]`, *optional*): target ids where scored, -100 elsewhere; shifted inside.
            position_ids, cache, use_cache: the backbone's; other keyword arguments go to it.

        Returns:
            `CausalLMOutputWithPast(loss, logits [B, L, codebook_size], cache)`: `logits[:, p]` scores the code at
            `p + 1` on the slice of the codebook that comes next.
        """
        config = self.config
        return_dict = kwargs.pop("return_dict", None)
        kwargs.pop("num_items_in_batch", None)
        if input_ids is None or input_ids.dim() != 2:
            raise ValueError(f"input_ids must be [batch, length], got "
                             f"{None if input_ids is None else tuple(input_ids.shape)}")  # fmt: skip
        if not (torch.compiler.is_compiling() or torch.compiler.is_exporting()):
            _check_range(input_ids, config.vocab_size, "input_ids")
        outputs = self.backbone(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                                cache=cache, use_cache=use_cache, return_dict=True, **kwargs)  # fmt: skip
        scores = self.head(outputs.last_hidden_state)
        batch, length, _ = scores.shape
        scores = scores.view(batch, length, config.num_codebooks, config.codebook_size)
        index = self.next_codebook(input_ids)[..., None, None].expand(-1, -1, 1, config.codebook_size)
        logits = scores.gather(2, index)[:, :, 0]
        loss = None
        if labels is not None:
            target = labels[:, 1:].to(logits.device)
            scored = target >= 0
            local = torch.remainder(target - config.target_offset, config.codebook_size).masked_fill(~scored, -100)
            loss = nn.functional.cross_entropy(logits[:, :-1].float().transpose(1, 2), local, ignore_index=-100)
        output = CausalLMOutputWithPast(loss=loss, logits=logits, cache=outputs.cache)
        return output if return_dict is not False else output.to_tuple()

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def generate(
        self,
        condition,
        prompt_codes=None,
        max_new_frames: int | None = None,
        do_sample: bool = True,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.LongTensor:
        """
        Continue the target codes after the prompt's, one code per step (KV-cached).

        Args:
            condition: the prefix of each row, as a `[B, T_u]` units tensor (`condition="units"`) or `[B, >=
                first_codebook, T]` codes (`condition="codes"`); rows share one length.
            prompt_codes (`LongTensor` `[B, num_codebooks, T_p]`, *optional*): the target codebooks already known
                (the acoustic prompt); `None` starts at frame 0.
            max_new_frames (`int`, *optional*): frames to generate; with `condition="codes"` it defaults to the
                conditioning frames not covered by the prompt.
            do_sample, temperature, top_k, top_p: as in transformers' `generate`.
            generator: the random generator of the sampling.

        Returns:
            `LongTensor` `[B, num_codebooks, max_new_frames]`: the new frames only.
        """
        config = self.config
        condition = torch.as_tensor(condition).long().to(self.device)
        batch = condition.shape[0]
        if prompt_codes is None:
            prompt_codes = torch.zeros((batch, config.num_codebooks, 0), dtype=torch.long)
        prompt_codes = torch.as_tensor(prompt_codes).long().to(self.device)
        if prompt_codes.dim() != 3 or prompt_codes.shape[:2] != (batch, config.num_codebooks):
            raise ValueError(f"prompt_codes must be [{batch} rows, {config.num_codebooks} codebooks, frames], got "
                             f"shape {tuple(prompt_codes.shape)}")  # fmt: skip
        if max_new_frames is None and config.condition == "codes":
            max_new_frames = condition.shape[-1] - prompt_codes.shape[-1]
        if not isinstance(max_new_frames, int) or isinstance(max_new_frames, bool) or max_new_frames < 1:
            raise ValueError(f"max_new_frames must be an int >= 1, got {max_new_frames!r}")
        heads = [torch.cat([torch.tensor([config.bos_token_id], device=self.device), self.condition_ids(row),
                            torch.tensor([config.sep_token_id], device=self.device), self.target_ids(prompt)])
                 for row, prompt in zip(condition, prompt_codes)]  # fmt: skip
        input_ids = torch.stack(heads)
        total = input_ids.shape[1] + max_new_frames * config.num_codebooks - 1
        limit = getattr(config.text_config, "max_position_embeddings", None)
        if limit and total > limit:
            raise ValueError(f"{total} positions (prefix + prompt + {max_new_frames} frames x {config.num_codebooks} "
                             f"codebooks) exceed the decoder's {limit} (max_position_embeddings)")  # fmt: skip
        warpers = LogitsProcessorList()
        if do_sample:
            if temperature is not None and temperature != 1.0:
                warpers.append(TemperatureLogitsWarper(temperature))
            if top_k:
                warpers.append(TopKLogitsWarper(top_k))
            if top_p is not None and top_p < 1.0:
                warpers.append(TopPLogitsWarper(top_p))
        new = torch.empty((batch, max_new_frames * config.num_codebooks), dtype=torch.long, device=self.device)
        outputs = self.backbone(input_ids=input_ids, use_cache=True)
        for step in range(new.shape[1]):
            k = step % config.num_codebooks
            hidden = outputs.last_hidden_state[:, -1]
            scores = self.head(hidden).view(batch, config.num_codebooks, config.codebook_size)[:, k].float()
            scores = warpers(input_ids, scores)
            if do_sample:
                code = torch.multinomial(scores.softmax(-1), 1, generator=generator)[:, 0]
            else:
                code = scores.argmax(-1)
            new[:, step] = code
            token = (code + config.target_offset + k * config.codebook_size)[:, None]
            if step + 1 < new.shape[1]:
                outputs = self.backbone(input_ids=token, cache=outputs.cache, use_cache=True)
        return new.view(batch, max_new_frames, config.num_codebooks).permute(0, 2, 1).contiguous()


def _check_range(ids: torch.Tensor, limit: int, name: str) -> None:
    if ids.is_floating_point() or ids.dtype == torch.bool:
        raise ValueError(f"{name} must hold integer ids, got dtype {ids.dtype}")
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= limit):
        bad = int(ids.min()) if int(ids.min()) < 0 else int(ids.max())
        raise ValueError(f"{name} holds id {bad}, outside [0, {limit})")


__all__ = ["AcousticLMForCausalLM", "AcousticLMPreTrainedModel"]
