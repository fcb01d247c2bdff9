"""`SpeechLLMPipeline` (issue 16): a tiny random speech LLM (HuBERT encoder, Llama LM, CTC speech decoder) with a tiny
unit vocoder, saved as a variant and reloaded; ASR on espeak-ng speech, chat with a spoken answer, the unit-count
check, `hf-slm chat`, push_to_hub / load by repo id on the loopback Hub, and the README's three-line use."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from tiny_components import NUM_UNITS, tiny_mel_vocoder, tiny_speech_llm_parts
from transformers import AutoModelForMultimodalLM, AutoProcessor

from hf_slm.cli.main import main
from hf_slm.data.builder import write_wav
from hf_slm.data.espeak import EspeakSynthesizer
from hf_slm.evaluation.metrics.error_rate.error_rate import normalize_transcript
from hf_slm.models.speech_llm import SpeechLLMForConditionalGeneration, SpeechLLMProcessor
from hf_slm.models.unit_encoder import AudioInputError
from hf_slm.pipelines import INDEX_FILE, PipelineLoadError, SpeechLLMPipeline, SpeechLMPipeline

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(scope="module")
def variant(tmp_path_factory) -> Path:
    model, processor = tiny_speech_llm_parts()
    folder = tmp_path_factory.mktemp("speech_llm") / "variant"
    SpeechLLMPipeline(processor, model, vocoder=tiny_mel_vocoder()).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def clips() -> tuple[list[np.ndarray], int]:
    """Two espeak-ng clips of different lengths, at espeak-ng's own rate (the pipeline resamples)."""
    synthesizer = EspeakSynthesizer("en-us")
    results = [synthesizer.synthesize(text) for text in ("the cat", "a dog ran far away from the mat")]
    assert len(results[0].waveform) < len(results[1].waveform) * 0.8
    return [r.waveform for r in results], results[0].sampling_rate


def test_variant_layout_and_components_load_alone(variant):
    index = json.loads((variant / INDEX_FILE).read_text())
    assert index["_class_name"] == "SpeechLLMPipeline"
    assert index["processor"] == ["hf_slm", "SpeechLLMProcessor"]
    assert index["language_model"] == ["hf_slm", "SpeechLLMForConditionalGeneration"]
    assert index["vocoder"] == ["hf_slm", "UnitMelVocoder"]
    assert type(AutoProcessor.from_pretrained(variant / "processor")) is SpeechLLMProcessor
    assert type(AutoModelForMultimodalLM.from_pretrained(variant / "language_model")) is SpeechLLMForConditionalGeneration
    assert (variant / "modeling_speech_llm.py").is_file()  # remote code at the root, for subfolder= loads
    card = (variant / "README.md").read_text()  # the model card, from model_cards/speech_llm.md
    assert "pipeline_tag: audio-text-to-text" in card and f'SpeechLLMPipeline.from_pretrained("{variant.name}")' in card
    assert "| `language_model` | `SpeechLLMForConditionalGeneration` |" in card and "| `vocoder` |" in card
    with pytest.raises(PipelineLoadError, match="SpeechLLMPipeline variant.*SpeechLLMPipeline.from_pretrained"):
        SpeechLMPipeline.from_pretrained(variant)


def test_reloaded_variant_transcribes_a_batch_like_one_by_one(variant, clips):
    waveforms, rate = clips
    model, _ = tiny_speech_llm_parts()
    pipe = SpeechLLMPipeline.from_pretrained(variant)
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(pipe.language_model.state_dict()[name], tensor, msg=name)
    kwargs = {"sampling_rate": rate, "max_new_tokens": 6, "min_new_tokens": 3}
    batch = pipe.transcribe(waveforms, **kwargs)
    assert batch == [pipe.transcribe(w, **kwargs)[0] for w in waveforms]
    assert len(batch) == 2 and all(isinstance(t, str) for t in batch)
    assert batch[0] != batch[1]  # the audio decides the text, even in a random model (padding did not erase it)
    assert pipe.transcribe(waveforms, batch_size=1, **kwargs) == batch
    with pytest.raises(AudioInputError, match="clip 0.*sampling_rate"):
        pipe.transcribe(waveforms)
    with pytest.raises(AudioInputError, match="clip 1"):
        pipe.transcribe([waveforms[0], np.full(800, np.nan, dtype=np.float32)], sampling_rate=rate)
    with pytest.raises(ValueError, match="max_new_tokens must be a positive int"):
        pipe.transcribe(waveforms, sampling_rate=rate, max_new_tokens=0)


