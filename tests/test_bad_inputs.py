"""The bad-input corpus: every public entry point given inputs a new user gets wrong (issue 13).

Each row is (id, entry point, input, expected): an expected exception class plus a message fragment, or, where the
right behaviour is acceptance (int16 arrays, 6 channels, 96 kHz, ...), a check of the output. Models load once per
module: the embedded default pipeline and a saved tiny variant that the load-time rows copy and break.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from tiny_components import tiny_codec, tiny_hifigan_vocoder, tiny_multistream_speech_lm, tiny_pipeline

import hf_slm
from hf_slm import PipelineLoadError, SpeechLMPipeline
from hf_slm.cli import main
from hf_slm.evaluation.pairs import read_pairs
from hf_slm.models.unit_encoder import AudioInputError, SpeechFeatureExtractor
from hf_slm.pipelines import INDEX_FILE

#: The embedded default's unit inventory (the unit-id cases are built on it).
UNITS = json.loads((Path(hf_slm.DEFAULT_PIPELINE) / "speech_tokenizer" / "config.json").read_text())["num_units"]

RATE = 16000


def _speech(seconds: float = 1.0, rate: int = RATE) -> np.ndarray:
    """A deterministic voiced-like signal: a 150 Hz pulse train with harmonics, plus a little noise."""
    t = np.arange(int(seconds * rate)) / rate
    wave = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 8)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    wave = wave + 0.02 * np.random.default_rng(0).standard_normal(t.size)
    return (0.3 * wave / np.abs(wave).max()).astype(np.float32)


def write_bad_audio_files(files: Path) -> Path:
    """The corpus's audio files (also sent to the Space's endpoints by tests/test_space.py)."""
    speech = _speech()
    files.mkdir()
    (files / "empty.wav").write_bytes(b"")
    sf.write(files / "header_only.wav", np.zeros(0, np.float32), RATE)
    (files / "random.wav").write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (files / "folder.wav").mkdir()
    (files / "notes.flac").write_text("this is text, not audio")
    sf.write(files / "wav_named.mp3", speech, RATE, format="WAV")  # wrong extension, readable content
    sf.write(files / "pcm_u8.wav", speech, RATE, subtype="PCM_U8")
    sf.write(files / "hi_96k.wav", _speech(1.0, 96000), 96000)
    sf.write(files / "six_channels.wav", np.tile(speech[:, None], (1, 6)), RATE)
    sf.write(files / "rate_100.wav", _speech(0.5, 100), 100)
    sf.write(files / "short.wav", speech[:100], RATE)
    return files


class Ctx:
    """What the rows run against (built once per module)."""


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    c = Ctx()
    c.dir = tmp_path_factory.mktemp("bad_inputs")
    c.pipe = SpeechLMPipeline.from_pretrained("default")
    c.fe = c.pipe.feature_extractor
    c.speech = _speech()
    c.reference_units = c.pipe.encode(c.speech, sampling_rate=RATE)[0]
    c.files = write_bad_audio_files(c.dir / "audio")
    clips = c.dir / "binary_transcript"  # an audio folder whose transcript is not text
    clips.mkdir()
    sf.write(clips / "a.wav", c.speech, RATE)
    shutil.copyfile(c.files / "random.wav", clips / "a.txt")
    tiny = tiny_pipeline()
    c.tiny_dir = tiny.save_pretrained(c.dir / "tiny")
    return c


def _copy_variant(ctx, name: str) -> Path:
    target = ctx.dir / f"variant-{name}"
    if not target.exists():
        shutil.copytree(ctx.tiny_dir, target)
    return target


def _edit_index(ctx, name: str, edit) -> Path:
    path = _copy_variant(ctx, name)
    index = json.loads((path / INDEX_FILE).read_text())
    result = edit(index)
    (path / INDEX_FILE).write_text(result if isinstance(result, str) else json.dumps(index))
    return path


def _break_file(ctx, name: str, relative: str, how) -> Path:
    path = _copy_variant(ctx, name)
    file = path / relative
    how(file)
    return path


def _truncate(file: Path) -> None:
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])


def _mismatched(ctx, name: str, **components) -> Path:
    """A saved variant whose components disagree (the constructor takes them; loading must refuse)."""
    target = ctx.dir / f"mismatch-{name}"
    if not target.exists():
        pipe = tiny_pipeline()
        pipe.register_modules(**components)
        pipe.save_pretrained(target)
    return target


# ---------------------------------------------------------------------------------------------------- entry points
def encode(ctx, kwargs):
    return ctx.pipe.encode(**kwargs)


def feature_extractor(ctx, kwargs):
    from transformers import AutoFeatureExtractor

    fe = AutoFeatureExtractor.from_pretrained(str(Path(hf_slm.DEFAULT_PIPELINE) / "feature_extractor"))
    return fe(**kwargs)


def score(ctx, kwargs):
    return ctx.pipe.score(**kwargs)


def continue_speech(ctx, kwargs):
    return ctx.pipe.continue_speech(**{"max_new_tokens": 5, "seed": 0, "vocode": False, **kwargs})


def resynthesize(ctx, kwargs):
    return ctx.pipe.resynthesize(**kwargs)


def vocoder(ctx, units):
    return ctx.pipe.decode(units)


def lm_units(ctx, units):
    return ctx.pipe.language_model.units_to_input_ids(units)


def lm_generate(ctx, units):
    return ctx.pipe.language_model.generate_units(units, max_new_tokens=2, do_sample=False)


def load(ctx, where):
    path, kwargs = where
    return SpeechLMPipeline.from_pretrained(path, **kwargs)


def pairs_file(ctx, text):
    path = ctx.dir / f"pairs-{abs(hash(text))}.jsonl"
    path.write_text(text)
    return read_pairs(path)


def cli(ctx, argv):
    """(status, stderr) of the in-process CLI; an argparse refusal is status 2."""
    argv = [a.format(dir=ctx.dir, files=ctx.files, tiny=ctx.tiny_dir) for a in argv]
    try:
        status = main(argv)
    except SystemExit as exit_:
        status = exit_.code
    return status


# ---------------------------------------------------------------------------------------------------- acceptance
def same_units_as_reference(ctx, out):
    """The same audio in another form (dtype, layout, container): the same number of units, nearly all equal (16-bit
    quantisation may move a frame across a k-means boundary)."""
    units = out[0]
    assert len(units) == len(ctx.reference_units)
    assert (units == ctx.reference_units).float().mean() >= 0.9, (units[:20], ctx.reference_units[:20])


def about_one_second_of_units(ctx, out):
    frame_rate = ctx.pipe.speech_tokenizer.config.frame_rate
    assert abs(len(out[0]) - frame_rate) <= 2, len(out[0])


def units_match_reference_mostly(ctx, out):
    """Resampled / requantised input: the same length, and most units agree with the clean 16 kHz reference."""
    about_one_second_of_units(ctx, out)
    n = min(len(out[0]), len(ctx.reference_units))
    assert (out[0][:n] == ctx.reference_units[:n]).float().mean() > 0.6


def one_padded_row(ctx, out):
    assert out["input_values"].shape[0] == 1 and torch.isfinite(out["input_values"]).all()


def finite_scores(ctx, out):
    assert out.shape == (1,) and torch.isfinite(out).all()


def waveform_of_units(ctx, out):
    assert len(out.waveforms) == 1 and np.isfinite(out.waveforms[0]).all() and len(out.waveforms[0]) > 0


def loads(ctx, out):
    assert isinstance(out, SpeechLMPipeline)


def status(code):
    def check(ctx, out):
        assert out == code, out

    return check


def raises(cls, fragment):
    return ("raises", cls, fragment)


def cli_fails(code, fragment):
    return ("cli", code, fragment)


S = _speech()
INT16 = np.round(S * 32767).astype(np.int16)
A = {"sampling_rate": RATE}  # keyword for array inputs

CASES = [
    # ------------------------------------------------------------------ audio files (encode)
    ("file-empty", encode, lambda c: {"audio": str(c.files / "empty.wav")}, raises(AudioInputError, "empty.wav': empty file (0 bytes)")),
    ("file-header-only", encode, lambda c: {"audio": str(c.files / "header_only.wav")}, raises(AudioInputError, "header_only.wav': empty audio (0 samples)")),
    ("file-random-bytes", encode, lambda c: {"audio": str(c.files / "random.wav")}, raises(AudioInputError, "random.wav': not an audio file")),
    ("file-directory", encode, lambda c: {"audio": str(c.files / "folder.wav")}, raises(AudioInputError, "folder.wav': is a directory")),
    ("file-missing", encode, lambda c: {"audio": str(c.files / "nope.wav")}, raises(AudioInputError, "nope.wav': no such file")),
    ("file-text-as-flac", encode, lambda c: {"audio": str(c.files / "notes.flac")}, raises(AudioInputError, "notes.flac': not an audio file")),
    ("file-wrong-extension-wav-as-mp3", encode, lambda c: {"audio": str(c.files / "wav_named.mp3")}, same_units_as_reference),
    ("file-8bit-unsigned", encode, lambda c: {"audio": str(c.files / "pcm_u8.wav")}, units_match_reference_mostly),
    ("file-96khz", encode, lambda c: {"audio": str(c.files / "hi_96k.wav")}, about_one_second_of_units),
    ("file-6-channels", encode, lambda c: {"audio": str(c.files / "six_channels.wav")}, same_units_as_reference),
    ("file-rate-100", encode, lambda c: {"audio": str(c.files / "rate_100.wav")}, raises(AudioInputError, "rate_100.wav': sampling_rate=100 Hz is outside")),
    ("file-too-short", encode, lambda c: {"audio": str(c.files / "short.wav")}, raises(AudioInputError, "short.wav': 100 samples")),
    ("file-rate-conflict", encode, lambda c: {"audio": str(c.files / "hi_96k.wav"), "sampling_rate": RATE}, raises(AudioInputError, "carries 96000 Hz audio but sampling_rate=16000")),
    ("bytes-of-wav", encode, lambda c: {"audio": (c.files / "wav_named.mp3").read_bytes()}, same_units_as_reference),
    ("bytes-empty", encode, lambda c: {"audio": b""}, raises(AudioInputError, "empty bytes")),
    ("bytes-random", encode, lambda c: {"audio": (c.files / "random.wav").read_bytes()}, raises(AudioInputError, "not an audio file")),
    ("dict-bytes-random", encode, lambda c: {"audio": {"bytes": b"RIFF1234", "path": "x.wav"}}, raises(AudioInputError, "not an audio file")),
    # ------------------------------------------------------------------ arrays
    ("array-empty", encode, lambda c: {"audio": np.zeros(0, np.float32), **A}, raises(AudioInputError, "empty audio (0 samples)")),
    ("array-one-sample", encode, lambda c: {"audio": np.zeros(1, np.float32), **A}, raises(AudioInputError, "1 samples (0.1 ms)")),
    ("array-nan", encode, lambda c: {"audio": np.where(np.arange(S.size) == 5, np.nan, S), **A}, raises(AudioInputError, "1 NaN/inf samples")),
    ("array-inf", encode, lambda c: {"audio": np.full(RATE, np.inf, np.float32), **A}, raises(AudioInputError, f"{RATE} NaN/inf samples")),
    ("array-3d", encode, lambda c: {"audio": np.zeros((1, 1, RATE), np.float32), **A}, raises(AudioInputError, "got shape (1, 1, 16000)")),
    ("array-ambiguous-2d", encode, lambda c: {"audio": np.zeros((12, RATE), np.float32), **A}, raises(AudioInputError, "cannot tell channels from samples")),
    ("array-complex", encode, lambda c: {"audio": S.astype(np.complex64), **A}, raises(AudioInputError, "got dtype complex64")),
    ("array-int64", encode, lambda c: {"audio": INT16.astype(np.int64), **A}, raises(AudioInputError, "got dtype int64")),
    ("array-bool", encode, lambda c: {"audio": S > 0, **A}, raises(AudioInputError, "got dtype bool")),
    ("array-strings", encode, lambda c: {"audio": np.array(["a"] * 500), **A}, raises(AudioInputError, "cannot read the samples")),
    ("array-int16", encode, lambda c: {"audio": INT16, **A}, same_units_as_reference),
    ("array-int32", encode, lambda c: {"audio": INT16.astype(np.int32) << 16, **A}, same_units_as_reference),
    ("array-float64", encode, lambda c: {"audio": S.astype(np.float64), **A}, same_units_as_reference),
    ("array-int16-range-floats", encode, lambda c: {"audio": INT16.astype(np.float32), **A}, same_units_as_reference),
    ("array-channels-last-stereo", encode, lambda c: {"audio": np.stack([S, S], axis=1), **A}, same_units_as_reference),
    ("tensor-channels-first-6", encode, lambda c: {"audio": torch.from_numpy(np.stack([S] * 6)), **A}, same_units_as_reference),
    ("list-of-floats", encode, lambda c: {"audio": S.tolist(), **A}, same_units_as_reference),
    ("array-silence", encode, lambda c: {"audio": np.zeros(RATE, np.float32), **A}, about_one_second_of_units),
    ("array-no-rate", encode, lambda c: {"audio": S}, raises(AudioInputError, "needs `sampling_rate`")),
    ("unsupported-type", encode, lambda c: {"audio": 3.5, **A}, raises(AudioInputError, "unsupported audio type float")),
    ("empty-batch", encode, lambda c: {"audio": [], **A}, raises(AudioInputError, "empty batch")),
    ("nan-in-batch-item", encode, lambda c: {"audio": [S, np.full(RATE, np.nan)], **A}, raises(AudioInputError, "batch item 1")),
    # ------------------------------------------------------------------ sampling rates
    ("rate-0", encode, lambda c: {"audio": S, "sampling_rate": 0}, raises(AudioInputError, "sampling_rate=0 Hz is outside")),
    ("rate-minus-1", encode, lambda c: {"audio": S, "sampling_rate": -1}, raises(AudioInputError, "sampling_rate=-1 Hz is outside")),
    ("rate-1", encode, lambda c: {"audio": S, "sampling_rate": 1}, raises(AudioInputError, "sampling_rate=1 Hz is outside")),
    ("rate-8-typo", encode, lambda c: {"audio": np.tile(S, 2), "sampling_rate": 8}, raises(AudioInputError, "sampling_rate=8 Hz")),
    ("rate-16-typo", encode, lambda c: {"audio": np.tile(S, 2), "sampling_rate": 16}, raises(AudioInputError, "sampling_rate=16 Hz")),
    ("rate-fractional", encode, lambda c: {"audio": S, "sampling_rate": 16000.5}, raises(AudioInputError, "integer number of Hz, got 16000.5")),
    ("rate-string", encode, lambda c: {"audio": S, "sampling_rate": "16000"}, raises(AudioInputError, "integer number of Hz, got '16000'")),
    ("rate-bool", encode, lambda c: {"audio": S, "sampling_rate": True}, raises(AudioInputError, "got True")),
    ("rate-too-high", encode, lambda c: {"audio": S, "sampling_rate": 10_000_000}, raises(AudioInputError, "sampling_rate=10000000 Hz")),
    ("rate-8000-accepted", encode, lambda c: {"audio": _speech(1.0, 8000), "sampling_rate": 8000}, about_one_second_of_units),
    ("rate-float-integral", encode, lambda c: {"audio": S, "sampling_rate": 16000.0}, same_units_as_reference),
    ("dict-rate-zero", encode, lambda c: {"audio": {"array": S, "sampling_rate": 0}}, raises(AudioInputError, "sampling_rate=0 Hz")),
    # ------------------------------------------------------------------ Auto classes: AutoFeatureExtractor + __call__
    ("auto-fe-int16", feature_extractor, lambda c: {"raw_speech": INT16, **A}, one_padded_row),
    ("auto-fe-rate-1", feature_extractor, lambda c: {"raw_speech": S, "sampling_rate": 1}, raises(AudioInputError, "sampling_rate=1 Hz")),
    ("auto-fe-header-only", feature_extractor, lambda c: {"raw_speech": str(c.files / "header_only.wav")}, raises(AudioInputError, "header_only.wav")),
    ("auto-fe-3d-tensor", feature_extractor, lambda c: {"raw_speech": torch.zeros(2, 2, 800), **A}, raises(AudioInputError, "shape (2, 2, 800)")),
    # ------------------------------------------------------------------ the other tasks
    ("score-ok", score, lambda c: {"audio": S, **A}, finite_scores),
    ("score-past-lm-positions", score, lambda c: {"audio": np.tile(S, 42), **A}, raises(ValueError, "more than the language model's 2048 positions")),
    ("score-random-file", score, lambda c: {"audio": str(c.files / "random.wav")}, raises(AudioInputError, "random.wav")),
    ("continue-past-lm-positions", continue_speech, lambda c: {"audio": S, **A, "max_new_tokens": 5000}, raises(ValueError, "max_new_tokens=5000, more than the language model's 2048")),
    ("continue-max-new-tokens-0", continue_speech, lambda c: {"audio": S, **A, "max_new_tokens": 0}, raises(ValueError, "max_new_tokens must be a positive int, got 0")),
    ("continue-rate-16", continue_speech, lambda c: {"audio": S, "sampling_rate": 16}, raises(AudioInputError, "sampling_rate=16 Hz")),
    ("resynthesize-ok", resynthesize, lambda c: {"audio": S, **A}, waveform_of_units),
    ("resynthesize-6-channel-file", resynthesize, lambda c: {"audio": str(c.files / "six_channels.wav")}, waveform_of_units),
    ("resynthesize-directory", resynthesize, lambda c: {"audio": str(c.files)}, raises(AudioInputError, "is a directory")),
    # ------------------------------------------------------------------ unit ids
    ("vocoder-unit-too-large", vocoder, lambda c: [torch.tensor([1, 2, UNITS])], raises(ValueError, f"unit id {UNITS} in item 0 is outside the vocoder's range [0, {UNITS})")),
    ("vocoder-unit-negative", vocoder, lambda c: [torch.tensor([3, 4]), torch.tensor([-1, 2])], raises(ValueError, "unit id -1 in item 1")),
    ("vocoder-float-units", vocoder, lambda c: [torch.tensor([1.5, 2.0])], raises(ValueError, "integer ids")),
    ("vocoder-empty-units", vocoder, lambda c: [torch.tensor([], dtype=torch.long)], raises(ValueError, "empty unit sequence")),
    ("lm-unit-too-large", lm_units, lambda c: [[5, UNITS]], raises(ValueError, f"unit {UNITS} is outside [0, {UNITS})")),
    ("lm-unit-negative", lm_units, lambda c: [[-3]], raises(ValueError, f"unit -3 is outside [0, {UNITS})")),
    ("lm-generate-unit-too-large", lm_generate, lambda c: [torch.tensor([7, 1000])], raises(ValueError, "unit 1000 is outside")),
    # ------------------------------------------------------------------ mismatched components (load time)
    ("mismatch-fe-8k-tokenizer-16k", load, lambda c: (_mismatched(c, "rate", feature_extractor=SpeechFeatureExtractor(sampling_rate=8000)), {}),
     raises(PipelineLoadError, "feature_extractor (SpeechFeatureExtractor) produces audio.sampling_rate=8000 but speech_tokenizer (UnitEncoderModel) consumes audio.sampling_rate=16000")),
    ("mismatch-fe-min-samples-below-receptive-field", load, lambda c: (_mismatched(c, "minlen", feature_extractor=SpeechFeatureExtractor(min_samples=200)), {}),
     raises(PipelineLoadError, "feature_extractor (SpeechFeatureExtractor) produces audio.min_samples=200 but speech_tokenizer (UnitEncoderModel) needs audio.min_samples >= 400")),
    ("mismatch-fe-8k-min-samples-names-the-rate-first", load, lambda c: (_mismatched(c, "rate-minlen", feature_extractor=SpeechFeatureExtractor(sampling_rate=8000, min_samples=200)), {}),
     raises(PipelineLoadError, "produces audio.sampling_rate=8000")),
    ("fe-min-samples-above-receptive-field-loads", load, lambda c: (_mismatched(c, "longer", feature_extractor=SpeechFeatureExtractor(min_samples=800)), {}), loads),
    ("mismatch-tokenizer-lm-units", load, lambda c: (_mismatched(c, "lm", language_model=_lm_with_units(32)), {}),
     raises(PipelineLoadError, "speech_tokenizer (UnitEncoderModel) produces units.num_units=16 but language_model (SpeechLMForCausalLM) consumes units.num_units=32")),
    ("mismatch-tokenizer-vocoder-units", load, lambda c: (_mismatched(c, "voc", vocoder=_hifigan(num_units=32)), {}),
     raises(PipelineLoadError, "consumes units.num_units=32")),
    ("mismatch-vocoder-frame-rate", load, lambda c: (_mismatched(c, "fr", vocoder=_hifigan(upsample_rates=(5, 8, 4), upsample_kernel_sizes=(9, 16, 8))), {}),
     raises(PipelineLoadError, "units.frame_rate=50.0 but vocoder (UnitHifiGanVocoder) consumes units.frame_rate=100.0")),
    ("mismatch-codec-lm-codebooks", load, lambda c: (_mismatched(c, "codec", feature_extractor=SpeechFeatureExtractor(sampling_rate=tiny_codec().config.sampling_rate),
                                                                speech_tokenizer=tiny_codec(), language_model=tiny_multistream_speech_lm(), vocoder=None), {}),
     raises(PipelineLoadError, "speech_tokenizer (CodecModel) produces codes.codebook_size=64 but language_model (MultiStreamSpeechLMForCausalLM) consumes codes.codebook_size=16")),
    ("matched-tiny-variant", load, lambda c: (c.tiny_dir, {}), loads),
    # ------------------------------------------------------------------ checkpoints
    ("checkpoint-truncated", load, lambda c: (_break_file(c, "trunc", "language_model/model.safetensors", _truncate), {}),
     raises(PipelineLoadError, "language_model/model.safetensors is corrupt or truncated")),
    ("checkpoint-garbage", load, lambda c: (_break_file(c, "garbage", "vocoder/model.safetensors", lambda f: f.write_bytes(b"\x00" * 64)), {}),
     raises(PipelineLoadError, "vocoder/model.safetensors is corrupt or truncated")),
    ("checkpoint-missing-weights", load, lambda c: (_break_file(c, "noweights", "speech_tokenizer/model.safetensors", Path.unlink), {}),
     raises(PipelineLoadError, "no weights file (*.safetensors)")),
    ("checkpoint-missing-folder", load, lambda c: (_break_file(c, "nofolder", "vocoder", shutil.rmtree), {}),
     raises(PipelineLoadError, "vocoder is missing")),
    ("checkpoint-bad-config-json", load, lambda c: (_break_file(c, "badcfg", "language_model/config.json", lambda f: f.write_text("{")), {}),
     raises(PipelineLoadError, "cannot load component 'language_model' (SpeechLMForCausalLM)")),
    # ------------------------------------------------------------------ index files and revisions
    ("index-os-system", load, lambda c: (_edit_index(c, "os", lambda i: i.update(vocoder=["os", "system"])), {}),
     raises(PipelineLoadError, "library 'os' (class 'system') is not loadable")),
    ("index-transformers-function", load, lambda c: (_edit_index(c, "fn", lambda i: i.update(vocoder=["transformers", "pipeline"])), {}),
     raises(PipelineLoadError, "transformers.pipeline is not a loadable component")),
    ("index-dunder-class", load, lambda c: (_edit_index(c, "dunder", lambda i: i.update(vocoder=["hf_slm", "__loader__"])), {}),
     raises(PipelineLoadError, "'__loader__' is not a public class name")),
    ("index-bad-json", load, lambda c: (_edit_index(c, "json", lambda i: "{not json"), {}), raises(PipelineLoadError, "pipeline_index.json is not valid JSON")),
    ("index-a-list", load, lambda c: (_edit_index(c, "list", lambda i: "[1, 2]"), {}), raises(PipelineLoadError, "must hold a JSON object, got list")),
    ("index-entry-a-number", load, lambda c: (_edit_index(c, "num", lambda i: i.update(vocoder=5)), {}), raises(PipelineLoadError, "entry 'vocoder' must be [library, class]")),
    ("index-unknown-component", load, lambda c: (_edit_index(c, "unk", lambda i: i.update(vocodr=["hf_slm", "UnitMelVocoder"])), {}), raises(PipelineLoadError, "unknown component(s) ['vocodr']")),
    ("index-missing", load, lambda c: (c.files, {}), raises(PipelineLoadError, "pipeline_index.json is missing")),
    ("revision-for-embedded", load, lambda c: ("default", {"revision": "v2"}), raises(PipelineLoadError, "embedded variant 'default'")),
    ("revision-for-twist-embedded", load, lambda c: ("twist-default", {"revision": "main"}), raises(PipelineLoadError, "has no revisions")),
    ("revision-for-local-folder", load, lambda c: (c.tiny_dir, {"revision": "v1"}), raises(PipelineLoadError, "is a local folder")),
    # ------------------------------------------------------------------ pairs files
    ("pairs-bad-json", pairs_file, lambda c: '{"good": "a"\n', raises(ValueError, ":1: not valid JSON")),
    ("pairs-not-object", pairs_file, lambda c: "[1, 2]\n", raises(ValueError, "expected a JSON object, got list")),
    ("pairs-missing-field", pairs_file, lambda c: '{"good": "the dog"}\n', raises(ValueError, "need non-empty string fields 'good' and 'bad'")),
    ("pairs-missing-audio", pairs_file, lambda c: '{"good_audio": "a.wav", "bad_audio": "b.wav"}\n', raises(FileNotFoundError, "a.wav")),
    ("audio-dir-binary-transcript", cli, lambda c: ["evaluate", "asr", "--pipeline", "pocketsphinx", "--audio-dir", "{dir}/binary_transcript", "--output", "{dir}/o.json"], cli_fails(1, "a.txt' is not valid UTF-8")),
    ("instruct-tasks-tts-on-recordings", cli, lambda c: ["evaluate", "instruct-tasks", "--pipeline", "{tiny}", "--tasks", "asr,intent", "--audio-dir", "{dir}", "--output", "{dir}/o.json"], cli_fails(1, "--tasks intent: not measurable on recordings")),
    ("instruct-tasks-audio-dir-without-transcripts", cli, lambda c: ["evaluate", "instruct-tasks", "--pipeline", "{tiny}", "--audio-dir", "{files}", "--output", "{dir}/o.json"], cli_fails(1, "no transcript (.txt next to the .wav)")),
    ("words-binary", cli, lambda c: ["evaluate", "build-pairs", "--words", "{files}/random.wav", "--output", "{dir}/p.jsonl"], cli_fails(1, "random.wav' is not valid UTF-8")),
    ("dataset-not-a-folder", cli, lambda c: ["evaluate", "codec", "--dataset", "{files}/random.wav", "--output", "{dir}/c.json"], cli_fails(1, "random.wav is not a dataset folder")),
    ("convert-file-as-folder", cli, lambda c: ["convert", "slamkit", "{files}/random.wav", "--output", "{dir}/k"], cli_fails(2, "random.wav' is a file: give the checkpoint's folder or a Hub repo id")),
    ("pairs-binary", cli, lambda c: ["evaluate", "pairs", "--pipeline", "{tiny}", "--pairs", "{files}/random.wav", "--output", "{dir}/o.json"], cli_fails(1, "random.wav is not UTF-8 text")),
    ("pairs-empty", pairs_file, lambda c: "\n\n", raises(ValueError, "holds no pairs")),
    # ------------------------------------------------------------------ CLI numbers, paths and errors
    ("cli-batch-size-minus-1", cli, lambda c: ["tokenize", "{files}/wav_named.mp3", "--batch-size", "-1", "--output", "{dir}/o.jsonl"], cli_fails(2, "--batch-size: expected a positive int, got '-1'")),
    ("cli-batch-size-0", cli, lambda c: ["tokenize", "{files}/wav_named.mp3", "--batch-size", "0", "--output", "{dir}/o.jsonl"], cli_fails(2, "expected a positive int, got '0'")),
    ("cli-batch-size-text", cli, lambda c: ["evaluate", "pairs", "--batch-size", "many", "--output", "{dir}/o.json"], cli_fails(2, "got 'many'")),
    ("cli-sampling-rate-8", cli, lambda c: ["synth", "--sampling-rate", "8", "--output", "{dir}/ds"], cli_fails(2, "expected a sampling rate in [4000, 384000] Hz, got '8'")),
    ("cli-num-units-1", cli, lambda c: ["fit-tokenizer", "--dataset", "{dir}", "--num-units", "1", "--output", "{dir}/t"], cli_fails(2, "expected an int >= 2, got '1'")),
    ("cli-temperature-negative", cli, lambda c: ["demo", "--temperature", "-1"], cli_fails(2, "expected a positive number, got '-1'")),
    ("cli-temperature-nan", cli, lambda c: ["evaluate", "generation", "--temperatures", "0.7,nan", "--output", "{dir}/o.json"], cli_fails(2, "got 'nan'")),
    ("cli-prompt-fraction-0", cli, lambda c: ["evaluate", "prosody", "--prompt-fraction", "0", "--output", "{dir}/o.json"], cli_fails(2, "expected a number in (0, 1], got '0'")),
    ("cli-threshold-2", cli, lambda c: ["split-audio", "{files}/wav_named.mp3", "--threshold", "2", "--output", "{dir}/s"], cli_fails(2, "expected a number in [0, 1], got '2'")),
    ("cli-voices-empty", cli, lambda c: ["synth", "--voices", ",", "--output", "{dir}/ds"], cli_fails(2, "--voices: expected at least one comma-separated value, got ','")),
    ("cli-synth-unknown-festival-voice", cli, lambda c: ["synth", "--voices", "en-us,festival:nope", "--limit", "2", "--output", "{dir}/ds"], cli_fails(1, "Unknown Festival voice 'festival:nope'")),
    ("cli-two-variants", cli, lambda c: ["info", "default", "--pipeline", "twist-default"], cli_fails(2, "two variants given")),
    ("cli-card-not-results", cli, lambda c: ["card", "{tiny}", "--results", "{files}/random.wav"], cli_fails(1, "random.wav")),
    ("cli-max-new-tokens-0", cli, lambda c: ["demo", "--max-new-tokens", "0"], cli_fails(2, "expected a positive int, got '0'")),
    ("cli-missing-input-file", cli, lambda c: ["tokenize", "{files}/nope.wav", "--output", "{dir}/o.jsonl"], cli_fails(2, "no such file or folder")),
    ("cli-input-is-directory", cli, lambda c: ["tokenize", "{files}/folder.wav", "--output", "{dir}/o.jsonl"], cli_fails(2, "not a file")),
    ("cli-missing-pairs", cli, lambda c: ["evaluate", "pairs", "--pairs", "{dir}/none.jsonl", "--output", "{dir}/o.json"], cli_fails(2, "no such file or folder")),
    ("cli-random-bytes-file", cli, lambda c: ["tokenize", "{files}/random.wav", "--tokenizer", "{tiny}", "--output", "{dir}/r.jsonl"], cli_fails(1, "random.wav': not an audio file")),
    ("cli-info-missing-variant", cli, lambda c: ["info", "{dir}/nowhere"], cli_fails(1, "does not exist")),
    ("cli-tokenize-ok", cli, lambda c: ["tokenize", "{files}/wav_named.mp3", "{files}/six_channels.wav", "--tokenizer", "{tiny}", "--batch-size", "1", "--output", "{dir}/ok.jsonl"], status(0)),
]


def _lm_with_units(num_units: int):
    from transformers import LlamaConfig

    from hf_slm.models.speech_lm import SpeechLMConfig, SpeechLMForCausalLM

    torch.manual_seed(0)
    backbone = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                           num_key_value_heads=2)  # fmt: skip
    return SpeechLMForCausalLM(SpeechLMConfig(text_config=backbone, num_units=num_units)).eval()


def _hifigan(**overrides):
    from hf_slm.models.unit_vocoder import UnitHifiGanVocoder

    config = tiny_hifigan_vocoder().config.to_dict() | overrides
    config.pop("model_type", None)
    return UnitHifiGanVocoder(type(tiny_hifigan_vocoder().config)(**config)).eval()


@pytest.mark.parametrize("case_id,entry,build,expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input(ctx, capsys, case_id, entry, build, expected):
    argument = build(ctx)
    if isinstance(expected, tuple) and expected[0] == "raises":
        _, cls, fragment = expected
        with pytest.raises(cls) as info:
            entry(ctx, argument)
        assert fragment in str(info.value), str(info.value)
    elif isinstance(expected, tuple) and expected[0] == "cli":
        _, code, fragment = expected
        capsys.readouterr()
        assert entry(ctx, argument) == code
        err = capsys.readouterr().err.strip()
        assert fragment in err, err
        assert "Traceback" not in err
        if code == 1:  # one line (progress bars aside), the program's name first
            lines = [line for line in err.splitlines() if "error" in line]
            assert len(lines) == 1 and lines[0].startswith("hf-slm: error: "), err
    else:
        expected(ctx, entry(ctx, argument))


def test_corpus_size_and_entry_points():
    entries = {c[1].__name__ for c in CASES}
    assert len(CASES) >= 60
    assert {"encode", "feature_extractor", "score", "continue_speech", "resynthesize", "vocoder", "lm_units", "load",
            "cli", "pairs_file"} <= entries  # fmt: skip


def test_failed_tokenize_leaves_no_partial_or_tmp_file(ctx, capsys):
    out = ctx.dir / "atomic" / "units.jsonl"
    argv = ["tokenize", str(ctx.files / "wav_named.mp3"), str(ctx.files / "random.wav"), "--tokenizer", str(ctx.tiny_dir),
            "--batch-size", "1", "--output", str(out)]  # fmt: skip
    assert main(argv) == 1  # the first batch is written, the second fails
    assert not out.exists()
    assert sorted(p.name for p in out.parent.iterdir()) == []


def test_debug_shows_the_traceback(ctx):
    with pytest.raises(PipelineLoadError, match="does not exist"):
        main(["--debug", "info", str(ctx.dir / "nowhere")])


def test_ctrl_c_is_one_line_and_status_130(ctx, capsys, monkeypatch):
    import importlib

    cli_module = importlib.import_module("hf_slm.cli.main")  # the module (`hf_slm.cli.main` is the function)

    def interrupted(spec):  # what Ctrl-C raises in the middle of a command
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_module, "describe_pipeline", interrupted)
    assert main(["info", str(ctx.tiny_dir)]) == 130
    assert capsys.readouterr().err.strip() == "hf-slm: interrupted"


def test_lm_forward_refuses_ids_outside_its_vocabulary(ctx):
    """Calling the LM directly (not through the pipeline) with a unit id instead of a token id past the vocabulary
    names the id and the range instead of torch's IndexError from inside the embedding."""
    lm = ctx.pipe.language_model
    size = lm.config.vocab_size
    for bad in (size, size + 57, -1):
        with pytest.raises(ValueError, match=rf"holds id {bad}, outside this LM's vocabulary \[0, {size}\)"):
            lm(input_ids=torch.tensor([[1, 2, bad]]))
    assert lm(input_ids=torch.tensor([[1, 2, size - 1]])).logits.shape[-1] == lm.config.vocab_size
