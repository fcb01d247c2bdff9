"""The Gradio Space (`spaces/app.py`) as a user meets it: a real server on 127.0.0.1 with a tiny pipeline (no instruct
adapter, so the spoken-instruction tab runs the shipped `instruct-default`) and a tiny random speech LLM variant (the
Speech LLM tab), driven by `gradio_client` (every tab, refusals, 20 concurrent requests) and by a real headless
Chromium (each tab rendered)."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("gradio", reason="the Space needs gradio: pip install -e '.[space]'")
gradio_client = pytest.importorskip("gradio_client", reason="the Space test needs gradio_client: pip install -e '.[space]'")
from gradio_client import Client, handle_file  # noqa: E402

from chromium_cdp import HeadlessChromium, chromium_binary  # noqa: E402

from hf_slm.instruct.data import SLU_INTENTS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
INTENT_NAMES = [intent.replace("_", " ") for intent in SLU_INTENTS]  # the intent task's replies, as tuned
UNITS_SHOWN = "[...document.querySelectorAll('textarea')].some(t => t.offsetParent !== null && /^\\d+( \\d+)*$/.test(t.value))"
TABS = {  # tab label -> (text only that tab shows, button to press after picking example_0.wav or None, then a JS check)
    "Resynthesis": ("Units over the spectrogram", "Resynthesize", UNITS_SHOWN +
                    " && [...document.querySelectorAll('img')].some(i => i.complete && i.naturalWidth > 600)"),
    "Speech continuation": ("Temperature", "Continue",
                            UNITS_SHOWN + " && document.querySelectorAll('audio').length >= {audios} + 2"),
    "Spoken instruction": ("Answered by instruct-default", "Ask",  # the shipped variant names the command's intent
                           "[...document.querySelectorAll('textarea')].some(t => t.offsetParent !== null && "
                           f"{json.dumps(INTENT_NAMES)}.includes(t.value))"),
    "Speech LLM": ("SpeechLLMPipeline: audio encoder", "Answer",  # an answer other than the prompt, and its speech
                   "[...document.querySelectorAll('textarea')].some(t => t.offsetParent !== null && t.value && "
                   "t.value !== 'Transcribe the audio.') && document.querySelectorAll('audio').length >= {audios} + 2"),
    "Token inspector": ("Deduplicate repeated units", "Tokenize", UNITS_SHOWN + " && document.body.innerText.includes('<unit_')"),
    "Zero-shot TTS": ("says the text in the voice of a", "Speak", "document.querySelectorAll('audio').length >= {audios} + 2"),
    "Voice continuation": ("Seconds to continue", "Continue in this voice",
                           "document.querySelectorAll('audio').length >= {audios} + 1 && "
                           "[...document.querySelectorAll('img')].some(i => i.complete && i.naturalWidth > 600)"),
    "Live duplex": ("falls silent at once", None, None),  # the microphone stream itself: test_live_duplex_...
}  # fmt: skip
CHOICES = {"Spoken instruction": ("button", "command_0.wav", "Intent: speech -> intent"),  # tab -> (element, example,
           "Zero-shot TTS": ("td", "Three calm mice behind two small cups dance.", None)}  # mode) if not example_0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_serving(process: subprocess.Popen, url: str, log: Path) -> None:
    """Return once the app at `url` answers; fail with the end of its `log` if it exits or is silent for 180 s."""
    deadline = time.monotonic() + 180
    while True:
        if process.poll() is not None:
            pytest.fail(f"the Space exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"the Space did not answer within 180 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)


def tiny_instruct_pipeline():
    """The tiny pipeline plus what an instruct variant adds: a text tokenizer and the chat / task tags."""
    import torch
    from transformers import LlamaConfig

    from hf_slm import SpeechLMConfig, SpeechLMForCausalLM
    from hf_slm.instruct import INSTRUCT_TOKENS
    from hf_slm.pipelines.adapters import add_task_tokens
    from hf_slm.instruct.data import instruction_words, word_level_tokenizer
    from hf_slm.models.unit_encoder import SpeechFeatureExtractor
    from hf_slm.pipelines import SpokenChatPipeline
    from tiny_components import NUM_UNITS, tiny_mel_vocoder, tiny_unit_encoder

    tokenizer = word_level_tokenizer(["the cat sat on the mat"], extra_words=instruction_words())
    torch.manual_seed(0)
    backbone = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=2)  # fmt: skip
    lm = SpeechLMForCausalLM(SpeechLMConfig(text_config=backbone, text_vocab_size=len(tokenizer), num_units=NUM_UNITS))
    layout = lm.config.vocab_layout
    with torch.no_grad():  # units a little likelier, so that greedy replies hold both text and units (both paths run)
        lm.get_output_embeddings().weight[layout.unit_token_offset : layout.special_token_offset] *= 1.5
    return SpokenChatPipeline(feature_extractor=SpeechFeatureExtractor(), speech_tokenizer=tiny_unit_encoder(),
                              language_model=add_task_tokens(lm, INSTRUCT_TOKENS).eval(), vocoder=tiny_mel_vocoder(),
                              tokenizer=tokenizer)  # fmt: skip


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    """(url, pipeline folder, speech LLM folder): the app in its own process, as `python spaces/app.py --pipeline ...
    --speech-llm-pipeline ... --port ...`, over a tiny variant that cannot chat, so that the spoken-instruction tab
    runs the default `instruct-default`, and a tiny random SpeechLLMPipeline (speech decoder + vocoder)."""
    from tiny_components import tiny_mel_vocoder, tiny_pipeline, tiny_speech_llm_parts

    from hf_slm.pipelines import SpeechLLMPipeline

    root = tmp_path_factory.mktemp("space")
    tiny_pipeline().save_pretrained(root / "pipeline")
    model, processor = tiny_speech_llm_parts()
    SpeechLLMPipeline(processor, model, vocoder=tiny_mel_vocoder()).save_pretrained(root / "speech_llm")
    port = _free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_TEMP_DIR": str(root / "gradio"), "TMPDIR": str(root)}
    log = open(root / "app.log", "w")
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "spaces" / "app.py"), "--pipeline", str(root / "pipeline"), "--host", "127.0.0.1",
         "--port", str(port), "--speech-llm-pipeline", str(root / "speech_llm")],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    _wait_until_serving(process, url, root / "app.log")
    yield url, root / "pipeline", root / "speech_llm"
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


def test_a_stopped_space_leaves_no_temporary_files(tmp_path):
    """The example prompts the Space speaks at start-up live in a temporary folder that a stop (SIGTERM, as a Space
    host or Ctrl-C sends) removes."""
    from tiny_components import tiny_pipeline

    tiny_pipeline().save_pretrained(tmp_path / "pipeline")
    temp = tmp_path / "tmp"
    temp.mkdir()
    port = _free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_TEMP_DIR": str(tmp_path / "gradio"),
           "TMPDIR": str(temp)}  # fmt: skip
    with open(tmp_path / "app.log", "w") as log:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "spaces" / "app.py"), "--pipeline", str(tmp_path / "pipeline"), "--port",
             str(port), "--instruct-pipeline", "none", "--speech-llm-pipeline", "none", "--tts-pipeline", "none",
             "--codec-pipeline", "none"], env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        _wait_until_serving(process, f"http://127.0.0.1:{port}/", tmp_path / "app.log")
        (examples,) = temp.glob("hf_slm_space_*")
        assert any(examples.rglob("*.wav"))  # the spoken example prompts
        process.terminate()
        assert process.wait(timeout=30) == 0
        assert not examples.exists()
    finally:
        process.kill()


@pytest.fixture(scope="module")
def client(space):
    return Client(space[0], verbose=False)


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """(wav path, duration in s): real espeak-ng speech."""
    from hf_slm.data import EspeakSynthesizer

    result = EspeakSynthesizer("en-us").synthesize("The cat sat on the mat and looked at the bird.")
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    sf.write(path, result.waveform, result.sampling_rate)
    return str(path), result.duration


@pytest.fixture(scope="module")
def pipe(space):
    from hf_slm.pipelines import SpokenChatPipeline

    return SpokenChatPipeline.from_pretrained(space[1])


@pytest.fixture(scope="module")
def speech_llm(space):
    from hf_slm.pipelines import SpeechLLMPipeline

    return SpeechLLMPipeline.from_pretrained(space[2])


@pytest.fixture(scope="module")
def chat_pipe():
    """The shipped instruct variant, as the app's spoken-instruction tab loads it."""
    from hf_slm.pipelines import SpokenChatPipeline

    return SpokenChatPipeline.from_pretrained("instruct-default")