def test_transcripts_are_cut_at_the_audio_length_bound(variant, clips):
    """`tokens_per_audio_token` bounds each clip's transcript by its audio placeholders (a model that never ends its
    answer stops there): ceil(0.01 * n) + 4 = 5 tokens here, the same text as a plain 5-token answer."""
    waveforms, rate = clips
    pipe = SpeechLLMPipeline.from_pretrained(variant)
    bounded = pipe.transcribe(waveforms, sampling_rate=rate, max_new_tokens=30, min_new_tokens=5,
                              tokens_per_audio_token=0.01)  # fmt: skip
    five = pipe.transcribe(waveforms, sampling_rate=rate, max_new_tokens=5, min_new_tokens=5,
                           tokens_per_audio_token=None)  # fmt: skip
    unbounded = pipe.transcribe(waveforms, sampling_rate=rate, max_new_tokens=30, min_new_tokens=5,
                                tokens_per_audio_token=None)  # fmt: skip
    assert bounded == five and all(len(b) < len(u) for b, u in zip(bounded, unbounded))
    with pytest.raises(ValueError, match="tokens_per_audio_token must be positive"):
        pipe.transcribe(waveforms, sampling_rate=rate, tokens_per_audio_token=0)


def test_chat_with_audio_answers_in_text_and_speech(variant, clips, tmp_path):
    waveforms, rate = clips
    pipe = SpeechLLMPipeline.from_pretrained(variant)
    write_wav(tmp_path / "question.wav", waveforms[1], rate)
    out = pipe.chat(audio=str(tmp_path / "question.wav"), text="the cat", max_new_tokens=6, min_new_tokens=3)
    assert isinstance(out.text, str) and out.text
    assert out.units and all(0 <= u < NUM_UNITS for u in out.units)
    assert out.sampling_rate == pipe.vocoder.config.sampling_rate
    assert out.waveform.dtype == np.float32 and len(out.waveform) > 0 and np.isfinite(out.waveform).all()
    assert out.messages[-1] == {"role": "assistant", "content": out.text}
    array, file_rate = sf.read(tmp_path / "question.wav", dtype="float32")
    messages = [{"role": "user", "content": [{"type": "audio", "audio": array}, {"type": "text", "text": "the cat"}]}]
    again = pipe.chat(messages, sampling_rate=file_rate, max_new_tokens=6, min_new_tokens=3)
    assert again.text == out.text and again.units == out.units  # a file and an array of the same speech
    text_only = pipe.chat("the cat sat", max_new_tokens=4, speak=False)
    assert text_only.units == [] and text_only.waveform is None


