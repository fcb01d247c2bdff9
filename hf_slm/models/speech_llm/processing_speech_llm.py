"""`SpeechLLMProcessor`: audio feature extractor + text tokenizer + chat template -> speech-LLM inputs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import torch
from transformers.feature_extraction_utils import BatchFeature
from transformers.processing_utils import ProcessorMixin
from transformers.utils import cached_file

from .configuration_speech_llm import (
    AUDIO_TOKEN,
    CHAT_END,
    CHAT_START,
    SpeechLLMConfig,
    audio_conv_layers,
    conv_output_lengths,
)
from .generation_speech_llm import NgramLanguageModel, replace_atomically

#: Where a processor's `lexicon` is saved: `word count` a line (`word` alone reads as count 0).
LEXICON_FILE = "lexicon.txt"
#: Where a processor's `word_lm` is saved: an ARPA n-gram LM, gzip-compressed (a third of the size; KenLM reads it).
WORD_LM_FILE = "word_lm.arpa.gz"

#: One template for text, audio and mixed turns: an `{"type": "audio"}` item becomes one `<|audio|>`, which the
#: processor expands to the clip's projected frame count.
DEFAULT_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'audio' %}<|audio|>{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


class SpeechAudioError(ValueError):
    """An audio input the processor cannot take (wrong shape, type, rate, or not finite)."""


def add_speech_llm_tokens(tokenizer) -> int:
    """Add `<|audio|>` and the chat markers `<|im_start|>` / `<|im_end|>` as special tokens where missing, and use
    `<|im_end|>` as padding when the tokenizer has no pad token. Returns how many tokens were added (resize the LM's
    embeddings to `len(tokenizer)`; [`SpeechLLMForConditionalGeneration.from_encoder_and_lm`] does)."""
    vocab = tokenizer.get_vocab()
    missing = [token for token in (AUDIO_TOKEN, CHAT_START, CHAT_END) if token not in vocab]
    added = tokenizer.add_special_tokens({"additional_special_tokens": missing}) if missing else 0
    if tokenizer.pad_token is None:
        tokenizer.pad_token = CHAT_END
    return added


def validate_audio(audio, sampling_rate: int | None, expected_rate: int) -> list[np.ndarray]:
    """One clip or a list of clips -> a list of 1-D float32 arrays; a clear error on anything else."""
    if sampling_rate is not None and sampling_rate != expected_rate:
        raise SpeechAudioError(
            f"audio at {sampling_rate} Hz, but the feature extractor takes {expected_rate} Hz: resample first"
        )
    if isinstance(audio, (np.ndarray, torch.Tensor)) and audio.ndim == 1:
        audio = [audio]
    if not isinstance(audio, (list, tuple)) or not audio:
        raise SpeechAudioError(f"audio must be a 1-D array or a non-empty list of them, got {type(audio).__name__}")
    clips = []
    for index, clip in enumerate(audio):
        if isinstance(clip, torch.Tensor):
            clip = clip.detach().cpu().numpy()
        clip = np.asarray(clip)
        if clip.ndim != 1 or clip.size == 0:
            raise SpeechAudioError(f"audio clip {index} must be a non-empty 1-D waveform, got shape {clip.shape}")
        if not np.issubdtype(clip.dtype, np.floating):
            raise SpeechAudioError(f"audio clip {index} must hold floats in [-1, 1], got dtype {clip.dtype}")
        if not np.isfinite(clip).all():
            raise SpeechAudioError(f"audio clip {index} holds NaN or infinite samples")
        clips.append(clip.astype(np.float32))
    return clips


class SpeechLLMProcessor(ProcessorMixin):
    r"""
    Builds [`SpeechLLMForConditionalGeneration`] inputs. Each `<|audio|>` of the text (or each `{"type": "audio"}`
    item of a chat message) stands for one clip and is expanded to as many placeholders as the projector makes
    frames for that clip (from its feature length), as Qwen2-Audio's processor does.

    Args:
        feature_extractor: the encoder's feature extractor (`WhisperFeatureExtractor`: log-mel padded to its chunk
            length; `Wav2Vec2FeatureExtractor` for HuBERT / WavLM / wav2vec 2.0: waveform, padded to the longest).
        tokenizer: the LM's tokenizer, holding `<|audio|>` (see [`add_speech_llm_tokens`]).
        chat_template (`str`, *optional*): Jinja template; default [`DEFAULT_CHAT_TEMPLATE`] (ChatML markers).
        audio_conv_layers (`list`), projector_downsample (`int`), projector_num_queries (`int`): how feature frames
            map to placeholders; [`~SpeechLLMProcessor.from_config`] reads them from the model config.

    `lexicon` (`{word: count}`, lower case, counts from text, 0 for dictionary-only words; or `None`) is the word list
    that `SpeechLLMPipeline.transcribe` may spell from (lexicon-constrained decoding, with a unigram prior from the
    counts); it is saved as `lexicon.txt` (`word count` a line) beside the processor's config and read back by
    `from_pretrained` (a Hub repo or a folder). `word_lm` ([`NgramLanguageModel`] or `None`) is a word n-gram LM that
    transcription may fuse with the lexicon; it is saved as `word_lm.arpa.gz` the same way.

    Returns (`__call__`, `apply_chat_template`): `input_ids`, `attention_mask`, and with audio the feature
    extractor's `input_features` or `input_values` plus `feature_attention_mask`; `labels` with `return_labels=True`.
    """

    def __init__(
        self,
        feature_extractor=None,
        tokenizer=None,
        chat_template: str | None = None,
        audio_conv_layers: list | None = None,
        projector_downsample: int = 1,
        projector_num_queries: int = 1,
    ):
        self.audio_conv_layers = [list(layer) for layer in (audio_conv_layers or [])]
        self.projector_downsample = int(projector_downsample)
        self.projector_num_queries = int(projector_num_queries)
        if tokenizer is not None:
            token_id = tokenizer.convert_tokens_to_ids(AUDIO_TOKEN)
            if token_id is None or token_id == tokenizer.unk_token_id:
                raise ValueError(f"the tokenizer has no {AUDIO_TOKEN} token: call add_speech_llm_tokens(tokenizer)")
            self.audio_token_id = token_id
        super().__init__(feature_extractor, tokenizer, chat_template=chat_template or DEFAULT_CHAT_TEMPLATE)
        self.lexicon: dict[str, int] | None = None
        self._word_lm: NgramLanguageModel | None = None
        self._word_lm_file: str | None = None  # a saved word LM, read when first used

    @property
    def word_lm(self) -> NgramLanguageModel | None:
        """The word n-gram LM, or `None`. One saved with the processor is read on first use (a 0.4M-n-gram LM takes
        seconds to read, which loading for chat alone should not pay)."""
        if self._word_lm is None and self._word_lm_file is not None:
            self._word_lm = NgramLanguageModel.from_arpa(self._word_lm_file)
        return self._word_lm

    def set_word_lm(self, word_lm) -> None:
        """Use `word_lm` for transcription: an [`NgramLanguageModel`], the path of an ARPA file (KenLM's `lmplz`,
        SRILM, `hf_slm.training.fit_word_lm`; read now, so a bad file is named here), or `None` for none."""
        if word_lm is not None and not isinstance(word_lm, NgramLanguageModel):
            if not isinstance(word_lm, (str, os.PathLike)):
                raise TypeError(f"word_lm must be an NgramLanguageModel, an ARPA file path or None, got {word_lm!r}")
            word_lm = NgramLanguageModel.from_arpa(word_lm)
        self._word_lm, self._word_lm_file = word_lm, None

    def set_lexicon(self, words) -> None:
        """Use `words` as the lexicon: an iterable of words (count 0 each), a `{word: count}` mapping, or `None` for
        none. Words are lower-cased (counts of the same word add up) and sorted; each must be one word (no
        whitespace) with a count >= 0."""
        if words is None:
            self.lexicon = None
            return
        items = words.items() if hasattr(words, "items") else ((word, 0) for word in words)
        lexicon: dict[str, int] = {}
        for word, count in items:
            word = str(word).lower()
            if not word or any(c.isspace() for c in word) or isinstance(count, bool) or not isinstance(count, int) \
                    or count < 0:  # fmt: skip
                raise ValueError(f"a lexicon needs one word per entry and a count >= 0, got {word!r}: {count!r}")
            lexicon[word] = lexicon.get(word, 0) + count
        if not lexicon:
            raise ValueError("a lexicon needs one word per entry, got no words")
        self.lexicon = dict(sorted(lexicon.items()))

    def save_pretrained(self, save_directory, push_to_hub: bool = False, **kwargs):
        """`ProcessorMixin.save_pretrained`, + `lexicon.txt` and `word_lm.arpa.gz` (written atomically) when the
        processor has them.
        (With `push_to_hub=True` they are saved locally but not pushed: push the pipeline, or the folder.)"""
        out = super().save_pretrained(save_directory, push_to_hub=push_to_hub, **kwargs)
        target = Path(save_directory) / LEXICON_FILE
        if self.lexicon:
            with replace_atomically(target) as tmp:
                tmp.write("".join(f"{word} {count}\n" for word, count in self.lexicon.items()).encode("utf-8"))
        elif target.exists():
            target.unlink()  # a stale lexicon of an earlier save would come back on load
        target = Path(save_directory) / WORD_LM_FILE
        if self._word_lm is not None:
            self._word_lm.to_arpa(target)
        elif self._word_lm_file is not None:  # not read yet: the saved bytes, as they were
            if not (target.exists() and os.path.samefile(target, self._word_lm_file)):
                with open(self._word_lm_file, "rb") as source, replace_atomically(target) as tmp:
                    shutil.copyfileobj(source, tmp)
        elif target.exists():
            target.unlink()
        return out

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """`ProcessorMixin.from_pretrained`, + the lexicon and word LM saved with it (if any)."""
        processor = super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        hub = {k: kwargs[k] for k in ("subfolder", "revision", "token", "cache_dir", "local_files_only") if k in kwargs}
        path = cached_file(pretrained_model_name_or_path, LEXICON_FILE, _raise_exceptions_for_missing_entries=False,
                           _raise_exceptions_for_connection_errors=False, **hub)  # fmt: skip
        if path is not None:
            entries = {}
            for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
                fields = line.split()
                if fields and (len(fields) > 2 or (len(fields) == 2 and not fields[1].isdigit())):
                    raise ValueError(f"{path}, line {number}: expected `word` or `word count`, got {line!r}")
                if fields:
                    entries[fields[0]] = int(fields[1]) if len(fields) == 2 else 0
            processor.set_lexicon(entries)
        path = cached_file(pretrained_model_name_or_path, WORD_LM_FILE, _raise_exceptions_for_missing_entries=False,
                           _raise_exceptions_for_connection_errors=False, **hub)  # fmt: skip
        if path is not None:
            if not os.path.isfile(path):
                raise ValueError(f"{path}: the processor's word LM is missing")
            processor._word_lm_file = str(path)
        return processor

    @classmethod
    def from_config(cls, config: SpeechLLMConfig, feature_extractor, tokenizer, **kwargs) -> SpeechLLMProcessor:
        """A processor whose placeholder counts match `config`'s encoder and projector."""
        projector = config.projector_config
        num_queries = projector.num_queries if projector.projector_type == "qformer" else 1
        return cls(
            feature_extractor, tokenizer, audio_conv_layers=audio_conv_layers(config),
            projector_downsample=projector.downsample, projector_num_queries=num_queries, **kwargs,
        )  # fmt: skip

    @property
    def model_input_names(self) -> list[str]:
        names = self.tokenizer.model_input_names + self.feature_extractor.model_input_names
        return list(dict.fromkeys([*names, "feature_attention_mask"]))

    def audio_token_counts(self, feature_lengths) -> list[int]:
        """Placeholders per clip for `feature_lengths` feature frames (or samples)."""
        frames = conv_output_lengths(torch.as_tensor(feature_lengths), self.audio_conv_layers)
        windows = (frames + self.projector_downsample - 1) // self.projector_downsample
        return (windows * self.projector_num_queries).tolist()

    def _features(self, audio, sampling_rate):
        extractor = self.feature_extractor
        clips = validate_audio(audio, sampling_rate, extractor.sampling_rate)
        padding = "max_length" if hasattr(extractor, "n_samples") else "longest"  # Whisper's fixed 30 s windows
        features = extractor(
            clips, sampling_rate=extractor.sampling_rate, padding=padding, return_attention_mask=True,
            return_tensors="pt",
        )  # fmt: skip
        features["feature_attention_mask"] = features.pop("attention_mask")
        return features, self.audio_token_counts(features["feature_attention_mask"].sum(-1))

    def __call__(
        self,
        text: str | list[str] | None = None,
        audio=None,
        sampling_rate: int | None = None,
        padding_side: str = "right",
        return_labels: bool = False,
        **text_kwargs,
    ) -> BatchFeature:
        """Tokenise `text` (each `<|audio|>` consumes the next clip of `audio`, in reading order) and extract the
        audio features. `padding_side="left"` for generation. `return_labels`: `labels` = `input_ids` with padding and
        audio positions set to -100."""
        if text is None:
            raise ValueError("text is required: put one <|audio|> where each clip goes")
        texts = [text] if isinstance(text, str) else list(text)
        placeholders = sum(t.count(AUDIO_TOKEN) for t in texts)
        data = {}
        if audio is not None:
            data, counts = self._features(audio, sampling_rate)
            if placeholders != len(counts):
                raise ValueError(f"the text holds {placeholders} {AUDIO_TOKEN} but {len(counts)} audio clips came")
            texts = _expand(texts, counts)
        elif placeholders:
            raise ValueError(f"the text holds {placeholders} {AUDIO_TOKEN} but no audio was given")
        text_kwargs.setdefault("add_special_tokens", False)
        tokens = self.tokenizer(texts, padding=True, padding_side=padding_side, return_tensors="pt", **text_kwargs)
        data.update(tokens)
        if return_labels:
            labels = tokens["input_ids"].masked_fill(tokens["attention_mask"] == 0, -100)
            data["labels"] = labels.masked_fill(tokens["input_ids"] == self.audio_token_id, -100)
        return BatchFeature(data=dict(data), tensor_type="pt")

    def render_chat(self, conversation: list[dict], add_generation_prompt: bool = False) -> tuple[str, list]:
        """The template's text for one conversation and its audio clips, in order."""
        text = self.tokenizer.apply_chat_template(
            conversation, chat_template=self.chat_template, tokenize=False, add_generation_prompt=add_generation_prompt
        )
        clips = [
            item["audio"]
            for message in conversation
            if not isinstance(message["content"], str)
            for item in message["content"]
            if item.get("type") == "audio"
        ]
        return text, clips

    def apply_chat_template(
        self, conversation, add_generation_prompt: bool = False, tokenize: bool = True, **kwargs
    ) -> BatchFeature | str | list[str]:
        """Render one conversation (a list of `{"role", "content"}`) or a batch of them, where `content` is a string or
        a list of `{"type": "text", "text": ...}` / `{"type": "audio", "audio": array}` items; with `tokenize=True`
        (default) return the model inputs (`kwargs` go to `__call__`)."""
        batch = conversation if conversation and isinstance(conversation[0], (list, tuple)) else [conversation]
        rendered = [self.render_chat(list(c), add_generation_prompt) for c in batch]
        texts = [text for text, _ in rendered]
        if not tokenize:
            return texts[0] if batch is not conversation else texts
        clips = [clip for _, clip_list in rendered for clip in clip_list]
        return self(text=texts, audio=clips or None, **kwargs)


def _expand(texts: list[str], counts: list[int]) -> list[str]:
    counts = iter(counts)
    out = []
    for text in texts:
        pieces = text.split(AUDIO_TOKEN)
        expanded = pieces[0]
        for piece in pieces[1:]:
            expanded += AUDIO_TOKEN * next(counts) + piece
        out.append(expanded)
    return out


__all__ = [
    "DEFAULT_CHAT_TEMPLATE",
    "LEXICON_FILE",
    "SpeechAudioError",
    "SpeechLLMProcessor",
    "add_speech_llm_tokens",
    "validate_audio",
]