def _units(text: str) -> list[int]:
    return [int(t) for t in text.split()]


def test_resynthesis_returns_the_pipelines_units_a_plot_and_audio(client, speech, pipe):
    path, duration = speech
    plot, audio, units = client.predict(handle_file(path), api_name="/resynthesize")
    assert _units(units) == pipe.encode(path)[0].tolist()  # the same units the library gives for this file
    frame_rate = pipe.speech_tokenizer.config.frame_rate
    assert abs(len(_units(units)) - duration * frame_rate) <= 2
    wav, rate = sf.read(audio)
    assert rate == pipe.sampling_rate and abs(len(wav) / rate - duration) < 0.05 and np.abs(wav).max() > 0
    from PIL import Image

    image = Image.open(plot)
    assert image.width > 600 and len(image.convert("RGB").getcolors(1 << 20)) > 200  # a drawn spectrogram


def test_continuation_streams_units_and_ends_with_prompt_plus_continuation(client, speech, pipe):
    path, _ = speech
    prompt_units = len(pipe.encode(path)[0])
    for seed in range(8):  # the tiny random LM may end at once; a seed with a few units shows the stream
        job = client.submit(handle_file(path), 1.0, 40, 0, seed, api_name="/continue_speech")
        job.result(timeout=120)
        outputs = job.outputs()
        final = _units(outputs[-1][1])
        if len(final) >= 3:
            break
    assert 3 <= len(final) <= 40, final
    streamed = [_units(o[1]) for o in outputs[:-1]]
    assert len(streamed) >= len(final), "one update per generated unit"
    assert all(s == final[: len(s)] for s in streamed), "each update extends the previous one"
    assert all(0 <= u < pipe.speech_tokenizer.config.num_units for u in final)
    wav, rate = sf.read(outputs[-1][0])
    expected = (prompt_units + len(final)) / pipe.speech_tokenizer.config.frame_rate
    assert abs(len(wav) / rate - expected) < 0.05


