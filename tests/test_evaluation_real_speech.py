"""Resynthesis on real speech and with a transformers ASR: the installed LibriVox / ALSA clips, `--dataset`, `--asr`.

The LibriVox clips come from Debian's pocketsphinx-testdata (`make install` installs it); the tests that read them
skip, naming the package, only where it is missing. The transformers ASR is a tiny random Wav2Vec2 CTC model saved to
a temporary folder: its transcripts are noise, so these tests check the plumbing and the errors, not accuracy.
"""

from __future__ import annotations

import json

import datasets
import numpy as np
import pytest
import soundfile as sf
import torch
from transformers import (
    Wav2Vec2Config,
    Wav2Vec2CTCTokenizer,
    Wav2Vec2FeatureExtractor,
    Wav2Vec2ForCTC,
    Wav2Vec2Processor,
)

from evaluation_helpers import one_torch_thread, synthesize, tiny_pipeline  # noqa: F401
from hf_slm.cli import main
from hf_slm.data.real_speech import (
    LIBRIVOX_DIR,
    alsa_clips,
    audio_text_columns,
    librivox_clips,
    load_local_dataset,
    load_real_speech,
    read_audio_dir,
    write_audio_dir,
)
from hf_slm.evaluation.asr import PocketSphinxASR, TransformersASR, load_asr
from hf_slm.evaluation.metrics.error_rate.error_rate import error_rate

TEXTS = ["the small dog runs to the red house", "many horses work quickly"]
needs_librivox = pytest.mark.skipif(not LIBRIVOX_DIR.is_dir(), reason="apt package pocketsphinx-testdata missing")


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("pipe") / "tiny"
    tiny_pipeline(TEXTS).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def wav2vec2_dir(tmp_path_factory):
    """A tiny random Wav2Vec2 CTC model, its character tokenizer and feature extractor, as save_pretrained writes."""
    folder = tmp_path_factory.mktemp("asr")
    vocab = {"<pad>": 0, "<unk>": 1, "|": 2, **{c: i + 3 for i, c in enumerate("abcdefghijklmnopqrstuvwxyz'")}}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    tokenizer = Wav2Vec2CTCTokenizer(str(folder / "vocab.json"), word_delimiter_token="|")
    feature_extractor = Wav2Vec2FeatureExtractor(sampling_rate=16000, return_attention_mask=True)
    config = Wav2Vec2Config(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=64, conv_dim=(32, 32), conv_stride=(5, 4), conv_kernel=(10, 8),
                            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, pad_token_id=0)  # fmt: skip
    torch.manual_seed(0)
    model_dir = folder / "wav2vec2-tiny"
    Wav2Vec2Processor(feature_extractor=feature_extractor, tokenizer=tokenizer).save_pretrained(model_dir)
    Wav2Vec2ForCTC(config).save_pretrained(model_dir)
    return str(model_dir)


@needs_librivox
def test_librivox_clips_are_read_with_their_transcripts(tmp_path):
    audio, texts = load_real_speech("librivox")
    assert len(audio) == len(texts) == 5
    assert texts[1] == "he was not an ill disposed young man"  # "<s> ... </s> (id)" stripped
    info = sf.info(audio[1])
    assert info.samplerate == 16000 and 2.5 < info.duration < 3.5
    # the --audio-dir layout round-trips
    folder = write_audio_dir(audio[:2], texts[:2], tmp_path / "clips")
    assert read_audio_dir(folder) == ([str(folder / p.split("/")[-1]) for p in audio[:2]], texts[:2])
    # pocketsphinx (open vocabulary) on real read speech: far better than on espeak-ng (docs/evaluation.md)
    hypothesis = PocketSphinxASR().transcribe(*sf.read(audio[4], dtype="float32"))
    assert error_rate([hypothesis], texts[4:5])["wer"] < 0.3


