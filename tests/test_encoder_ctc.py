"""examples/speech_llm/pretrain_encoder_ctc.py and `hf-slm evaluate asr`: a tiny CTC encoder of ours trains with the
real Trainer on real espeak-ng speech of the held-out split, saves, loads with the Auto classes, resumes, and is
scored end to end next to real pocketsphinx; the pipeline hook (`transcribe(waveforms, sampling_rate)`) is honoured."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoModelForCTC, AutoProcessor, Wav2Vec2ForCTC, Wav2Vec2Model

from hf_slm.cli import main
from hf_slm.data import english_voices, festival_voices, normalize_sentence
from hf_slm.evaluation import PipelineASR, PocketSphinxASR, evaluate_asr, load_asr_pipeline

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "speech_llm"
AUGMENTATION = EXAMPLE.parent / "default_pipeline" / "augmentation.json"
pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
# simple sentences on which pocketsphinx's open vocabulary gets some words right from espeak-ng en-us
TEXTS = ["Good morning everyone.", "I want to go home.", "The weather is nice today."]


@pytest.fixture(scope="module")
def script():
    from example_loader import load_script

    return load_script(EXAMPLE / "pretrain_encoder_ctc.py")


def _flags(out: Path, **overrides) -> list[str]:
    overrides = {"output_dir": out, "disable_tqdm": "true"} | overrides
    return [str(EXAMPLE / "config_encoder_tiny.json")] + [x for k, v in overrides.items() for x in (f"--{k}", str(v))]


@pytest.fixture(scope="module")
def tiny_encoder(script, tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("encoder_ctc")
    return out, script.main(_flags(out))


def test_tiny_config_trains_saves_loads_and_resumes(script, tiny_encoder):
    out, results = tiny_encoder
    assert results["steps"] == 4 and results["n"] == 3 and len(results["items"]) == 3
    assert math.isfinite(results["cer"]) and results["cer"] >= 0
    assert [entry["step"] for entry in results["eval_history"]] == [4]  # Trainer's own evaluation ran, with CER
    # the held-out sentences are from the eval side of the split: none is a training sentence
    data_args, _, training_args = script.parse_arguments(_flags(out))
    train_texts, eval_texts = script.select_texts(data_args, training_args.seed)
    assert [item["text"] for item in results["items"]] == eval_texts
    assert not {normalize_sentence(t) for t in train_texts} & {normalize_sentence(t) for t in eval_texts}
    # the folder is a transformers CTC model with its processor; its encoder alone loads with AutoModel
    model, encoder = AutoModelForCTC.from_pretrained(out), AutoModel.from_pretrained(out)
    assert type(model) is Wav2Vec2ForCTC and type(encoder) is Wav2Vec2Model
    assert encoder.config.hidden_size == 32 and model.config.vocab_size == model.lm_head.out_features
    torch.testing.assert_close(encoder.encoder.layers[0].attention.q_proj.weight,
                               model.wav2vec2.encoder.layers[0].attention.q_proj.weight)  # fmt: skip
    processor = AutoProcessor.from_pretrained(out)
    vocabulary = set(processor.tokenizer.get_vocab())
    assert {ch for t in train_texts for ch in script.ctc_text(t)} - {" "} <= vocabulary
    assert processor.tokenizer.pad_token_id == 0 == model.config.pad_token_id  # the CTC blank
    ids = processor.tokenizer("the cat").input_ids
    assert processor.tokenizer.decode(ids, group_tokens=False) == "the cat"
    # rerunning the finished run returns its results; a longer run resumes from its last checkpoint
    assert script.main(_flags(out)) == results
    (Path(out) / "results.json").unlink()  # killed after its last checkpoint, before its results: ends on it
    again = script.main(_flags(out))
    assert again["steps"] == 4 and again["cer"] == results["cer"] and not (Path(out) / "checkpoint-5").exists()
    longer = script.main(_flags(out, max_steps=6, eval_steps=6))
    assert longer["steps"] == 6 and longer["resumed_from"] == "checkpoint-4"


def test_init_from_warm_starts_from_the_given_run(script, tiny_encoder, tmp_path):
    """`init_from`: a second run starts from the first run's weights and vocabulary (not a fresh model); text with
    characters outside that vocabulary is refused, naming them."""
    first, _ = tiny_encoder
    results = script.main(_flags(tmp_path / "warm", init_from=first, max_steps=2, eval_steps=2))
    assert results["init_from"] == str(first) and results["steps"] == 2
    assert AutoProcessor.from_pretrained(tmp_path / "warm").tokenizer.get_vocab() == \
        AutoProcessor.from_pretrained(first).tokenizer.get_vocab()  # fmt: skip
    warm, cold = AutoModelForCTC.from_pretrained(tmp_path / "warm"), AutoModelForCTC.from_pretrained(first)
    change = (warm.lm_head.weight - cold.lm_head.weight).abs().max()  # two Adam steps of lr 1e-3 from its weights
    assert 0 < change < 0.01
    with pytest.raises(ValueError, match="no CTC model"):
        script.main(_flags(tmp_path / "cold", init_from=tmp_path / "missing"))
    with pytest.raises(ValueError, match=r"no vocabulary entry for characters \['j', 'k'\]"):  # 16 other sentences
        script.main(_flags(tmp_path / "other", init_from=first, seed=3))


def test_augmentation_degrades_training_rows_by_row_and_epoch_and_leaves_held_out_speech_clean(script, tiny_encoder,
                                                                                                 tmp_path):
    """`augmentation`: each training row (it carries `row`) is degraded as it is batched, the same way for the same
    (epoch, row) and differently in another epoch; held-out rows are not touched; a warm-started run trains with it."""
    first, _ = tiny_encoder
    data_args, _, _ = script.parse_arguments(_flags(tmp_path))
    rows = list(script.speech(["The cat sleeps.", "A dog runs home."], ["en-us"], [175], [50], data_args, 0))
    processor = AutoProcessor.from_pretrained(first)
    clean = script.CtcCollator(processor)
    noisy = script.CtcCollator(processor, augmentation=script.SpeechAugmentation.from_config(str(AUGMENTATION)))
    training = [dict(row, row=i) for i, row in enumerate(rows)]

    def values(collator, features):  # the model's input (speed perturbation may change its length)
        return collator(features)["input_values"]

    def differs(a, b):
        return a.shape != b.shape or not torch.equal(a, b)

    torch.testing.assert_close(values(noisy, rows), values(clean, rows))  # no `row`: held-out speech stays clean
    once = values(noisy, training)
    torch.testing.assert_close(values(noisy, training), once)  # the same epoch and row: the same audio
    assert differs(once, values(clean, training))
    noisy.epoch = 1
    assert differs(values(noisy, training), once)  # another epoch: another draw
    # `voices english`: every English voice with every variant
    assert script.training_voices("english") == english_voices() and len(english_voices()) > 100
    assert script.training_voices("en-us, en-gb") == ["en-us", "en-gb"]
    # the recipe that fine-tunes speech-llm-default's encoder this way names an augmentation file that exists
    robust, _, _ = script.parse_arguments([str(EXAMPLE / "config_encoder_robust.json")])
    assert (EXAMPLE.parents[1] / robust.augmentation).is_file()
    script.SpeechAugmentation.from_config(str(EXAMPLE.parents[1] / robust.augmentation))
    # `festival` adds Festival's English voices (made from human recordings), as config_encoder_festival.json does
    festival, _, _ = script.parse_arguments([str(EXAMPLE / "config_encoder_festival.json")])
    voices = script.training_voices(festival.voices)
    assert voices == script.training_voices(robust.voices) + festival_voices() and len(festival_voices()) == 3
    results = script.main(_flags(tmp_path / "aug", init_from=first, max_steps=2, eval_steps=2,
                                 augmentation=AUGMENTATION, voices="english"))  # fmt: skip
    assert results["steps"] == 2 and math.isfinite(results["cer"])


@pytest.mark.parametrize("architecture, encoder_class", [("hubert", "HubertModel"), ("wav2vec2-bert", "Wav2Vec2BertModel")])
def test_other_architectures_build_save_and_load(script, tmp_path, architecture, encoder_class):
    data_args, model_args, _ = script.parse_arguments(_flags(tmp_path, architecture=architecture))
    processor = script.build_processor(["the cat sleeps"], tmp_path / "vocab", architecture)
    model = script.build_model(model_args, processor).eval()
    batch = script.CtcCollator(processor)([{"audio": row["audio"], "labels_text": "the cat"} for row in
                                           script.speech(["The cat sleeps."], ["en-us"], [175], [50], data_args, 0)])  # fmt: skip
    loss = model(**batch).loss
    assert torch.isfinite(loss) and loss > 0
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    assert type(AutoModel.from_pretrained(tmp_path / "model")).__name__ == encoder_class
    assert type(AutoModelForCTC.from_pretrained(tmp_path / "model")) is type(model)


def test_trainer_metrics_ignore_the_padding_of_predictions_and_labels(script, tmp_path):
    from transformers import EvalPrediction

    processor = script.build_processor(["the cat"], tmp_path)
    ids = processor.tokenizer("the cat").input_ids
    # Trainer pads the greedy ids and the labels of each batch with -100 to the longest in the evaluation
    predictions = np.array([ids + [-100] * 3, [ids[0], ids[0], 0, ids[1]] + [-100] * (len(ids) - 1)])
    labels = np.array([ids + [-100], ids[:2] + [-100] * (len(ids) - 1)])
    metrics = script.metrics_function(processor)(EvalPrediction(predictions=predictions, label_ids=labels))
    assert metrics == {"cer": 0.0, "wer": 0.0}


def test_evaluate_asr_command_end_to_end(tiny_encoder, tmp_path, capsys):
    out, _ = tiny_encoder
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TEXTS) + "\n")
    report = tmp_path / "asr.json"
    assert main(["evaluate", "asr", "--pipeline", str(out), "--texts", str(texts), "--voice", "en-us",
                 "--output", str(report)]) == 0  # fmt: skip
    result = json.loads(report.read_text())
    assert report.with_suffix(".md").is_file() and (tmp_path / "asr.error_rates.png").is_file()
    assert result["n"] == 3 and result["voice"] == "en-us" and result["rate"] == 175
    assert result["asr"] == f"transformers {out}"
    assert [item["text"] for item in result["items"]] == TEXTS
    for item in result["items"]:
        assert isinstance(item["hypothesis"], str) and item["wer"] >= 0 and item["cer"] >= 0
        assert set(item["pocketsphinx"]) == {"open", "closed"}
    assert math.isfinite(result["wer"]) and math.isfinite(result["cer"])
    sphinx = result["pocketsphinx"]
    assert 0 <= sphinx["open"]["wer"] < 1.0 and 0 <= sphinx["closed"]["wer"] < 1.0  # real figures on espeak-ng audio
    assert sphinx["closed"]["wer"] <= sphinx["open"]["wer"]
    printed = capsys.readouterr().out
    assert "pocketsphinx open" in printed and "pocketsphinx closed" in printed


class ClosedVocabularyPipeline:
    """A pipeline with the hook `transcribe(waveforms, sampling_rate) -> list[str]`, backed by real pocketsphinx."""

    def __init__(self, words):
        self.recognizer = PocketSphinxASR(vocabulary=words)
        self.calls = []

    def transcribe(self, waveforms, sampling_rate):
        self.calls.append((len(waveforms), sampling_rate))
        return [self.recognizer.transcribe(wave, sampling_rate).upper() for wave in waveforms]


def test_a_pipeline_that_transcribes_is_evaluated_in_batches():
    words = sorted({w for t in TEXTS for w in normalize_sentence(t).split()})
    pipe = ClosedVocabularyPipeline(words)
    result = evaluate_asr(pipe, TEXTS, baselines=["closed"], batch_size=2)
    assert pipe.calls == [(2, 16000), (1, 16000)]
    assert result["asr"] == "ClosedVocabularyPipeline" and [i["text"] for i in result["items"]] == TEXTS
    # the same recogniser behind the hook and as the baseline: the same transcripts (lower-cased) and WER
    assert [i["hypothesis"] for i in result["items"]] == [i["pocketsphinx"]["closed"] for i in result["items"]]
    assert result["wer"] == result["pocketsphinx"]["closed"]["wer"] < 1.0


def test_asr_loading_errors(tmp_path, capsys):
    class WrongLength:
        def transcribe(self, waveforms, sampling_rate):
            return ["one"] * (len(waveforms) + 1)

    with pytest.raises(ValueError, match="one string per waveform"):
        PipelineASR(WrongLength()).transcribe(np.zeros(1600, dtype=np.float32), 16000)
    with pytest.raises(TypeError, match="no `transcribe"):
        load_asr_pipeline(object())
    with pytest.raises(ValueError, match="SpeechLMPipeline, which has no transcribe"):
        load_asr_pipeline("default")  # the embedded unit-LM variant does not transcribe
    with pytest.raises(ValueError, match="baselines must be among"):
        evaluate_asr(PipelineASR(WrongLength()), TEXTS, baselines=["whisper"])
    texts = tmp_path / "texts.txt"
    texts.write_text("Hello there.\n")
    assert main(["evaluate", "asr", "--pipeline", "default", "--texts", str(texts), "--output", str(tmp_path / "o.json")]) != 0
    assert "no transcribe" in capsys.readouterr().err