def test_voice_continuation_runs_the_codec_default_like_the_library(client, speech, one_torch_thread):
    """The tab's codec-LM (`codec-default` unless --codec-pipeline says otherwise): prompt + exactly the asked
    seconds of new frames, the same codes the library draws with that seed, spoken by the variant's codec."""
    from hf_slm import SpeechLMPipeline
    from hf_slm.models.unit_encoder import load_audio

    path, _ = speech
    audio_path, image, codes = client.predict(handle_file(path), 1.0, 0.8, 3, api_name="/voice_continue")
    library = SpeechLMPipeline.from_pretrained("codec-default")
    rate = library.sampling_rate
    out = library.continue_speech({"array": load_audio(path, rate), "sampling_rate": rate}, max_new_tokens=50,
                                  temperature=0.8, seed=3)  # fmt: skip
    assert _units(codes) == out.units[0][0].tolist() and len(_units(codes)) == 50
    wav, got_rate = sf.read(audio_path)
    assert got_rate == rate and len(wav) == len(out.waveforms[0])
    assert Path(image).stat().st_size > 10_000  # the plot


def test_tts_runs_the_tts_default_like_the_library(client, speech, one_torch_thread):
    """The zero-shot TTS tab's variant (`tts-default` unless --tts-pipeline says otherwise): the codes the library
    draws for that text, prompt and seed, spoken by its codec."""
    from hf_slm import VallEPipeline
    from hf_slm.models.unit_encoder import load_audio

    path, _ = speech
    text, prompt_text = "three calm mice dance", "the cat sat on the mat and looked at the bird"
    audio_path, info = client.predict(text, handle_file(path), prompt_text, 2, api_name="/text_to_speech")
    library = VallEPipeline.from_pretrained("tts-default")
    rate = library.sampling_rate
    out = library.text_to_speech(text, {"array": load_audio(path, rate), "sampling_rate": rate},
                                 prompt_text=prompt_text, seed=2)  # fmt: skip
    wav, got_rate = sf.read(audio_path)
    assert int(info.split()[0]) == out.codes.shape[-1] and got_rate == rate
    assert len(wav) == len(out.waveform)
    np.testing.assert_allclose(wav, np.clip(out.waveform, -1, 1), atol=2 / 32767)  # int16 on the way out