@needs_librivox
def test_cards_clips_are_another_speaker_with_their_transcripts():
    """`cards`: pocketsphinx-testdata's second set of recordings, read from its own transcription file; a voice
    other than the LibriVox reader's (what makes it worth a second source)."""
    from hf_slm.evaluation.metrics.speaker_similarity.speaker_similarity import speaker_similarity
    from hf_slm.models.unit_encoder import load_audio

    audio, texts = load_real_speech("cards")
    assert len(audio) == len(texts) == 5 and texts[0] == "ten of clubs" and audio[0].endswith("cards/001.wav")
    assert all(sf.info(path).samplerate == 16000 for path in audio)
    cards = [load_audio(path, 16000) for path in audio]
    reader = [load_audio(path, 16000) for path in load_real_speech("librivox")[0]]
    within = speaker_similarity(cards[4], cards[1], 16000)
    across = speaker_similarity(cards[4], reader[1], 16000)
    assert within > across + 0.05
    hypothesis = PocketSphinxASR().transcribe(cards[4], 16000)  # real speech: pocketsphinx gets most of it
    assert error_rate([hypothesis], texts[4:5])["wer"] < 0.5


def test_alsa_clips_take_their_transcript_from_the_file_name(tmp_path):
    for name in ("Front_Left", "Rear_Center", "Noise"):
        sf.write(tmp_path / f"{name}.wav", np.zeros(4800, dtype=np.float32), 48000)
    assert alsa_clips(tmp_path) == ([str(tmp_path / "Front_Left.wav"), str(tmp_path / "Rear_Center.wav")],
                                    ["front left", "rear center"])  # Noise.wav holds no speech  # fmt: skip


def test_missing_clips_name_the_apt_package(tmp_path):
    with pytest.raises(FileNotFoundError, match="no 'transcription' file"):
        librivox_clips(tmp_path)
    with pytest.raises(ValueError, match="unknown real-speech source 'x'"):
        load_real_speech("x")
    from hf_slm.data import real_speech

    real_speech.REAL_SPEECH_SOURCES["missing"] = (tmp_path / "nothing", "some-debian-package")
    try:
        with pytest.raises(FileNotFoundError, match="apt-get install some-debian-package"):
            real_speech._require_folder("missing")
    finally:
        del real_speech.REAL_SPEECH_SOURCES["missing"]


@needs_librivox
def test_cli_resynthesis_of_librivox_on_the_default_pipeline(tmp_path, capsys):
    out = tmp_path / "librivox.json"
    assert main(["evaluate", "resynthesis", "--pipeline", "default", "--real-speech", "librivox", "--limit", "2",
                 "--output", str(out)]) == 0  # fmt: skip
    result = json.loads(out.read_text())
    assert result["n"] == 2 and result["asr"].startswith("pocketsphinx en-us (closed vocabulary")
    assert result["items"][0]["text"].startswith("and mister john dashwood")
    # real speech is recognised well; the default's units + vocoder lose some of it
    assert result["wer_original"] < 0.3 and result["wer_original"] < result["wer_resynthesized"]
    assert 0 < result["mel_distance"] < 5
    assert result["real_speech"] == "librivox" and "texts" not in result  # the card keeps it apart from espeak-ng


@needs_librivox
def test_cli_asr_of_librivox_is_kept_apart_and_reaches_the_card(tmp_path, capsys):
    """`evaluate asr --real-speech`: the recogniser on recordings, next to pocketsphinx on the same audio."""
    from hf_slm.pipelines.model_card import collect_eval_results, render_model_card

    out = tmp_path / "asr_librivox.json"
    assert main(["evaluate", "asr", "--pipeline", "pocketsphinx", "--real-speech", "librivox", "--limit", "2",
                 "--baseline", "open,closed", "--output", str(out)]) == 0  # fmt: skip
    result = json.loads(out.read_text())
    assert result["n"] == 2 and result["real_speech"] == "librivox" and result["voice"] is None
    assert result["items"][0]["text"].startswith("and mister john dashwood")
    # the same recogniser as the open baseline, on the same audio: the same transcripts; real speech is recognised
    assert [i["hypothesis"] for i in result["items"]] == [i["pocketsphinx"]["open"] for i in result["items"]]
    assert result["wer"] == result["pocketsphinx"]["open"]["wer"] < 0.5
    assert result["pocketsphinx"]["closed"]["wer"] <= result["pocketsphinx"]["open"]["wer"]
    assert "recordings" in capsys.readouterr().out
    summary = collect_eval_results([out])
    assert set(summary) == {"asr_real_speech"} and summary["asr_real_speech"]["pocketsphinx_open_wer"] == result["wer"]
    card = render_model_card(tiny_pipeline(TEXTS), eval_results=summary, repo_id="me/x")
    assert f"| ASR, real speech (`librivox`, n=2) | WER / CER (pocketsphinx open-vocabulary) | {result['wer']:.3f}" in card.text


