"""Training data for VALL-E-style TTS: a phoneme tokenizer, `(phoneme_ids, codes)` rows from audio/text pairs, and the
collator that turns rows into AR or NAR batches for `transformers.Trainer`."""

from __future__ import annotations

import torch

#: Special tokens of the phoneme tokenizer, ids 0 and 1.
PHONEME_PAD, PHONEME_UNK = "<pad>", "<unk>"


def build_phoneme_tokenizer(phoneme_sequences):
    """A word-level `PreTrainedTokenizerFast` over the phonemes seen in `phoneme_sequences` (lists of phoneme strings,
    as `hf_slm.data.phonemize` gives them), split on whitespace: `<pad>` = 0, `<unk>` = 1, then the phonemes in
    sorted order. It saves as `tokenizer.json` and loads with `AutoTokenizer` / `PreTrainedTokenizerFast`."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    symbols = sorted({p for sequence in phoneme_sequences for p in sequence})
    if not symbols:
        raise ValueError("build_phoneme_tokenizer needs at least one phoneme")
    bad = [p for p in symbols if not p or any(c.isspace() for c in p)]
    if bad:
        raise ValueError(f"phonemes must be non-empty and hold no whitespace, got {bad[:5]}")
    vocab = {PHONEME_PAD: 0, PHONEME_UNK: 1} | {p: i + 2 for i, p in enumerate(s for s in symbols if s not in (PHONEME_PAD, PHONEME_UNK))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=PHONEME_UNK))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token=PHONEME_PAD, unk_token=PHONEME_UNK)


def phonemize_texts(texts, language: str = "en-us") -> list[list[str]]:
    """espeak-ng phonemes of each text (`hf_slm.data.phonemize`)."""
    from ..data.espeak import phonemize

    return [phonemize(text, language) for text in texts]


def encode_tts_dataset(dataset, feature_extractor, codec, tokenizer, language: str = "en-us",
                       text_column: str = "text", audio_column: str = "audio", batch_size: int = 8):  # fmt: skip
    """Audio/text pairs -> rows `{"phoneme_ids": [P], "codes": [Q][T]}`: the text's espeak-ng phonemes as the
    tokenizer's ids, the audio's codec codes (`SpeechLMPipeline.encode`)."""
    from ..pipelines import SpeechLMPipeline
    from ..pipelines.valle_pipeline import text_to_phoneme_ids

    for column in (text_column, audio_column):
        if column not in dataset.column_names:
            raise ValueError(f"the dataset has no column {column!r} (columns: {dataset.column_names})")
    pipe = SpeechLMPipeline(feature_extractor=feature_extractor, speech_tokenizer=codec)

    def encode(batch):
        codes = pipe.encode(batch[audio_column])
        phonemes = [text_to_phoneme_ids(tokenizer, text, language) for text in batch[text_column]]
        return {"phoneme_ids": phonemes, "codes": [c.tolist() for c in codes]}

    return dataset.map(encode, batched=True, batch_size=batch_size, remove_columns=dataset.column_names,
                       desc="phonemes + codec codes")  # fmt: skip


class VallECollator:
    """Rows `{"phoneme_ids", "codes"}` -> the batch of `model.prepare_inputs` (a `VallEARModel`: whole utterances;
    a `VallENARModel`: a random prompt prefix and target codebook per row, drawn from torch's seeded generator).
    Train with `TrainingArguments(remove_unused_columns=False)`: the rows' columns are not the model's arguments."""

    def __init__(self, model):
        self.model = model

    def __call__(self, rows):
        if not rows:
            raise ValueError("VallECollator got an empty batch")
        phonemes = [torch.as_tensor(row["phoneme_ids"]) for row in rows]
        codes = [torch.as_tensor(row["codes"]) for row in rows]
        return self.model.prepare_inputs(phonemes, codes)


__all__ = ["PHONEME_PAD", "PHONEME_UNK", "VallECollator", "build_phoneme_tokenizer", "encode_tts_dataset",
           "phonemize_texts"]  # fmt: skip