def test_token_inspector_and_vocoding_typed_units(client, speech, pipe):
    path, _ = speech
    stats, table, units = client.predict(handle_file(path), False, api_name="/inspect")
    full = _units(units)
    assert [row[2] for row in table["data"]] == full and f"**{len(full)} units**" in stats
    offset = pipe.language_model.config.vocab_layout.unit_token_offset
    assert table["data"][0][3] == f"<unit_{full[0]}>" and offset >= 0
    _, _, dedup = client.predict(handle_file(path), True, api_name="/inspect")
    dedup = _units(dedup)
    assert dedup == [u for i, u in enumerate(full) if i == 0 or u != full[i - 1]]
    wav, rate = sf.read(client.predict(" ".join(map(str, full[:50])), api_name="/vocode"))
    assert abs(len(wav) / rate - 50 / pipe.speech_tokenizer.config.frame_rate) < 0.02


def _expected_reply(chat_pipe, mode: str, path: str | None, text: str, max_new_tokens: int):
    """The library's reply for a tab mode, written from the tuning's own phrasings and tags (not the app's table)."""
    from hf_slm.instruct.data import ASR_TEMPLATES, INTENT_TEMPLATES, TASK_TAGS, TTS_TEMPLATES

    instruction, task, modality = {"ASR: speech -> text": (ASR_TEMPLATES[0], TASK_TAGS["asr"], "text"),
                                   "TTS: text -> speech": (TTS_TEMPLATES[0], TASK_TAGS["tts"], "speech"),
                                   "Intent: speech -> intent": (INTENT_TEMPLATES[0], TASK_TAGS["intent"], "text"),
                                   "Chat": (None, None, None)}[mode]  # fmt: skip
    content = [{"type": "text", "text": instruction}] if instruction else []
    if modality == "speech":
        content.append({"type": "text", "text": text})
    else:
        content.append({"type": "speech", "units": chat_pipe.encode(path)[0].tolist()})
    return chat_pipe.chat({"role": "user", "content": content}, task=task, response_modality=modality,
                          strict_modality=modality is not None, max_new_tokens=max_new_tokens)  # fmt: skip


@pytest.mark.parametrize("mode", ["ASR: speech -> text", "TTS: text -> speech", "Chat"])
def test_spoken_instruction_streams_the_libraries_reply(client, speech, chat_pipe, mode):
    path, _ = speech
    text = "the cat sat on the mat"
    job = client.submit(handle_file(path) if mode != "TTS: text -> speech" else None, text if mode != "Chat" else "",
                        mode, 40, api_name="/instruct")  # fmt: skip
    job.result(timeout=120)
    reply, audio = job.outputs()[-1]
    expected = _expected_reply(chat_pipe, mode, path, text, 40)
    assert reply == expected.text or (expected.silent and reply.startswith("(silent")), (reply, expected)
    assert (audio is None) == (expected.waveform is None)
    if audio is not None:
        wav, rate = sf.read(audio)
        assert abs(len(wav) - len(expected.waveform)) <= 1 and rate == expected.sampling_rate
    # instruct-default's greedy replies: ASR holds text, TTS speech (each output path runs)
    assert {"ASR": bool(expected.text), "TTS": expected.waveform is not None}.get(mode[:3], True), expected
    if mode != "Chat":
        assert len(job.outputs()) >= 3, "text and audio arrive as they are generated"