def test_vocoder_whose_unit_count_differs_from_the_speech_decoder_is_refused(tmp_path):
    model, processor = tiny_speech_llm_parts(num_units=NUM_UNITS + 4)
    with pytest.raises(PipelineLoadError, match=rf"units.num_units={NUM_UNITS + 4}.*units.num_units={NUM_UNITS}"):
        SpeechLLMPipeline(processor, model, vocoder=tiny_mel_vocoder())
    text_only, processor = tiny_speech_llm_parts(num_units=None)
    with pytest.raises(PipelineLoadError, match="has no speech decoder|has none"):
        SpeechLLMPipeline(processor, text_only, vocoder=tiny_mel_vocoder())
    # a saved variant given an incompatible vocoder afterwards is refused at load time too
    SpeechLLMPipeline(processor, model).save_pretrained(tmp_path / "variant")
    tiny_mel_vocoder().save_pretrained(tmp_path / "variant" / "vocoder")
    index = json.loads((tmp_path / "variant" / INDEX_FILE).read_text())
    (tmp_path / "variant" / INDEX_FILE).write_text(json.dumps({**index, "vocoder": ["hf_slm", "UnitMelVocoder"]}))
    with pytest.raises(PipelineLoadError, match=rf"units.num_units={NUM_UNITS + 4}.*units.num_units={NUM_UNITS}"):
        SpeechLLMPipeline.from_pretrained(tmp_path / "variant")


def test_cli_chat_runs_on_the_saved_variant(variant, clips, tmp_path, capsys):
    waveforms, rate = clips
    write_wav(tmp_path / "question.wav", waveforms[0], rate)
    argv = ["chat", str(variant), "--audio", str(tmp_path / "question.wav"), "--text", "the cat",
            "--max-new-tokens", "5", "--output", str(tmp_path / "answer.wav")]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out.splitlines()
    expected = SpeechLLMPipeline.from_pretrained(variant).chat(audio=str(tmp_path / "question.wav"), text="the cat",
                                                               max_new_tokens=5)  # fmt: skip
    assert printed[0] == expected.text and printed[-1] == f"wrote {tmp_path / 'answer.wav'}"
    audio, sr = sf.read(tmp_path / "answer.wav")
    assert sr == expected.sampling_rate and len(audio) == len(expected.waveform)
    assert main(["chat", str(variant)]) == 1
    assert "needs --text and / or --audio" in capsys.readouterr().err


def test_cli_chat_refuses_bad_audio_paths_by_name(variant, tmp_path, capsys):
    (tmp_path / "words.txt").write_text("the cat sat")
    assert main(["chat", str(variant), "--audio", str(tmp_path / "words.txt"), "--text", "the cat"]) == 1
    err = capsys.readouterr().err
    assert "words.txt': not an audio file" in err and "Traceback" not in err, err
    for bad, message in ((tmp_path / "missing.wav", "no such file"), (tmp_path, "not a file")):
        with pytest.raises(SystemExit) as exit_info:
            main(["chat", str(variant), "--audio", str(bad), "--text", "the cat"])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and f"--audio: {message}" in err and str(bad) in err, err


def test_readme_three_line_use_runs(variant, clips, tmp_path, monkeypatch):
    waveforms, rate = clips
    text = README.read_text(encoding="utf-8")
    quick_start = text.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    code = quick_start.split("```python\n", 1)[1].split("```", 1)[0]
    assert "SpeechLLMPipeline" in code and len([line for line in code.splitlines() if line.strip()]) == 3
    (tmp_path / "runs" / "speech_llm").mkdir(parents=True)
    (tmp_path / "runs" / "speech_llm" / "variant").symlink_to(variant, target_is_directory=True)
    write_wav(tmp_path / "speech.wav", waveforms[0], rate)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    pipe = namespace["pipe"]
    assert isinstance(pipe, SpeechLLMPipeline)
    assert namespace["texts"] == pipe.transcribe([str(tmp_path / "speech.wav")])


def test_cli_chat_still_runs_an_instruct_variant(capsys):
    """The same command on the embedded instruct variant goes through `SpokenChatPipeline` (its index says so)."""
    from hf_slm.pipelines import SpokenChatPipeline

    assert main(["chat", "instruct-default", "--text", "what is two plus three", "--max-new-tokens", "12"]) == 0
    expected = SpokenChatPipeline.from_pretrained("instruct-default").chat(
        "what is two plus three", max_new_tokens=12, response_modality="text", strict_modality=True
    )
    # with no --output the answer is kept in text: left free, this variant switches to speech and printed nothing
    assert expected.text.strip() and not len(expected.units)
    assert capsys.readouterr().out.splitlines()[-1] == expected.text


