"""`MultiStreamSpeechLMForCausalLM`: a causal LM over frames of parallel token streams (pGSLM units + prosody, or the
codebooks of a neural codec) with a per-stream delay pattern and an optional depth transformer."""

from __future__ import annotations

from collections.abc import Sequence
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

from .configuration_multistream_speech_lm import MultiStreamSpeechLMConfig
from .modeling_speech_lm import LogLikelihoodOutput

_UNKNOWN = -1  # marks a position of the generation grid that still has to be sampled


# ---------------------------------------------------------------------- delay pattern
def _as_list(value, num_streams: int, name: str) -> list[int]:
    values = [int(value)] * num_streams if isinstance(value, int) else [int(v) for v in value]
    if len(values) != num_streams:
        raise ValueError(f"{name} must hold one value per stream ({num_streams}), got {list(values)!r}")
    return values


def apply_delay_pattern(
    codes: torch.Tensor,
    delays: Sequence[int],
    pad_token_id: int | Sequence[int],
    lengths: torch.Tensor | None = None,
) -> tuple[torch.LongTensor, torch.BoolTensor]:
    """
    Shift stream `s` of `codes` right by `delays[s]` frames (MusicGen / Moshi delay pattern):
    `delayed[b, s, t + delays[s]] = codes[b, s, t]`; every other position holds `pad_token_id` (of that stream).

    Args:
        codes (`LongTensor` `[B, S, T]`): frames of `S` streams.
        delays: one delay per stream (>= 0).
        pad_token_id: filler id, one for all streams or one per stream.
        lengths (`LongTensor` `[B]`, *optional*): number of real frames of each row (right padding); frames at or
            beyond a row's length are treated as absent and become padding too.

    Returns:
        `(delayed, mask)`: `delayed` is `[B, S, T + max(delays)]`; `mask` (same shape, bool) is True where
        `delayed` holds a real frame.
    """
    if codes.dim() != 3:
        raise ValueError(f"codes must be [batch, streams, frames], got shape {tuple(codes.shape)}")
    batch, num_streams, num_frames = codes.shape
    delays = _as_list(delays, num_streams, "delays")
    if min(delays) < 0:
        raise ValueError(f"delays must be >= 0, got {delays}")
    pads = torch.tensor(_as_list(pad_token_id, num_streams, "pad_token_id"), device=codes.device)
    total = num_frames + max(delays)
    source = torch.arange(total, device=codes.device)[None, :] - torch.tensor(delays, device=codes.device)[:, None]
    limit = torch.full((batch,), num_frames, device=codes.device) if lengths is None else lengths.to(codes.device)
    mask = (source >= 0)[None] & (source[None] < limit[:, None, None])  # [B, S, total]
    index = source.clamp(0, max(num_frames - 1, 0))[None].expand(batch, -1, -1)
    gathered = codes.gather(2, index) if num_frames else torch.zeros_like(index)
    delayed = torch.where(mask, gathered, pads[None, :, None].to(codes.dtype))
    return delayed.long(), mask


def undo_delay_pattern(delayed: torch.Tensor, delays: Sequence[int]) -> torch.LongTensor:
    """
    Inverse of [`apply_delay_pattern`]: `codes[b, s, t] = delayed[b, s, t + delays[s]]` for the `L - max(delays)`
    frames that every stream has (`delayed` is `[B, S, L]`), i.e. the frames aligned again across streams.
    """
    if delayed.dim() != 3:
        raise ValueError(f"delayed must be [batch, streams, positions], got shape {tuple(delayed.shape)}")
    batch, num_streams, total = delayed.shape
    delays = _as_list(delays, num_streams, "delays")
    num_frames = total - max(delays)
    if num_frames < 0:
        raise ValueError(f"a delayed sequence of {total} positions is shorter than the largest delay {max(delays)}")
    shifts = torch.tensor(delays, device=delayed.device)[:, None]
    index = torch.arange(num_frames, device=delayed.device)[None, :] + shifts
    return delayed.gather(2, index[None].expand(batch, -1, -1)).long()