def test_spoken_command_gets_its_intent_and_noise_gets_silence(client, chat_pipe, tmp_path):
    """The tuned skills through the tab: an espeak-ng command -> an intent name; noise in chat mode -> silence."""
    from hf_slm.data import EspeakSynthesizer
    from hf_slm.instruct.data import noise_waveforms

    command = EspeakSynthesizer("en-us").synthesize("turn off the lights in the kitchen")
    path = _write(tmp_path, "command.wav", (command.waveform, command.sampling_rate))
    reply, audio = client.predict(handle_file(path), "", "Intent: speech -> intent", 20, api_name="/instruct")
    assert reply in INTENT_NAMES and audio is None, reply
    assert reply == _expected_reply(chat_pipe, "Intent: speech -> intent", path, "", 20).text
    noise = _write(tmp_path, "noise.wav", (noise_waveforms(1, seed=7)[0], 16000))
    reply, audio = client.predict(handle_file(noise), "", "Chat", 40, api_name="/instruct")
    assert reply.startswith("(silent") and audio is None, reply


def _space_app():
    from example_loader import load_script

    return load_script("spaces/app.py", "space_app")


def test_instruct_tab_falls_back_to_the_instruct_variant():
    from tiny_components import tiny_pipeline

    app = _space_app()
    plain, instruct = tiny_pipeline(), tiny_instruct_pipeline()
    assert "no instruct adapter" in app.chat_support(plain)
    assert app.chat_support(instruct) is None
    assert app.load_chat_pipeline(instruct, "instruct-default") == (instruct, None)  # a variant that chats answers
    assert app.load_chat_pipeline(plain, "none") == (None, None)
    chat, name = app.load_chat_pipeline(plain, "instruct-default")
    assert name == "instruct-default" and app.chat_support(chat) is None
    assert "Answered by `instruct-default`" in app.instruct_intro(plain, chat, "tiny", name)
    assert "--instruct-pipeline none" in app.instruct_intro(plain, None, "tiny", "tiny")
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        plain.save_pretrained(folder)
        with pytest.raises(ValueError, match="cannot chat: This variant has no instruct adapter"):
            app.load_chat_pipeline(plain, folder)


def test_speech_llm_tab_answers_like_the_library_in_text_and_speech(client, speech, speech_llm):
    """An espeak-ng clip through `/speech_llm`: the default (empty) prompt transcribes, a typed prompt is the user's
    text; the answer and the spoken answer (its length and rate) are the pipeline's own."""
    from hf_slm.pipelines import ASR_PROMPT

    path, _ = speech
    answers = []
    for prompt, as_sent in (("", ASR_PROMPT), ("far away far away", "far away far away")):
        text, audio = client.predict(handle_file(path), prompt, 8, api_name="/speech_llm")
        expected = speech_llm.chat(audio=path, text=as_sent, max_new_tokens=8)
        assert text == expected.text and text, (prompt, text, expected.text)
        wav, rate = sf.read(audio)
        assert rate == speech_llm.vocoder.config.sampling_rate == expected.sampling_rate
        assert len(wav) == len(expected.waveform) > 0 and np.abs(wav).max() > 0
        answers.append((text, len(wav)))
    assert answers[0] != answers[1], "the typed prompt reaches the model"  # (this random model: a shorter answer)