@needs_librivox
def test_cli_tts_with_recorded_prompts_is_kept_apart(tmp_path, capsys):
    """`evaluate tts --real-speech`: recordings as voice prompts, espeak-ng's reference in --voice."""
    from hf_slm.pipelines.model_card import collect_eval_results

    out = tmp_path / "tts_librivox.json"
    assert main(["evaluate", "tts", "--pipeline", "tts-default", "--real-speech", "librivox", "--limit", "2",
                 "--output", str(out)]) == 0, capsys.readouterr().err  # fmt: skip
    result = json.loads(out.read_text())
    assert result["n"] == 2 and result["real_speech"] == "librivox" and "dataset" not in result
    assert [item["voice"] for item in result["items"]] == ["en-us", "en-us"]
    _, texts = load_real_speech("librivox")
    assert [item["text"] for item in result["items"]] == [texts[1], texts[0]]  # each prompt says the next clip's text
    assert result["espeak"]["wer"] < 1.0 and result["espeak"]["n"] == 2  # espeak-ng's rendering is recognised
    assert set(collect_eval_results([out])) == {"tts_real_speech"}
    assert main(["evaluate", "tts", "--pipeline", "tts-default", "--output", str(out)]) == 1
    assert "exactly one of --dataset" in capsys.readouterr().err


@needs_librivox
def test_cli_voice_and_codec_of_recordings_are_kept_apart(tmp_path, capsys):
    from hf_slm.pipelines.model_card import collect_eval_results

    voice, codec = tmp_path / "voice.json", tmp_path / "codec.json"
    assert main(["evaluate", "voice", "--pipelines", "codec-default", "--real-speech", "librivox", "--limit", "2",
                 "--prompt-seconds", "2.4", "--output", str(voice)]) == 0, capsys.readouterr().err  # fmt: skip
    assert main(["evaluate", "codec", "--pipelines", "codec-default", "--real-speech", "librivox", "--limit", "2",
                 "--output", str(codec)]) == 0, capsys.readouterr().err  # fmt: skip
    result = json.loads(voice.read_text())
    assert result["real_speech"] == "librivox" and result["systems"]["codec-default"]["n"] == 2
    same = result["references"]["same_voice"]["speaker_similarity"]
    assert 0 < same <= 1  # the rest of each recording, Resemblyzer's cosine
    assert json.loads(codec.read_text())["systems"]["codec-default"]["n"] == 2
    assert set(collect_eval_results([voice, codec])) == {"voice_real_speech", "codec_real_speech"}
    assert main(["evaluate", "codec", "--pipelines", "codec-default", "--output", str(codec)]) == 1
    assert "exactly one of --dataset" in capsys.readouterr().err


def test_cli_asr_of_an_audio_folder_and_mismatched_audio(wav2vec2_dir, tmp_path):
    from hf_slm.evaluation import evaluate_asr

    audio = synthesize(TEXTS)
    for i, item in enumerate(audio):
        sf.write(tmp_path / f"u{i}.wav", item["array"], item["sampling_rate"])
    folder = write_audio_dir([tmp_path / f"u{i}.wav" for i in range(2)], TEXTS, tmp_path / "clips")
    out = tmp_path / "asr.json"
    assert main(["evaluate", "asr", "--pipeline", wav2vec2_dir, "--audio-dir", str(folder), "--baseline", "closed",
                 "--output", str(out)]) == 0  # fmt: skip
    result = json.loads(out.read_text())
    assert result["n"] == 2 and result["audio_dir"] == "clips" and result["voice"] is None
    assert sorted(i["text"] for i in result["items"]) == sorted(TEXTS)
    assert result["pocketsphinx"]["closed"]["wer"] < 0.5  # espeak-ng speech read back from the folder
    with pytest.raises(ValueError, match="2 audio items for 1 texts"):
        evaluate_asr(wav2vec2_dir, TEXTS[:1], audio=audio)