def _apply_flatten_pattern(codes, pad_token_ids, lengths=None) -> tuple[torch.LongTensor, torch.BoolTensor]:
    """Flattened pattern: frame `t`'s codebook `q` at position `t * S + q`, in stream `q` (the other streams hold
    `<pad>` there); returns `(grid [B, S, S * T], mask of real values)` like `apply_delay_pattern`."""
    batch, num_streams, num_frames = codes.shape
    pads = torch.tensor(pad_token_ids, device=codes.device, dtype=torch.long)
    grid = pads[None, :, None].expand(batch, -1, num_streams * num_frames).clone()
    real = torch.zeros_like(grid, dtype=torch.bool)
    limit = torch.full((batch,), num_frames) if lengths is None else lengths
    frame_real = torch.arange(num_frames, device=codes.device)[None] < limit.to(codes.device)[:, None]  # [B, T]
    slots = grid.view(batch, num_streams, num_frames, num_streams)  # [B, stream, frame, slot]: views of grid, real
    real_slots = real.view(batch, num_streams, num_frames, num_streams)
    for q in range(num_streams):
        slots[:, q, :, q] = torch.where(frame_real, codes[:, q].long(), pads[q])
        real_slots[:, q, :, q] = frame_real
    return grid, real


def _undo_flatten_pattern(grid: torch.Tensor) -> torch.LongTensor:
    """Inverse of `_apply_flatten_pattern`: `[B, S, S * T]` -> aligned frames `[B, S, T]`."""
    batch, num_streams, total = grid.shape
    slots = grid.reshape(batch, num_streams, total // num_streams, num_streams)
    return torch.diagonal(slots, dim1=1, dim2=3).permute(0, 2, 1).long()


# ---------------------------------------------------------------------- outputs
@dataclass
class MultiStreamCausalLMOutput(ModelOutput):
    """
    Output of [`MultiStreamSpeechLMForCausalLM`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*): `stream_loss_weights`-weighted mean of `stream_losses`.
        stream_losses (`torch.FloatTensor` of shape `(num_streams,)`, *optional*): mean next-frame cross-entropy of
            each stream over its real (non-`<pad>` / `<s>`, non -100) targets.
        logits (`torch.FloatTensor` of shape `(batch_size, num_streams, sequence_length, max_vocab)`):
            Scores of stream `s` for the next position in `logits[:, s, :, :stream_vocab_sizes[s]]`; the columns past
            a stream's vocabulary are -inf. With a depth transformer, codebooks `1..Q-1` are teacher-forced on the
            next frame of `input_ids` (`<pad>` stands in for the unknown frame after the last position).
        cache (`Cache`, *optional*): the backbone's cache.
        hidden_states, attentions: the backbone's, when asked for.
    """

    loss: torch.FloatTensor | None = None
    stream_losses: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    cache: Cache | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


# ---------------------------------------------------------------------- model
class MultiStreamSpeechLMPreTrainedModel(PreTrainedModel):
    config_class = MultiStreamSpeechLMConfig
    base_model_prefix = "backbone"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    # The per-stream losses are means; the Trainer must not expect a `num_items_in_batch`-normalised loss.
    accepts_loss_kwargs = False


class MultiStreamSpeechLMForCausalLM(MultiStreamSpeechLMPreTrainedModel):
    r"""
    A causal LM over frames of `S` token streams (see [`MultiStreamSpeechLMConfig`]). The backbone is any
    transformers decoder built with `AutoModel.from_config` and kept as `self.backbone`; it runs on the sum of the
    frame's stream embeddings (one shared table, each stream at its own offset, as in CSM). Stream `s` gets its own
    linear head, or, with `use_depth_transformer=True`, codebooks `1..Q-1` come from a small causal transformer over
    the codebook axis of one frame, fed the projected backbone state then the frame's earlier codebooks (Moshi's
    depth transformer, CSM's depth decoder, RQ-Transformer).

    Sequences are handled in *delayed* form (see [`apply_delay_pattern`]): `forward` takes the delayed streams
    with a `<s>` frame first, as [`~MultiStreamSpeechLMForCausalLM.prepare_inputs`] builds them from aligned
    frames; [`~MultiStreamSpeechLMForCausalLM.generate`] takes and returns aligned frames.
    """

    def __init__(self, config: MultiStreamSpeechLMConfig):
        super().__init__(config)
        self.backbone = AutoModel.from_config(config.text_config)
        hidden_size = config.text_config.hidden_size
        vocab = config.stream_vocab_sizes
        num_heads = 1 if config.use_depth_transformer else config.num_streams
        self.heads = nn.ModuleList([nn.Linear(hidden_size, vocab[s], bias=False) for s in range(num_heads)])
        if config.use_depth_transformer:
            depth_config = config.depth_config
            width = depth_config.hidden_size
            self.depth_in_proj = nn.Linear(hidden_size, width, bias=False)
            # codebooks 0..Q-2 are the depth transformer's inputs, codebooks 1..Q-1 its outputs
            self.depth_embeddings = nn.ModuleList(
                [nn.Embedding(v + 2, width) for v in vocab[:-1]]  # + <pad>, <s>
            )
            self.depth_transformer = AutoModel.from_config(depth_config)
            self.depth_heads = nn.ModuleList([nn.Linear(width, v, bias=False) for v in vocab[1:]])
        self._offsets: dict[torch.device, torch.Tensor] = {}
        self.post_init()

    # ------------------------------------------------------------------ embeddings
    def get_input_embeddings(self) -> nn.Module:
        return self.backbone.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module):
        self.backbone.set_input_embeddings(value)

    def get_output_embeddings(self):
        return None  # one head per stream: nothing to tie

    def _stream_offsets(self, device: torch.device) -> torch.Tensor:
        if device not in self._offsets:
            offsets = torch.tensor(self.config.stream_token_offsets, dtype=torch.long, device=device)
            self._offsets[device] = offsets.view(1, -1, 1)
        return self._offsets[device]

    def embed_streams(self, input_ids: torch.LongTensor) -> torch.FloatTensor:
        """Sum of the stream embeddings of each position: `[B, S, L]` stream-local ids -> `[B, L, hidden]`."""
        rows = input_ids + self._stream_offsets(input_ids.device)
        return self.get_input_embeddings()(rows).sum(dim=1)

    def _check_stream_ids(self, ids: torch.Tensor, name: str, allow_special: bool, allow_ignore: bool = False):
        config = self.config
        if ids.dim() != 3 or ids.shape[1] != config.num_streams:
            raise ValueError(
                f"{name} must be [batch, {config.num_streams} streams, length], got shape {tuple(ids.shape)}"
            )
        if ids.is_floating_point() or ids.dtype == torch.bool:
            raise ValueError(f"{name} must hold integer ids, got dtype {ids.dtype}")
        if torch.compiler.is_compiling() or torch.compiler.is_exporting():
            return  # the range check reads the data: eager mode only, so that forward traces (torch.export)
        for s, size in enumerate(config.stream_vocab_sizes):
            stream = ids[:, s]
            if allow_ignore:
                stream = stream[stream != -100]
            if not stream.numel():
                continue
            upper = size + 2 if allow_special else size
            low, high = int(stream.min()), int(stream.max())
            if low < 0 or high >= upper:
                bad = low if low < 0 else high
                raise ValueError(
                    f"{name}: stream {s} ({config.stream_names[s]}) holds id {bad}, outside [0, {upper})"
                    + ("" if allow_special else " (real values only; no <pad> / <s>)")
                )

    # ------------------------------------------------------------------ inputs
    def prepare_inputs(
        self, streams: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """
        Training / scoring inputs from aligned frames: a `<s>` frame, then the delayed streams.

        Args:
            streams (`LongTensor` `[B, S, T]`): aligned frames (real values only), right-padded with anything.
            attention_mask (`Tensor` `[B, T]`, *optional*): 1 for real frames (right padding only).

        Returns:
            `{"input_ids": [B, S, 1 + T + max_delay], "attention_mask": [B, 1 + T + max_delay], "labels": same as
            input_ids with -100 on every <pad> / <s> / padding position}` on the model's device.
        """
        config = self.config
        streams = torch.as_tensor(streams).cpu()  # small integer bookkeeping; the result goes to the model's device
        if attention_mask is None:
            lengths = torch.full((streams.shape[0],), streams.shape[-1], dtype=torch.long)
        else:
            attention_mask = torch.as_tensor(attention_mask).cpu()
            if attention_mask.shape != (streams.shape[0], streams.shape[-1]):
                raise ValueError(
                    f"attention_mask must be [batch, frames] = {(streams.shape[0], streams.shape[-1])}, got "
                    f"{tuple(attention_mask.shape)}"
                )
            lengths = attention_mask.long().sum(-1)
            if not torch.equal(attention_mask.long(), _right_padding_mask(lengths, streams.shape[-1])):
                raise ValueError("attention_mask must be right padding (1s then 0s in each row)")
            streams = torch.where(attention_mask.bool()[:, None], streams, 0)
        self._check_stream_ids(streams, "streams", allow_special=False)
        delayed, real = self._apply_pattern(streams, lengths)
        bos = torch.tensor(config.bos_token_ids, dtype=torch.long)[None, :, None].expand(delayed.shape[0], -1, 1)
        input_ids = torch.cat([bos, delayed], dim=-1)
        labels = torch.cat([torch.full_like(bos, -100), delayed.masked_fill(~real, -100)], dim=-1)
        mask = _right_padding_mask(1 + self._pattern_length(lengths), input_ids.shape[-1])
        return {
            "input_ids": input_ids.to(self.device),
            "attention_mask": mask.to(self.device),
            "labels": labels.to(self.device),
        }

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache=None,
        inputs_embeds: torch.FloatTensor | None = None,
        use_cache: bool | None = None,
        **kwargs,
    ) -> MultiStreamCausalLMOutput | tuple:
        r"""
        Args:
            input_ids (`LongTensor` `[B, S, L]`): delayed streams, stream-local ids including `<pad>` / `<s>`
                (see [`~MultiStreamSpeechLMForCausalLM.prepare_inputs`]).
            attention_mask (`Tensor` `[B, L]`, *optional*): 1 for real positions.
            labels (`LongTensor` `[B, S, L]`, *optional*): usually `input_ids`; shifted inside (position `p`
                predicts `p + 1`). -100, `<pad>` and `<s>` are not scored.
            position_ids, cache, use_cache: the backbone's; other keyword arguments go to the backbone.
            inputs_embeds (`FloatTensor` `[B, L, hidden]`, *optional*): instead of `input_ids` (no depth
                transformer: it needs the next frame's ids).
        """
        return_dict = kwargs.pop("return_dict", None)
        kwargs.pop("num_items_in_batch", None)
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids ([batch, streams, length]) and inputs_embeds")
        if input_ids is not None:
            self._check_stream_ids(input_ids, "input_ids", allow_special=True)
            inputs_embeds = self.embed_streams(input_ids)
        elif self.config.use_depth_transformer:
            raise ValueError("the depth transformer needs input_ids (it is fed the next frame's codebooks)")
        outputs = self.backbone(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            use_cache=use_cache,
            return_dict=True,
            **kwargs,
        )
        hidden = outputs.last_hidden_state
        next_frames = None
        if self.config.use_depth_transformer:
            pads = torch.tensor(self.config.pad_token_ids, device=input_ids.device)[None, :, None]
            next_frames = torch.cat([input_ids[:, :, 1:], pads.expand(input_ids.shape[0], -1, 1)], dim=-1)
        stream_logits = self._stream_logits(hidden, next_frames)

        loss = stream_losses = None
        if labels is not None:
            self._check_stream_ids(labels, "labels", allow_special=True, allow_ignore=True)
            stream_losses = self._stream_losses(stream_logits, labels.to(hidden.device))
            weights = torch.tensor(self.config.stream_loss_weights, device=hidden.device, dtype=stream_losses.dtype)
            loss = (stream_losses * weights).sum() / weights.sum()
        output = MultiStreamCausalLMOutput(
            loss=loss,
            stream_losses=stream_losses,
            logits=_pack_logits(stream_logits),
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )
        return output if return_dict is not False else output.to_tuple()

    def _stream_logits(self, hidden: torch.Tensor, next_frames: torch.Tensor | None) -> list[torch.Tensor]:
        """Per-stream logits `[B, L, V_s]` from backbone states `[B, L, H]` (depth: teacher-forced on next_frames)."""
        if not self.config.use_depth_transformer:
            return [head(hidden) for head in self.heads]
        batch, length, _ = hidden.shape
        first = self.heads[0](hidden)
        context = self.depth_in_proj(hidden).reshape(batch * length, 1, -1)
        codes = next_frames[:, :-1].permute(0, 2, 1).reshape(batch * length, -1)  # codebooks 0..Q-2
        depth_inputs = torch.cat(
            [context] + [emb(codes[:, k])[:, None] for k, emb in enumerate(self.depth_embeddings)], dim=1
        )
        depth_hidden = self.depth_transformer(inputs_embeds=depth_inputs, use_cache=False).last_hidden_state
        rest = [head(depth_hidden[:, k + 1]).reshape(batch, length, -1) for k, head in enumerate(self.depth_heads)]
        return [first] + rest

    def _stream_losses(self, stream_logits: list[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        losses = []
        for s, logits in enumerate(stream_logits):
            target = labels[:, s, 1:]
            target = target.masked_fill(target >= self.config.stream_vocab_sizes[s], -100)  # <pad>, <s>
            nll = nn.functional.cross_entropy(
                logits[:, :-1].float().transpose(1, 2), target, ignore_index=-100, reduction="sum"
            )
            losses.append(nll / (target != -100).sum().clamp(min=1))
        return torch.stack(losses)

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def generate(
        self,
        prompt_streams: torch.Tensor | None = None,
        max_new_frames: int = 100,
        do_sample: bool = True,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        logits_processor=None,
        generator: torch.Generator | None = None,
        batch_size: int = 1,
        streamer=None,
    ) -> torch.LongTensor:
        """
        Continue aligned frames, one frame per backbone step (KV-cached); delays are applied to the prompt and undone
        on the output.

        Positions whose value is already fixed (the prompt, the `<pad>` fillers the delays open at the start and the
        end) are forced; every other stream value is predicted (greedy or sampled). With a depth transformer, the
        codebooks of a frame are predicted in order, each conditioned on the ones before it.

        Args:
            prompt_streams (`LongTensor` `[B, S, T]`, *optional*): aligned prompt frames (real values); `None` or
                `T = 0` generates unconditionally (`batch_size` rows).
            max_new_frames (`int`): frames to generate.
            do_sample, temperature, top_k, top_p: as in transformers' `generate` (`None`: off).
            logits_processor: a `LogitsProcessorList` (or list of processors) applied to every stream, or a tuple of
                `S` such lists (or `None`), one per stream. Each is called with that stream's delayed history
                `[B, L]` (stream-local ids, `<s>` / `<pad>` included) and its scores `[B, V_s]`, before the
                temperature / top-k / top-p warpers, as in `generate` (e.g. a repetition-aware sampler on the units
                stream only).
            generator (`torch.Generator`, *optional*): random generator of the sampling.
            batch_size (`int`): rows to generate when there is no prompt.
            streamer (`BaseStreamer`, *optional*): gets `put(prompt_streams)` (`[B, S, T]`, as `generate` puts its
                input ids), then `put(frame)` (`[B, S]`, aligned) for each new frame as soon as all its streams are
                known (a delay pattern holds frame t back until step t + max delay), and `end()`.

        Returns:
            `LongTensor` `[B, S, max_new_frames]`: the new frames only, aligned (delays undone).
        """
        config = self.config
        if not isinstance(max_new_frames, int) or max_new_frames < 1:
            raise ValueError(f"max_new_frames must be an int >= 1, got {max_new_frames!r}")
        if prompt_streams is None:
            prompt_streams = torch.zeros((batch_size, config.num_streams, 0), dtype=torch.long)
        prompt_streams = torch.as_tensor(prompt_streams).to(self.device)
        self._check_stream_ids(prompt_streams, "prompt_streams", allow_special=False)
        processors = self._per_stream_processors(logits_processor, do_sample, temperature, top_k, top_p)
        batch, num_streams, prompt_frames = prompt_streams.shape
        total_frames = prompt_frames + max_new_frames

        # The whole delayed grid, <s> first; _UNKNOWN marks what is still to be predicted.
        frames = torch.full((batch, num_streams, total_frames), _UNKNOWN, dtype=torch.long, device=self.device)
        frames[:, :, :prompt_frames] = prompt_streams
        delayed, _ = self._apply_pattern(frames)
        bos = torch.tensor(config.bos_token_ids, device=self.device)[None, :, None].expand(batch, -1, 1)
        grid = torch.cat([bos, delayed], dim=-1)
        # Known / unknown is the same for every row (prompts share one length): decide it once, on the host.
        unknown = (grid[0] == _UNKNOWN).T.tolist()  # [position][stream]
        start = next(p for p, row in enumerate(unknown) if any(row))  # first position with something to predict

        if streamer is not None:
            streamer.put(prompt_streams.cpu())
        streamed = prompt_frames  # frames handed to the streamer
        outputs = self.backbone(inputs_embeds=self.embed_streams(grid[:, :, :start]), use_cache=True)
        cache = outputs.cache
        for position in range(start, grid.shape[-1]):
            hidden = outputs.last_hidden_state[:, -1]
            grid[:, :, position] = self._next_frame(
                hidden, grid, position, unknown[position], processors, do_sample, generator
            )
            while streamer is not None and streamed < total_frames and self._last_position(streamed) <= position:
                streamer.put(self._frame_at(grid, streamed).cpu())
                streamed += 1
            if position + 1 < grid.shape[-1]:
                frame = self.embed_streams(grid[:, :, position : position + 1])
                outputs = self.backbone(inputs_embeds=frame, cache=cache, use_cache=True)
        if streamer is not None:
            streamer.end()
        return self._undo_pattern(grid[:, :, 1:])[:, :, prompt_frames:]

    def _last_position(self, frame: int) -> int:
        """Grid position (`<s>` at 0) of the last-known stream of aligned frame `frame`."""
        if self.config.pattern == "flatten":
            return (frame + 1) * self.config.num_streams
        return 1 + frame + self.config.max_delay

    def _frame_at(self, grid, frame: int) -> torch.LongTensor:
        """Aligned frame `frame` `[B, S]` read from the delayed grid (`<s>` at 0)."""
        num_streams = self.config.num_streams
        if self.config.pattern == "flatten":
            streams = torch.arange(num_streams, device=grid.device)
            return grid[:, streams, 1 + frame * num_streams + streams]
        positions = 1 + frame + torch.tensor(self.config.delays, device=grid.device)
        return grid[:, torch.arange(num_streams, device=grid.device), positions]

    # ------------------------------------------------------------------ patterns
    def _apply_pattern(self, codes, lengths=None):
        """Aligned frames `[B, S, T]` -> the sequence the backbone reads (`config.pattern`), and its real values."""
        if self.config.pattern == "flatten":
            return _apply_flatten_pattern(codes, self.config.pad_token_ids, lengths)
        return apply_delay_pattern(codes, self.config.delays, self.config.pad_token_ids, lengths=lengths)

    def _undo_pattern(self, grid):
        if self.config.pattern == "flatten":
            return _undo_flatten_pattern(grid)
        return undo_delay_pattern(grid, self.config.delays)

    def _pattern_length(self, frames):
        """Positions (after `<s>`) that `frames` aligned frames take."""
        if self.config.pattern == "flatten":
            return frames * self.config.num_streams
        return frames + self.config.max_delay

    # ------------------------------------------------------------------ the pipeline's LM interface
    def units_to_input_ids(
        self, codes, padding_side: str = "right", add_eos: bool = False
    ) -> tuple[torch.LongTensor, torch.LongTensor]:
        """
        Scoring inputs for a list of aligned code sequences, the call `SpeechLMPipeline.score` makes on any LM.

        Args:
            codes: a list of `[S, T_i]` tensors (one per utterance, real values), or a `[B, S, T]` tensor.
            padding_side: `"right"` only (the delay pattern pads on the right).
            add_eos: accepted for the interface `SpeechLMForCausalLM` shares; this LM has no end-of-sequence, so
                nothing is added.

        Returns:
            `(input_ids [B, S, L], attention_mask [B, L])` as [`~MultiStreamSpeechLMForCausalLM.prepare_inputs`]
            builds them (`<s>` frame, delayed, right-padded), on the model's device.
        """
        if padding_side != "right":
            raise ValueError(f"a multi-stream LM pads on the right, got padding_side={padding_side!r}")
        codes = list(codes) if not torch.is_tensor(codes) or codes.dim() == 3 else [codes]
        shapes = [tuple(torch.as_tensor(c).shape) for c in codes]
        if not codes or any(len(s) != 2 or s[0] != self.config.num_streams or s[1] == 0 for s in shapes):
            raise ValueError(
                f"codes must be non-empty [{self.config.num_streams} streams, frames] sequences, got shapes {shapes}"
            )
        frames_last = [torch.as_tensor(c).long().T for c in codes]  # pad_sequence pads the first axis
        streams = nn.utils.rnn.pad_sequence(frames_last, batch_first=True).permute(0, 2, 1)
        lengths = torch.tensor([s[1] for s in shapes])
        inputs = self.prepare_inputs(streams, _right_padding_mask(lengths, streams.shape[-1]))
        return inputs["input_ids"], inputs["attention_mask"]

    @torch.no_grad()
    def log_likelihood(
        self, input_ids: torch.LongTensor, attention_mask: torch.Tensor | None = None, normalize: bool = False
    ):
        """
        Negative log-likelihood (nats) of each sequence's real stream values (not `<pad>` / `<s>` / padding) given
        the positions before it; lower = more likely. Same output as `SpeechLMForCausalLM.log_likelihood`.

        Args:
            input_ids (`LongTensor` `[B, S, L]`): from [`~MultiStreamSpeechLMForCausalLM.units_to_input_ids`].
            attention_mask (`Tensor` `[B, L]`, *optional*): 1 for real positions.
            normalize (`bool`): divide `sum_nll` by the number of scored values.

        Returns:
            `LogLikelihoodOutput(sum_nll [B], token_nll [B, L - 1] (summed over streams), num_tokens [B])`.
        """
        if input_ids.dim() != 3 or input_ids.shape[-1] < 2:
            raise ValueError(f"input_ids must be [batch, streams, length >= 2], got shape {tuple(input_ids.shape)}")
        logits = self(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
        targets = input_ids[:, :, 1:]
        sizes = torch.tensor(self.config.stream_vocab_sizes, device=targets.device)[None, :, None]
        scored = targets < sizes
        if attention_mask is not None:
            scored &= attention_mask[:, None, 1:].to(targets.device).bool()
        log_probs = logits[:, :, :-1].float().log_softmax(-1)
        nll = -log_probs.gather(-1, targets.masked_fill(~scored, 0)[..., None])[..., 0]
        token_nll = nll.masked_fill(~scored, 0.0).sum(1)
        num_tokens = scored.sum((1, 2))
        sum_nll = token_nll.sum(-1)
        if normalize:
            sum_nll = sum_nll / num_tokens.clamp(min=1)
        return LogLikelihoodOutput(sum_nll=sum_nll, token_nll=token_nll, num_tokens=num_tokens)

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
        min_new_tokens: int | None = None,
        logits_processor=None,
    ) -> list[torch.LongTensor]:
        """
        Continue aligned code prompts, the call `SpeechLMPipeline.continue_speech` makes on any LM: each prompt
        `[S, T_i]` gets `max_new_tokens` new frames (the model has no end-of-sequence, so `min_new_tokens` is always
        met). Prompts are generated one at a time (their lengths differ); `streamer` (one prompt only, as in
        `generate`) gets the prompt, then each frame `[1, S]` once all its streams are known (see `generate`).

        Returns:
            One `[S, max_new_tokens]` `LongTensor` per prompt: the continuation only.
        """
        prompts = list(units_prompt) if not torch.is_tensor(units_prompt) or units_prompt.dim() == 3 else [units_prompt]
        if streamer is not None and len(prompts) > 1:
            raise ValueError(f"streamer=... streams one prompt at a time (as `generate` does), got {len(prompts)} prompts")
        return [
            self.generate(
                torch.as_tensor(prompt).long()[None],
                max_new_frames=max_new_tokens,
                do_sample=do_sample,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                logits_processor=logits_processor,
                streamer=streamer,
            )[0].cpu()
            for prompt in prompts
        ]

    def _per_stream_processors(self, logits_processor, do_sample, temperature, top_k, top_p) -> list:
        num_streams = self.config.num_streams
        if logits_processor is None or isinstance(logits_processor, LogitsProcessorList):
            per_stream = [logits_processor] * num_streams
        elif isinstance(logits_processor, tuple):
            if len(logits_processor) != num_streams:
                raise ValueError(
                    f"a tuple of logits processors needs one entry per stream ({num_streams}), got "
                    f"{len(logits_processor)}"
                )
            per_stream = list(logits_processor)
        else:
            per_stream = [LogitsProcessorList(logits_processor)] * num_streams
        warpers = []
        if do_sample:
            if temperature is not None and temperature != 1.0:
                warpers.append(TemperatureLogitsWarper(temperature))
            if top_k is not None and top_k != 0:
                warpers.append(TopKLogitsWarper(top_k))
            if top_p is not None and top_p < 1.0:
                warpers.append(TopPLogitsWarper(top_p))
        return [LogitsProcessorList([*(p or []), *warpers]) for p in per_stream]

    def _pick(self, scores, history, processors, do_sample, generator) -> torch.LongTensor:
        scores = processors(history, scores.float())
        if do_sample:
            return torch.multinomial(scores.softmax(-1), 1, generator=generator)[:, 0]
        return scores.argmax(-1)

    def _next_frame(self, hidden, grid, position, unknown, processors, do_sample, generator) -> torch.LongTensor:
        """Values of all streams at one delayed position: forced where known, predicted (in stream order) elsewhere."""
        target = grid[:, :, position].clone()
        history = grid[:, :, :position]
        if not self.config.use_depth_transformer:
            for s, head in enumerate(self.heads):
                if unknown[s]:
                    target[:, s] = self._pick(head(hidden), history[:, s], processors[s], do_sample, generator)
            return target
        if unknown[0]:
            target[:, 0] = self._pick(self.heads[0](hidden), history[:, 0], processors[0], do_sample, generator)
        inputs = [self.depth_in_proj(hidden)[:, None]]
        for k, head in enumerate(self.depth_heads):
            inputs.append(self.depth_embeddings[k](target[:, k])[:, None])
            if unknown[k + 1]:
                depth = self.depth_transformer(inputs_embeds=torch.cat(inputs, dim=1), use_cache=False)
                scores = head(depth.last_hidden_state[:, -1])
                target[:, k + 1] = self._pick(scores, history[:, k + 1], processors[k + 1], do_sample, generator)
        return target


def _right_padding_mask(lengths: torch.Tensor, total: int) -> torch.LongTensor:
    return (torch.arange(total)[None, :] < lengths.cpu()[:, None]).long()


def _pack_logits(stream_logits: list[torch.Tensor]) -> torch.Tensor:
    """`S` tensors `[B, L, V_s]` -> one `[B, S, L, max V]`, -inf past each stream's vocabulary."""
    widest = max(logits.shape[-1] for logits in stream_logits)
    padded = [nn.functional.pad(x, (0, widest - x.shape[-1]), value=float("-inf")) for x in stream_logits]
    return torch.stack(padded, dim=1)


__all__ = [
    "MultiStreamCausalLMOutput",
    "MultiStreamSpeechLMForCausalLM",
    "MultiStreamSpeechLMPreTrainedModel",
    "apply_delay_pattern",
    "undo_delay_pattern",
]
