"""Speech LLM task rows on real espeak-ng speech: ASR, spoken QA (WordNet), SLU intent, spoken answers; one schema."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from datasets import concatenate_datasets

from hf_slm.data import EspeakSynthesizer, normalize_sentence
from hf_slm.data.corpus import WORDNET_DIR
from hf_slm.instruct import (
    add_answer_units,
    build_speech_asr,
    build_spoken_answers,
    build_spoken_intent,
    build_spoken_qa,
    speech_llm_features,
    synthetic_qa_pairs,
    synthetic_slu_commands,
    word_level_tokenizer,
    wordnet_qa_pairs,
)

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
needs_wordnet = pytest.mark.skipif(not (WORDNET_DIR / "data.noun").is_file(), reason="apt package wordnet-base missing")
VOICES = ("en-us", "en-gb+f2")


@pytest.fixture
def speech(tmp_path):
    return {"voices": VOICES, "rates": (150, 200), "pitches": (40, 60), "sampling_rate": 16000, "cache_dir": tmp_path}


def samples(value) -> np.ndarray:
    return value.get_all_samples().data.mean(0).numpy()


def check_rows(dataset, task, spoken, answers):
    assert dataset.features == speech_llm_features(16000)
    assert dataset["task"] == [task] * len(spoken)
    assert dataset["transcript"] == list(spoken) and dataset["reference"] == list(answers)
    for row, answer in zip(dataset, answers):
        user, assistant = row["messages"]
        assert user["role"] == "user" and [item["type"] for item in user["content"]] == ["text", "audio"]
        assert user["content"][0]["text"] and user["content"][1]["text"] is None
        assert assistant == {"role": "assistant", "content": [{"type": "text", "text": answer}]}
        assert row["voice"] in VOICES and row["rate"] in (150, 200) and row["pitch"] in (40, 60)
        audio = samples(row["audio"])
        assert row["audio"].metadata.sample_rate == 16000 and len(audio) > 8000 and np.abs(audio).max() > 0.05


def test_asr_rows_and_one_schema_for_every_task(speech):
    texts = ["The cat sleeps on the mat.", "Two birds sing quietly."]
    asr = build_speech_asr(texts, seed=1, **speech)
    check_rows(asr, "asr", texts, texts)
    assert all(row["answer_audio"] is None for row in asr)
    for row in asr:  # each row's audio is its transcript in its own voice, rate and pitch
        spoken = EspeakSynthesizer(row["voice"], rate=row["rate"], pitch=row["pitch"]).synthesize(row["transcript"])
        assert abs(len(samples(row["audio"])) - len(spoken.waveform) * 16000 / spoken.sampling_rate) <= 2
    commands = synthetic_slu_commands(3, seed=0)
    intent = build_spoken_intent(commands, **speech)
    check_rows(intent, "intent", [c["text"] for c in commands], [c["intent"].replace("_", " ") for c in commands])
    mixed = concatenate_datasets([asr, intent])
    assert len(mixed) == 5 and mixed.features == asr.features
    # the same inputs give the same rows (the speech comes from the cache)
    again = build_speech_asr(texts, seed=1, **speech)
    assert again["messages"] == asr["messages"] and again["voice"] == asr["voice"]


def test_spoken_answers_carry_answer_audio_in_one_voice(speech):
    pairs = synthetic_qa_pairs(3, seed=2)
    rows = build_spoken_answers(pairs, answer_voice="en-us", answer_rate=175, **speech)
    check_rows(rows, "spoken_answer", [q for q, _ in pairs], [a for _, a in pairs])
    answers = [samples(row["answer_audio"]) for row in rows]
    assert all(len(a) > 8000 for a in answers)
    qa = build_spoken_qa(pairs, **speech)
    check_rows(qa, "spoken_qa", [q for q, _ in pairs], [a for _, a in pairs])
    # a repeated answer text is the same waveform: one voice, rate and pitch for every answer
    same = build_spoken_answers([pairs[0], pairs[0]], **speech)
    np.testing.assert_array_equal(samples(same[0]["answer_audio"]), samples(same[1]["answer_audio"]))


def test_answer_units_are_the_default_unit_encoders_ids_of_the_answer_audio(speech):
    """Stage 3's targets: the embedded default's units of each spoken answer (its vocoder speaks them); rows without
    answer audio get None."""
    from hf_slm.pipelines import SpeechLMPipeline

    default = SpeechLMPipeline.from_pretrained("default")
    pairs = synthetic_qa_pairs(2, seed=5)
    rows = concatenate_datasets([build_spoken_answers(pairs, **speech), build_spoken_qa(pairs[:1], **speech)])
    units = add_answer_units(rows, pipeline=default)["units"]
    assert units[2] is None
    for row, row_units in zip(rows.select(range(2)), units):
        audio = samples(row["answer_audio"])
        assert row_units == default.encode([audio], sampling_rate=16000)[0].tolist()
        assert abs(len(row_units) - len(audio) / 320) <= 2 and 0 <= min(row_units) and max(row_units) < default.speech_tokenizer.config.num_units
    with pytest.raises(ValueError, match="answer_audio"):
        add_answer_units(rows.remove_columns("answer_audio"), pipeline=default)


@needs_wordnet
def test_open_vocabulary_wordnet_questions_keep_eval_words_out_of_train():
    train, held_out = wordnet_qa_pairs(400, seed=0), wordnet_qa_pairs(50, seed=0, split="eval")
    assert wordnet_qa_pairs(400, seed=0) == train and len(set(train)) == 400
    assert all(q.endswith("?") and a.endswith(".") for q, a in train + held_out)
    def subject(question, answer):  # the word asked about: the answer of "which word", the topic of "what does"
        return normalize_sentence(answer.split(" means ")[0])
    assert not {subject(*p) for p in train} & {subject(*p) for p in held_out}
    with pytest.raises(ValueError, match="`n` must be"):
        wordnet_qa_pairs(0)


def test_rows_train_the_speech_llm_through_its_collator(speech):
    """The rows feed `SpeechLLMCollator` as they are (decoded Audio, list-of-items answers): a finite loss on the
    answer tokens only, for two encoder families."""
    from transformers import HubertConfig, LlamaConfig, Wav2Vec2FeatureExtractor

    from hf_slm.models.speech_llm import (
        SpeechLLMConfig,
        SpeechLLMForConditionalGeneration,
        SpeechLLMProcessor,
        add_speech_llm_tokens,
    )
    from hf_slm.training.speech_llm import SpeechLLMCollator

    texts = ["The cat sleeps.", "Two birds sing."]
    rows = concatenate_datasets([build_speech_asr(texts, **speech), build_spoken_intent(synthetic_slu_commands(2), **speech)])
    tokenizer = word_level_tokenizer([*rows["reference"], *(m[0]["content"][0]["text"] for m in rows["messages"])])
    add_speech_llm_tokens(tokenizer)
    audio_config = HubertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                                conv_dim=(8,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)  # fmt: skip
    text_config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=4, num_key_value_heads=2)  # fmt: skip
    config = SpeechLLMConfig(audio_config=audio_config, text_config=text_config,
                             projector_config={"projector_type": "stack_mlp", "downsample": 4, "hidden_size": 48},
                             audio_token_id=tokenizer.convert_tokens_to_ids("<|audio|>"))  # fmt: skip
    model = SpeechLLMForConditionalGeneration(config)
    processor = SpeechLLMProcessor.from_config(config, Wav2Vec2FeatureExtractor(return_attention_mask=True), tokenizer)
    batch = SpeechLLMCollator(processor)([rows[i] for i in range(len(rows))])
    for i, answer in enumerate(rows["reference"]):
        labelled = batch["labels"][i][batch["labels"][i] != -100]
        assert labelled.tolist() == tokenizer(answer + "<|im_end|>\n", add_special_tokens=False).input_ids
    assert torch.isfinite(model(**batch).loss)


def test_bad_rows_are_refused(speech):
    with pytest.raises(ValueError, match="nothing to speak"):
        build_speech_asr([], **speech)
    with pytest.raises(ValueError, match=r"commands\[0\]"):
        build_spoken_intent([{"text": "turn on the lights"}], **speech)
    with pytest.raises(ValueError, match="answer 0"):
        build_spoken_qa([("what is one plus one", " ")], **speech)