def test_speech_llm_tab_says_why_when_its_variant_is_not_there(space, tmp_path):
    """A missing variant (or `speech-llm-default` before it is embedded) leaves the app running: the tab names the
    problem and its endpoint refuses with that message; a variant of another class is an error at start."""
    from hf_slm.pipelines import SpeechLLMPipeline, SpeechLMPipeline
    from hf_slm.pipelines.pipeline_utils import EMBEDDED_PIPELINES

    app = _space_app()
    default, reason = app.load_speech_llm_pipeline("speech-llm-default")
    if "speech-llm-default" in EMBEDDED_PIPELINES:
        assert isinstance(default, SpeechLLMPipeline) and reason is None
        # the tab warns the microphone with what the card measured on real recordings
        measured = json.loads((Path(default.local_path) / "eval_results.json").read_text())["asr_real_speech"]
        intro = app.speech_llm_intro(default, "speech-llm-default", None)
        assert f"(`librivox`, n={measured['n']}), its transcripts have WER {measured['wer']:.2f}" in intro
    else:
        assert default is None and "`speech-llm-default` is not embedded" in reason
    # so does the zero-shot TTS tab, with its card's figure for real prompts; a variant measured on neither says nothing
    tts = app.load_tts_pipeline("tts-default")
    measured = json.loads((Path(tts.local_path) / "eval_results.json").read_text())["tts_real_speech"]
    assert f"(`librivox`, n={measured['n']}), its speech has WER {measured['tts']['wer']:.2f}" in app.measured_on_recordings(tts)
    assert app.measured_on_recordings(SpeechLMPipeline.from_pretrained(space[1])) == ""
    codec = app.load_codec_pipeline("codec-default")  # and the voice continuation tab, from codec-default's card
    voice = json.loads((Path(codec.local_path) / "eval_results.json").read_text())["voice_real_speech"]
    mine = voice["systems"]["codec-default"]["speaker_similarity"]
    assert f"speaker similarity to the prompt is {mine:.2f}" in app.measured_on_recordings(codec)
    from hf_slm.pipelines import SpokenChatPipeline

    chat = SpokenChatPipeline.from_pretrained("instruct-default")  # and the spoken-instruction tab, from its card
    recorded = json.loads((Path(chat.local_path) / "eval_results.json").read_text())["instruct_tasks_real_speech"]
    intro = app.instruct_intro(chat, chat, "instruct-default", "instruct-default")
    assert f"(`librivox`, n={recorded['asr']['n']}), its ASR has WER {recorded['asr']['wer']:.2f}" in intro
    assert f"stayed silent on {100 * recorded['silence']['recording_silence_rate']:.0f} % of them" in intro
    assert app.load_speech_llm_pipeline("none")[1].startswith("The Speech LLM tab is off")
    with pytest.raises(ValueError, match="cannot load: .*SpeechLMPipeline variant"):
        app.load_speech_llm_pipeline(str(space[1]))
    missing = str(tmp_path / "no-such-variant")
    demo = app.build_demo(str(space[1]), "none", missing)
    port = _free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=30).read().decode()
        assert "is not available" in page and "no-such-variant" in page  # the tab's first line
        with pytest.raises(gradio_client.exceptions.AppError) as error:
            Client(f"http://127.0.0.1:{port}/", verbose=False).predict(None, "", 8, api_name="/speech_llm")
        assert f"`{missing}` is not available" in str(error.value) and "--speech-llm-pipeline" in str(error.value)
    finally:
        demo.close()


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg to make the compressed files")
def test_every_common_format_is_accepted(client, speech, pipe, tmp_path):
    path, duration = speech
    for ext in ("flac", "ogg", "mp3", "m4a", "opus", "webm"):
        target = tmp_path / f"speech.{ext}"
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", path, str(target)], check=True)
        stats, _, units = client.predict(handle_file(str(target)), False, api_name="/inspect")
        frames = len(_units(units)) / pipe.speech_tokenizer.config.frame_rate
        assert abs(frames - duration) < 0.1, (ext, stats)  # codecs pad a little


def _write(folder: Path, name: str, data) -> str:
    path = folder / name
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        sf.write(path, *data)
    return str(path)


def test_refusals_name_the_problem(client, tmp_path):
    cases = [  # (endpoint, inputs, words the message must hold)
        ("/resynthesize", [_write(tmp_path, "notes.txt", b"not audio at all")], "notes.txt': not an audio file"),
        ("/resynthesize", [_write(tmp_path, "long.wav", (np.zeros(16000 * 31, np.float32), 16000))], "longer than the 30 s"),
        ("/inspect", [_write(tmp_path, "click.wav", (np.zeros(400, np.float32), 16000)), False], "too short"),
        ("/inspect", [_write(tmp_path, "empty.wav", (np.zeros(0, np.float32), 16000)), False], "empty audio"),
        ("/continue_speech", [None, 0.8, 20, 0, 0], "No audio"),
        ("/vocode", ["1 2 99"], "[99]"),
        ("/vocode", ["1 two 3"], "integers"),
        ("/instruct", [None, "", "Chat", 20], "No input"),
        ("/instruct", [None, "the cat", "ASR: speech -> text", 20], "No input"),
        ("/instruct", [None, "", "TTS: text -> speech", 20], "No input: type the text"),
        ("/speech_llm", [None, "", 8], "No audio"),
        ("/speech_llm", [_write(tmp_path, "words.txt", b"the cat sat"), "", 8], "words.txt': not an audio file"),
    ]
    for endpoint, inputs, expected in cases:
        inputs = [handle_file(x) if isinstance(x, str) and x.startswith(str(tmp_path)) else x for x in inputs]
        with pytest.raises(gradio_client.exceptions.AppError, match=None) as error:
            client.predict(*inputs, api_name=endpoint)
        assert expected in str(error.value), (endpoint, str(error.value))
        assert str(tmp_path) not in str(error.value) and "gradio" not in str(error.value).lower()