def test_cli_resynthesis_from_a_dataset(pipeline_dir, tmp_path):
    audio = synthesize(TEXTS)
    for i, item in enumerate(audio):
        sf.write(tmp_path / f"u{i}.wav", item["array"], item["sampling_rate"])
    ds = datasets.Dataset.from_dict({"speech": [str(tmp_path / f"u{i}.wav") for i in range(2)], "sentence": TEXTS})
    ds.cast_column("speech", datasets.Audio()).save_to_disk(str(tmp_path / "saved"))
    decoded, texts = audio_text_columns(load_local_dataset(tmp_path / "saved"), "speech", "sentence")
    assert texts == TEXTS and decoded[0]["sampling_rate"] == audio[0]["sampling_rate"]
    np.testing.assert_allclose(decoded[0]["array"], audio[0]["array"], atol=1e-4)  # 16-bit wav round trip
    # a JSONL file of relative paths, read by load_dataset("json")
    (tmp_path / "data.jsonl").write_text("".join(json.dumps({"path": f"u{i}.wav", "text": t}) + "\n"
                                                 for i, t in enumerate(TEXTS)))  # fmt: skip
    out = tmp_path / "from_jsonl.json"
    assert main(["evaluate", "resynthesis", "--pipeline", pipeline_dir, "--dataset", str(tmp_path / "data.jsonl"),
                 "--audio-column", "path", "--output", str(out)]) == 0  # fmt: skip
    from_jsonl = json.loads(out.read_text())
    out = tmp_path / "from_saved.json"
    assert main(["evaluate", "resynthesis", "--pipeline", pipeline_dir, "--dataset", str(tmp_path / "saved"),
                 "--audio-column", "speech", "--text-column", "sentence", "--output", str(out)]) == 0  # fmt: skip
    from_saved = json.loads(out.read_text())
    assert from_jsonl["n"] == from_saved["n"] == 2
    assert (from_jsonl["dataset"], from_saved["dataset"]) == ("data.jsonl", "saved") and "real_speech" not in from_saved
    assert [i["text"] for i in from_jsonl["items"]] == [i["text"] for i in from_saved["items"]] == TEXTS
    with pytest.raises(ValueError, match="no column 'audio'"):
        audio_text_columns(load_local_dataset(tmp_path / "saved"))


def test_cli_resynthesis_with_a_transformers_asr(pipeline_dir, wav2vec2_dir, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text(TEXTS[0] + "\n")
    out = tmp_path / "w2v.json"
    assert main(["evaluate", "resynthesis", "--pipeline", pipeline_dir, "--texts", str(texts), "--asr", wav2vec2_dir,
                 "--output", str(out)]) == 0  # fmt: skip
    result = json.loads(out.read_text())
    assert result["asr"] == f"transformers {wav2vec2_dir}" and result["n"] == 1
    assert isinstance(result["items"][0]["asr_original"], str)  # random weights: any characters of its vocabulary
    assert np.isfinite(result["wer_original"]) and np.isfinite(result["mel_distance"])


def test_asr_errors_name_the_problem(pipeline_dir, wav2vec2_dir, tmp_path, capsys):
    asr = load_asr(wav2vec2_dir)
    assert isinstance(asr, TransformersASR) and isinstance(asr.transcribe(np.zeros(8000), 8000), str)
    with pytest.raises(ValueError, match="local folder is not an automatic-speech-recognition model"):
        load_asr(f"{pipeline_dir}/language_model")  # a speech LM, not an ASR model
    with pytest.raises(ValueError, match="pocketsphinx only"):
        load_asr(wav2vec2_dir, vocabulary=["yes"])
    texts = tmp_path / "texts.txt"
    texts.write_text(TEXTS[0] + "\n")
    args = ["evaluate", "resynthesis", "--pipeline", pipeline_dir, "--texts", str(texts), "--output",
            str(tmp_path / "o.json")]  # fmt: skip
    # run-time refusals: one line on stderr and status 1 (argparse's own errors are status 2)
    assert main(args + ["--asr", str(tmp_path)]) == 1
    assert "not an automatic-speech-recognition model" in capsys.readouterr().err
    assert main(args + ["--asr", wav2vec2_dir, "--vocabulary", "open"]) == 1
    assert "pocketsphinx only" in capsys.readouterr().err
    assert main(args + ["--dataset", str(tmp_path)]) == 1
    assert "exactly one of --texts" in capsys.readouterr().err
