"""`hf-slm evaluate voice | tts | codec` on tiny saved variants (a codec-LM, an AudioLM and a VALL-E variant, random
weights) and real espeak-ng speech in two voices: speaker similarity of continuations and TTS output to the prompt,
TTS WER next to espeak-ng's, and codec resynthesis quality."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from transformers import LlamaConfig

from hf_slm import (
    AudioLMPipeline,
    MultiStreamSpeechLMConfig,
    MultiStreamSpeechLMForCausalLM,
    SpeechFeatureExtractor,
    SpeechLMPipeline,
    VallEPipeline,
)
from hf_slm.cli import main
from hf_slm.data import synthesize_dataset
from hf_slm.evaluation.voice import continue_new_audio, evaluate_continuation_voice
from hf_slm.training.valle import build_phoneme_tokenizer, phonemize_texts
from tiny_components import (
    NUM_UNITS,
    tiny_acoustic_lm,
    tiny_rvq_codec,
    tiny_speech_lm,
    tiny_unit_encoder,
    tiny_valle_ar,
    tiny_valle_nar,
)

pytest.importorskip("resemblyzer")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

TEXTS = ["the small dog runs to the red house and the cat sleeps", "many horses work quickly in the green field",
         "a big bird sings near the old tree every morning", "the tall man reads a long book by the window"]  # fmt: skip
VOICES = ["en-us", "en-us+f3"]


def codec_50hz():
    return tiny_rvq_codec(upsampling_ratios=(8, 5, 4, 2), num_codebooks=4, codebook_size=NUM_UNITS)


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """Four utterances (~2.5 s) in a male and a female voice, saved as a `datasets` folder."""
    ds = synthesize_dataset(TEXTS, voices=VOICES, rates=[150], assignment="cycle", show_progress=False,
                            cache_dir=str(tmp_path_factory.mktemp("cache")))  # fmt: skip
    path = tmp_path_factory.mktemp("speech") / "unseen"
    ds.save_to_disk(str(path))
    return path, ds


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    root = tmp_path_factory.mktemp("variants")
    codec = codec_50hz()
    fe = SpeechFeatureExtractor(sampling_rate=codec.sampling_rate, do_normalize=False)
    backbone = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=2, max_position_embeddings=512)  # fmt: skip
    lm = MultiStreamSpeechLMForCausalLM(MultiStreamSpeechLMConfig(
        text_config=backbone, stream_vocab_sizes=[NUM_UNITS] * 4, delays=[0, 1, 2, 3], frame_rate=codec.frame_rate,
    )).eval()  # fmt: skip
    codec_lm = SpeechLMPipeline(feature_extractor=fe, speech_tokenizer=codec, language_model=lm)
    audiolm = AudioLMPipeline(fe, tiny_unit_encoder("mfcc"), tiny_speech_lm(), tiny_acoustic_lm("coarse"),
                              tiny_acoustic_lm("fine", max_positions=34), codec_50hz())  # fmt: skip
    tokenizer = build_phoneme_tokenizer(phonemize_texts(TEXTS))
    valle = VallEPipeline(feature_extractor=fe, speech_tokenizer=tiny_rvq_codec(
        upsampling_ratios=(8, 5, 4, 2), num_codebooks=3, codebook_size=NUM_UNITS), tokenizer=tokenizer,
        ar_model=tiny_valle_ar(num_phonemes=len(tokenizer), frame_rate=50.0),
        nar_model=tiny_valle_nar(num_phonemes=len(tokenizer), frame_rate=50.0))  # fmt: skip
    return {name: str(pipe.save_pretrained(root / name))
            for name, pipe in (("codec_lm", codec_lm), ("audiolm", audiolm), ("valle", valle))}  # fmt: skip


def _audio(ds):
    return [{"array": a["array"], "sampling_rate": a["sampling_rate"]} for a in ds.with_format("numpy")["audio"]]


def test_continuations_are_cut_to_their_new_audio(variants, speech):
    audio = _audio(speech[1])[0]
    prompt = audio["array"][:16000]
    for name in ("codec_lm", "audiolm"):
        pipe = (AudioLMPipeline if name == "audiolm" else SpeechLMPipeline).from_pretrained(variants[name])
        new, rate = continue_new_audio(pipe, prompt, audio["sampling_rate"], new_seconds=0.5, temperature=1.0, seed=0)
        assert rate == 16000 and len(new) == 8000, (name, len(new))  # 25 frames x hop 320, the prompt cut off


def test_voice_command_ranks_the_references_and_scores_every_variant(variants, speech, tmp_path, capsys):
    out = tmp_path / "voice.json"
    pipelines = f"default,codec={variants['codec_lm']},audiolm={variants['audiolm']}"
    assert main(["evaluate", "voice", "--pipelines", pipelines, "--dataset", str(speech[0]), "--prompt-seconds", "1.2",
                 "--new-seconds", "0.6", "--output", str(out)]) == 0  # fmt: skip
    result = json.loads(out.read_text())
    assert out.with_suffix(".md").is_file() and (tmp_path / "voice.voice.png").is_file()
    assert set(result["systems"]) == {"default", "codec", "audiolm"} and result["n"] == 4
    for summary in [*result["systems"].values(), *result["references"].values()]:
        assert len(summary["per_item"]) == 4
        assert all(v is None or -1 <= v <= 1 for v in summary["per_item"])
    refs = result["references"]
    # the rest of the prompt's own utterance sounds like the prompt; the next utterance (the other voice) does not
    assert refs["same_voice"]["speaker_similarity"] > refs["other_voice"]["speaker_similarity"] + 0.05
    assert "[same_voice]" in capsys.readouterr().out


def test_tts_command_scores_the_output_next_to_espeak_ng(variants, speech, tmp_path, capsys):
    out = tmp_path / "tts.json"
    assert main(["evaluate", "tts", "--pipeline", variants["valle"], "--dataset", str(speech[0]), "--limit", "3",
                 "--output", str(out)]) == 0  # fmt: skip
    result = json.loads(out.read_text())
    assert result["n"] == 3 and [item["text"] for item in result["items"]] == [TEXTS[1], TEXTS[2], TEXTS[0]]
    assert [item["voice"] for item in result["items"]] == ["en-us", "en-us+f3", "en-us"]
    # espeak-ng in the prompt's own voice: intelligible to pocketsphinx (closed vocabulary) and close to the prompt
    assert result["espeak"]["wer"] < 0.35 and result["espeak"]["speaker_similarity"] > 0.8
    assert result["tts"]["wer"] >= 0 and math.isclose(result["wer_ratio"], result["tts"]["wer"] / result["espeak"]["wer"])
    assert "WER ratio" in capsys.readouterr().out


def test_codec_command_reports_bitrate_and_resynthesis_quality(variants, speech, tmp_path):
    out = tmp_path / "codec.json"
    assert main(["evaluate", "codec", "--pipelines", f"codec={variants['codec_lm']},default", "--dataset",
                 str(speech[0]), "--limit", "2", "--output", str(out)]) == 0  # fmt: skip
    systems = json.loads(out.read_text())["systems"]
    assert systems["codec"]["bitrate_bps"] == pytest.approx(4 * np.log2(NUM_UNITS) * 50)
    units = SpeechLMPipeline.from_pretrained("default").speech_tokenizer.config.num_units
    assert systems["default"]["bitrate_bps"] == pytest.approx(np.log2(units) * 50)  # MFCC units at 50 Hz
    for result in systems.values():
        assert result["n"] == 2 and 0 <= result["stoi"] <= 1 and result["mel_distance"] > 0
        kept = [v for v in result["per_item"]["speaker_similarity"] if v is not None]
        assert result["speaker_similarity_n"] == len(kept)
    # the default's unit vocoder keeps more of the signal than a random codec does
    assert systems["default"]["stoi"] > systems["codec"]["stoi"]


def test_codec_command_measures_a_bare_codec_folder_as_its_variant(variants, speech, tmp_path, capsys):
    """A codec saved on its own (what examples/codec writes, before any LM) scores what the variant holding the same
    codec scores; a folder holding another kind of model is refused by name."""
    bare = tmp_path / "bare_codec"
    codec_50hz().save_pretrained(bare)
    out = tmp_path / "codec.json"
    assert main(["evaluate", "codec", "--pipelines", f"variant={variants['codec_lm']},bare={bare}", "--dataset",
                 str(speech[0]), "--limit", "2", "--output", str(out)]) == 0  # fmt: skip
    systems = json.loads(out.read_text())["systems"]
    assert systems["bare"]["per_item"] == systems["variant"]["per_item"]
    assert systems["bare"]["bitrate_bps"] == systems["variant"]["bitrate_bps"]
    encoder = tmp_path / "unit_encoder"
    tiny_unit_encoder("mfcc").save_pretrained(encoder)
    assert main(["evaluate", "codec", "--pipelines", str(encoder), "--dataset", str(speech[0]), "--output", str(out)]) == 1
    assert re.search(r"unit_encoder holds a \w+, not a codec", capsys.readouterr().err)


def test_bad_input_is_refused_by_name(variants, speech, tmp_path, capsys):
    with pytest.raises(ValueError, match=r"utterances \[0, 1, 2, 3\] are shorter than"):
        evaluate_continuation_voice({"x": None}, _audio(speech[1]), prompt_seconds=30)
    out = str(tmp_path / "x.json")
    assert main(["evaluate", "voice", "--pipelines", "default,default", "--dataset", str(speech[0]), "--output", out]) == 1
    assert "names 'default' twice" in capsys.readouterr().err
    speech[1].select_columns(["audio", "text"]).save_to_disk(str(tmp_path / "no_voice"))
    assert main(["evaluate", "tts", "--pipeline", variants["valle"], "--dataset", str(tmp_path / "no_voice"),
                 "--output", out]) == 1  # fmt: skip
    assert "no column(s) ['voice', 'rate', 'pitch']" in capsys.readouterr().err


def test_voice_corpus_keeps_the_held_out_voices_and_pitches_out_of_training(tmp_path):
    import datasets

    from example_loader import ROOT, load_script

    module = load_script(ROOT / "examples" / "audiolm" / "make_voice_corpus.py")
    module.main([str(tmp_path), "--num_utterances", "6", "--num_validation", "1", "--num_unseen", "3"])
    split = json.loads((tmp_path / "voice_split.json").read_text())
    train = datasets.load_from_disk(str(tmp_path / "train_corpus"))
    unseen = datasets.load_from_disk(str(tmp_path / "unseen_voices"))
    assert (len(train["train"]), len(train["validation"]), len(unseen)) == (5, 1, 3)
    variants = {v.split("+", 1)[1] for v in unseen["voice"]}
    assert variants <= set(split["held_out_variants"])
    assert not any("+" in v and v.split("+", 1)[1] in variants for v in train["train"]["voice"])
    assert set(unseen["pitch"]) <= {42, 80} and set(train["train"]["pitch"]) <= {35, 50, 65}
    assert set(unseen["text"]).isdisjoint(train["train"]["text"])