#: the bad-input corpus's audio files through the Space: a visible message for each refusal, units for each file
#: whose acceptance is right (tests/test_bad_inputs.py holds the same files for the Python API and the CLI)
SPACE_FILE_CASES = [
    ("empty.wav", "empty"),
    ("header_only.wav", "empty audio"),
    ("random.wav", "not an audio file"),
    ("notes.flac", "not an audio file"),
    ("rate_100.wav", "sampling_rate=100 Hz is outside"),
    ("short.wav", "too short"),
    ("wav_named.mp3", None),
    ("pcm_u8.wav", None),
    ("hi_96k.wav", None),
    ("six_channels.wav", None),
]


def test_bad_input_corpus_files_through_the_space(client, tmp_path):
    from test_bad_inputs import write_bad_audio_files

    files = write_bad_audio_files(tmp_path / "corpus")
    for name, expected in SPACE_FILE_CASES:
        if expected is None:
            _, _, units = client.predict(handle_file(str(files / name)), api_name="/resynthesize")
            assert 40 <= len(units.split()) <= 60, (name, units)  # about 1 s of 50 Hz units
            continue
        with pytest.raises(gradio_client.exceptions.AppError) as error:
            client.predict(handle_file(str(files / name)), api_name="/resynthesize")
        message = str(error.value)
        assert expected in message, (name, message)
        assert "Traceback" not in message and str(tmp_path) not in message, (name, message)


def test_oversized_upload_is_refused(space, client, tmp_path):
    big = _write(tmp_path, "big.wav", b"\0" * (21 * 2**20))
    with pytest.raises(ValueError, match="exceeds the maximum file size"):  # the client reads the server's limit
        client.predict(handle_file(big), api_name="/resynthesize")
    import httpx  # and the server itself refuses a raw upload over the limit

    with open(big, "rb") as f:
        response = httpx.post(f"{space[0]}gradio_api/upload", files={"files": ("big.wav", f)}, timeout=60)
    assert response.status_code == 413 and "maximum" in response.text.lower(), (response.status_code, response.text)


