"""`SpeechLMPipeline`: speech tokenizer -> unit language model -> vocoder, as one hosted checkpoint.

The pipeline composes components and owns no weights. GSLM-style (k-means units + speech-only LM + unit vocoder),
TWIST-style (the LM warm-started from a text LM, with a text tokenizer) and instruct variants (plus a PEFT adapter)
are all this one class with different components.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from .pipeline_utils import PipelineMixin


class EmptyContinuationWarning(UserWarning):
    """`SpeechLMPipeline.continue_speech` returned an empty continuation: the LM chose end-of-sequence at once."""


@dataclass
class SpeechPipelineOutput:
    """What a pipeline task returns: per-utterance units (`[frames]`, or `[Q, frames]` codes of a codec-LM variant)
    and (when a vocoder or codec ran) waveforms."""

    units: list[torch.Tensor]
    waveforms: list[np.ndarray] = field(default_factory=list)
    sampling_rate: int | None = None
    prompt_units: list[torch.Tensor] | None = None


class SpeechLMPipeline(PipelineMixin):
    """Speech in, units / continued speech / scores out.

    Every speech tokenizer has `encode(input_values, attention_mask)` returning an output with `codes [B, Q, T]`,
    `codes_mask [B, T]` and `unpadded()` (per-utterance `[T]` units of a `UnitEncoderModel`, `[Q, T]` codes of a
    codec); every LM has `units_to_input_ids`, `log_likelihood` and `generate_units` over those sequences, so the
    same code runs GSLM-style and codec-LM variants.

    Args:
        feature_extractor: turns audio (arrays, files, datasets Audio) into padded, masked model inputs.
        speech_tokenizer: audio -> discrete units (`UnitEncoderModel`) or codes (`CodecModel`, `RVQCodecModel`,
            `MelRVQCodecModel`).
        language_model: a decoder LM over units (`SpeechLMForCausalLM`) or codes (`MultiStreamSpeechLMForCausalLM`);
            optional for tokenise/resynthesise.
        vocoder: units -> waveform (e.g. `UnitHifiGanVocoder`, `UnitMelVocoder`); optional for tokenise/score.
            `None` with a tokenizer that can `decode` (a codec): the tokenizer speaks its own codes (codec-LM
            variants save the codec once, as `speech_tokenizer`).
        tokenizer: the text tokenizer of text-speech (TWIST / interleaved) variants.
        adapter: unused as an argument; an adapter arrives already wrapped around ``language_model`` (PEFT).

    >>> from hf_slm import SpeechLMPipeline
    >>> pipe = SpeechLMPipeline.from_pretrained("default")  # doctest: +SKIP
    >>> out = pipe.resynthesize("speech.wav")  # doctest: +SKIP
    """

    def __init__(
        self,
        feature_extractor,
        speech_tokenizer,
        language_model=None,
        vocoder=None,
        tokenizer=None,
        adapter=None,
    ):
        if adapter is not None:
            raise ValueError("pass the adapter already applied to `language_model` (a peft.PeftModel)")
        self.register_modules(
            feature_extractor=feature_extractor,
            speech_tokenizer=speech_tokenizer,
            tokenizer=tokenizer,
            language_model=language_model,
            vocoder=vocoder,
        )

    def _require(self, name: str, task: str):
        if self._components.get(name) is None:
            raise ValueError(f"{task} needs a {name.replace('_', ' ')}, and this pipeline variant has none")
        return self._components[name]

    @staticmethod
    def _position_limit(lm) -> int | None:
        """The LM backbone's `max_position_embeddings` (`None` when it declares none)."""
        config = lm.config.get_text_config() if hasattr(lm.config, "get_text_config") else lm.config
        return getattr(config, "max_position_embeddings", None)

    def _check_context(self, lm, lengths: list[int], new_tokens: int, task: str, per_frame: int = 1) -> None:
        """Refuse sequences the LM would read past its trained positions (`max_position_embeddings`).

        Long audio is refused, not windowed: a windowed score is a different quantity, so the caller decides how
        to cut (e.g. at pauses with `hf-slm split-audio`)."""
        limit = self._position_limit(lm)
        if not limit:
            return
        for i, length in enumerate(lengths):
            if length + new_tokens * per_frame > limit:
                frame_rate = getattr(self.speech_tokenizer.config, "frame_rate", None)
                seconds = f" (~{length / frame_rate:.1f} s of speech)" if frame_rate else ""
                extra = f" + max_new_tokens={new_tokens}" if new_tokens else ""
                extra += f" (x {per_frame} positions a frame)" if new_tokens and per_frame != 1 else ""
                raise ValueError(
                    f"{task}: utterance {i} is {length} LM tokens{seconds}{extra}, more than the language model's "
                    f"{limit} positions (max_position_embeddings); cut the audio into shorter utterances"
                )

    @staticmethod
    def _check_unit_ids(units: list[torch.Tensor], limit: int | None, who: str) -> None:
        """Unit ids (or codes) must lie in [0, limit): a `ValueError` naming the first bad id, its item and range."""
        if limit is None:
            return
        for i, u in enumerate(units):
            if u.is_floating_point() or u.dtype == torch.bool:
                raise ValueError(f"units must be integer ids, got dtype {u.dtype} for item {i}")
            bad = u[(u < 0) | (u >= limit)]
            if bad.numel():
                raise ValueError(
                    f"unit id {int(bad[0])} in item {i} is outside the {who}'s range [0, {limit})"
                )

    # ------------------------------------------------------------------ speech tokenizer
    @torch.no_grad()
    def encode(self, audio, sampling_rate: int | None = None, deduplicate: bool = False) -> list[torch.Tensor]:
        """Audio (one item or a list) -> one tensor per utterance (padding removed): `[frames]` units of a unit
        encoder, `[num_codebooks, frames]` codes of a codec (`tokenizer.encode(...).unpadded()`)."""
        inputs = self.feature_extractor(audio, sampling_rate=sampling_rate, return_tensors="pt")
        tokenizer = self.speech_tokenizer
        device = next(tokenizer.parameters(), torch.empty(0)).device
        out = tokenizer.encode(
            input_values=inputs["input_values"].to(device), attention_mask=inputs["attention_mask"].to(device)
        )
        sequences = out.unpadded()
        if deduplicate:
            if any(u.dim() != 1 for u in sequences):
                raise ValueError("deduplicate=True needs one stream of units; this tokenizer gives [Q, T] codes")
            return [torch.unique_consecutive(u) for u in sequences]
        return sequences

    # ------------------------------------------------------------------ vocoder
    @torch.no_grad()
    def decode(self, units: list[torch.Tensor] | torch.Tensor) -> list[np.ndarray]:
        """Units -> waveforms (float32 numpy, at ``self.sampling_rate``), one per utterance.

        Each item is `[frames]` units, or `[num_codebooks, frames]` codes for a codec vocoder (codec-LM variants);
        items are padded along frames and masked.
        """
        vocoder = self.require_decoder("decoding units to audio")
        if isinstance(units, torch.Tensor) and units.dim() == 1:
            units = [units]
        try:
            units = [torch.as_tensor(u) for u in units]
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(f"units must be integer tensors, arrays or lists: {err}") from None
        consumes = getattr(vocoder.config, "consumes", {})
        self._check_unit_ids(units, consumes.get("units.num_units", consumes.get("codes.codebook_size")), "vocoder")
        units = [u.long() for u in units]
        if any(u.numel() == 0 for u in units):
            raise ValueError("cannot vocode an empty unit sequence")
        if len({u.dim() for u in units}) != 1 or units[0].dim() not in (1, 2):
            raise ValueError(f"units must all be [frames] or all [codebooks, frames]; got shapes {[tuple(u.shape) for u in units]}")
        device = next(vocoder.parameters()).device
        frames_last = [u.T if u.dim() == 2 else u for u in units]  # pad_sequence pads the first axis
        batch = torch.nn.utils.rnn.pad_sequence(frames_last, batch_first=True)
        batch = batch.permute(0, 2, 1) if batch.dim() == 3 else batch
        lengths = torch.tensor([u.shape[-1] for u in units])
        mask = torch.arange(int(lengths.max()))[None, :] < lengths[:, None]
        out = vocoder(input_ids=batch.to(device), attention_mask=mask.to(device))
        return [w[: int(n)].float().cpu().numpy() for w, n in zip(out.waveform, out.waveform_lengths)]

    def stream_decode(self, units, chunk_units: int = 50, overlap_units: int = 8, **kwargs):
        """Units of ONE utterance (`[frames]`, or `[num_codebooks, frames]` codes for a codec vocoder) -> float32
        numpy chunks at ``self.sampling_rate``, as they are synthesised (`hf_slm.streaming.stream_vocode`: each chunk
        with `overlap_units` of context, trimmed; `kwargs` such as `lookahead_units` / `crossfade_samples` go
        there). For a convolutional vocoder the chunks joined equal `decode(units)` once the context covers its
        receptive field (`hf_slm.streaming.receptive_field`)."""
        from ..streaming import stream_vocode

        vocoder = self.require_decoder("decoding units to audio")
        chunks = stream_vocode(vocoder, units, chunk_units=chunk_units, overlap_units=overlap_units, **kwargs)
        return (chunk.numpy().astype(np.float32, copy=False) for chunk in chunks)

    @property
    def decoder(self):
        """What speaks tokens: the vocoder, else a speech tokenizer that can `decode` (a codec), else `None`."""
        vocoder = self._components.get("vocoder")
        if vocoder is None and callable(getattr(self._components.get("speech_tokenizer"), "decode", None)):
            return self._components["speech_tokenizer"]
        return vocoder

    def require_decoder(self, task: str):
        """The `decoder`, or a `ValueError` saying that `task` needs one."""
        if self.decoder is None:
            raise ValueError(f"{task} needs a vocoder (or a codec speech tokenizer), and this pipeline variant has none")
        return self.decoder

    @property
    def sampling_rate(self) -> int | None:
        decoder = self.decoder
        return None if decoder is None else int(decoder.config.sampling_rate)

    def resynthesize(self, audio, sampling_rate: int | None = None) -> SpeechPipelineOutput:
        """Audio -> units -> audio: what the units keep of the signal (the resynthesis task). A vocoder with a
        duration predictor (trained on deduplicated units) gets deduplicated units and predicts their durations."""
        vocoder = self.require_decoder("resynthesis")
        deduplicate = bool(getattr(vocoder.config, "use_duration_predictor", False))
        units = self.encode(audio, sampling_rate=sampling_rate, deduplicate=deduplicate)
        return SpeechPipelineOutput(units=units, waveforms=self.decode(units), sampling_rate=self.sampling_rate)

    # ------------------------------------------------------------------ language model
    @torch.no_grad()
    def continue_speech(
        self,
        audio,
        sampling_rate: int | None = None,
        max_new_tokens: int = 100,
        min_new_tokens: int | None = None,
        do_sample: bool = True,
        temperature: float = 0.8,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        vocode: bool = True,
        streamer=None,
    ) -> SpeechPipelineOutput:
        """Speech continuation (GSLM's task): prompt audio -> units -> LM sampling -> units -> audio.

        The returned waveforms hold the prompt followed by its continuation; ``units`` holds the continuation only
        (`[frames]` units, or `[Q, frames]` codes for a codec-LM variant).
        ``min_new_tokens`` forbids end-of-sequence before that many units: an LM trained on short sentences
        otherwise likes to end a long prompt at once.
        """
        lm = self._require("language_model", "speech continuation")
        if seed is not None:
            torch.manual_seed(seed)
        prompt_units = self.encode(audio, sampling_rate=sampling_rate)
        if not isinstance(max_new_tokens, int) or isinstance(max_new_tokens, bool) or max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be a positive int, got {max_new_tokens!r}")
        # positions the LM reads for each prompt (its own prefix tokens, a multi-stream LM's <s> frame and delays),
        # and per new frame (Q in a flattened multi-stream LM)
        def positions(units) -> int:
            return int(lm.units_to_input_ids([units])[1].sum())

        first = prompt_units[0][..., :1]
        per_frame = positions(torch.cat([first, first], dim=-1)) - positions(first)
        lengths = [positions(u) for u in prompt_units]
        self._check_context(lm, lengths, max_new_tokens, "continue_speech", per_frame=per_frame)
        kwargs = {"max_new_tokens": max_new_tokens, "do_sample": do_sample, "temperature": temperature,
                  "top_k": top_k, "top_p": top_p}  # fmt: skip
        fast = _fast_generator(lm) if len(prompt_units) == 1 else None
        if fast is not None:  # batch 1: the same units as generate_units (same processors, same draws), faster
            generated = [_fast_continuation(fast, prompt_units[0], min_new_tokens, streamer, **kwargs)]
        else:
            generated = lm.generate_units(
                prompt_units, streamer=streamer, **kwargs, **({"min_new_tokens": min_new_tokens} if min_new_tokens else {})
            )
        generated = [g.cpu() for g in generated]
        empty = [i for i, g in enumerate(generated) if g.numel() == 0]
        if empty:
            warnings.warn(
                f"continue_speech: the language model ended {len(empty)} of {len(generated)} continuation(s) at once "
                f"(end-of-sequence at step 0; items {empty}), so they are empty. Pass min_new_tokens (e.g. "
                "min_new_tokens=25) to forbid end-of-sequence before that many units.",
                EmptyContinuationWarning,
                stacklevel=3,  # the caller of continue_speech (torch.no_grad's wrapper is in between)
            )
        waveforms = []
        if vocode and self.decoder is not None:
            waveforms = self.decode([torch.cat([p, g], dim=-1) for p, g in zip(prompt_units, generated)])
        return SpeechPipelineOutput(
            units=generated, waveforms=waveforms, sampling_rate=self.sampling_rate, prompt_units=prompt_units
        )

    @torch.no_grad()
    def score(self, audio, sampling_rate: int | None = None, normalize: bool = False) -> torch.Tensor:
        """Negative log-likelihood of each utterance's units (or every real code of a codec-LM variant) under the LM
        (lower = more likely).

        The spoken minimal-pair benchmarks (sWUGGY / sBLIMP style) compare these scores within a pair.
        """
        lm = self._require("language_model", "scoring")
        units = self.encode(audio, sampling_rate=sampling_rate)
        input_ids, attention_mask = lm.units_to_input_ids(units)
        self._check_context(lm, attention_mask.sum(-1).tolist(), 0, "score")
        device = next(lm.parameters()).device
        out = lm.log_likelihood(input_ids.to(device), attention_mask=attention_mask.to(device), normalize=normalize)
        return out.sum_nll.cpu()

    def __repr__(self) -> str:
        parts = [f"  {name}: {type(c).__name__}" for name, c in self.components.items()]
        return f"{type(self).__name__}(\n" + "\n".join(parts) + "\n)"


