"""Codec-LM variants end to end: a codec speech tokenizer (ours and transformers') + a multi-stream LM, in one
`SpeechLMPipeline`; the codec decodes its own codes (no separate vocoder)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import DacConfig, EncodecConfig, HubertConfig, LlamaConfig, MimiConfig, XcodecConfig
from transformers.generation.streamers import BaseStreamer

from hf_slm import (
    CodecConfig,
    CodecModel,
    MultiStreamSpeechLMConfig,
    MultiStreamSpeechLMForCausalLM,
    MelRVQCodecConfig,
    MelRVQCodecModel,
    RVQCodecConfig,
    RVQCodecModel,
    SpeechFeatureExtractor,
    SpeechLMPipeline,
)
from hf_slm.data import EspeakSynthesizer
from hf_slm.pipelines import PipelineLoadError
from tiny_components import random_codebooks, tiny_unit_encoder


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def rvq_codec():
    return RVQCodecModel(RVQCodecConfig(upsampling_ratios=(4, 4), num_filters=4, hidden_size=8, num_codebooks=3,
                                        codebook_size=16, mel_n_fft=128, mel_hop_length=32, mel_win_length=128,
                                        num_mel_bins=16, mpd_periods=(2, 3), mpd_channels=(4, 8, 8, 8, 8),
                                        msd_num_scales=1, msd_channels=(16,) * 7))  # fmt: skip


def encodec():
    config = EncodecConfig(sampling_rate=16000, hidden_size=16, num_filters=4, upsampling_ratios=[4, 4],
                           num_lstm_layers=1, codebook_size=64, target_bandwidths=[6.0, 12.0, 24.0])  # fmt: skip
    return CodecModel(CodecConfig(codec_config=config, num_codebooks=2))


def mimi():
    config = MimiConfig(sampling_rate=16000, hidden_size=16, num_filters=4, upsampling_ratios=[4, 2],
                        num_hidden_layers=1, intermediate_size=32, num_attention_heads=2, num_key_value_heads=2,
                        codebook_size=64, codebook_dim=8, num_quantizers=4, vector_quantization_hidden_dimension=8,
                        upsample_groups=16)  # fmt: skip
    return CodecModel(CodecConfig(codec_config=config, num_codebooks=3))


def dac():
    config = DacConfig(encoder_hidden_size=4, downsampling_ratios=[4, 4], decoder_hidden_size=16, n_codebooks=4,
                       codebook_size=64, codebook_dim=4)  # fmt: skip
    return CodecModel(CodecConfig(codec_config=config, num_codebooks=2))


def xcodec():
    """X-codec: a DAC acoustic branch (hop 8*5*4*2 = 320) fused with a tiny HuBERT semantic branch."""
    semantic = HubertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
                            conv_dim=(8,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)  # fmt: skip
    acoustic = dict(model_type="dac", encoder_hidden_size=4, downsampling_ratios=[8, 5, 4, 2],
                    upsampling_ratios=[8, 5, 4, 2], decoder_hidden_size=16, hidden_size=16)  # fmt: skip
    config = XcodecConfig(acoustic_model_config=acoustic, semantic_model_config=semantic, codebook_size=64,
                          target_bandwidths=[0.3, 0.6])  # fmt: skip
    return CodecModel(CodecConfig(codec_config=config, num_codebooks=2))


def mel_codec():
    return MelRVQCodecModel(MelRVQCodecConfig(hop_length=16, n_fft=128, num_mel_bins=16, num_codebooks=3,
                                              codebook_size=16, griffin_lim_iters=4))  # fmt: skip


CODECS = {"rvq": rvq_codec, "mel": mel_codec, "encodec": encodec, "dac": dac, "mimi": mimi, "xcodec": xcodec}
HOPS = {"rvq": 16, "mel": 16, "encodec": 16, "dac": 16, "mimi": 16, "xcodec": 320}  # samples per frame at 16 kHz


def codec_lm(codec, num_codebooks=None, delays=None, depth=False, pattern="delay"):
    q = num_codebooks or codec.num_codebooks
    backbone = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=2, max_position_embeddings=2048)  # fmt: skip
    config = MultiStreamSpeechLMConfig(
        text_config=backbone, stream_vocab_sizes=[codec.codebook_size] * q, delays=delays,
        use_depth_transformer=depth, depth_hidden_size=16, depth_num_hidden_layers=1, depth_num_attention_heads=2,
        frame_rate=codec.frame_rate, pattern=pattern,
    )  # fmt: skip
    return MultiStreamSpeechLMForCausalLM(config).eval()


def build(kind, seed=0, **lm_kwargs):
    torch.manual_seed(seed)
    codec = random_codebooks(CODECS[kind]()).eval()
    return SpeechLMPipeline(
        feature_extractor=SpeechFeatureExtractor(sampling_rate=codec.sampling_rate, do_normalize=False),
        speech_tokenizer=codec,
        language_model=codec_lm(codec, **lm_kwargs),
    )


@pytest.fixture(scope="module")
def prompt():
    speech = EspeakSynthesizer().synthesize("hello there")
    return {"array": speech.waveform[: int(0.4 * speech.sampling_rate)], "sampling_rate": speech.sampling_rate}


@pytest.mark.parametrize("kind", sorted(CODECS))
def test_codec_lm_variant_round_trip(kind, prompt, tmp_path):
    pipe = build(kind, delays=[0] * 2 if kind == "encodec" else None, depth=kind == "rvq")
    pipe.save_pretrained(tmp_path / "variant")
    loaded = SpeechLMPipeline.from_pretrained(tmp_path / "variant")
    assert loaded.components.keys() == {"feature_extractor", "speech_tokenizer", "language_model"}
    codec = loaded.speech_tokenizer
    assert loaded.decoder is codec and loaded.sampling_rate == codec.sampling_rate
    assert (codec.hop_length, codec.sampling_rate) == (HOPS[kind], 16000)

    codes = loaded.encode(prompt)[0]
    frames = int(np.ceil(0.4 * codec.sampling_rate / codec.hop_length))
    assert codes.unique().numel() > 1  # real codes, not one repeated (zero-initialised) codebook entry
    assert codes.shape == (codec.num_codebooks, frames) and codes.dtype == torch.long

    out = loaded.continue_speech(prompt, max_new_tokens=7, seed=0)
    assert out.units[0].shape == (codec.num_codebooks, 7)
    assert torch.equal(out.prompt_units[0], codes)
    assert int(out.units[0].max()) < codec.codebook_size
    assert out.sampling_rate == codec.sampling_rate
    assert len(out.waveforms[0]) == (frames + 7) * codec.hop_length  # prompt + continuation at the codec's rate
    assert np.isfinite(out.waveforms[0]).all()
    # the same seed gives the same continuation from the saved variant as from the one in memory
    assert torch.equal(pipe.continue_speech(prompt, max_new_tokens=7, seed=0).units[0], out.units[0])
    # a token streamer gets each new frame [1, Q] while generating, the same frames and draws
    frames_seen = []
    streamer = type("Collect", (BaseStreamer,), {"put": lambda self, v: frames_seen.append(v), "end": lambda self: None})()
    streamed = loaded.continue_speech(prompt, max_new_tokens=7, seed=0, streamer=streamer)
    assert torch.equal(streamed.units[0], out.units[0])
    assert torch.equal(torch.stack(frames_seen[1:], dim=-1)[0], out.units[0])

    scores = loaded.score([prompt, {"array": prompt["array"][:4000], "sampling_rate": prompt["sampling_rate"]}])
    assert scores.shape == (2,) and torch.isfinite(scores).all() and (scores > 0).all()
    assert torch.allclose(loaded.score(prompt)[0], scores[0], rtol=1e-4)  # padding does not change a score

    chunks = list(loaded.stream_decode(torch.cat([out.prompt_units[0], out.units[0]], dim=-1), chunk_units=8))
    assert sum(len(c) for c in chunks) == len(out.waveforms[0])


def test_score_is_the_lm_likelihood_of_the_codes(prompt):
    pipe = build("encodec")
    lm, codes = pipe.language_model, pipe.encode(prompt)[0]
    inputs = lm.prepare_inputs(codes[None])
    out = lm(**inputs)
    real = (inputs["labels"][:, :, 1:] != -100).sum()
    # forward's loss is the mean NLL over real values; score is their sum
    assert torch.allclose(pipe.score(prompt)[0], out.loss * real, rtol=1e-4)


def test_unit_and_codec_tokenizers_share_the_interface(prompt):
    fe = SpeechFeatureExtractor()
    inputs = fe(prompt, return_tensors="pt")
    for tokenizer in (tiny_unit_encoder("mfcc"), encodec().eval()):
        out = tokenizer.encode(inputs["input_values"], attention_mask=inputs["attention_mask"])
        assert out.codes.dim() == 3 and out.codes_mask.shape == (1, out.codes.shape[-1])
        (item,) = out.unpadded()
        assert item.shape[-1] == int(out.codes_mask.sum())


def test_codebook_mismatches_are_refused(tmp_path):
    torch.manual_seed(0)
    codec = encodec().eval()
    fe = SpeechFeatureExtractor(sampling_rate=codec.sampling_rate, do_normalize=False)
    with pytest.raises(PipelineLoadError, match="codes.num_codebooks=2 but language_model .* consumes codes.num_codebooks=3"):
        SpeechLMPipeline(fe, codec, language_model=codec_lm(codec, num_codebooks=3)).save_pretrained(tmp_path / "a")
        SpeechLMPipeline.from_pretrained(tmp_path / "a")
    lm = codec_lm(codec)
    lm.config.frame_rate = codec.frame_rate / 2
    SpeechLMPipeline(fe, codec, language_model=lm).save_pretrained(tmp_path / "b")
    with pytest.raises(PipelineLoadError, match="codes.frame_rate"):
        SpeechLMPipeline.from_pretrained(tmp_path / "b")


def test_cli_demo_runs_a_codec_lm_variant(tmp_path, capsys):
    from hf_slm.cli.main import main

    import soundfile as sf

    folder = build("mimi").save_pretrained(tmp_path / "codec-lm")
    out = tmp_path / "demo_out"
    assert main(["demo", "--pipeline", str(folder), "--text", "hello there", "--max-new-tokens", "6",
                 "--output", str(out)]) == 0  # fmt: skip

    for name in ("input.wav", "resynthesized.wav", "continuation.wav", "demo.png"):
        assert (out / name).exists()
    resynth, sr = sf.read(out / "resynthesized.wav")
    continuation, _ = sf.read(out / "continuation.wav")
    assert sr == 16000 and np.isfinite(continuation).all()
    hop = 16
    # the demo's prompt is the first half of the utterance: half its frames + 6 new ones
    half = -(-(len(resynth) // hop) // 2)
    assert abs(len(continuation) - (half + 6) * hop) <= hop


def test_example_trains_and_saves_a_variant(tmp_path, prompt):
    from example_loader import ROOT, load_script

    path = ROOT / "examples" / "codec_lm" / "train_codec_lm.py"
    module = load_script(path)
    config = path.with_name("config_tiny.json")
    variant = module.main([str(config), "--output_dir", str(tmp_path / "run"), "--num_sentences", "10",
                           "--num_eval_utterances", "1", "--max_steps", "2", "--hidden_size", "32",
                           "--per_device_train_batch_size", "2", "--logging_steps", "1"])  # fmt: skip
    pipe = SpeechLMPipeline.from_pretrained(variant)
    assert pipe.language_model.config.delays == [0, 1, 2, 3]
    assert pipe.language_model.config.frame_rate == pipe.speech_tokenizer.frame_rate
    out = pipe.continue_speech(prompt, max_new_tokens=5, seed=0)
    assert out.units[0].shape == (4, 5) and len(out.waveforms[0]) > len(prompt["array"]) * 16000 // prompt["sampling_rate"]


def test_continue_speech_counts_the_bos_frame_and_delays_against_the_context(prompt):
    pipe = build("mimi")  # delays [0, 1, 2]: a prompt of T frames takes 1 + T + 2 positions
    frames = pipe.encode(prompt)[0].shape[-1]
    pipe.language_model.config.text_config.max_position_embeddings = 1 + frames + 2 + 4
    assert pipe.continue_speech(prompt, max_new_tokens=4, seed=0).units[0].shape == (3, 4)
    with pytest.raises(ValueError, match=rf"utterance 0 is {frames + 3} LM tokens .* \+ max_new_tokens=5"):
        pipe.continue_speech(prompt, max_new_tokens=5)


def test_flattened_pattern_variant(prompt, tmp_path):
    """pattern="flatten": one codebook value per position (frame t's codebook q at 1 + t * Q + q, after <s>)."""
    pipe = build("encodec", pattern="flatten")
    prompt = {"array": prompt["array"][: len(prompt["array"]) // 2], "sampling_rate": prompt["sampling_rate"]}
    lm, codes = pipe.language_model, pipe.encode(prompt)[0]
    input_ids, mask = lm.units_to_input_ids([codes])
    q, frames = codes.shape
    assert input_ids.shape == (1, q, 1 + q * frames) and int(mask.sum()) == 1 + q * frames
    for t, k in [(0, 0), (0, 1), (3, 1), (frames - 1, 0)]:
        column = input_ids[0, :, 1 + t * q + k]
        assert column[k] == codes[k, t] and (column[torch.arange(q) != k] == lm.config.pad_token_ids[0]).all()
    pipe.save_pretrained(tmp_path / "flat")
    loaded = SpeechLMPipeline.from_pretrained(tmp_path / "flat")
    assert loaded.language_model.config.pattern == "flatten"
    out = loaded.continue_speech(prompt, max_new_tokens=5, seed=0)
    assert out.units[0].shape == (q, 5) and len(out.waveforms[0]) == (frames + 5) * loaded.speech_tokenizer.hop_length
    scores = loaded.score(prompt)
    assert torch.isfinite(scores).all() and scores[0] > 0
    with pytest.raises(ValueError, match="pattern='flatten' .* no depth transformer"):
        MultiStreamSpeechLMConfig(stream_vocab_sizes=[8, 8], pattern="flatten", use_depth_transformer=True)
    limit = lm.config.text_config.max_position_embeddings
    new = (limit - 1 - q * frames) // q + 1  # one frame too many: Q positions each
    with pytest.raises(ValueError, match=rf"max_new_tokens={new} \(x {q} positions a frame\)"):
        loaded.continue_speech(prompt, max_new_tokens=new)


def test_cli_evaluate_pairs_scores_a_codec_lm_variant(tmp_path):
    import json

    from hf_slm.cli.main import main

    folder = build("rvq").save_pretrained(tmp_path / "codec-lm")
    pairs, out = tmp_path / "pairs.jsonl", tmp_path / "pairs.json"
    assert main(["evaluate", "build-pairs", "--output", str(pairs), "--num-lexical", "2", "--num-per-phenomenon", "1",
                 "--phenomena", "agreement_simple"]) == 0  # fmt: skip
    assert main(["evaluate", "pairs", "--pipeline", str(folder), "--pairs", str(pairs), "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["n"] == 3 and 0 <= result["accuracy"] <= 1


def test_cli_tokenize_writes_codec_codes(tmp_path, prompt, monkeypatch, capsys):
    """`hf-slm tokenize` with a codec-LM variant writes `codes` [Q, T] (a list of Q lists), the codes `encode` gives."""
    import json

    import datasets
    import soundfile as sf

    from hf_slm.cli.main import main

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets_cache")
    pipe = build("rvq")
    folder = pipe.save_pretrained(tmp_path / "codec-lm")
    short = prompt["array"][: len(prompt["array"]) // 2]
    sf.write(tmp_path / "a.wav", prompt["array"], prompt["sampling_rate"], subtype="FLOAT")
    sf.write(tmp_path / "b.wav", short, prompt["sampling_rate"], subtype="FLOAT")
    expected = [pipe.encode({"array": sf.read(tmp_path / f"{name}.wav", dtype="float32")[0],
                             "sampling_rate": prompt["sampling_rate"]})[0] for name in "ab"]  # fmt: skip
    assert expected[0].shape[-1] > expected[1].shape[-1]

    assert main(["tokenize", str(tmp_path / "a.wav"), str(tmp_path / "b.wav"), "--tokenizer", str(folder),
                 "--output", str(tmp_path / "codes.jsonl")]) == 0  # fmt: skip
    rows = [json.loads(line) for line in (tmp_path / "codes.jsonl").read_text().splitlines()]
    assert [sorted(row) for row in rows] == [["codes", "path"]] * 2
    for row, codes in zip(rows, expected):
        assert len(row["codes"]) == pipe.speech_tokenizer.num_codebooks == 3
        assert torch.equal(torch.tensor(row["codes"]), codes)

    audio = datasets.Dataset.from_dict({"audio": [str(tmp_path / "a.wav"), str(tmp_path / "b.wav")]})
    audio.cast_column("audio", datasets.Audio()).save_to_disk(str(tmp_path / "speech"))
    assert main(["tokenize", "--dataset", str(tmp_path / "speech"), "--tokenizer", str(folder),
                 "--output", str(tmp_path / "codes_ds")]) == 0  # fmt: skip
    tokenised = datasets.load_from_disk(str(tmp_path / "codes_ds"))
    assert "codes" in tokenised.column_names and "units" not in tokenised.column_names
    for row, codes in zip(tokenised, expected):
        assert torch.equal(torch.tensor(row["codes"]), codes)

    capsys.readouterr()
    assert main(["tokenize", str(tmp_path / "a.wav"), "--tokenizer", str(folder), "--deduplicate",
                 "--output", str(tmp_path / "dedup.jsonl")]) != 0  # fmt: skip
    assert "deduplicate=True needs a unit tokenizer; RVQCodecModel gives codec codes" in capsys.readouterr().err
    assert not (tmp_path / "dedup.jsonl").exists()


def test_generation_evaluation_refuses_a_codec_lm_and_prosody_continues_codes_along_time(tmp_path, capsys):
    """`evaluate generation` (judge perplexity of the continuation, VERT: unit-sequence metrics) refuses a codec-LM
    variant by name; `evaluate prosody` cuts, continues and decodes its `[Q, T]` codes along time: with a random codec
    and LM every item then fails only the voicing check of its samples, never on the codes' shape."""
    from hf_slm.cli.main import main
    from hf_slm.evaluation.generation import evaluate_generation
    from hf_slm.evaluation.prosody import evaluate_prosody

    pipe = build("rvq")
    audio = []
    for pitch, text in ((30, "hello there my friend"), (70, "the cat sat on the mat")):
        speech = EspeakSynthesizer(pitch=pitch).synthesize(text)
        audio.append({"array": speech.waveform[:8000], "sampling_rate": speech.sampling_rate})
    with pytest.raises(ValueError, match="needs one stream of units, but the generator is a "
                                         "MultiStreamSpeechLMForCausalLM .* codec-LM variant"):  # fmt: skip
        evaluate_generation(pipe, audio, temperatures=(1.0,), max_new_tokens=4)
    folder = pipe.save_pretrained(tmp_path / "codec-lm")
    capsys.readouterr()
    assert main(["evaluate", "generation", "--pipeline", str(folder), "--limit", "1", "--temperatures", "1.0",
                 "--max-new-tokens", "4", "--output", str(tmp_path / "gen.json")]) == 1  # fmt: skip
    assert "needs one stream of units" in capsys.readouterr().err and not (tmp_path / "gen.json").exists()

    with pytest.raises(ValueError, match="no utterance could be scored") as error:
        evaluate_prosody(pipe, audio, num_samples=2, max_new_tokens=40)
    assert str(error.value).count("too few voiced frames") == 2  # both items reached F0 scoring
