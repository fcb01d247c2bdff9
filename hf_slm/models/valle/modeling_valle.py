"""VALL-E-style zero-shot TTS models: `VallEARModel` (codebook 1, autoregressive, VALL-E 2 grouped codes) and
`VallENARModel` (codebooks 2..Q, non-autoregressive), each over any transformers decoder run on embeddings."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import (
    AutoModel,
    Cache,
    LogitsProcessorList,
    PreTrainedModel,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)
from transformers.utils import ModelOutput

from .configuration_valle import VallEARConfig, VallENARConfig

#: `token_type_ids` values: phoneme positions; code positions (AR: one group of codebook-1 codes; NAR: a frame of
#: the acoustic prompt, all Q codebooks known); NAR only: a frame of the target, codebooks `< stage` known.
PHONEME, PROMPT, TARGET = 0, 1, 2


# ---------------------------------------------------------------------- grouped codes (VALL-E 2)
def group_codes(codes: torch.Tensor, group_size: int, eos_id: int, pad_id: int) -> torch.LongTensor:
    """`[T]` codes -> `[ceil((T + 1) / group_size), group_size]`: the codes, then `eos_id`, then `pad_id` up to a
    whole group (VALL-E 2's grouped code sequence). [`ungroup_codes`] inverts it."""
    codes = torch.as_tensor(codes).long().reshape(-1)
    total = -(-(codes.numel() + 1) // group_size) * group_size
    flat = torch.full((total,), pad_id, dtype=torch.long)
    flat[: codes.numel()] = codes
    flat[codes.numel()] = eos_id
    return flat.view(-1, group_size)


def ungroup_codes(groups: torch.Tensor, eos_id: int) -> torch.LongTensor:
    """`[n, group_size]` groups -> `[T]` codes: flattened and cut at the first `eos_id` (everything after it dropped)."""
    flat = torch.as_tensor(groups).long().reshape(-1)
    ends = (flat == eos_id).nonzero()
    return flat[: int(ends[0])] if len(ends) else flat


def _check_ids(ids: torch.Tensor, limit: int, name: str) -> torch.LongTensor:
    ids = torch.as_tensor(ids)
    if ids.is_floating_point() or ids.dtype == torch.bool:
        raise ValueError(f"{name} must hold integer ids, got dtype {ids.dtype}")
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= limit):
        bad = int(ids.min()) if int(ids.min()) < 0 else int(ids.max())
        raise ValueError(f"{name} holds id {bad}, outside [0, {limit})")
    return ids.long()


def _pad_rows(rows: list[torch.Tensor], value: int) -> tuple[torch.Tensor, torch.LongTensor]:
    """Right-pad `[L_i, ...]` rows to `[B, L, ...]`; also returns the `[B, L]` mask of real positions."""
    lengths = torch.tensor([len(r) for r in rows])
    padded = nn.utils.rnn.pad_sequence(rows, batch_first=True, padding_value=value)
    return padded, (torch.arange(padded.shape[1])[None] < lengths[:, None]).long()


@dataclass
class VallEOutput(ModelOutput):
    """
    Output of [`VallEARModel`] and [`VallENARModel`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*): mean cross-entropy over the labelled codes.
        logits (`torch.FloatTensor`): AR: `(batch, length, group_size, codebook_size + 1)`, the next group's codes
            and `<eos>`; NAR: `(batch, length, group_size, codebook_size)`, codebook `stage` of each frame of a group.
        cache (`Cache`, *optional*): the AR backbone's cache.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    cache: Cache | None = None


class VallEPreTrainedModel(PreTrainedModel):
    base_model_prefix = "backbone"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = False  # the NAR model's bidirectional mask is a 4-D tensor
    accepts_loss_kwargs = False  # mean losses: the Trainer must not expect num_items_in_batch normalisation

    def get_output_embeddings(self):
        return None  # our own heads: nothing to tie

    def _pick(self, scores, history, processors, do_sample, generator) -> torch.LongTensor:
        scores = processors(history, scores.float())
        if do_sample:
            return torch.multinomial(scores.softmax(-1), 1, generator=generator)[:, 0]
        return scores.argmax(-1)


def _processors(logits_processor, do_sample, temperature, top_k, top_p) -> LogitsProcessorList:
    processors = LogitsProcessorList(logits_processor or [])
    if do_sample:
        if temperature is not None and temperature != 1.0:
            processors.append(TemperatureLogitsWarper(temperature))
        if top_k:
            processors.append(TopKLogitsWarper(top_k))
        if top_p is not None and top_p < 1.0:
            processors.append(TopPLogitsWarper(top_p))
    return processors


# ---------------------------------------------------------------------- AR
class VallEARModel(VallEPreTrainedModel):
    r"""
    VALL-E's autoregressive stage: a causal decoder over `phonemes, <bos>, groups of codebook-1 codes` that predicts
    the next group (codes and `<eos>`). With `group_size > 1` (VALL-E 2), a group's `group_size` code embeddings are
    concatenated and projected to one position, and one linear layer predicts the next group's codes.

    Inputs are built by [`~VallEARModel.prepare_inputs`]; [`~VallEARModel.generate`] continues one acoustic prompt
    (repetition-aware sampling comes as a logits processor, e.g. `RepetitionAwareSamplingLogitsProcessor`).
    """

    config_class = VallEARConfig

    def __init__(self, config: VallEARConfig):
        super().__init__(config)
        hidden, group = config.hidden_size, config.group_size
        self.backbone = AutoModel.from_config(config.text_config)
        self.phoneme_embeddings = nn.Embedding(config.num_phonemes, hidden)
        self.code_embeddings = nn.Embedding(config.code_vocab_size, hidden)
        self.group_projection = nn.Linear(group * hidden, hidden, bias=False) if group > 1 else None
        self.head = nn.Linear(hidden, group * (config.codebook_size + 1), bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.code_embeddings

    def embed(self, input_ids: torch.LongTensor, token_type_ids: torch.LongTensor) -> torch.FloatTensor:
        """`[B, L, G]` ids (a phoneme id in slot 0 of phoneme positions) -> `[B, L, hidden]`."""
        is_phoneme = token_type_ids == PHONEME
        phonemes = self.phoneme_embeddings(input_ids[..., 0].masked_fill(~is_phoneme, 0))
        codes = self.code_embeddings(input_ids.masked_fill(is_phoneme[..., None], self.config.pad_code_id))
        codes = codes.flatten(-2)  # [B, L, G * hidden]: the group's embeddings side by side
        codes = self.group_projection(codes) if self.group_projection is not None else codes
        return torch.where(is_phoneme[..., None], phonemes, codes)

    def forward(
        self,
        input_ids: torch.LongTensor,
        token_type_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        use_cache: bool | None = None,
        **kwargs,
    ) -> VallEOutput:
        r"""
        Args:
            input_ids (`LongTensor` `[B, L, group_size]`): phoneme ids (slot 0) at phoneme positions, code groups
                (codes, `<eos>`, `<bos>`, `<pad>`) at code positions.
            token_type_ids (`LongTensor` `[B, L]`): `0` phoneme, `1` code group.
            attention_mask (`Tensor` `[B, L]`, *optional*): 1 for real positions (right padding).
            labels (`LongTensor` `[B, L, group_size]`, *optional*): the group at each position (-100: not scored);
                position `t` is predicted from position `t - 1`.
        """
        embeds = self.embed(input_ids, token_type_ids)
        out = self.backbone(inputs_embeds=embeds, attention_mask=attention_mask, position_ids=position_ids,
                            cache=cache, use_cache=use_cache, **kwargs)  # fmt: skip
        batch, length = embeds.shape[:2]
        logits = self.head(out.last_hidden_state).view(batch, length, self.config.group_size, -1)
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(
                logits[:, :-1].flatten(0, 2).float(), labels[:, 1:].flatten(), ignore_index=-100
            )
        return VallEOutput(loss=loss, logits=logits, cache=getattr(out, "cache", None))

    def prepare_inputs(self, phonemes, codes) -> dict[str, torch.Tensor]:
        """
        Training rows `phonemes, <bos>, codes, <eos>` (grouped), right-padded.

        Args:
            phonemes: one `[P_i]` phoneme-id sequence per row.
            codes: one `[T_i]` codebook-1 sequence per row (or `[Q, T_i]` codes: codebook 1 is taken).

        Returns:
            `{"input_ids" [B, L, G], "token_type_ids" [B, L], "attention_mask" [B, L], "labels" [B, L, G]}` (CPU).
        """
        config, group = self.config, self.config.group_size
        if len(phonemes) != len(codes) or not len(codes):
            raise ValueError(f"need one phoneme sequence per code sequence, got {len(phonemes)} and {len(codes)}")
        ids, types, labels = [], [], []
        for i, (p, c) in enumerate(zip(phonemes, codes)):
            p = _check_ids(p, config.num_phonemes, f"phonemes of row {i}").reshape(-1)
            c = torch.as_tensor(c)
            c = _check_ids(c[0] if c.dim() == 2 else c, config.codebook_size, f"codes of row {i}")
            if not p.numel() or not c.numel():
                raise ValueError(f"row {i} has {p.numel()} phonemes and {c.numel()} frames; both must be > 0")
            groups = group_codes(c, group, config.eos_code_id, config.pad_code_id)
            bos = torch.full((1, group), config.bos_code_id)
            phoneme_rows = torch.zeros(len(p), group, dtype=torch.long)
            phoneme_rows[:, 0] = p
            ids.append(torch.cat([phoneme_rows, bos, groups]))
            types.append(torch.cat([torch.full((len(p),), PHONEME), torch.full((1 + len(groups),), PROMPT)]))
            target = torch.cat([torch.full((len(p) + 1, group), -100), groups.masked_fill(groups == config.pad_code_id, -100)])
            labels.append(target)
        input_ids, mask = _pad_rows(ids, 0)
        return {"input_ids": input_ids, "token_type_ids": _pad_rows(types, PHONEME)[0], "attention_mask": mask,
                "labels": _pad_rows(labels, -100)[0]}  # fmt: skip

    @torch.no_grad()
    def generate(
        self,
        phoneme_ids,
        prompt_codes=None,
        max_new_frames: int = 500,
        min_new_frames: int = 1,
        do_sample: bool = True,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        logits_processor=None,
        generator: torch.Generator | None = None,
    ) -> torch.LongTensor:
        """
        Codebook-1 codes of one utterance after `prompt_codes`, until `<eos>` or `max_new_frames` (KV-cached, one
        group per step).

        Args:
            phoneme_ids (`LongTensor` `[P]`): the phonemes of the prompt's transcript followed by the text to say.
            prompt_codes (`LongTensor` `[T_p]` or `[Q, T_p]`, *optional*): the acoustic prompt's codebook-1 codes.
            max_new_frames, min_new_frames (`int`): bounds of the new codes (`<eos>` is suppressed before the min).
            do_sample, temperature, top_k, top_p: as in transformers' `generate`.
            logits_processor: processors called with the codebook-1 history `[1, t]` (prompt + new codes) and the
                scores `[1, codebook_size + 1]` of each code, before the warpers (e.g. VALL-E 2's repetition-aware
                sampling, `RepetitionAwareSamplingLogitsProcessor`).
            generator (`torch.Generator`, *optional*): random generator of the sampling.

        Returns:
            `LongTensor` `[T_new]`: the new codes only (without `<eos>`), on the CPU.
        """
        config, group = self.config, self.config.group_size
        for name, value, low in (("max_new_frames", max_new_frames, 1), ("min_new_frames", min_new_frames, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        phonemes = _check_ids(phoneme_ids, config.num_phonemes, "phoneme_ids").reshape(-1)
        if not phonemes.numel():
            raise ValueError("phoneme_ids is empty: there is nothing to say")
        prompt = torch.zeros(0, dtype=torch.long) if prompt_codes is None else torch.as_tensor(prompt_codes)
        prompt = _check_ids(prompt[0] if prompt.dim() == 2 else prompt, config.codebook_size, "prompt_codes")
        processors = _processors(logits_processor, do_sample, temperature, top_k, top_p)
        whole = len(prompt) // group * group
        forced = prompt[whole:].tolist()  # prompt codes that open the first generated group
        prefix = torch.zeros(len(phonemes) + 1 + whole // group, group, dtype=torch.long)
        prefix[: len(phonemes), 0] = phonemes
        prefix[len(phonemes)] = config.bos_code_id
        prefix[len(phonemes) + 1 :] = prompt[:whole].view(-1, group)
        types = torch.full((len(prefix),), PROMPT)
        types[: len(phonemes)] = PHONEME
        out = self(input_ids=prefix[None].to(self.device), token_type_ids=types[None].to(self.device), use_cache=True)
        history, new = prompt.tolist(), []
        while len(new) < max_new_frames:
            scores = out.logits[0, -1]  # [G, codebook_size + 1]
            slots, ended = [], False
            for k in range(group):
                if forced:
                    slots.append(forced.pop(0))
                    continue
                slot = scores[k][None].clone()
                if len(new) < min_new_frames:
                    slot[:, config.eos_code_id] = -float("inf")
                code = int(self._pick(slot, torch.tensor([history], device=self.device), processors, do_sample, generator)[0])
                if code == config.eos_code_id or len(new) >= max_new_frames:
                    ended = True
                    break
                slots.append(code)
                history.append(code)
                new.append(code)
            if ended or len(new) >= max_new_frames:
                break
            step = torch.tensor(slots, device=self.device).view(1, 1, group)
            out = self(input_ids=step, token_type_ids=torch.full((1, 1), PROMPT, device=self.device),
                       cache=out.cache, use_cache=True)  # fmt: skip
        return torch.tensor(new, dtype=torch.long)


# ---------------------------------------------------------------------- NAR
class VallENARModel(VallEPreTrainedModel):
    r"""
    VALL-E's non-autoregressive stage: predicts codebook `stage` (0-based `1..Q-1`) of every target frame at once,
    from the phonemes, the acoustic prompt's frames (all `Q` codebooks, summed embeddings), the target frames'
    codebooks `< stage` (summed embeddings) and a learned embedding of `stage` added to every position. The
    transformer sees the whole sequence (a bidirectional 4-D attention mask). With `group_size > 1` (VALL-E 2's
    grouped codes) one position holds `group_size` frames: their embeddings are concatenated and projected, and the
    head predicts the group's `group_size` codes; a group's padding frames (id `-1`) are embedded as nothing.
    """

    config_class = VallENARConfig

    def __init__(self, config: VallENARConfig):
        super().__init__(config)
        hidden, size, q, group = config.hidden_size, config.codebook_size, config.num_codebooks, config.group_size
        self.backbone = AutoModel.from_config(config.text_config)
        self.phoneme_embeddings = nn.Embedding(config.num_phonemes, hidden)
        self.code_embeddings = nn.ModuleList([nn.Embedding(size, hidden) for _ in range(q)])
        self.stage_embeddings = nn.Embedding(q, hidden)
        self.group_projection = nn.Linear(group * hidden, hidden, bias=False) if group > 1 else None
        self.heads = nn.ModuleList([nn.Linear(hidden, group * size, bias=False) for _ in range(q - 1)])  # 2..Q
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.phoneme_embeddings

    def embed(self, input_ids, token_type_ids, stage) -> torch.FloatTensor:
        """`[B, L, G, Q]` ids (`[B, L, Q]` when `group_size` is 1) -> `[B, L, hidden]`."""
        if input_ids.dim() == 3:
            input_ids = input_ids[:, :, None]
        is_phoneme = token_type_ids == PHONEME
        phonemes = self.phoneme_embeddings(input_ids[..., 0, 0].masked_fill(~is_phoneme, 0))
        levels = torch.arange(self.config.num_codebooks, device=input_ids.device)
        types = token_type_ids[..., None, None]
        visible = ((types == PROMPT) | ((types == TARGET) & (levels < stage[:, None, None, None]))) & (input_ids >= 0)
        codes = input_ids.masked_fill(~visible, 0)  # [B, L, G, Q]
        summed = sum(
            emb(codes[..., q]) * visible[..., q, None].to(phonemes.dtype) for q, emb in enumerate(self.code_embeddings)
        )  # [B, L, G, hidden]
        frames = self.group_projection(summed.flatten(-2)) if self.group_projection is not None else summed[..., 0, :]
        return torch.where(is_phoneme[..., None], phonemes, frames) + self.stage_embeddings(stage)[:, None]

    def forward(
        self,
        input_ids: torch.LongTensor,
        token_type_ids: torch.LongTensor,
        stage: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        **kwargs,
    ) -> VallEOutput:
        r"""
        Args:
            input_ids (`LongTensor` `[B, L, group_size, Q]`; `[B, L, Q]` also when `group_size` is 1): phoneme ids
                (slot `[0, 0]`) at phoneme positions, the group's frames' codes at prompt / target positions (target
                codebooks `>= stage` are ignored; `-1` marks a padding frame).
            token_type_ids (`LongTensor` `[B, L]`): `0` phoneme, `1` prompt frame, `2` target frame.
            stage (`LongTensor` `[B]`): 0-based codebook each row predicts, in `1..Q-1`.
            attention_mask (`Tensor` `[B, L]`, *optional*): 1 for real positions.
            labels (`LongTensor` `[B, L, group_size]`, *optional*): codebook `stage` of each target frame (-100
                elsewhere).
        """
        embeds = self.embed(input_ids, token_type_ids, stage)
        batch, length = embeds.shape[:2]
        keys = torch.ones(batch, length, device=embeds.device) if attention_mask is None else attention_mask
        allowed = keys.bool()[:, None, None, :].expand(batch, 1, length, length)
        additive = torch.zeros(allowed.shape, dtype=embeds.dtype, device=embeds.device)
        additive = additive.masked_fill(~allowed, torch.finfo(embeds.dtype).min)  # every position sees every real one
        hidden = self.backbone(inputs_embeds=embeds, attention_mask=additive, use_cache=False, **kwargs).last_hidden_state
        weights = torch.stack([head.weight for head in self.heads])[stage - 1]  # [B, G * V, hidden]
        logits = torch.einsum("blh,bvh->blv", hidden, weights).view(batch, length, self.config.group_size, -1)
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits.flatten(0, 2).float(), labels.flatten(), ignore_index=-100)
        return VallEOutput(loss=loss, logits=logits)

    def _grouped(self, codes: torch.Tensor) -> torch.LongTensor:
        """`[Q, T]` -> `[ceil(T / G), G, Q]`, the last group padded with `-1` frames."""
        group = self.config.group_size
        frames = torch.full((-(-codes.shape[1] // group) * group, codes.shape[0]), -1, dtype=torch.long)
        frames[: codes.shape[1]] = codes.T
        return frames.view(-1, group, codes.shape[0])

    def _row(self, phonemes, prompt, target) -> tuple[torch.Tensor, torch.Tensor]:
        q, group = self.config.num_codebooks, self.config.group_size
        prompt, target = self._grouped(prompt), self._grouped(target)
        ids = torch.zeros(len(phonemes) + len(prompt) + len(target), group, q, dtype=torch.long)
        ids[: len(phonemes), 0, 0] = phonemes
        ids[len(phonemes) :] = torch.cat([prompt, target])
        types = torch.cat([torch.full((len(phonemes),), PHONEME), torch.full((len(prompt),), PROMPT),
                           torch.full((len(target),), TARGET)])  # fmt: skip
        return ids, types

    def num_positions(self, num_phonemes: int, prompt_frames: int, frames: int) -> int:
        """Positions of a row of `num_phonemes` phonemes, a `prompt_frames` prompt and `frames` target frames."""
        group = self.config.group_size
        return num_phonemes + -(-prompt_frames // group) + -(-frames // group)

    def prepare_inputs(self, phonemes, codes, stages=None, prompt_frames=None, generator=None) -> dict:
        """
        Training rows: each utterance's first `prompt_frames[i]` frames are its acoustic prompt (VALL-E's NAR
        training), the rest is the target whose codebook `stages[i]` is labelled.

        Args:
            phonemes: one `[P_i]` sequence per row; codes: one `[Q, T_i]` per row.
            stages: 0-based codebook per row in `1..Q-1` (default: uniform draws).
            prompt_frames: prompt length per row (default: uniform in `[0, T_i // 2]`).
            generator (`torch.Generator`, *optional*): for the draws.

        Returns:
            `{"input_ids" [B, L, G, Q], "token_type_ids" [B, L], "attention_mask" [B, L], "stage" [B],
            "labels" [B, L, G]}` (CPU; `G` is `group_size`, the prompt and the target each padded to whole groups).
        """
        config = self.config
        if len(phonemes) != len(codes) or not len(codes):
            raise ValueError(f"need one phoneme sequence per code sequence, got {len(phonemes)} and {len(codes)}")
        for name, values in (("stages", stages), ("prompt_frames", prompt_frames)):
            if values is not None and len(values) != len(codes):
                raise ValueError(f"{name} must hold one value per row ({len(codes)}), got {list(values)!r}")
        ids, types, labels, drawn_stages = [], [], [], []
        for i, (p, c) in enumerate(zip(phonemes, codes)):
            p = _check_ids(p, config.num_phonemes, f"phonemes of row {i}").reshape(-1)
            c = _check_ids(c, config.codebook_size, f"codes of row {i}")
            if c.dim() != 2 or c.shape[0] != config.num_codebooks or c.shape[1] < 1 or not p.numel():
                raise ValueError(f"row {i}: codes must be [{config.num_codebooks}, frames >= 1] with phonemes, got "
                                 f"{tuple(c.shape)} and {p.numel()} phonemes")  # fmt: skip
            stage = int(torch.randint(1, config.num_codebooks, (1,), generator=generator)) if stages is None else int(stages[i])
            if not 1 <= stage < config.num_codebooks:
                raise ValueError(f"stage {stage} of row {i} is outside [1, {config.num_codebooks})")
            split = int(torch.randint(0, c.shape[1] // 2 + 1, (1,), generator=generator)) if prompt_frames is None else int(prompt_frames[i])
            if not 0 <= split < c.shape[1]:
                raise ValueError(f"prompt_frames {split} of row {i} must leave a target frame: in [0, {c.shape[1]})")
            row, kinds = self._row(p, c[:, :split], c[:, split:])
            target = torch.full((len(row), config.group_size), -100)
            scored = self._grouped(c[stage : stage + 1, split:])[..., 0]  # [groups, G], padding frames -1
            target[kinds == TARGET] = scored.masked_fill(scored < 0, -100)
            ids.append(row)
            types.append(kinds)
            labels.append(target)
            drawn_stages.append(stage)
        input_ids, mask = _pad_rows(ids, 0)
        return {"input_ids": input_ids, "token_type_ids": _pad_rows(types, PHONEME)[0], "attention_mask": mask,
                "stage": torch.tensor(drawn_stages), "labels": _pad_rows(labels, -100)[0]}  # fmt: skip

    @torch.no_grad()
    def generate(self, phoneme_ids, prompt_codes, first_codes) -> torch.LongTensor:
        """
        Codebooks 2..Q of the target frames, one codebook per pass, greedy (as VALL-E's NAR stage).

        Args:
            phoneme_ids (`LongTensor` `[P]`): the same phonemes the AR model read.
            prompt_codes (`LongTensor` `[Q, T_p]`): the acoustic prompt's codes (`T_p` may be 0).
            first_codes (`LongTensor` `[T]`): the target's codebook 1 (the AR model's output).

        Returns:
            `LongTensor` `[Q, T]`, on the CPU.
        """
        config = self.config
        phonemes = _check_ids(phoneme_ids, config.num_phonemes, "phoneme_ids").reshape(-1)
        prompt = _check_ids(prompt_codes, config.codebook_size, "prompt_codes")
        first = _check_ids(first_codes, config.codebook_size, "first_codes").reshape(-1)
        if prompt.dim() != 2 or prompt.shape[0] != config.num_codebooks:
            raise ValueError(f"prompt_codes must be [{config.num_codebooks}, frames], got {tuple(prompt.shape)}")
        if not first.numel() or not phonemes.numel():
            raise ValueError(f"need phonemes and target frames, got {phonemes.numel()} and {first.numel()}")
        target = torch.zeros(config.num_codebooks, len(first), dtype=torch.long)
        target[0] = first
        for stage in range(1, config.num_codebooks):
            ids, types = self._row(phonemes, prompt, target)
            logits = self(input_ids=ids[None].to(self.device), token_type_ids=types[None].to(self.device),
                          stage=torch.tensor([stage], device=self.device)).logits[0]  # fmt: skip
            target[stage] = logits[types.to(self.device) == TARGET].argmax(-1).reshape(-1)[: len(first)].cpu()
        return target


__all__ = ["VallEARModel", "VallENARModel", "VallEOutput", "VallEPreTrainedModel", "group_codes", "ungroup_codes"]
