"""`ExpressiveSpeechLMPipeline`: the SpiRit-LM Expressive variant — units + pitch + style tokens in one stream.

speech -> (unit tokenizer, expressive encoder) -> interleaved `[St..][Pi..]<unit>...` ids -> LM continuation in
speech or text -> de-interleaved units / pitch / style -> vocoder conditioned on F0 (from pitch tokens) and style.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .speech_lm_pipeline import SpeechLMPipeline

MODALITIES = ("speech", "text")


@dataclass
class ExpressiveContinuation:
    """One continuation: the new token ids (without prompt and `</s>`), and what they mean in their modality:
    `units` / `pitch` / `style` (one per unit) and `waveform` for speech, `text` for text."""

    modality: str
    token_ids: list[int]
    units: torch.Tensor | None = None
    pitch: torch.Tensor | None = None
    style: torch.Tensor | None = None
    text: str | None = None
    waveform: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))


class ExpressiveSpeechLMPipeline(SpeechLMPipeline):
    """
    SpiRit-LM Expressive as one pipeline variant: `SpeechLMPipeline`'s components plus an `expressive_encoder`
    ([`ExpressiveEncoderModel`]) whose pitch / style codebook sizes are the LM's `num_pitch_tokens` /
    `num_style_tokens`.

    Args:
        feature_extractor, speech_tokenizer, language_model, vocoder, tokenizer: as in [`SpeechLMPipeline`]; the
            vocoder may condition on F0 (`use_f0`) and style tokens (`num_styles`).
        expressive_encoder: audio -> pitch tokens (12.5 Hz) and style tokens (1 Hz).
    """

    component_names = ("feature_extractor", "speech_tokenizer", "expressive_encoder", "tokenizer", "language_model",
                       "vocoder")  # fmt: skip

    def __init__(self, feature_extractor, speech_tokenizer, expressive_encoder, language_model=None, vocoder=None,
                 tokenizer=None):  # fmt: skip
        self.register_modules(
            feature_extractor=feature_extractor,
            speech_tokenizer=speech_tokenizer,
            expressive_encoder=expressive_encoder,
            tokenizer=tokenizer,
            language_model=language_model,
            vocoder=vocoder,
        )
        if language_model is not None:
            layout, config = language_model.config.vocab_layout, expressive_encoder.config
            if (layout.num_pitch_tokens, layout.num_style_tokens) != (config.num_pitch_tokens, config.num_style_tokens):
                raise ValueError(
                    f"the language model has num_pitch_tokens={layout.num_pitch_tokens}, num_style_tokens="
                    f"{layout.num_style_tokens} but the expressive encoder has {config.num_pitch_tokens} / "
                    f"{config.num_style_tokens}"
                )

    @property
    def processor(self):
        """A `SpeechLMProcessor` with the LM's layout and the tokenizers' rates."""
        from ..models.speech_lm import SpeechLMProcessor

        lm = self._require("language_model", "interleaving")
        config = self.expressive_encoder.config
        return SpeechLMProcessor.from_config(
            lm.config, tokenizer=self.tokenizer, frame_rate=self.speech_tokenizer.config.frame_rate,
            pitch_rate=config.pitch_rate, style_rate=config.style_rate,
        )  # fmt: skip

    # ------------------------------------------------------------------ tokens
    @torch.no_grad()
    def encode_expressive(self, audio, sampling_rate: int | None = None) -> list[dict[str, torch.Tensor]]:
        """Audio -> per utterance `{"units", "pitch", "style"}` (frame-level units, 12.5 Hz pitch, 1 Hz style)."""
        units = self.encode(audio, sampling_rate=sampling_rate)
        inputs = self.feature_extractor(audio, sampling_rate=sampling_rate, return_tensors="pt")
        tokens = self.expressive_encoder.encode(inputs["input_values"], inputs["attention_mask"])
        return [{"units": u, "pitch": p, "style": s} for u, p, s in zip(units, tokens["pitch"], tokens["style"])]

    @torch.no_grad()
    def decode_expressive(self, units, pitch=None, style=None) -> np.ndarray:
        """Frame-level units with the pitch / style token in force at each unit (`SpeechLMProcessor.deinterleave`)
        -> waveform; F0 comes from the pitch codebook, style ids go to a vocoder with `num_styles`."""
        vocoder = self.require_decoder("decoding units to audio")
        units = torch.as_tensor(units).long().flatten()
        if units.numel() == 0:
            return np.zeros(0, dtype=np.float32)
        device = next(vocoder.parameters()).device
        kwargs = {}
        # A sequence without pitch (style) tokens is vocoded unvoiced (with style 0), as SpiRit-LM falls back to a
        # common style token.
        if getattr(vocoder.config, "use_f0", False):
            f0 = torch.zeros(len(units))
            if pitch is not None:
                f0 = self.expressive_encoder.pitch_to_f0(pitch, frame_index=torch.arange(len(units))).cpu()
            kwargs["f0"] = f0[None].float().to(device)
        if getattr(vocoder.config, "num_styles", 0) > 0:
            style = torch.zeros(len(units), dtype=torch.long) if style is None else torch.as_tensor(style).long()
            kwargs["style_ids"] = style[None].to(device)
        out = vocoder(input_ids=units[None].to(device), attention_mask=torch.ones(1, len(units), device=device), **kwargs)
        return out.waveform[0, : int(out.waveform_lengths[0])].float().cpu().numpy()

    def prompt_ids(self, audio=None, text: str | None = None, sampling_rate: int | None = None,
                   output_modality: str = "speech") -> list[int]:  # fmt: skip
        """`<s> [Speech] (interleaved speech)` or `<s> [Text] text`, then the marker of `output_modality` when it
        differs from the prompt's (SpiRit-LM's cross-modal continuation prompts)."""
        if output_modality not in MODALITIES:
            raise ValueError(f"output_modality must be one of {MODALITIES}, got {output_modality!r}")
        if (audio is None) == (text is None):
            raise ValueError("give exactly one prompt: audio (speech prompt) or text (text prompt)")
        processor = self.processor
        layout = processor.layout
        if audio is not None:
            item = self.encode_expressive(audio, sampling_rate=sampling_rate)[0]
            ids = processor(units=[item["units"]], pitch=[item["pitch"]], style=[item["style"]], mode="speech",
                            add_eos=False, return_tensors=None)["input_ids"][0]  # fmt: skip
            prompt_modality = "speech"
        else:
            ids = processor(text=[text], mode="text", add_eos=False, return_tensors=None)["input_ids"][0]
            prompt_modality = "text"
        if output_modality != prompt_modality:
            ids = list(ids) + [layout.speech_token_id if output_modality == "speech" else layout.text_token_id]
        return list(ids)

    @torch.no_grad()
    def continue_expressive(
        self,
        audio=None,
        text: str | None = None,
        sampling_rate: int | None = None,
        output_modality: str = "speech",
        max_new_tokens: int = 100,
        min_new_tokens: int | None = None,
        do_sample: bool = True,
        temperature: float = 0.8,
        top_k: int | None = None,
        seed: int | None = None,
        vocode: bool = True,
    ) -> ExpressiveContinuation:
        """Expressive continuation of ONE prompt (speech or text) in `output_modality`: speech continuations hold
        units, pitch and style tokens only (and are vocoded with them), text continuations text tokens only."""
        from transformers import LogitsProcessorList

        from ..models.speech_lm import AllowedTokensLogitsProcessor

        lm = self._require("language_model", "expressive continuation")
        if not isinstance(max_new_tokens, int) or isinstance(max_new_tokens, bool) or max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be a positive int, got {max_new_tokens!r}")
        if seed is not None:
            torch.manual_seed(seed)
        ids = self.prompt_ids(audio=audio, text=text, sampling_rate=sampling_rate, output_modality=output_modality)
        self._check_context(lm, [len(ids)], max_new_tokens, "continue_expressive")
        layout = lm.config.vocab_layout
        if output_modality == "speech":
            allowed = list(range(layout.unit_token_offset, layout.special_token_offset))
            allowed += list(range(layout.pitch_token_offset, layout.vocab_size))
        else:
            if layout.text_vocab_size == 0 or self.tokenizer is None:
                raise ValueError("a text continuation needs a language model with text tokens and a text tokenizer")
            allowed = list(range(layout.text_vocab_size))
        processors = LogitsProcessorList([AllowedTokensLogitsProcessor(allowed + [layout.eos_token_id], lm.config.vocab_size)])
        device = next(lm.parameters()).device
        input_ids = torch.tensor([ids], device=device)
        sampling = {"temperature": temperature, **({"top_k": top_k} if top_k else {})} if do_sample else {}
        out = lm.generate(
            input_ids=input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=max_new_tokens,
            min_new_tokens=min_new_tokens or 0, do_sample=do_sample, logits_processor=processors,
            eos_token_id=layout.eos_token_id, pad_token_id=layout.pad_token_id, **sampling,
        )  # fmt: skip
        new = out[0, input_ids.shape[1] :].cpu().tolist()
        if layout.eos_token_id in new:
            new = new[: new.index(layout.eos_token_id)]
        if output_modality == "text":
            return ExpressiveContinuation("text", new, text=self.tokenizer.decode(new))
        streams = self.processor.deinterleave(new)
        waveform = np.zeros(0, dtype=np.float32)
        if vocode and self.decoder is not None and streams["units"].numel():
            waveform = self.decode_expressive(streams["units"], streams["pitch"], streams["style"])
        return ExpressiveContinuation("speech", new, waveform=waveform, **streams)


__all__ = ["ExpressiveContinuation", "ExpressiveSpeechLMPipeline"]