def test_twenty_concurrent_requests_all_complete(space, speech, pipe):
    path, _ = speech
    expected = pipe.encode(path)[0].tolist()
    results, errors = [None] * 20, []

    def call(i):
        try:
            c = Client(space[0], verbose=False)
            if i % 2:
                results[i] = _units(c.predict(handle_file(path), api_name="/resynthesize")[2])
            else:
                results[i] = _units(c.predict(handle_file(path), i % 4 == 0, api_name="/inspect")[2])
        except Exception as error:  # collected and reported below
            errors.append(f"request {i}: {error!r}")

    threads = [threading.Thread(target=call, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    dedup = [u for i, u in enumerate(expected) if i == 0 or u != expected[i - 1]]
    assert all(r == (dedup if i % 4 == 0 else expected) for i, r in enumerate(results)), "wrong or missing results"


def test_live_duplex_stops_the_system_when_the_user_barges_in(space, tmp_path):
    """Chunks of an espeak-ng recording streamed through the duplex endpoint, one session (one client): the user
    speaks and pauses, the system replies; the user talks over it and the system's audio stops."""
    from hf_slm.data import EspeakSynthesizer

    rate, chunk_s = 22050, 0.25
    say = {voice: EspeakSynthesizer(voice) for voice in ("en-us", "en-us+f3")}
    prompt = say["en-us"].synthesize("Well, I think the cat sat on the mat.").waveform
    barge = say["en-us+f3"].synthesize("No, wait, that is not what I asked you about at all.").waveform
    gap = 0.8 + 1.0  # turn_pause_s, then one second of the system's reply
    audio = np.concatenate([np.zeros(rate // 2), prompt, np.zeros(int(gap * rate)), barge, np.zeros(rate // 2)])
    onset = (rate // 2 + len(prompt)) / rate + gap
    c = Client(space[0], verbose=False)  # its own session: the conversation lives in the server's gr.State
    size, played, log = int(chunk_s * rate), [], ""
    for index, start in enumerate(range(0, len(audio), size)):
        path = tmp_path / f"chunk_{index:03d}.wav"
        sf.write(path, audio[start : start + size].astype(np.float32), rate, subtype="PCM_16")
        out, log = c.predict(handle_file(str(path)), api_name="/duplex_chunk")
        system, system_rate = sf.read(out)
        assert abs(len(system) / system_rate - len(audio[start : start + size]) / rate) < 0.002, "one stretch each"
        played.append((start / rate, np.abs(system).max() > 0))
    kinds = [line.split()[0] for line in log.splitlines()]
    assert {"turn", "system_start", "hold", "barge_in"} <= set(kinds), log
    barge_line = next(line for line in log.splitlines() if line.startswith("barge_in"))
    assert "dropped" in barge_line, barge_line
    speaking = [t for t, sound in played if sound]
    assert speaking and speaking[0] < onset, "the system replied before the user barged in"
    assert max(speaking) < onset + chunk_s + 0.15, f"system audio after the barge-in at {onset:.2f} s: {speaking}"
    c.predict(api_name="/duplex_reset")
    out, log = c.predict(handle_file(str(tmp_path / "chunk_000.wav")), api_name="/duplex_chunk")
    assert not np.abs(sf.read(out)[0]).any() and log == "", "reset starts a new conversation"


@pytest.mark.skipif(chromium_binary() is None, reason="needs the chromium browser (apt-get install chromium)")
def test_each_tab_renders_in_headless_chromium(space, tmp_path):
    from PIL import Image

    shots = Path(os.environ.get("HF_SLM_SCREENSHOT_DIR", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    browser = HeadlessChromium(str(tmp_path / "profile"))

    def click(selector: str, text: str):  # the visible element with this text, once it is there
        find = f"[...document.querySelectorAll({selector!r})].find(e => e.textContent.trim() == {text!r} && e.offsetParent !== null)"
        browser.wait_for(f"{find} !== undefined", timeout=30)
        browser.evaluate(f"{find}.click()")

    try:
        browser.navigate(space[0])
        browser.wait_for("document.querySelectorAll('button[role=tab]').length >= 4")
        for label, (marker, button, done) in TABS.items():
            click("button[role=tab]", label)
            browser.wait_for(f"document.body.innerText.includes({marker!r})", timeout=20)
            if button:  # the whole path in the browser: example (-> mode) -> button -> outputs shown
                element, example, mode = CHOICES.get(label, ("button", "example_0.wav", None))
                audios = browser.evaluate("document.querySelectorAll('audio').length")
                click(element, example)
                browser.wait_for(f"document.querySelectorAll('audio').length > {audios}", timeout=30)
                if mode:
                    click("label", mode)
                click("button", button)
                browser.wait_for(done.replace('{audios}', str(audios)), timeout=60)
                time.sleep(0.5)  # let the last update paint
            png = browser.screenshot()
            (shots / f"{label.lower().replace(' ', '_')}.png").write_bytes(png)
            image = Image.open(io.BytesIO(png)).convert("RGB")
            assert image.size == (1280, 1600)
            colours = image.getcolors(1 << 20)
            assert len(colours) > (2000 if label == "Resynthesis" else 50), f"{label}: a blank page"  # the plot: many
            selected = browser.evaluate("document.querySelector('button[role=tab][aria-selected=true]').textContent.trim()")  # fmt: skip
            assert selected == label
    finally:
        browser.close()
