"""`SpeechLLMPipeline`: a continuous-feature speech LLM (encoder -> projector -> causal LM, optional CTC speech
decoder) plus an optional unit vocoder, as one hosted variant.

Components (diffusers' way: one subfolder per component, each written and read by its own class)::

    pipeline_index.json   {"_class_name": "SpeechLLMPipeline", "processor": ["hf_slm", "SpeechLLMProcessor"], ...}
    processor/            SpeechLLMProcessor: the encoder's feature extractor + the LM's tokenizer + chat template
    language_model/       SpeechLLMForConditionalGeneration (encoder, projector, LM, optional speech decoder)
    vocoder/              optional: any unit vocoder of ours, fed by the speech decoder's units

The processor and the model are separate keys, not one folder: each loads alone (`AutoProcessor` /
`AutoModelForMultimodalLM` with ``subfolder=``), the index names (and the `LOADABLE_CLASSES` allow-list checks) each
class, and an index entry may borrow either from another repo (a new chat template over a shared model).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from transformers import LogitsProcessorList

from ..models.speech_llm import lexicon_logits_processor
from .pipeline_utils import PipelineLoadError, PipelineMixin, check_compatibility

#: The user turn of the ASR task, as the staged training script's collator writes it (`SpeechLLMCollator`).
ASR_PROMPT = "Transcribe the audio."


@dataclass
class SpeechLLMChatOutput:
    """One assistant turn of `SpeechLLMPipeline.chat`.

    Attributes:
        text: the answer's text.
        units: the spoken answer's unit ids (CTC speech decoder; empty without one or with ``speak=False``).
        waveform: the vocoded spoken answer (float32, at ``sampling_rate``); ``None`` without a vocoder or units.
        messages: the conversation including this answer (audio items as 1-D arrays), to pass back as history.
    """

    text: str
    units: list[int] = field(default_factory=list)
    waveform: np.ndarray | None = None
    sampling_rate: int | None = None
    messages: list[dict] = field(default_factory=list)


class SpeechLLMPipeline(PipelineMixin):
    """Speech (and text) in, text (and speech) out, with a `SpeechLLMForConditionalGeneration`.

    Args:
        processor: a `SpeechLLMProcessor` matching the model (placeholder counts, tokenizer, chat template).
        language_model: a `SpeechLLMForConditionalGeneration`.
        vocoder: optional unit vocoder (`UnitHifiGanVocoder`, `UnitMelVocoder`); its `num_units` must equal the
            model's speech decoder's, else `PipelineLoadError`.

    >>> from hf_slm import SpeechLLMPipeline
    >>> pipe = SpeechLLMPipeline.from_pretrained("runs/speech_llm/variant")  # doctest: +SKIP
    >>> pipe.transcribe([waveform], sampling_rate=16000)  # doctest: +SKIP
    >>> out = pipe.chat(audio="question.wav", text="Answer the question.")  # doctest: +SKIP
    """

    component_names = ("processor", "language_model", "vocoder")

    def __init__(self, processor, language_model, vocoder=None):
        if vocoder is not None and getattr(language_model, "speech_decoder", None) is None:
            raise PipelineLoadError(
                f"a vocoder ({type(vocoder).__name__}) needs a language model with a speech decoder, and this "
                f"{type(language_model).__name__} has none (add one with add_speech_decoder and train stage 3)"
            )
        check_compatibility({"language_model": language_model, "vocoder": vocoder})
        self.register_modules(processor=processor, language_model=language_model, vocoder=vocoder)

    @property
    def sampling_rate(self) -> int | None:
        """The vocoder's output rate (``None`` without a vocoder)."""
        vocoder = self._components.get("vocoder")
        return None if vocoder is None else int(vocoder.config.sampling_rate)

    @property
    def input_sampling_rate(self) -> int:
        """The rate the encoder's feature extractor takes; other rates are resampled."""
        return int(self.processor.feature_extractor.sampling_rate)

    # ------------------------------------------------------------------ inputs
    def _clip(self, audio, sampling_rate: int | None, name: str) -> np.ndarray:
        """One clip (array + ``sampling_rate``, file path, `{"array", "sampling_rate"}` dict, datasets decoder) ->
        mono float32 at `input_sampling_rate`, through the project's audio checks (`AudioInputError` names it)."""
        from ..models.unit_encoder import AudioInputError, load_audio

        if isinstance(audio, torch.Tensor):
            audio = audio.detach().cpu().numpy()
        if isinstance(audio, (np.ndarray, list)):
            if sampling_rate is None:
                raise AudioInputError(f"{name}: a raw waveform needs sampling_rate= (the rate it was recorded at)")
            array = np.asarray(audio)
            if not np.issubdtype(array.dtype, np.floating):
                raise AudioInputError(f"{name}: the waveform must hold floats in [-1, 1], got dtype {array.dtype}")
            audio = {"array": array, "sampling_rate": sampling_rate}
        try:
            return load_audio(audio, self.input_sampling_rate)
        except AudioInputError as err:
            raise AudioInputError(f"{name}: {err}") from None

    def _messages(self, messages, audio, text, sampling_rate) -> list[dict]:
        """A conversation whose audio items hold clips ready for the processor."""
        if messages is None:
            if audio is None and text is None:
                raise ValueError("chat needs messages, audio or text")
            content = [] if audio is None else [{"type": "audio", "audio": audio}]
            content += [] if text is None else [{"type": "text", "text": text}]
            messages = [{"role": "user", "content": content}]
        elif isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        elif audio is not None or text is not None:
            raise ValueError("pass either messages or audio / text, not both")
        if not isinstance(messages, (list, tuple)) or not messages:
            raise ValueError(f"messages must be a non-empty list of {{'role', 'content'}} dicts, got {messages!r:.80}")
        out = []
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or "role" not in message or "content" not in message:
                raise ValueError(f"message {i} must be a dict with 'role' and 'content', got {message!r:.80}")
            content = message["content"]
            if not isinstance(content, str):
                content = [
                    dict(item, audio=self._clip(item.get("audio"), sampling_rate, f"message {i} audio"))
                    if isinstance(item, dict) and item.get("type") == "audio"
                    else item
                    for item in content
                ]
            out.append({**message, "content": content})
        return out

    @staticmethod
    def _check_new_tokens(max_new_tokens) -> None:
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be a positive int, got {max_new_tokens!r}")

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def _generate(self, conversations: list[list[dict]], max_new_tokens: int, **generate_kwargs):
        inputs = self.processor.apply_chat_template(conversations, add_generation_prompt=True, padding_side="left")
        return inputs, self._generate_from(inputs, max_new_tokens, **generate_kwargs)

    @torch.no_grad()
    def _generate_from(self, inputs, max_new_tokens: int, ctc_weight: float = 0.0, lexicon=None,
                       word_penalty: float = 0.0, unigram_weight: float = 0.0, word_lm=None,
                       word_lm_weight: float = 0.0, **generate_kwargs) -> torch.Tensor:  # fmt: skip
        model = self.language_model
        inputs = inputs.to(model.device)
        kwargs = {"do_sample": False, **generate_kwargs}
        prompt_length, processors = inputs["input_ids"].shape[1], []
        audio = {name: inputs[name] for name in ("input_features", "input_values", "feature_attention_mask")
                 if inputs.get(name) is not None}  # fmt: skip
        posteriors = None
        if audio.keys() - {"feature_attention_mask"}:  # one encoder pass per clip, not per beam (and CTC from it)
            inputs_embeds, posteriors = model.embed_prompt(inputs["input_ids"], ctc=bool(ctc_weight), **audio)
            inputs = {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"],
                      "inputs_embeds": inputs_embeds}  # fmt: skip
        if lexicon:
            key = (id(lexicon), word_penalty, unigram_weight, id(word_lm), word_lm_weight)
            if getattr(self, "_lexicon_cache", (None,))[0] != key:  # its prefix set takes a second to build
                self._lexicon_cache = (key, lexicon_logits_processor(
                    lexicon, self.processor.tokenizer, model.generation_config.eos_token_id, prompt_length,
                    word_penalty, unigram_weight, word_lm, word_lm_weight))  # fmt: skip
            lexicon_processor = self._lexicon_cache[1]
            lexicon_processor.prompt_length = prompt_length
            processors.append(lexicon_processor)
        if ctc_weight:
            processors.append(model.ctc_prefix_scorer(prompt_length, ctc_weight, ctc_posteriors=posteriors, **audio))
        if processors:
            kwargs["logits_processor"] = LogitsProcessorList([*processors, *kwargs.get("logits_processor", [])])
        return model.generate(**inputs, max_new_tokens=max_new_tokens, **kwargs)

    def _asr_option(self, name: str, value, maximum: float | None = None) -> float:
        """A transcription weight: `value`, else the model's ``generation_config.asr_<name>`` (0 where unset); a
        number >= 0 (and <= `maximum`)."""
        if value is None:
            value = getattr(self.language_model.generation_config, f"asr_{name}", 0.0) or 0.0
        top = math.inf if maximum is None else maximum
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= top:
            bound = f"in [0, {maximum}]" if maximum is not None else ">= 0"
            raise ValueError(f"{name} must be a number {bound}, got {value!r}")
        return value

    def _texts(self, sequences: torch.Tensor, prompt_length: int) -> list[str]:
        texts = self.processor.tokenizer.batch_decode(sequences[:, prompt_length:], skip_special_tokens=True)
        return [text.strip() for text in texts]

    def transcribe(self, waveforms, sampling_rate: int | None = None, max_new_tokens: int = 256,
                   batch_size: int = 8, prompt: str = ASR_PROMPT, tokens_per_audio_token: float | None = 1.0,
                   ctc_weight: float | None = None, use_lexicon: bool = True, word_penalty: float | None = None,
                   unigram_weight: float | None = None, word_lm_weight: float | None = None,
                   **generate_kwargs) -> list[str]:  # fmt: skip
        """Speech -> text (the ASR task: a user turn of the clip and ``prompt``), greedy by default.

        Args:
            waveforms: one clip or a list of clips: 1-D float arrays at ``sampling_rate`` (resampled to the
                encoder's rate), file paths, or ``{"array", "sampling_rate"}`` dicts.
            max_new_tokens: the longest answer (256: a character-level LM, as `speech-llm-default`'s, spells
                about 16 tokens a second of English speech).
            batch_size: clips per `generate` call (left-padded; a batch gives the texts of one-by-one calls).
            tokens_per_audio_token: a transcript is shorter than its audio: each clip's answer is cut at
                ``ceil(tokens_per_audio_token * its audio placeholders) + 4`` tokens (and at ``max_new_tokens``), so a
                model that fails to end its answer cannot run on (``None``: only ``max_new_tokens``). The default
                1.0 suits projectors at <= 12.5 frames per second with sub-word tokenizers (English speech at 175
                words a minute is about 6 tokens of a 640-token BPE a second) and at 50 frames a second with
                characters (about 16 a second).
            ctc_weight: joint CTC / LM decoding for a `ctc_posterior` model (`CTCPrefixScoreLogitsProcessor`): each
                token scores ``(1 - w) * LM + w * CTC prefix score`` of the clip's CTC posteriors, so the answer stays
                with what the audio spells; 0: the LM alone. Default: the model's
                ``generation_config.asr_ctc_weight`` (0 where unset).
            use_lexicon: spell only words of the processor's `lexicon` (`LexiconLogitsProcessor`; a character
                vocabulary LM) when it has one.
            word_penalty: with the lexicon, subtracted at each word boundary (fewer, longer words). Default: the
                model's ``generation_config.asr_word_penalty`` (0 where unset).
            unigram_weight: with the lexicon, weight of each word's log unigram probability (from the lexicon's
                counts). Default: ``generation_config.asr_unigram_weight`` (0 where unset).
            word_lm_weight: with the lexicon and the processor's `word_lm` (an n-gram LM, `word_lm.arpa.gz`), weight of
                each word's log probability given the words before it, fused letter by letter with look-ahead
                (`NgramLanguageModel`). Default: ``generation_config.asr_word_lm_weight`` (0 where unset).
            generate_kwargs: passed to `generate` (``num_beams``, ``min_new_tokens``, ...). Without ``num_beams``,
                ``generation_config.asr_num_beams`` where set (transcription gains from a wider beam than chat).
        """
        self._check_new_tokens(max_new_tokens)
        asr_beams = getattr(self.language_model.generation_config, "asr_num_beams", None)
        if asr_beams is not None and "num_beams" not in generate_kwargs:
            generate_kwargs["num_beams"] = asr_beams
        ctc_weight = self._asr_option("ctc_weight", ctc_weight, maximum=1)
        word_penalty = self._asr_option("word_penalty", word_penalty)
        unigram_weight = self._asr_option("unigram_weight", unigram_weight)
        word_lm_weight = self._asr_option("word_lm_weight", word_lm_weight)
        lexicon = getattr(self.processor, "lexicon", None) if use_lexicon else None
        word_lm = getattr(self.processor, "word_lm", None) if word_lm_weight and lexicon else None  # read if used
        if word_lm_weight and lexicon and word_lm is None:
            raise ValueError(f"word_lm_weight={word_lm_weight} needs a processor with a word LM "
                             "(SpeechLLMProcessor.set_word_lm); this one has none: pass word_lm_weight=0")  # fmt: skip
        if tokens_per_audio_token is not None and not tokens_per_audio_token > 0:
            raise ValueError(f"tokens_per_audio_token must be positive or None, got {tokens_per_audio_token!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        single = isinstance(waveforms, (str, dict)) or (
            isinstance(waveforms, (np.ndarray, torch.Tensor)) and waveforms.ndim == 1
        )
        items = [waveforms] if single else list(waveforms)
        if not items:
            raise ValueError("transcribe needs at least one clip")
        clips = [self._clip(item, sampling_rate, f"clip {i}") for i, item in enumerate(items)]
        texts: list[str] = []
        for start in range(0, len(clips), batch_size):
            conversations = [
                [{"role": "user", "content": [{"type": "audio", "audio": clip}, {"type": "text", "text": prompt}]}]
                for clip in clips[start : start + batch_size]
            ]
            inputs = self.processor.apply_chat_template(conversations, add_generation_prompt=True,
                                                        padding_side="left")  # fmt: skip
            limits = [max_new_tokens] * len(conversations)
            if tokens_per_audio_token is not None:
                audio_tokens = (inputs["input_ids"] == self.processor.audio_token_id).sum(-1).tolist()
                limits = [min(max_new_tokens, math.ceil(tokens_per_audio_token * n) + 4) for n in audio_tokens]
            prompt_length = inputs["input_ids"].shape[1]
            sequences = self._generate_from(inputs, max(limits), ctc_weight, lexicon, word_penalty, unigram_weight,
                                            word_lm, word_lm_weight, **generate_kwargs)  # fmt: skip
            texts += [self._texts(row[None, : prompt_length + limit], prompt_length)[0]
                      for row, limit in zip(sequences, limits)]  # fmt: skip
        return texts

    def chat(self, messages=None, *, audio=None, text: str | None = None, sampling_rate: int | None = None,
             max_new_tokens: int = 128, speak: bool = True, **generate_kwargs) -> SpeechLLMChatOutput:  # fmt: skip
        """One assistant answer: text, and with a speech decoder the spoken answer (units; a waveform with a vocoder).

        Args:
            messages: a conversation (``[{"role": "user", "content": [{"type": "audio", "audio": ...},
                {"type": "text", "text": ...}]}, ...]``; content may be a plain string), or a string (one text turn).
                Audio items take what `transcribe` takes.
            audio, text: instead of ``messages``, one user turn of this audio and / or text.
            speak: decode the answer's units (and waveform) when the model has a speech decoder.
            generate_kwargs: passed to `generate`.
        """
        self._check_new_tokens(max_new_tokens)
        conversation = self._messages(messages, audio, text, sampling_rate)
        inputs, sequences = self._generate([conversation], max_new_tokens, **generate_kwargs)
        prompt_length = inputs["input_ids"].shape[1]
        answer = self._texts(sequences, prompt_length)[0]
        units: list[int] = []
        waveform = None
        model = self.language_model
        if speak and getattr(model, "speech_decoder", None) is not None:
            hidden = model.answer_hidden_states(sequences, prompt_length, **inputs)[0]
            units = model.speech_decoder.decode_units(hidden) if len(hidden) else []
            if units and self._components.get("vocoder") is not None:
                waveform = self.vocode(units)
        return SpeechLLMChatOutput(
            text=answer, units=units, waveform=waveform, sampling_rate=self.sampling_rate,
            messages=[*conversation, {"role": "assistant", "content": answer}],
        )  # fmt: skip

    @torch.no_grad()
    def vocode(self, units) -> np.ndarray:
        """One utterance's unit ids -> float32 waveform at `sampling_rate`."""
        vocoder = self._components.get("vocoder")
        if vocoder is None:
            raise ValueError("vocoding needs a vocoder, and this pipeline variant has none")
        ids = torch.as_tensor(units, dtype=torch.long).reshape(1, -1)
        num_units = vocoder.config.consumes["units.num_units"]
        if ids.numel() == 0 or int(ids.min()) < 0 or int(ids.max()) >= num_units:
            raise ValueError(f"units must be a non-empty sequence of ids in [0, {num_units}), got {units!r:.80}")
        device = next(vocoder.parameters()).device
        out = vocoder(input_ids=ids.to(device), attention_mask=torch.ones_like(ids, device=device))
        return out.waveform[0, : int(out.waveform_lengths[0])].float().cpu().numpy()

    def __repr__(self) -> str:
        parts = [f"  {name}: {type(c).__name__}" for name, c in self.components.items()]
        return f"{type(self).__name__}(\n" + "\n".join(parts) + "\n)"


__all__ = ["ASR_PROMPT", "SpeechLLMChatOutput", "SpeechLLMPipeline"]
