"""Word-level speech-text interleaving as a training augmentation (SpiRit-LM).

Each utterance's words are said in speech or in text, switching modality at a word boundary with probability
`switch_probability`; `SpeechLMProcessor` (mode ``"interleave"``) then builds the sequence from the drawn modalities
and the word timestamps::

    <s> [Text] the cat [Speech] u_k ... u_m [Text] on the mat </s>

>>> import numpy as np
>>> from hf_slm.training.interleaving import draw_modalities
>>> draw_modalities(5, "speech", 1.0, np.random.default_rng(0))
['speech', 'text', 'speech', 'text', 'speech']

`interleave(processor, units=..., words=..., word_start=..., seed=0)` draws them for a batch and calls the processor.
"""

from __future__ import annotations

import numpy as np
import torch

MODALITIES = ("speech", "text")


def draw_modalities(num_words: int, start_modality: str | None, probability: float, rng: np.random.Generator) -> list:
    """The modality of each of `num_words` words: `start_modality` (random when None) for the first, then a switch
    at each word boundary with `probability`."""
    modality = start_modality if start_modality is not None else MODALITIES[int(rng.integers(2))]
    out = []
    for k in range(num_words):
        if k > 0 and rng.random() < probability:
            modality = "text" if modality == "speech" else "speech"
        out.append(modality)
    return out


def _utterances(values) -> list:
    """One utterance's list (`["a", "b"]`) or a batch of them, as a batch."""
    values = list(values)
    if values and not isinstance(values[0], (list, tuple, np.ndarray, torch.Tensor)):
        return [values]
    return [list(v) for v in values]


def interleave(
    processor,
    units,
    words,
    word_start,
    word_end=None,
    start_modality: str | None = None,
    switch_probability: float | None = None,
    seed: int | None = None,
    **processor_kwargs,
):
    """Draw each word's modality and let `processor` build the interleaved batch.

    Args:
        processor (`SpeechLMProcessor`): builds the sequences (and labels, padding: `processor_kwargs` such as
            `return_labels=True`, `task=`, `return_tensors=None` go to its `__call__`).
        units, words, word_start, word_end: per utterance, its units and its words with their start / end times in
            seconds (the data builder's columns), or one utterance's.
        start_modality (`str`, *optional*): modality of the first word (`None`: random).
        switch_probability (`float`, *optional*): probability of switching at each word boundary (defaults to the
            processor's `switch_probability`).
        seed (`int`, *optional*): seed of the draws (`None`: fresh randomness).

    Returns:
        The processor's `BatchFeature` (`input_ids`, `attention_mask`, and `labels` when asked for).
    """
    if start_modality not in (*MODALITIES, None):
        raise ValueError(f"start_modality must be one of {MODALITIES}, got {start_modality!r}")
    probability = processor.switch_probability if switch_probability is None else switch_probability
    if not isinstance(probability, (int, float)) or not 0.0 <= probability <= 1.0:
        raise ValueError(f"switch_probability must be in [0, 1], got {probability!r}")
    rng = np.random.default_rng(seed)
    per_utterance = _utterances(words)
    modalities = [draw_modalities(len(w), start_modality, probability, rng) for w in per_utterance]
    return processor(
        units=units,
        words=per_utterance,
        word_start=word_start,
        word_end=word_end,
        mode="interleave",
        modalities=modalities,
        **processor_kwargs,
    )


__all__ = ["MODALITIES", "draw_modalities", "interleave"]
