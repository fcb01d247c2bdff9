"""`SpeechLMProcessor`: units and / or text -> model inputs in the four SUTLM modes, with labels for training."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from transformers.dynamic_module_utils import custom_object_save
from transformers.feature_extraction_utils import BatchFeature
from transformers.processing_utils import ProcessingKwargs, ProcessorMixin
from transformers.utils import PROCESSOR_NAME, cached_file

from .configuration_speech_lm import SpeechLMConfig, SpeechLMVocabularyLayout, as_unit_sequences

MODES = ("speech", "text", "concat", "interleave")
_MODALITIES = ("speech", "text")
# Batch-level tokenizer options that make no sense for the text pieces the processor tokenizes one by one.
_BATCH_TEXT_KWARGS = (
    "padding",
    "padding_side",
    "truncation",
    "max_length",
    "pad_to_multiple_of",
    "return_tensors",
    "return_attention_mask",
    "return_token_type_ids",
)


class SpeechLMProcessorKwargs(ProcessingKwargs, total=False):
    """`text_kwargs` go to the text tokenizer, called once per text piece (defaults: `add_special_tokens=False`,
    since the processor writes `<s>` / `</s>` / markers itself)."""


class SpeechLMProcessor(ProcessorMixin):
    r"""
    Builds [`SpeechLMForCausalLM`] inputs from speech units and / or text, in the four SUTLM modes:

    | mode | sequence (`use_modality_tokens=True`) |
    |---|---|
    | `"speech"` | `<s> [Speech] u_1 ... u_T </s>` |
    | `"text"` | `<s> [Text] t_1 ... t_N </s>` |
    | `"concat"` | `<s> [Speech] u_1 ... u_T [Text] t_1 ... t_N </s>` (or text first: `first_modality="text"`) |
    | `"interleave"` | `<s> [Text] the cat [Speech] u_k ... u_m [Text] on the mat </s>`: each word in the modality
      given for it (`modalities`), cut at the word timestamps (SpiRit-LM). Drawing the modalities at random is a
      training augmentation: `hf_slm.training.interleaving.interleave` |

    Task / language tags (`task="[ASR]"`) follow `<s>`. A text containing `audio_token` (`"<|speech|>"`) is a
    template: each placeholder is replaced by `[Speech]` and the units of the next utterance, so it expands to
    as many tokens as the utterance has unit frames (as transformers' CSM processor expands its audio token).

    The inputs are what the pipeline and the data builder produce: units as 1-D integer sequences (one per
    utterance, at `frame_rate` Hz), text strings, and the word timestamps of the data builder (`words`,
    `word_start`, `word_end`, in seconds).

    Args:
        tokenizer (`PreTrainedTokenizerBase`, *optional*):
            The text tokenizer; not needed by speech-only (GSLM) models. Its ids must be `< text_vocab_size`.
        text_vocab_size, num_units, task_tokens, use_modality_tokens:
            The vocabulary layout, as in [`SpeechLMConfig`] (build both from one config with
            [`~SpeechLMProcessor.from_config`]).
        frame_rate (`float`, *optional*, defaults to 50.0):
            Units per second of the speech tokenizer (HuBERT / MFCC units: 50 Hz); maps word times to unit frames.
        switch_probability (`float`, *optional*, defaults to 0.5):
            Interleaving: probability of switching modality at each word boundary, the default of
            `hf_slm.training.interleaving.interleave` (the processor itself takes the modalities it is given).
        audio_token (`str`, *optional*, defaults to `"<|speech|>"`):
            Placeholder for an utterance's units in template texts.
        padding_side (`str`, *optional*, defaults to `"right"`):
            Side on which batches are padded (`"left"` for generation prompts).
        num_pitch_tokens, num_style_tokens (`int`, *optional*, default to 0):
            SpiRit-LM Expressive token ranges, as in [`SpeechLMConfig`]. With `pitch=` / `style=` tokens (from an
            [`ExpressiveEncoderModel`]) each speech segment interleaves `[St..]`, `[Pi..]` and units in time order:
            token `i` of a stream sits at `i / rate` seconds, ties go style, pitch, unit (SpiRit-LM's
            `units_to_string`), and repeated pitch tokens are dropped (`pitch_dedup`; style: `style_dedup`).
            [`~SpeechLMProcessor.deinterleave`] undoes it.
        pitch_rate, style_rate (`float`, *optional*, default to 12.5 / 1.0): pitch / style tokens per second.
        pitch_dedup, style_dedup (`bool`, *optional*, default to `True` / `False`): drop consecutive repeats.
        chat_template (`str`, *optional*): Unused; accepted for `ProcessorMixin` compatibility.

    Example:

    ```python
    >>> import torch
    >>> from hf_slm import SpeechLMConfig, SpeechLMProcessor
    >>> processor = SpeechLMProcessor.from_config(SpeechLMConfig(num_units=100))
    >>> batch = processor(units=[torch.tensor([5, 5, 7]), torch.tensor([1])], return_labels=True)
    >>> batch["input_ids"].tolist()
    [[101, 103, 5, 5, 7, 102], [101, 103, 1, 102, 100, 100]]
    >>> batch["labels"][1].tolist()
    [101, 103, 1, 102, -100, -100]

    ```
    """

    valid_processor_kwargs = SpeechLMProcessorKwargs
    text_kwargs = {"add_special_tokens": False}

    def __init__(
        self,
        tokenizer=None,
        text_vocab_size: int = 0,
        num_units: int = 100,
        task_tokens: list[str] | None = None,
        use_modality_tokens: bool = True,
        frame_rate: float = 50.0,
        switch_probability: float = 0.5,
        audio_token: str = "<|speech|>",
        padding_side: str = "right",
        num_pitch_tokens: int = 0,
        num_style_tokens: int = 0,
        pitch_rate: float = 12.5,
        style_rate: float = 1.0,
        pitch_dedup: bool = True,
        style_dedup: bool = False,
        chat_template=None,
    ):
        self.layout = SpeechLMVocabularyLayout(
            text_vocab_size=text_vocab_size,
            num_units=num_units,
            task_tokens=tuple(task_tokens or ()),
            use_modality_tokens=bool(use_modality_tokens),
            num_pitch_tokens=num_pitch_tokens,
            num_style_tokens=num_style_tokens,
        )
        for name, value in (("pitch_rate", pitch_rate), ("style_rate", style_rate)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"{name} must be a positive number (tokens per second), got {value!r}")
        if not isinstance(frame_rate, (int, float)) or frame_rate <= 0:
            raise ValueError(f"frame_rate must be a positive number (units per second), got {frame_rate!r}")
        _check_probability(switch_probability)
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        if not isinstance(audio_token, str) or not audio_token:
            raise ValueError(f"audio_token must be a non-empty string, got {audio_token!r}")
        if tokenizer is not None and len(tokenizer) > text_vocab_size:
            raise ValueError(
                f"the tokenizer has {len(tokenizer)} tokens but the layout reserves text_vocab_size={text_vocab_size} "
                "text ids; build the processor from the model's config (SpeechLMProcessor.from_config)"
            )
        self.text_vocab_size = text_vocab_size
        self.num_units = num_units
        self.task_tokens = list(self.layout.task_tokens)
        self.use_modality_tokens = bool(use_modality_tokens)
        self.frame_rate = float(frame_rate)
        self.switch_probability = float(switch_probability)
        self.audio_token = audio_token
        self.padding_side = padding_side
        self.num_pitch_tokens = num_pitch_tokens
        self.num_style_tokens = num_style_tokens
        self.pitch_rate = float(pitch_rate)
        self.style_rate = float(style_rate)
        self.pitch_dedup = bool(pitch_dedup)
        self.style_dedup = bool(style_dedup)
        if tokenizer is None:
            # `ProcessorMixin.__init__` type-checks every attribute and rejects None: set the fields it would set.
            self.tokenizer = None
            self.chat_template = chat_template
        else:
            super().__init__(tokenizer, chat_template=chat_template)

    @classmethod
    def from_config(cls, config: SpeechLMConfig, tokenizer=None, **kwargs) -> SpeechLMProcessor:
        """A processor with the vocabulary layout of `config` (a [`SpeechLMConfig`] or the model itself)."""
        config = getattr(config, "config", config)
        return cls(tokenizer=tokenizer, **config.vocab_layout.to_dict(), **kwargs)

    # ------------------------------------------------------------------ main entry point
    def __call__(
        self,
        text: str | list[str] | None = None,
        units=None,
        mode: str | None = None,
        words: list | None = None,
        word_start: list | None = None,
        word_end: list | None = None,
        task: str | Sequence[str] | None = None,
        first_modality: str = "speech",
        modalities: list | None = None,
        add_eos: bool = True,
        return_labels: bool = False,
        mask_prefix: bool = False,
        padding_side: str | None = None,
        return_tensors: str | None = "pt",
        pitch=None,
        style=None,
        **kwargs,
    ) -> BatchFeature:
        r"""
        Turn a batch of utterances into `input_ids` / `attention_mask` (and `labels`).

        Args:
            text (`str` or `list[str]`, *optional*): one text per utterance (`"text"`, `"concat"`), or templates
                containing `audio_token` placeholders.
            units (*optional*): one 1-D integer sequence (tensor / array / list) per utterance; for templates, one
                per placeholder, consumed in order across the batch.
            mode (`str`, *optional*): `"speech"`, `"text"`, `"concat"` or `"interleave"`. Inferred when `None`:
                `words` given -> interleave; text with placeholders -> template; units and text -> concat; else
                the one modality given.
            words, word_start, word_end (*optional*): per utterance, its words and their start / end times in
                seconds (the data builder's columns); required by `"interleave"`. `word_end` is only validated.
            modalities (*optional*): interleaving: per utterance, the modality of each word (`"speech"` /
                `"text"`; a word without unit frames is always text). `hf_slm.training.interleaving.interleave`
                draws them at random.
            task (`str` or `list[str]`, *optional*): task / language tag(s) written after `<s>`.
            first_modality (`str`, defaults to `"speech"`): order of `"concat"` (`"speech"`: ASR-like,
                `"text"`: TTS-like).
            add_eos (`bool`, defaults to `True`): end each sequence with `</s>` (leave out for prompts).
            return_labels (`bool`, defaults to `False`): also return `labels` (= `input_ids`, -100 on padding).
            mask_prefix (`bool`, defaults to `False`): set labels to -100 up to and including the marker of the
                last segment, so only the last segment (and `</s>`) is learned: e.g. the text of an ASR-like
                `"concat"` example, or the units of a TTS-like one.
            padding_side (`str`, *optional*): overrides the processor's padding side.
            pitch, style (*optional*): SpiRit-LM Expressive: per utterance, its pitch / style tokens (from
                [`ExpressiveEncoderModel.encode`]), interleaved with its units in time order (modes `"speech"` and
                `"concat"`).
            return_tensors (`str`, *optional*, defaults to `"pt"`): `"pt"` pads into tensors; `None` returns
                unpadded lists (e.g. inside `datasets.map`, padded later by [`~SpeechLMProcessor.pad`]).
            kwargs: `text_kwargs={...}` or tokenizer keyword arguments, passed to the text tokenizer.

        Returns:
            [`BatchFeature`] with `input_ids`, `attention_mask` and, with `return_labels=True`, `labels`.
        """
        if return_tensors not in ("pt", None):
            raise ValueError(f"return_tensors must be 'pt' or None, got {return_tensors!r}")
        if first_modality not in _MODALITIES:
            raise ValueError(f"first_modality must be one of {_MODALITIES}, got {first_modality!r}")
        texts = [text] if isinstance(text, str) else (None if text is None else list(text))
        unit_list = None if units is None else as_unit_sequences(units)
        mode = self._infer_mode(mode, texts, unit_list, words)
        text_kwargs = self._tokenizer_kwargs(kwargs)
        expressive = self._expressive_streams(pitch, style, unit_list, mode)

        if mode == "template":
            segments = self._template_segments(texts, unit_list, text_kwargs)
        elif mode == "speech":
            _require(unit_list, "units", mode, texts, "text")
            segments = [[("speech", self._speech_ids(u, *streams))] for u, streams in zip(unit_list, expressive)]
        elif mode == "text":
            _require(texts, "text", mode, unit_list, "units")
            segments = [[("text", self._tokenize(t, text_kwargs))] for t in texts]
        elif mode == "concat":
            if texts is None or unit_list is None or len(texts) != len(unit_list):
                raise ValueError("mode 'concat' needs as many texts as unit sequences (one of each per utterance)")
            segments = []
            for t, u, streams in zip(texts, unit_list, expressive):
                speech = ("speech", self._speech_ids(u, *streams))
                pair = [speech, ("text", self._tokenize(t, text_kwargs))]
                segments.append(pair if first_modality == "speech" else pair[::-1])
        else:
            segments = self._interleave_segments(unit_list, words, word_start, word_end, modalities, text_kwargs)

        sequences, prefix_lengths = zip(*(self._build(s, task, add_eos) for s in segments))
        data = {"input_ids": [list(s) for s in sequences], "attention_mask": [[1] * len(s) for s in sequences]}
        if return_labels:
            data["labels"] = [
                [-100] * n + list(s[n:]) if mask_prefix else list(s) for s, n in zip(sequences, prefix_lengths)
            ]
        if return_tensors is None:
            return BatchFeature(data=data)
        return self.pad(data, padding_side=padding_side)

    def pad(self, features, padding_side: str | None = None) -> BatchFeature:
        """
        Pad `input_ids` (with `<pad>`), `attention_mask` (0) and `labels` (-100) to the longest sequence; accepts a
        dict of lists or a list of per-example dicts, so it doubles as a `Trainer` data collator.
        """
        if isinstance(features, (list, tuple)):
            features = {key: [f[key] for f in features] for key in features[0]}
        padding_side = self.padding_side if padding_side is None else padding_side
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        values = {"input_ids": self.layout.pad_token_id, "attention_mask": 0, "labels": -100}
        unknown = set(features) - set(values)
        if unknown:
            raise ValueError(f"cannot pad unknown features {sorted(unknown)}; expected {sorted(values)}")
        data = {}
        for key, rows in features.items():
            rows = [torch.as_tensor(r, dtype=torch.long).flatten() for r in rows]
            longest = max(len(r) for r in rows)
            out = torch.full((len(rows), longest), values[key], dtype=torch.long)
            for i, r in enumerate(rows):
                if padding_side == "left":
                    out[i, longest - len(r) :] = r
                else:
                    out[i, : len(r)] = r
            data[key] = out
        return BatchFeature(data=data)

    # ------------------------------------------------------------------ decoding
    def decode_segments(self, token_ids, skip_special_tokens: bool = True) -> list[tuple[str, object]]:
        """
        Split one sequence into its runs: `("text", str)` (decoded by the tokenizer), `("speech", LongTensor of
        units)` and, unless skipped, `("special", name)`.
        """
        token_ids = torch.as_tensor(token_ids).long().flatten().tolist()
        segments: list[tuple[str, object]] = []
        run: list[int] = []
        run_kind = None

        def flush():
            if run_kind == "text":
                segments.append(("text", self._decode_text(run)))
            elif run_kind == "speech":  # pitch / style tokens belong to the speech run; only its units are returned
                segments.append(("speech", self.layout.token_ids_to_units(run, strict=False)))

        for token_id in token_ids:
            kind = self._kind(token_id)
            if kind != run_kind or kind == "special":
                flush()
                run, run_kind = [], kind
            if kind == "special":
                if not skip_special_tokens:
                    segments.append(("special", self.layout.token_name(token_id)))
            else:
                run.append(token_id)
        flush()
        return segments

    def interleave_expressive(self, units, pitch=None, style=None) -> list[int]:
        """Token ids of one speech segment: units and (optional) pitch / style tokens merged in time order."""
        return self._speech_ids(torch.as_tensor(units), pitch, style)

    def deinterleave(self, token_ids) -> dict[str, torch.LongTensor | None]:
        """
        Split speech token ids (anything else is skipped) into `units` `[N]` and, per unit, the pitch and style token
        in force when it was said (`pitch` / `style` `[N]`, `None` when the sequence holds none): SpiRit-LM's
        `string_to_units`, where units before the first pitch / style token take the first one.
        """
        layout = self.layout
        units, pitch, style = [], [], []
        current_pitch = current_style = first_pitch = first_style = None
        for token_id in torch.as_tensor(token_ids).long().flatten().tolist():
            if layout.is_pitch_token(token_id):
                current_pitch = token_id - layout.pitch_token_offset
                first_pitch = current_pitch if first_pitch is None else first_pitch
            elif layout.is_style_token(token_id):
                current_style = token_id - layout.style_token_offset
                first_style = current_style if first_style is None else first_style
            elif layout.is_unit_token(token_id):
                units.append(token_id - layout.unit_token_offset)
                pitch.append(current_pitch)
                style.append(current_style)

        def filled(values, first):
            return None if first is None else torch.tensor([first if v is None else v for v in values], dtype=torch.long)

        return {
            "units": torch.tensor(units, dtype=torch.long),
            "pitch": filled(pitch, first_pitch),
            "style": filled(style, first_style),
        }

    def decode(self, token_ids, skip_special_tokens: bool = False) -> str:
        """A readable string: text decoded by the tokenizer, units as `<unit_k>`, specials by name."""
        parts = []
        for kind, value in self.decode_segments(token_ids, skip_special_tokens=skip_special_tokens):
            if kind == "speech":
                parts.append("".join(f"<unit_{int(u)}>" for u in value))
            else:
                parts.append(value)
        return "".join(parts)

    def batch_decode(self, sequences, skip_special_tokens: bool = False) -> list[str]:
        return [self.decode(s, skip_special_tokens=skip_special_tokens) for s in sequences]

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask"]

    # ------------------------------------------------------------------ saving / loading without a tokenizer
    def save_pretrained(self, save_directory, push_to_hub: bool = False, **kwargs):
        if self.tokenizer is not None:
            return super().save_pretrained(save_directory, push_to_hub=push_to_hub, **kwargs)
        if push_to_hub:
            raise NotImplementedError("push_to_hub of a processor without tokenizer: save_pretrained, then upload")
        # ProcessorMixin would call tokenizer methods on None: write the processor config (and code) alone.
        os.makedirs(save_directory, exist_ok=True)
        if self._auto_class is not None:
            custom_object_save(self, save_directory, config=self)
        output_file = os.path.join(save_directory, PROCESSOR_NAME)
        self.to_json_file(output_file)
        return [output_file]

    @classmethod
    def _get_arguments_from_pretrained(cls, pretrained_model_name_or_path, processor_dict=None, **kwargs):
        hub_keys = ("cache_dir", "revision", "token", "local_files_only", "subfolder")
        lookup = {k: kwargs[k] for k in hub_keys if k in kwargs}
        has_tokenizer = cached_file(
            pretrained_model_name_or_path,
            "tokenizer_config.json",
            _raise_exceptions_for_missing_entries=False,
            _raise_exceptions_for_connection_errors=False,
            **lookup,
        )
        if has_tokenizer is None:
            return [None]
        return super()._get_arguments_from_pretrained(pretrained_model_name_or_path, processor_dict, **kwargs)

    # ------------------------------------------------------------------ internals
    def _infer_mode(self, mode, texts, unit_list, words) -> str:
        has_placeholder = texts is not None and any(self.audio_token in t for t in texts)
        if mode is None:
            if words is not None:
                mode = "interleave"
            elif has_placeholder:
                return "template"
            elif texts is not None and unit_list is not None:
                return "concat"
            elif texts is None and unit_list is None:
                raise ValueError("give `units`, `text`, or both")
            else:
                return "speech" if unit_list is not None else "text"
        if mode == "interleave" and texts is not None:
            raise ValueError("interleaving takes its text from `words`; do not pass `text` as well")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES} (or None to infer it), got {mode!r}")
        if has_placeholder:
            raise ValueError(f"text contains the placeholder {self.audio_token!r}: leave mode=None for templates")
        return mode

    def _tokenizer_kwargs(self, kwargs) -> dict:
        tokenizer = self.tokenizer
        merged = self._merge_kwargs(
            SpeechLMProcessorKwargs,
            tokenizer_init_kwargs=tokenizer.init_kwargs if tokenizer is not None else None,
            **kwargs,
        )["text_kwargs"]
        merged.setdefault("add_special_tokens", False)
        return {k: v for k, v in merged.items() if k not in _BATCH_TEXT_KWARGS}

    def _tokenize(self, text: str, text_kwargs: dict) -> list[int]:
        if self.tokenizer is None:
            raise ValueError("this processor has no text tokenizer (a speech-only model); it cannot encode text")
        return self._check_text_ids(list(self.tokenizer(text, **text_kwargs)["input_ids"]))

    def _check_text_ids(self, ids: list[int]) -> list[int]:
        bad = [i for i in ids if not 0 <= i < self.layout.text_vocab_size]
        if bad:
            raise ValueError(
                f"the tokenizer produced id {bad[0]} outside the text vocabulary [0, {self.layout.text_vocab_size})"
            )
        return ids

    def _decode_text(self, ids: list[int]) -> str:
        if self.tokenizer is None:
            return "".join(f"<text_{i}>" for i in ids)
        return self.tokenizer.decode(ids)

    def _kind(self, token_id: int) -> str:
        if 0 <= token_id < self.layout.unit_token_offset:
            return "text"
        if token_id < self.layout.special_token_offset or self.layout.pitch_token_offset <= token_id < self.layout.vocab_size:
            return "speech"
        self.layout.token_name(token_id)  # raises on an id outside the vocabulary
        return "special"

    def _build(self, segments, task, add_eos: bool) -> tuple[list[int], int]:
        """Token ids of one sequence, and where its last segment's content starts (the prefix to mask)."""
        layout = self.layout
        ids = [layout.bos_token_id, *layout.task_ids(task)]
        markers = {"speech": layout.speech_token_id, "text": layout.text_token_id}
        for modality, content in segments:
            if layout.use_modality_tokens:
                ids.append(markers[modality])
            prefix_length = len(ids)
            ids.extend(content)
        if add_eos:
            ids.append(layout.eos_token_id)
        return ids, prefix_length

    def _expressive_streams(self, pitch, style, unit_list, mode) -> list[tuple]:
        """Per utterance `(pitch, style)` (each `None` when not given), checked against the layout."""
        count = 0 if unit_list is None else len(unit_list)
        if pitch is None and style is None:
            return [(None, None)] * count
        if mode not in ("speech", "concat"):
            raise ValueError(f"pitch / style tokens are interleaved in modes 'speech' and 'concat', not {mode!r}")
        streams = []
        for name, values, size in (("pitch", pitch, self.layout.num_pitch_tokens), ("style", style, self.layout.num_style_tokens)):
            if values is None:
                streams.append([None] * count)
                continue
            if size == 0:
                raise ValueError(f"{name} tokens given but this processor has num_{name}_tokens=0")
            values = as_unit_sequences(values)
            if len(values) != count:
                raise ValueError(f"{name}: {len(values)} token sequence(s) for {count} unit sequence(s)")
            streams.append(values)
        return list(zip(*streams))

    def _speech_ids(self, units, pitch=None, style=None) -> list[int]:
        """SpiRit-LM's `units_to_string` on ids: each stream's token `i` at `i / rate`, stable-sorted by time with
        style before pitch before units at equal times."""
        layout = self.layout
        unit_ids = layout.units_to_token_ids(units).tolist()
        if pitch is None and style is None:
            return unit_ids
        timed = []
        for kind, values, rate, dedup in (
            ("style", style, self.style_rate, self.style_dedup),
            ("pitch", pitch, self.pitch_rate, self.pitch_dedup),
        ):
            if values is None:
                continue
            ids = layout.expressive_to_token_ids(values, kind).tolist()
            timed += [(i / rate, t) for i, t in enumerate(ids) if not dedup or i == 0 or t != ids[i - 1]]
        timed += [(i / self.frame_rate, t) for i, t in enumerate(unit_ids)]
        return [t for _, t in sorted(timed, key=lambda pair: pair[0])]

    def _template_segments(self, texts, unit_list, text_kwargs):
        """CSM-style placeholder expansion: each `audio_token` becomes the next utterance's units."""
        wanted = sum(t.count(self.audio_token) for t in texts)
        given = 0 if unit_list is None else len(unit_list)
        if wanted != given:
            raise ValueError(
                f"the texts hold {wanted} {self.audio_token!r} placeholder(s) but {given} unit sequence(s) were given"
            )
        queue = list(unit_list)
        batch = []
        for text in texts:
            segments = []
            pieces = text.split(self.audio_token)
            for i, piece in enumerate(pieces):
                if piece.strip():
                    segments.append(("text", self._tokenize(piece.strip(), text_kwargs)))
                if i < len(pieces) - 1:
                    segments.append(("speech", self.layout.units_to_token_ids(queue.pop(0)).tolist()))
            batch.append(segments)
        return batch

    def _interleave_segments(self, unit_list, words, word_start, word_end, modalities, text_kwargs):
        if unit_list is None or words is None or word_start is None:
            raise ValueError("mode 'interleave' needs `units`, `words` and `word_start` (and optionally `word_end`)")
        if modalities is None:
            raise ValueError(
                "mode 'interleave' needs `modalities` (per utterance, 'speech' or 'text' for each word); "
                "hf_slm.training.interleaving.interleave draws them at random (SpiRit-LM's augmentation)"
            )
        words, word_start = _per_utterance(words), _per_utterance(word_start)
        modalities = _per_utterance(modalities)
        word_end = None if word_end is None else _per_utterance(word_end)
        ends_mismatch = word_end is not None and len(word_end) != len(words)
        if not len(unit_list) == len(words) == len(word_start) == len(modalities) or ends_mismatch:
            raise ValueError(
                f"interleave needs one entry per utterance in units / words / word_start / word_end / modalities, "
                f"got {len(unit_list)} / {len(words)} / {len(word_start)} / "
                f"{None if word_end is None else len(word_end)} / {len(modalities)}"
            )
        batch = []
        for index, units in enumerate(unit_list):
            ends = None if word_end is None else word_end[index]
            bounds = self._word_frames(index, len(units), words[index], word_start[index], ends)
            chosen = list(modalities[index])
            if len(chosen) != len(words[index]) or any(m not in _MODALITIES for m in chosen):
                raise ValueError(
                    f"utterance {index}: modalities must give {_MODALITIES[0]!r} or {_MODALITIES[1]!r} for each of its "
                    f"{len(words[index])} words, got {chosen}"
                )
            batch.append(self._spans(units, words[index], bounds, chosen, text_kwargs))
        return batch

    def _word_frames(self, index, num_frames, words, starts, ends) -> np.ndarray:
        """Frame boundaries `b` such that word k owns units `[b[k], b[k+1])`; pauses go to the preceding word."""
        starts = np.asarray(starts, dtype=np.float64)
        where = f"utterance {index}"
        if len(starts) != len(words):
            raise ValueError(f"{where}: {len(words)} words but {len(starts)} word_start values")
        if len(starts) and (np.any(np.diff(starts) < 0) or starts[0] < 0):
            raise ValueError(f"{where}: word_start must be non-negative and non-decreasing, got {starts.tolist()}")
        if ends is not None:
            ends = np.asarray(ends, dtype=np.float64)
            if len(ends) != len(words) or np.any(ends < starts):
                raise ValueError(f"{where}: word_end must have one value >= word_start per word, got {ends.tolist()}")
        duration = num_frames / self.frame_rate
        last = max(starts.max(initial=0.0), ends.max(initial=0.0) if ends is not None else 0.0)
        # Tolerance: a speech tokenizer drops the last partial analysis window (a frame or two at the end).
        if last > duration + max(0.1, 2.0 / self.frame_rate):
            raise ValueError(
                f"{where}: word times reach {last:.3f} s but its {num_frames} units cover {duration:.3f} s at "
                f"frame_rate={self.frame_rate} Hz (wrong frame rate, or units of another utterance?)"
            )
        inner = np.clip(np.round(starts[1:] * self.frame_rate).astype(np.int64), 0, num_frames)
        return np.concatenate([[0], np.maximum.accumulate(inner) if len(inner) else inner, [num_frames]])

    def _spans(self, units, words, bounds, modalities, text_kwargs) -> list[tuple[str, list[int]]]:
        token_ids = self.layout.units_to_token_ids(units)
        if not words:
            return [("speech", token_ids.tolist())]
        spans = []  # [modality, first word, last word]
        for k, modality in enumerate(modalities):
            if bounds[k] == bounds[k + 1]:
                modality = "text"  # a word without frames can only be said in text
            if spans and spans[-1][0] == modality:
                spans[-1][2] = k
            else:
                spans.append([modality, k, k])
        word_tokens = None
        if any(modality == "text" for modality, _, _ in spans):
            word_tokens = self._tokens_per_word(words, text_kwargs)
        segments = []
        for modality, first, last in spans:
            if modality == "speech":
                segments.append(("speech", token_ids[bounds[first] : bounds[last + 1]].tolist()))
            elif word_tokens is not None:
                segments.append(("text", [i for k in range(first, last + 1) for i in word_tokens[k]]))
            else:
                text = " ".join(words[first : last + 1])
                segments.append(("text", self._tokenize(text if first == 0 else " " + text, text_kwargs)))
        return segments

    def _tokens_per_word(self, words, text_kwargs) -> list[list[int]] | None:
        """
        Tokenize the whole sentence once and give each token to the word it starts in (a space goes to the word
        after it), so text spans hold exactly the tokens of the full sentence whatever the tokenizer (BPE with
        `Ġ`, SentencePiece with `▁`, ...). `None` for tokenizers without offsets (each span is then tokenized
        alone, with a leading space after the first).
        """
        if self.tokenizer is None or not getattr(self.tokenizer, "is_fast", False):
            return None
        owner = []  # word index of each character of " ".join(words)
        for k, word in enumerate(words):
            owner.extend([k] * (len(word) + (1 if k else 0)))
        encoding = self.tokenizer(" ".join(words), return_offsets_mapping=True, **text_kwargs)
        ids = self._check_text_ids(list(encoding["input_ids"]))
        per_word: list[list[int]] = [[] for _ in words]
        for token_id, (start, _) in zip(ids, encoding["offset_mapping"]):
            per_word[owner[min(start, len(owner) - 1)] if owner else 0].append(token_id)
        return per_word


# ---------------------------------------------------------------------- helpers
def _check_probability(value) -> None:
    if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"switch_probability must be in [0, 1], got {value!r}")


def _require(value, name, mode, other, other_name) -> None:
    if value is None:
        raise ValueError(f"mode {mode!r} needs `{name}`")
    if other is not None:
        raise ValueError(f"mode {mode!r} takes no `{other_name}` (use mode='concat' or 'interleave' for both)")


def _per_utterance(values) -> list:
    """Accept one utterance's list (`["a", "b"]`, `[0.1, 0.5]`) or a batch of them."""
    values = list(values)
    if values and not isinstance(values[0], (list, tuple, np.ndarray, torch.Tensor)):
        return [values]
    return [list(v) for v in values]


__all__ = ["SpeechLMProcessor", "SpeechLMProcessorKwargs"]
