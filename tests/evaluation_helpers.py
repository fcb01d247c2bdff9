"""Tiny components for the evaluation tests: an MFCC k-means tokenizer fitted on espeak-ng speech, a tiny unit LM
(optionally trained on given texts only), a tiny Griffin-Lim vocoder, assembled into a `SpeechLMPipeline`."""

from __future__ import annotations

import csv
import random

import pytest
import soundfile as sf
import torch
from transformers import LlamaConfig

from hf_slm import (
    SpeechFeatureExtractor,
    SpeechLMConfig,
    SpeechLMForCausalLM,
    SpeechLMPipeline,
    UnitEncoderConfig,
    UnitEncoderModel,
    UnitMelVocoder,
    UnitMelVocoderConfig,
)
from hf_slm.data import EspeakSynthesizer
from hf_slm.training.kmeans import fit_unit_tokenizer

NUM_UNITS = 24


def synthesize(texts, voice="en-us", rate=175, pitch=50):
    synth = EspeakSynthesizer(voice=voice, rate=rate, pitch=pitch)
    out = []
    for text in texts:
        speech = synth.synthesize(text)
        out.append({"array": speech.waveform, "sampling_rate": speech.sampling_rate})
    return out


def fitted_tokenizer(audio, num_units=NUM_UNITS, seed=0):
    feature_extractor = SpeechFeatureExtractor()
    tokenizer = UnitEncoderModel(UnitEncoderConfig(frontend="mfcc", num_units=num_units)).eval()
    inputs = feature_extractor(audio, return_tensors="pt")
    with torch.no_grad():
        features, mask = tokenizer.extract_features(inputs["input_values"], inputs["attention_mask"])
    fit_unit_tokenizer(tokenizer, features[mask], max_steps=50, seed=seed, show_progress=False)
    return feature_extractor, tokenizer


def tiny_lm(num_units=NUM_UNITS, seed=0):
    torch.manual_seed(seed)
    backbone = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=4, max_position_embeddings=512)  # fmt: skip
    return SpeechLMForCausalLM(SpeechLMConfig(text_config=backbone, num_units=num_units)).eval()


def train_lm(lm, units, steps=200, lr=3e-3, seed=0):
    """Fit the LM on these unit sequences (full batch, `</s>` appended); returns the last loss."""
    torch.manual_seed(seed)
    input_ids, attention_mask = lm.units_to_input_ids(units, padding_side="right", add_eos=True)
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    optimizer = torch.optim.AdamW(lm.parameters(), lr=lr)
    lm.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices on a shared 2-core machine: more threads only contend
    try:
        for _ in range(steps):
            loss = lm(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    lm.eval()
    return float(loss.detach())


def tiny_vocoder(num_units=NUM_UNITS, seed=0):
    torch.manual_seed(seed)
    return UnitMelVocoder(UnitMelVocoderConfig(num_units=num_units, hidden_size=32, griffin_lim_iters=4)).eval()


def tiny_pipeline(fit_texts, train_texts=None, steps=200, with_vocoder=True):
    """A pipeline whose tokenizer is fitted on `fit_texts` and whose LM is trained on `train_texts` (if given)."""
    audio = synthesize(fit_texts)
    feature_extractor, tokenizer = fitted_tokenizer(audio)
    pipe = SpeechLMPipeline(feature_extractor=feature_extractor, speech_tokenizer=tokenizer, language_model=tiny_lm(),
                            vocoder=tiny_vocoder() if with_vocoder else None)  # fmt: skip
    if train_texts:
        train_lm(pipe.language_model, pipe.encode(synthesize(train_texts)), steps=steps)
    return pipe


#: The columns of ZeroSpeech 2021's lexical / syntactic gold.csv (zerospeech2021's lexical.py / syntactic.py).
LEXICAL_COLUMNS = ["filename", "id", "voice", "frequency", "word", "phones", "length", "correct"]
SYNTACTIC_COLUMNS = ["filename", "type", "subtype", "id", "voice", "transcription", "correct"]


def write_zerospeech_tree(root, task: str, pairs, flip: bool = False):
    """A ZeroSpeech 2021 `<root>/<task>/dev/` folder: espeak-ng wavs with random names and the challenge's gold.csv
    columns, rows shuffled (`flip` marks the wrong side correct)."""
    folder = root / task / "dev"
    folder.mkdir(parents=True)
    rng = random.Random(0)
    rows = []
    for number, pair in enumerate(pairs):
        for side, audio in zip(("good", "bad"), synthesize([pair["good"], pair["bad"]])):
            name = "".join(rng.choice("abcdefghijkLMNOPQ") for _ in range(11))
            sf.write(folder / f"{name}.wav", audio["array"], audio["sampling_rate"], subtype="PCM_16")
            correct = int((side == "good") != flip)
            if task == "lexical":
                rows.append([name, str(number), "Alex", "12", pair[side], "x y z", "3", correct])
            else:
                rows.append([name, pair["phenomenon"], "plain", str(number), "Alex", pair[side], correct])
    rng.shuffle(rows)
    with open(folder / "gold.csv", "w", newline="") as stream:
        csv.writer(stream).writerows([LEXICAL_COLUMNS if task == "lexical" else SYNTACTIC_COLUMNS] + rows)
    return folder


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny tensors on a shared 2-core machine: intra-op threads only contend (a 10x slow-down measured)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
