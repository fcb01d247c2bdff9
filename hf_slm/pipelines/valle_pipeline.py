"""`VallEPipeline`: VALL-E-style zero-shot TTS as one hosted variant (phoneme tokenizer, codec, AR and NAR models).

text -> espeak-ng phonemes -> AR model: codebook 1 after the acoustic prompt's (repetition-aware sampling) -> NAR
model: codebooks 2..Q -> the codec decodes them, in the prompt's voice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .pipeline_utils import PipelineLoadError, PipelineMixin

#: Components of a VALL-E variant, in load order (all required); `PIPELINE_LAYOUTS` holds the same.
VALLE_COMPONENTS = ("feature_extractor", "speech_tokenizer", "tokenizer", "ar_model", "nar_model")


def text_to_phoneme_ids(tokenizer, text: str, language: str = "en-us") -> list[int]:
    """espeak-ng's IPA phonemes of `text` (`hf_slm.data.phonemize`) as ids of the variant's phoneme tokenizer (a
    whitespace word-level tokenizer: phonemes it never saw become its unknown token)."""
    from ..data.espeak import phonemize

    return tokenizer(" ".join(phonemize(text, language)), add_special_tokens=False)["input_ids"]


#: `text_to_speech`'s default floor on the new speech: this fraction of the text's length at the prompt's own pace.
MIN_PACE_FRACTION = 0.5


@dataclass
class TextToSpeechOutput:
    """`waveform` (float32, the generated speech only, `codes.shape[-1] * hop_length` samples) at `sampling_rate`;
    `codes` `[Q, T]` generated; `prompt_codes` `[Q, T_p]` of the acoustic prompt; `phoneme_ids` the AR model read."""

    waveform: np.ndarray
    sampling_rate: int
    codes: torch.Tensor
    prompt_codes: torch.Tensor
    phoneme_ids: list[int] = field(default_factory=list)


class VallEPipeline(PipelineMixin):
    """Zero-shot TTS from a short acoustic prompt (VALL-E; VALL-E 2's grouped codes and repetition-aware sampling).

    Args:
        feature_extractor: audio (arrays, files) -> padded model inputs at the codec's rate.
        speech_tokenizer: the codec (`RVQCodecModel`, `MelRVQCodecModel` or `CodecModel`): audio <-> codes `[Q, T]`.
        tokenizer: the phoneme tokenizer (a `PreTrainedTokenizerFast`, see `hf_slm.training.valle`).
        ar_model (`VallEARModel`): codebook 1. nar_model (`VallENARModel`): codebooks 2..Q.

    The components are checked against each other here, so a variant that loads is consistent: the phoneme vocabulary
    fits both models, codebook count / size and frame rate match the codec, and the feature extractor's sampling rate
    is the codec's.

    >>> from hf_slm.pipelines import VallEPipeline
    >>> pipe = VallEPipeline.from_pretrained("runs/valle_tiny/variant")  # doctest: +SKIP
    >>> out = pipe.text_to_speech("Hello there.", "prompt.wav", prompt_text="The prompt's words.")  # doctest: +SKIP
    """

    component_names = VALLE_COMPONENTS

    def __init__(self, feature_extractor, speech_tokenizer, tokenizer, ar_model, nar_model):
        self.register_modules(feature_extractor=feature_extractor, speech_tokenizer=speech_tokenizer,
                              tokenizer=tokenizer, ar_model=ar_model, nar_model=nar_model)  # fmt: skip
        self._validate()

    def _validate(self) -> None:
        missing = [name for name in VALLE_COMPONENTS if self._components.get(name) is None]
        if missing:
            raise PipelineLoadError(f"a VallEPipeline needs every one of {VALLE_COMPONENTS}; missing {missing}")
        codec, ar, nar = self.speech_tokenizer, self.ar_model.config, self.nar_model.config
        for name, model in (("ar_model", ar), ("nar_model", nar)):
            if getattr(model, "model_type", None) != f"hf_slm_valle_{name[:-6]}":
                raise PipelineLoadError(f"{name} must be a VallE{name[:-6].upper()}Model, got {type(model).__name__}")
            checks = [("codebook_size", model.codebook_size, codec.codebook_size),
                      ("num_codebooks", model.num_codebooks, codec.num_codebooks)]  # fmt: skip
            if model.frame_rate:
                checks.append(("frame_rate", model.frame_rate, float(codec.frame_rate)))
            for key, have, want in checks:
                if abs(float(have) - float(want)) > 1e-6 * max(1.0, abs(float(want))):
                    raise PipelineLoadError(
                        f"incompatible components: {name} has {key}={have} but the codec ({type(codec).__name__}) has "
                        f"{key}={want}"
                    )
            if len(self.tokenizer) > model.num_phonemes:
                raise PipelineLoadError(
                    f"incompatible components: the phoneme tokenizer has {len(self.tokenizer)} tokens but {name} embeds "
                    f"only num_phonemes={model.num_phonemes}"
                )
        rate = getattr(self.feature_extractor, "sampling_rate", None)
        if rate is not None and int(rate) != int(codec.sampling_rate):
            raise PipelineLoadError(
                f"incompatible components: the feature extractor reads audio at {rate} Hz but the codec's rate is "
                f"{codec.sampling_rate} Hz"
            )

    @property
    def sampling_rate(self) -> int:
        return int(self.speech_tokenizer.sampling_rate)

    @property
    def hop_length(self) -> int:
        """Samples per code frame."""
        return int(self.speech_tokenizer.hop_length)

    @torch.no_grad()
    def encode(self, audio, sampling_rate: int | None = None) -> torch.LongTensor:
        """One clip (array, file path, `{"array", "sampling_rate"}`) -> its codes `[Q, T]`."""
        inputs = self.feature_extractor(audio, sampling_rate=sampling_rate, return_tensors="pt")
        device = next(self.speech_tokenizer.parameters()).device
        out = self.speech_tokenizer.encode(input_values=inputs["input_values"].to(device),
                                           attention_mask=inputs["attention_mask"].to(device))  # fmt: skip
        return out.unpadded()[0].cpu()

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> np.ndarray:
        """Codes `[Q, T]` -> float32 waveform of `T * hop_length` samples at `sampling_rate`."""
        device = next(self.speech_tokenizer.parameters()).device
        out = self.speech_tokenizer.decode(torch.as_tensor(codes).long()[None].to(device))
        return out.waveform[0, : int(out.waveform_lengths[0])].float().cpu().numpy()

    @staticmethod
    def _positions(model) -> int | None:
        return getattr(model.config.text_config, "max_position_embeddings", None)

    @torch.no_grad()
    def text_to_speech(
        self,
        text: str,
        prompt_audio,
        prompt_text: str,
        sampling_rate: int | None = None,
        language: str = "en-us",
        max_new_frames: int | None = None,
        min_new_frames: int | None = None,
        do_sample: bool = True,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float = 0.8,
        repetition_aware: bool = True,
        window_size: int = 10,
        threshold: float = 0.1,
        seed: int | None = None,
    ) -> TextToSpeechOutput:
        """Say `text` in the voice of `prompt_audio`.

        Args:
            text (`str`): what to say.
            prompt_audio: the acoustic prompt (array at `sampling_rate`, file path, or `{"array", "sampling_rate"}`).
            prompt_text (`str`): the prompt's transcript. The AR model reads `phonemes(prompt_text + text)`, then
                the prompt's codes, and continues them: VALL-E's setting and the only one training shows it (codes
                without their phonemes would be a mismatch, so the transcript is required).
            language (`str`): espeak-ng voice / language of the phonemizer.
            max_new_frames (`int`, *optional*): most frames to generate (default: 20 s, within the AR context).
            min_new_frames (`int`, *optional*): `<eos>` is refused before this many frames. Default: half of what
                `text` would take at the prompt's own pace (its frames per phoneme), at least 1; without a floor a
                prompt unlike the training voices (a recording) often makes the AR model end after a frame or two.
            do_sample, temperature, top_k, top_p: sampling of codebook 1. With `repetition_aware=True` (VALL-E 2's
                repetition-aware sampling, `RepetitionAwareSamplingLogitsProcessor`) `top_p` / `top_k` /
                `temperature` are its nucleus draw, with `window_size` and `threshold`.
            seed (`int`, *optional*): seeds the sampling.

        Returns:
            [`TextToSpeechOutput`]: the generated speech only (not the prompt), `T_new * hop_length` samples.
        """
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"text must be a non-empty string, got {text!r}")
        if not isinstance(prompt_text, str) or not prompt_text.strip():
            raise ValueError(
                f"prompt_text must be the prompt audio's transcript (a non-empty string), got {prompt_text!r}: VALL-E "
                "reads the prompt's phonemes before its codes"
            )
        prompt = self.encode(prompt_audio, sampling_rate=sampling_rate)
        said = f"{prompt_text.strip()} {text.strip()}"
        phonemes = text_to_phoneme_ids(self.tokenizer, said, language)
        group = self.ar_model.config.group_size
        limit = self._positions(self.ar_model)
        used = len(phonemes) + 2 + prompt.shape[1] // group  # phonemes, <bos>, prompt groups, the first new group
        room = None if limit is None else (limit - used) * group + prompt.shape[1] % group
        if room is not None and room < max(1, min_new_frames or 0):
            raise ValueError(
                f"text_to_speech: {len(phonemes)} phonemes and a {prompt.shape[1]}-frame prompt fill the AR model's "
                f"{limit} positions (max_position_embeddings); use a shorter prompt or text"
            )
        nar_limit, nar_group = self._positions(self.nar_model), self.nar_model.config.group_size
        if max_new_frames is None:  # 20 s, within both models' positions
            max_new_frames = round(20 * float(self.speech_tokenizer.frame_rate))
            nar_room = None
            if nar_limit is not None:  # whole NAR groups after the phonemes and the prompt's groups
                nar_room = (nar_limit - self.nar_model.num_positions(len(phonemes), prompt.shape[1], 0)) * nar_group
            for free in (room, nar_room):
                max_new_frames = max_new_frames if free is None else max(1, min(max_new_frames, free))
        if min_new_frames is None:  # half the text's length at the prompt's pace, within what may be generated
            pace = prompt.shape[1] / max(1, len(text_to_phoneme_ids(self.tokenizer, prompt_text, language)))
            wanted = len(text_to_phoneme_ids(self.tokenizer, text, language))
            bounds = [max_new_frames] + ([] if room is None else [room])
            min_new_frames = min(max(1, round(MIN_PACE_FRACTION * pace * wanted)), *bounds)
        generator = None if seed is None else torch.Generator(device=self.ar_model.device).manual_seed(int(seed))
        processors, kwargs = [], {"temperature": temperature, "top_k": top_k, "top_p": top_p}
        if repetition_aware and do_sample:
            from ..models.speech_lm import RepetitionAwareSamplingLogitsProcessor

            processors = [RepetitionAwareSamplingLogitsProcessor(top_p=top_p, window_size=window_size,
                                                                 threshold=threshold, top_k=top_k,
                                                                 temperature=temperature, generator=generator)]  # fmt: skip
            kwargs = {"temperature": None, "top_k": None, "top_p": None}  # RAS already drew the code
        first = self.ar_model.generate(phonemes, prompt[0], max_new_frames=max_new_frames,
                                       min_new_frames=min_new_frames, do_sample=do_sample, logits_processor=processors,
                                       generator=generator, **kwargs)  # fmt: skip
        if not first.numel():
            raise ValueError("text_to_speech: the AR model ended at once (no frame); pass min_new_frames >= 1")
        if nar_limit is not None and self.nar_model.num_positions(len(phonemes), prompt.shape[1], len(first)) > nar_limit:
            raise ValueError(
                f"text_to_speech: {len(phonemes)} phonemes + {prompt.shape[1]} prompt + {len(first)} new frames exceed "
                f"the NAR model's {nar_limit} positions; use a shorter prompt or text, or a lower max_new_frames"
            )
        codes = self.nar_model.generate(phonemes, prompt, first)
        return TextToSpeechOutput(waveform=self.decode(codes), sampling_rate=self.sampling_rate, codes=codes,
                                  prompt_codes=prompt, phoneme_ids=list(phonemes))  # fmt: skip

    def __repr__(self) -> str:
        parts = [f"  {name}: {type(c).__name__}" for name, c in self.components.items()]
        return f"{type(self).__name__}(\n" + "\n".join(parts) + "\n)"


__all__ = ["TextToSpeechOutput", "VALLE_COMPONENTS", "VallEPipeline", "text_to_phoneme_ids"]
