"""Preference data over speech continuations for TRL's `DPOTrainer` (SLAM / SpeechAlign style).

TRL tokenizes ``prompt`` / ``chosen`` / ``rejected`` strings with a tokenizer. `layout_tokenizer` is a word-level
tokenizer whose vocabulary is the model's whole layout, one name per id (``<text_i>``, ``<unit_k>``, ``<s>``,
``</s>``, ``[Speech]``, task tags), so a unit sequence written as ``"<unit_3><unit_7>"`` tokenizes to exactly the
model's ids and TRL's DPO loss runs on speech unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def layout_tokenizer(config):
    """A `PreTrainedTokenizerFast` mapping every layout id's name to that id (``config``: a `SpeechLMConfig` / model)."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    layout = getattr(config, "config", config).vocab_layout
    vocab = {layout.token_name(i): i for i in range(layout.vocab_size)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex(r"<[^<>]+>|\[[^\[\]]+\]"), "isolated")]
    )
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def units_to_string(units) -> str:
    """Units as the layout tokenizer's text: ``[3, 7]`` -> ``"<unit_3><unit_7>"``."""
    return "".join(f"<unit_{int(u)}>" for u in np.asarray(units).reshape(-1))


def build_speech_preferences(prompt_units: Sequence, chosen_units: Sequence, rejected_units: Sequence):
    """A ``datasets.Dataset`` of speech-continuation preferences in TRL's standard format.

    ``prompt`` is ``<s>[Speech]`` + the prompt's units; ``chosen`` / ``rejected`` are continuations (units), e.g.
    the real continuation of an utterance vs a sample of the model (SpeechAlign), or the better / worse of two
    samples under a judge (SLAM: a text LM scoring their transcripts).
    """
    from datasets import Dataset

    if not len(prompt_units) == len(chosen_units) == len(rejected_units) or not len(prompt_units):
        raise ValueError(
            f"need as many prompts, chosen and rejected continuations (at least one), got {len(prompt_units)} / "
            f"{len(chosen_units)} / {len(rejected_units)}"
        )
    rows = []
    for index, (p, c, r) in enumerate(zip(prompt_units, chosen_units, rejected_units)):
        if len(c) == 0 or len(r) == 0:
            raise ValueError(f"pair {index}: a continuation is empty")
        rows.append({"prompt": "<s>[Speech]" + units_to_string(p), "chosen": units_to_string(c),
                     "rejected": units_to_string(r)})  # fmt: skip
    return Dataset.from_list(rows)


__all__ = ["build_speech_preferences", "layout_tokenizer", "units_to_string"]