def _fast_generator(lm):
    """A `FastUnitGenerator` over `lm` (eager: the lean Llama step where it applies), or `None` for models it does not
    decode (multi-stream, codec LMs)."""
    from ..models.speech_lm import FastUnitGenerator

    try:
        return FastUnitGenerator(lm, compile=False)
    except ValueError:
        return None


def _fast_continuation(fast, prompt, min_new_tokens, streamer, max_new_tokens, **kwargs) -> torch.Tensor:
    """`generate_units` for one prompt through `fast`, with `generate`'s `min_new_tokens` processor and streamer calls
    (the prompt's ids, then each new token id, `</s>` included, then `end()`)."""
    from transformers import MinNewTokensLengthLogitsProcessor

    lm = fast.model
    input_ids, _ = lm.units_to_input_ids([prompt])
    eos, offset = lm.config.vocab_layout.eos_token_id, lm.config.vocab_layout.unit_token_offset
    processors = []
    if min_new_tokens:
        processors.append(MinNewTokensLengthLogitsProcessor(input_ids.shape[1], min_new_tokens, eos))
    if streamer is not None:
        streamer.put(input_ids.cpu())
    units = []
    for unit in fast.stream(prompt, max_new_tokens=max_new_tokens, logits_processor=processors, **kwargs):
        units.append(unit)
        if streamer is not None:
            streamer.put(torch.tensor([unit + offset]))
    if streamer is not None:
        if len(units) < max_new_tokens:
            streamer.put(torch.tensor([eos]))
        streamer.end()
    return torch.tensor(units, dtype=torch.long)


__all__ = ["EmptyContinuationWarning", "SpeechLMPipeline", "SpeechPipelineOutput"]