def test_push_to_hub_and_load_back_by_repo_id(variant, hub_server):
    """push_to_hub uploads the variant (card, remote code, components) to the loopback Hub; from_pretrained(repo id)
    gives back the same weights."""
    from conftest import HUB_USER

    pipe = SpeechLLMPipeline.from_pretrained(variant)
    pipe.push_to_hub(f"{HUB_USER}/tiny-speech-llm")
    pulled = SpeechLLMPipeline.from_pretrained(f"{HUB_USER}/tiny-speech-llm")
    assert pulled.name_or_path == f"{HUB_USER}/tiny-speech-llm"
    assert (Path(pulled.local_path) / "language_model" / "modeling_speech_llm.py").is_file()
    for name in ("language_model", "vocoder"):
        for key, tensor in getattr(pipe, name).state_dict().items():
            torch.testing.assert_close(getattr(pulled, name).state_dict()[key], tensor, msg=f"{name}.{key}")
    assert pulled.processor.tokenizer.get_vocab() == pipe.processor.tokenizer.get_vocab()


def test_evaluate_asr_transcribes_through_the_variant(variant, tmp_path, capsys):
    """`hf-slm evaluate asr --pipeline VARIANT` finds SpeechLLMPipeline by the index and calls its transcribe."""
    (tmp_path / "texts.txt").write_text("the cat sat\na dog ran far away\n")
    argv = ["evaluate", "asr", "--pipeline", str(variant), "--texts", str(tmp_path / "texts.txt"),
            "--baseline", "none", "--output", str(tmp_path / "asr.json")]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "asr.json").read_text())
    assert [item["text"] for item in report["items"]] == ["the cat sat", "a dog ran far away"]
    assert all(isinstance(item["hypothesis"], str) for item in report["items"]) and report["wer"] >= 0
    # the variant's transcribe options from the command line: one new token a clip
    argv += ["--transcribe-kwargs", '{"max_new_tokens": 1, "min_new_tokens": 1, "tokens_per_audio_token": null}']
    assert main(argv) == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "asr.json").read_text())
    assert report["transcribe_kwargs"]["max_new_tokens"] == 1
    assert all(len(item["hypothesis"].split()) <= 1 for item in report["items"])


def test_evaluate_speech_llm_tasks_scores_intent_and_spoken_answers(variant, tmp_path, capsys):
    """`hf-slm evaluate speech-llm-tasks`: every command and question is asked through chat(audio=..., text=...);
    the intent is scored against its label, each spoken answer is vocoded and heard by pocketsphinx."""
    out = tmp_path / "tasks.json"
    argv = ["evaluate", "speech-llm-tasks", "--pipeline", str(variant), "--num-examples", "2", "--output", str(out)]
    assert main(argv) == 0, capsys.readouterr().err
    result = json.loads(out.read_text())
    intent = result["intent"]
    assert intent["n"] == 2 and len(intent["items"]) == 2 and 0 <= intent["accuracy"] <= 1
    assert intent["accuracy"] == np.mean([it["prediction"] == it["intent"] for it in intent["items"]])
    spoken = result["spoken_answer"]
    assert spoken["n"] == 2 and 0 <= spoken["answered"] <= 1
    for item in spoken["items"]:  # held-out WordNet questions; an answer with text was vocoded and transcribed
        assert item["question"] and isinstance(item["asr_answer"], str)
        assert ("asr_espeak" in item) == bool(normalize_transcript(item["answer"]))
    assert (spoken["wer"] is None) == (spoken["answered"] == 0)
    assert out.with_suffix(".md").is_file()
    capsys.readouterr()
    assert main(["evaluate", "speech-llm-tasks", "--pipeline", str(variant), "--tasks", "asr", "--output", str(out)]) == 1
    assert "unknown task(s) ['asr']" in capsys.readouterr().err
