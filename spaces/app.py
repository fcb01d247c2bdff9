"""hf_slm Space: resynthesis, speech continuation, spoken instruction, a speech LLM, a token inspector, zero-shot TTS,
continuation in the prompt's voice and live duplex.

Load once, one function per tab, examples (parler-tts' demo). Run: `python app.py --pipeline default` (or a folder / a
Hub repo id; the env variable HF_SLM_SPACE_PIPELINE sets the default). When that variant cannot chat, the spoken
instruction tab runs `--instruct-pipeline` (default: the embedded `instruct-default`; env HF_SLM_INSTRUCT_PIPELINE;
`none` turns it off). The Speech LLM tab runs the `SpeechLLMPipeline` variant `--speech-llm-pipeline` (default:
`speech-llm-default`; env HF_SLM_SPEECH_LLM_PIPELINE; `none` turns it off); when that variant is not there, the tab
says so. The zero-shot TTS tab runs `--tts-pipeline` (a `VallEPipeline` variant; default: the embedded `tts-default`;
env HF_SLM_TTS_PIPELINE; `none` off: the tab then says how to configure one). The voice continuation tab runs the
codec-LM variant `--codec-pipeline` (default: the embedded `codec-default`; env HF_SLM_CODEC_PIPELINE; `none` off).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import signal
import sys
import tempfile
import threading
import weakref
from pathlib import Path

import gradio as gr
import numpy as np
import soundfile as sf
import torch
from transformers.generation.streamers import BaseStreamer

from hf_slm.instruct.data import ASR_TEMPLATES, INTENT_TEMPLATES, SLU_INTENTS, TASK_TAGS, TTS_TEMPLATES
from hf_slm.pipelines import (
    ASR_PROMPT, PipelineLoadError, SpeechLLMPipeline, SpeechLMPipeline, SpokenChatPipeline, VallEPipeline,
    resolve_pipeline_path,
)
from hf_slm.pipelines.embedded import embedded_pipeline_name
from hf_slm.pipelines.pipeline_utils import EMBEDDED_PIPELINES
from hf_slm.models.unit_encoder.feature_extraction_unit_encoder import AudioInputError, load_audio
from hf_slm.visualization import plot_speech_units

MAX_SECONDS = 30.0  # longer clips are refused: CPU Spaces tokenise ~1x real time or faster, keep requests short
MAX_FILE_MB = 20
CONCURRENCY = 2  # requests run at once per event; the rest wait in the queue (at most QUEUE_SIZE)
QUEUE_SIZE = 64
STREAM_EVERY = 25  # units between streamed audio updates (0.5 s at 50 Hz)
EXAMPLE_TEXTS = ["The quick brown fox jumps over the lazy dog.", "Speech language models learn from audio alone."]
COMMAND_TEXTS = ["turn off the lights in the kitchen", "what is the weather in paris"]  # the intent task's command set
#: (text to say, prompt transcript) in the words `tts-default` was trained on (the built-in grammar's)
TTS_EXAMPLES = [
    ("Three calm mice behind two small cups dance.", "Does his man listen? Her mouse that paints those balls wins."),
    ("Our old horses that like three red cups play.", "This doctor near every old ball sits."),
]
_PLOT_LOCK = threading.Lock()  # pyplot is not thread-safe
DUPLEX_STREAM_EVERY = 0.25  # s of microphone audio per streamed chunk (a decision acts at the end of its chunk)
DUPLEX_TIME_LIMIT = 120  # s a live duplex stream may run on a shared CPU Space
DUPLEX_LOG_LINES = 12
DUPLEX_PLAYER_JS = """(log) => {
  // the newest player event of the log: hold / barge_in pause the system's player (barge_in also skips what it had
  // buffered: the dropped reply), resume / system_start play it again
  const kinds = ['hold', 'barge_in', 'resume', 'system_start'];
  const kind = (log || '').split('\\n').map(line => line.split(' ')[0]).reverse().find(k => kinds.includes(k));
  document.querySelectorAll('#duplex-speaker audio').forEach(a => {
    if (kind === 'hold' || kind === 'barge_in') a.pause();
    if (kind === 'barge_in' && a.buffered.length) a.currentTime = a.buffered.end(a.buffered.length - 1);
    if ((kind === 'resume' || kind === 'system_start') && a.paused && !a.ended) a.play().catch(() => {});
  });
  return log;
}"""


def read_audio(path: str | None, sampling_rate: int) -> np.ndarray:
    """A bounded, validated mono clip at `sampling_rate`, or a `gr.Error` that names what is wrong."""
    if not path:
        raise gr.Error("No audio: upload a file or record one.")
    name = Path(path).name
    if not os.path.isfile(path):
        raise gr.Error(f"{name}: no such file")
    size_mb = os.path.getsize(path) / 2**20
    if size_mb > MAX_FILE_MB:
        raise gr.Error(f"{name}: {size_mb:.1f} MB is larger than the {MAX_FILE_MB} MB limit")
    try:
        audio = load_audio(path, sampling_rate)
    except AudioInputError as error:
        message = str(error).replace(str(path), name)  # do not show the server's temp paths
        raise gr.Error(f"Cannot use this audio: {message}. Accepted: wav, flac, ogg, mp3, m4a/aac, opus, webm.") from None
    if len(audio) / sampling_rate > MAX_SECONDS:
        raise gr.Error(f"{name}: {len(audio) / sampling_rate:.1f} s is longer than the {MAX_SECONDS:.0f} s limit")
    if len(audio) < sampling_rate // 10:
        raise gr.Error(f"{name}: {len(audio) / sampling_rate * 1000:.0f} ms is too short (at least 100 ms)")
    return audio


class QueueStreamer(BaseStreamer):
    """`generate()` streamer that hands each new token id to a queue (the prompt, put first, is skipped)."""

    def __init__(self):
        self.queue, self._prompt_seen = queue.Queue(), False

    def put(self, value):
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        for token in value.reshape(-1).tolist():
            self.queue.put(token)

    def end(self):
        self.queue.put(None)


CHAT_MODES = {  # mode -> (instruction written before the input, task tag, reply modality): the first phrasing and
    # tag of each task as hf_slm.instruct tunes and evaluates it; task modes keep the reply in its modality (as evaluated)
    "Chat": (None, None, None),
    "ASR: speech -> text": (ASR_TEMPLATES[0], TASK_TAGS["asr"], "text"),
    "TTS: text -> speech": (TTS_TEMPLATES[0], TASK_TAGS["tts"], "speech"),
    "Intent: speech -> intent": (INTENT_TEMPLATES[0], TASK_TAGS["intent"], "text"),
}
INTENT_NAMES = [intent.replace("_", " ") for intent in SLU_INTENTS]  # the replies the intent task was tuned to give
SILENT_REPLY = "(silent: the model took this input as not addressed to it)"  # silence mode: an immediate </s>
NO_INSTRUCT = ("", "none")  # --instruct-pipeline values that turn the fallback off


def chat_support(pipe) -> str | None:
    """Why the spoken-instruction tab cannot run on this variant (None when it can)."""
    lm = pipe.components.get("language_model")
    tags = lm.config.vocab_layout.task_tokens if lm is not None else ()
    if pipe.components.get("tokenizer") is None or not {"[User]", "[Assistant]"} <= set(tags):
        return (
            "This variant has no instruct adapter: spoken instruction needs an instruction-tuned language model with "
            "a text tokenizer and the [User]/[Assistant] chat tags. Load an instruct variant with --pipeline or "
            "--instruct-pipeline (e.g. instruct-default)."
        )
    return None


def load_chat_pipeline(pipe, instruct_pipeline: str | None = "instruct-default"):
    """The pipeline that answers the spoken-instruction tab and its name: `pipe` itself when it can chat, else the
    variant `instruct_pipeline` (loaded here, once), else `(None, None)` when that is `None` / `"none"`."""
    if chat_support(pipe) is None:
        return pipe, None
    if instruct_pipeline is None or str(instruct_pipeline).strip().lower() in NO_INSTRUCT:
        return None, None
    chat_pipe = SpokenChatPipeline.from_pretrained(instruct_pipeline)
    reason = chat_support(chat_pipe)
    if reason:
        raise ValueError(f"instruct pipeline {instruct_pipeline!r} cannot chat: {reason}")
    return chat_pipe, str(instruct_pipeline)


SPEECH_LLM_DEFAULT = "speech-llm-default"  # the SpeechLLMPipeline variant the Speech LLM tab runs by default
SPEECH_LLM_HINT = ("Point --speech-llm-pipeline (env HF_SLM_SPEECH_LLM_PIPELINE) at a SpeechLLMPipeline variant: a "
                   "folder or a Hub repo id.")  # fmt: skip


def load_speech_llm_pipeline(name: str | None = SPEECH_LLM_DEFAULT):
    """The Speech LLM tab's `(SpeechLLMPipeline, None)`, or `(None, why the tab cannot run)` when it is off (`None` /
    `"none"`) or the variant is not there (an embedded name this hf_slm lacks, a missing folder, an unknown Hub
    repo). A variant that is there but is no SpeechLLMPipeline is a `ValueError` (a wrong setting, shown at start)."""
    if name is None or str(name).strip().lower() in NO_INSTRUCT:
        return None, "The Speech LLM tab is off (--speech-llm-pipeline none). " + SPEECH_LLM_HINT
    if str(name) == SPEECH_LLM_DEFAULT and SPEECH_LLM_DEFAULT not in EMBEDDED_PIPELINES:
        return None, f"The speech LLM variant `{name}` is not embedded in this hf_slm yet. {SPEECH_LLM_HINT}"
    try:
        path = resolve_pipeline_path(name)
    except (PipelineLoadError, OSError, ValueError) as error:  # no such folder or Hub repo (or the Hub is offline)
        return None, f"The speech LLM variant `{name}` is not available ({error}). {SPEECH_LLM_HINT}"
    try:
        return SpeechLLMPipeline.from_pretrained(path), None
    except PipelineLoadError as error:
        raise ValueError(f"speech LLM pipeline {str(name)!r} cannot load: {error}") from None


def speaks(speech_llm) -> bool:
    """Whether a SpeechLLMPipeline answers in speech too: a speech decoder (units) and a vocoder."""
    return (getattr(speech_llm.language_model, "speech_decoder", None) is not None
            and speech_llm.components.get("vocoder") is not None)  # fmt: skip


def measured_on_recordings(pipe) -> str:
    """What the variant's own card measured on real recordings (``asr_real_speech`` of a speech LLM, ``tts_real_speech``
    of a zero-shot TTS, ``voice_real_speech`` of a codec LM, ``instruct_tasks_real_speech`` of an instruct variant in
    its eval_results.json), as a warning for the microphone; "" when it was not measured there."""
    from hf_slm.pipelines.model_card import EVAL_RESULTS_FILE

    if not getattr(pipe, "local_path", None):
        return ""
    try:  # a card's figures are a note here: an unreadable file leaves the tab without it, not the Space down
        results = json.loads((Path(pipe.local_path) / EVAL_RESULTS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    if not isinstance(results, dict):
        return ""
    if results.get("asr_real_speech"):
        measured = results["asr_real_speech"]
        source = measured.get("real_speech") or measured.get("audio_dir") or measured.get("dataset") or "recordings"
        baseline = measured.get("pocketsphinx_open_wer")
        than = f", against {baseline:.2f} for pocketsphinx," if baseline is not None else ""
        return (f" Measured on real recordings (`{source}`, n={measured['n']}), its transcripts have WER "
                f"{measured['wer']:.2f}{than} so expect poor answers to your own voice; the examples are espeak-ng "
                "speech.")  # fmt: skip
    if results.get("tts_real_speech"):
        measured = results["tts_real_speech"]
        silent = measured["n"] - measured["tts"]["n"]
        return (f" Measured with real recordings as prompts (`{measured['real_speech']}`, n={measured['n']}), its speech "
                f"has WER {measured['tts']['wer']:.2f}" + (f" and {silent} outputs held no speech" if silent else "")
                + ": it was trained on espeak-ng voices, so expect little from your own voice as a prompt.")  # fmt: skip
    recorded = results.get("instruct_tasks_real_speech", {})
    if recorded.get("asr"):
        silence = recorded.get("silence", {}).get("recording_silence_rate")
        silent = "" if silence is None else f", and it stayed silent on {100 * silence:.0f} % of them (read speech that asked nothing)"
        return (f" Measured on real recordings (`{recorded.get('source', 'recordings')}`, n={recorded['asr']['n']}), its "
                f"ASR has WER {recorded['asr']['wer']:.2f}{silent}: it heard only espeak-ng speech, so expect little "
                "from your own voice.")  # fmt: skip
    voice = results.get("voice_real_speech", {})
    mine = voice.get("systems", {}).get(embedded_pipeline_name(getattr(pipe, "local_path", None)) or "")
    if mine is None and len(voice.get("systems", {})) == 1:  # a variant measured alone, under any name
        mine = next(iter(voice["systems"].values()))
    if mine:
        same = voice["references"]["same_voice"]["speaker_similarity"]
        return (f" Measured with real recordings as prompts (`{voice['real_speech']}`, n={mine['n']}), its continuations' "
                f"speaker similarity to the prompt is {mine['speaker_similarity']:.2f}, against {same:.2f} for the rest "
                "of the same recording: it was trained on espeak-ng voices, so it does not keep yours.")  # fmt: skip
    return ""


def speech_llm_intro(speech_llm, name: str, reason: str | None) -> str:
    """The Speech LLM tab's first line: which variant answers and how, or why none does; and how it fared on real
    recordings where its card measured that (a microphone is the first thing a visitor tries)."""
    if speech_llm is None:
        return reason
    voice = ("; the spoken answer comes from its speech decoder's units and vocoder" if speaks(speech_llm) else
             "; this variant has no speech decoder + vocoder, so it answers in text only")  # fmt: skip
    return (
        f"Answered by `{name}` (`SpeechLLMPipeline`: audio encoder -> projector -> text LM). Speech and a prompt in "
        f"(an empty prompt means `{ASR_PROMPT}`), the text answer out{voice}.{measured_on_recordings(speech_llm)}"
    )


NO_TTS = ("The zero-shot TTS tab has no VALL-E variant configured: start the Space with --tts-pipeline tts-default (or "
          "set HF_SLM_TTS_PIPELINE) or a VallEPipeline folder, e.g. one written by examples/valle/train_valle.py.")


def load_tts_pipeline(spec: str | None):
    """The `VallEPipeline` of the zero-shot TTS tab, or `None` when `spec` is empty / `none`."""
    if spec is None or str(spec).strip().lower() in NO_INSTRUCT:
        return None
    return VallEPipeline.from_pretrained(spec)


NO_VOICE = ("The voice continuation tab has no codec-LM variant configured: start the Space with --codec-pipeline "
            "codec-default (or set HF_SLM_CODEC_PIPELINE) or a folder written by examples/codec_lm/train_codec_lm.py.")


def load_codec_pipeline(spec: str | None):
    """The codec-LM `SpeechLMPipeline` of the voice continuation tab (its codec speaks the codes), or `None` when
    `spec` is empty / `none`; a variant whose tokenizer gives units, not codec codes, is refused by name."""
    if spec is None or str(spec).strip().lower() in NO_INSTRUCT:
        return None
    pipe = SpeechLMPipeline.from_pretrained(spec)
    if not hasattr(pipe.speech_tokenizer, "num_codebooks"):
        raise ValueError(f"--codec-pipeline {spec!r} tokenises into units ({type(pipe.speech_tokenizer).__name__}), "
                         "not codec codes: give a codec-LM variant such as codec-default")  # fmt: skip
    return pipe


def build_demo(pipeline_path: str = "default", instruct_pipeline: str | None = "instruct-default",
               speech_llm_pipeline: str | None = SPEECH_LLM_DEFAULT, tts_pipeline: str | None = "tts-default",
               codec_pipeline: str | None = "codec-default") -> gr.Blocks:  # fmt: skip
    """Load the variants once and build the tabs around them; the spoken-instruction tab runs `instruct_pipeline`
    when the variant itself cannot chat (see `load_chat_pipeline`), the Speech LLM tab runs `speech_llm_pipeline` (or
    says why it cannot, see `load_speech_llm_pipeline`), the zero-shot TTS tab `tts_pipeline`, the voice
    continuation tab the codec-LM variant `codec_pipeline`."""
    pipe = SpokenChatPipeline.from_pretrained(pipeline_path)  # a SpeechLMPipeline that can also chat
    tts_pipe = load_tts_pipeline(tts_pipeline)
    codec_pipe = load_codec_pipeline(codec_pipeline)
    chat_pipe, chat_name = load_chat_pipeline(pipe, instruct_pipeline)
    speech_llm, speech_llm_reason = load_speech_llm_pipeline(speech_llm_pipeline)
    chat_name = chat_name or pipeline_path
    input_rate = int(pipe.feature_extractor.sampling_rate)
    frame_rate = float(pipe.speech_tokenizer.config.frame_rate)
    lm = pipe.components.get("language_model")
    layout = lm.config.vocab_layout if lm is not None else None
    out_dir = Path(tempfile.mkdtemp(prefix="hf_slm_space_"))
    examples = make_examples(out_dir / "examples", EXAMPLE_TEXTS, "example")
    commands = make_examples(out_dir / "examples", COMMAND_TEXTS, "command")
    tts_examples = []  # only spoken when the tab has a model to use them
    if tts_pipe is not None:
        tts_prompts = make_examples(out_dir / "examples", [prompt for _, prompt in TTS_EXAMPLES], "tts_prompt",
                                    voice="en-gb+f2")  # fmt: skip
        tts_examples = [[text, path[0], prompt] for (text, prompt), path in zip(TTS_EXAMPLES, tts_prompts)]

    def as_input(audio: np.ndarray) -> dict:
        return {"array": audio, "sampling_rate": input_rate}

    def units_figure(panels) -> str:
        with _PLOT_LOCK:
            return str(plot_speech_units(panels, tempfile.mktemp(suffix=".png", dir=out_dir)))

    def resynthesize(path):
        audio = read_audio(path, input_rate)
        out = pipe.resynthesize(as_input(audio))
        units, wav = out.units[0].numpy(), out.waveforms[0]
        figure = units_figure([("input", audio, input_rate, units, frame_rate), ("resynthesis", wav, out.sampling_rate, units, frame_rate)])
        return figure, (out.sampling_rate, wav), " ".join(map(str, units.tolist()))

    def continue_speech(path, temperature, max_new_tokens, top_k, seed):
        if lm is None:
            raise gr.Error("This variant has no language model, so it cannot continue speech.")
        prompt = read_audio(path, input_rate)
        prompt_units = pipe.encode(as_input(prompt))[0].tolist()
        streamer, result, generated = QueueStreamer(), {}, []
        # min_new_tokens: the default LM (short training sentences) would otherwise end a full sentence at once
        kwargs = dict(max_new_tokens=int(max_new_tokens), min_new_tokens=int(max_new_tokens) // 2,
                      temperature=float(temperature), top_k=int(top_k) or None)

        def work():
            try:
                result["out"] = pipe.continue_speech(as_input(prompt), seed=int(seed), streamer=streamer, **kwargs)
            except Exception as error:  # surfaced to the user below
                result["error"] = error
                streamer.end()

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        while (token := streamer.queue.get()) is not None:
            if layout.is_unit_token(token):
                generated.append(int(layout.token_ids_to_units([token])[0]))
                audio = gr.skip()  # units stream at every step, audio every STREAM_EVERY units
                if len(generated) % STREAM_EVERY == 0:
                    audio = (pipe.sampling_rate, pipe.decode(torch.tensor(prompt_units + generated))[0])
                yield audio, " ".join(map(str, generated))
        thread.join()  # generate() ends the stream before the final vocoding
        if "error" in result:
            raise gr.Error(f"Generation failed: {result['error']}")
        out = result["out"]
        yield (out.sampling_rate, out.waveforms[0]), " ".join(map(str, out.units[0].tolist()))

    def instruct(path, text, mode, max_new_tokens):
        if chat_pipe is None:
            raise gr.Error(chat_support(pipe))
        if mode not in CHAT_MODES:
            raise gr.Error(f"Unknown mode {mode!r}: one of {list(CHAT_MODES)}")
        instruction, task, modality = CHAT_MODES[mode]
        text = (text or "").strip()
        if modality == "speech" and not text:
            raise gr.Error("No input: type the text to say.")
        if modality == "text" and not path:
            raise gr.Error("No input: record or upload the speech for this task.")
        if not path and not text:
            raise gr.Error("No input: record or upload a spoken instruction, or type one.")
        # tasks: their instruction, then the input; chat: the typed text and/or the speech, as given
        content = [{"type": "text", "text": instruction}] if instruction else []
        if text and (modality == "speech" or task is None):
            content.append({"type": "text", "text": text})
        if path and modality != "speech":
            rate = int(chat_pipe.feature_extractor.sampling_rate)
            units = chat_pipe.encode({"array": read_audio(path, rate), "sampling_rate": rate})[0].tolist()
            content.append({"type": "speech", "units": units})
        reply, chunks = "", []
        for event in chat_pipe.stream_chat({"role": "user", "content": content}, task=task, response_modality=modality,
                                           strict_modality=modality is not None,
                                           max_new_tokens=int(max_new_tokens)):  # fmt: skip
            if event.kind == "text":
                reply += event.text
                yield reply, gr.skip()
            elif event.kind == "audio":
                chunks.append(event.audio)
                yield reply, (event.sampling_rate, np.concatenate(chunks))
            elif event.output is not None:
                out = event.output
                text = out.text or (SILENT_REPLY if out.silent else "")
                yield text, (out.sampling_rate, out.waveform) if out.waveform is not None else None

    def speech_llm_answer(path, prompt, max_new_tokens):
        if speech_llm is None:
            raise gr.Error(speech_llm_reason)
        rate = speech_llm.input_sampling_rate
        audio = read_audio(path, rate)
        out = speech_llm.chat(audio=audio, sampling_rate=rate, text=(prompt or "").strip() or ASR_PROMPT,
                              max_new_tokens=int(max_new_tokens))  # fmt: skip
        return out.text, (out.sampling_rate, out.waveform) if out.waveform is not None else None

    def duplex_feed(chunk, session):
        """One microphone chunk -> the system's audio for that stretch (silence when it is not speaking: the player
        stays in step with the microphone), the session, the log."""
        if chunk is None:
            return None, session, gr.skip()
        rate, data = chunk
        data = np.asarray(data)
        if data.ndim == 2:  # the browser may send [samples, channels]
            data = data.mean(axis=1).astype(data.dtype) if data.shape[1] <= 2 else data.mean(axis=0).astype(data.dtype)
        try:
            if session is None or session.sampling_rate != int(rate):
                session = pipe.duplex_session(sampling_rate=int(rate))
            step = session.feed(data)
        except ValueError as error:
            raise gr.Error(f"Live duplex: {error}") from None
        # int16 ourselves: gradio would scale a float chunk by its own peak (and a silent one by 0)
        pcm = (np.clip(step.audio, -1.0, 1.0) * 32767).astype(np.int16)
        return (step.sampling_rate, pcm), session, duplex_log(session)

    def duplex_reset():
        return None, None, ""

    def inspect(path, deduplicate):
        audio = read_audio(path, input_rate)
        units = pipe.encode(as_input(audio), deduplicate=bool(deduplicate))[0].tolist()
        rows = [[i, round(i / frame_rate, 3), u, layout.token_name(int(layout.units_to_token_ids([u])[0])) if layout else ""] for i, u in enumerate(units)]
        n = pipe.speech_tokenizer.config.num_units
        stats = (
            f"**{len(units)} units** for {len(audio) / input_rate:.2f} s ({frame_rate:g} Hz frames), {len(set(units))} "
            f"distinct of {n}; bitrate {frame_rate * np.log2(n):.0f} bit/s before deduplication"
        )
        return stats, rows, " ".join(map(str, units))

    def vocode(text):
        n = pipe.speech_tokenizer.config.num_units
        try:
            units = [int(t) for t in (text or "").replace(",", " ").split()]
        except ValueError as error:
            raise gr.Error(f"Units must be integers separated by spaces: {error}") from None
        bad = [u for u in units if not 0 <= u < n]
        if not units or bad:
            raise gr.Error(f"Units must be integers in [0, {n}); got {bad[:5] if bad else 'none'}")
        return pipe.sampling_rate, pipe.decode(torch.tensor(units))[0]

    def text_to_speech(text, path, prompt_text, seed):
        if tts_pipe is None:
            raise gr.Error(NO_TTS)
        if not (text or "").strip():
            raise gr.Error("No text: type what to say.")
        if not (prompt_text or "").strip():
            raise gr.Error("No prompt transcript: type what the prompt clip says (VALL-E reads it before the clip).")
        prompt = read_audio(path, int(tts_pipe.sampling_rate))
        out = tts_pipe.text_to_speech(text, {"array": prompt, "sampling_rate": tts_pipe.sampling_rate},
                                      prompt_text=prompt_text.strip(), seed=int(seed))  # fmt: skip
        pcm = (np.clip(out.waveform, -1.0, 1.0) * 32767).astype(np.int16)  # int16 ourselves, as gradio would (warning)
        return (out.sampling_rate, pcm), f"{out.codes.shape[-1]} frames, {len(out.waveform) / out.sampling_rate:.2f} s"

    def voice_continue(path, seconds, temperature, seed):
        if codec_pipe is None:
            raise gr.Error(NO_VOICE)
        rate, codec = int(codec_pipe.sampling_rate), codec_pipe.speech_tokenizer
        prompt = read_audio(path, rate)
        frames = max(1, round(float(seconds) * codec.frame_rate))
        out = codec_pipe.continue_speech({"array": prompt, "sampling_rate": rate}, max_new_tokens=frames,
                                         temperature=float(temperature), seed=int(seed))  # fmt: skip
        first = [out.prompt_units[0][0].numpy(), out.units[0][0].numpy()]  # codebook 1 over the spectrogram
        figure = units_figure([("prompt", prompt, rate, first[0], codec.frame_rate),
                               ("prompt + continuation", out.waveforms[0], rate, np.concatenate(first), codec.frame_rate)])
        pcm = (np.clip(out.waveforms[0], -1.0, 1.0) * 32767).astype(np.int16)
        return (rate, pcm), figure, " ".join(map(str, out.units[0][0].tolist()))

    with gr.Blocks(title="hf_slm: speech language models") as demo:
        gr.Markdown(f"# hf_slm speech language model\nVariant: `{pipeline_path}`" +
                    (f"; spoken instruction: `{chat_name}`" if chat_pipe is not None and chat_pipe is not pipe else "") +
                    (f"; speech LLM: `{speech_llm_pipeline}`" if speech_llm is not None else "") +
                    f". Clips up to {MAX_SECONDS:.0f} s / {MAX_FILE_MB} MB.")  # fmt: skip
        with gr.Tab("Resynthesis"):
            r_in = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Speech")
            r_btn = gr.Button("Resynthesize", variant="primary")
            r_plot, r_out, r_units = gr.Image(label="Units over the spectrogram"), gr.Audio(label="Vocoded"), gr.Textbox(label="Units")
            r_btn.click(resynthesize, r_in, [r_plot, r_out, r_units], api_name="resynthesize")
            gr.Examples(examples, r_in)
        with gr.Tab("Speech continuation"):
            c_in = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Prompt")
            with gr.Row():
                c_temp = gr.Slider(0.1, 1.5, value=0.8, step=0.05, label="Temperature")
                c_len = gr.Slider(10, 500, value=100, step=10, label="New units")
                c_topk = gr.Slider(0, 200, value=0, step=1, label="Top-k (0: off)")
                c_seed = gr.Number(value=0, precision=0, label="Seed")
            c_btn = gr.Button("Continue", variant="primary")
            c_out, c_units = gr.Audio(label="Prompt + continuation"), gr.Textbox(label="Generated units")
            c_btn.click(continue_speech, [c_in, c_temp, c_len, c_topk, c_seed], [c_out, c_units], api_name="continue_speech")
            gr.Examples(examples, c_in)
        with gr.Tab("Spoken instruction"):
            gr.Markdown(instruct_intro(pipe, chat_pipe, pipeline_path, chat_name))
            with gr.Row():
                i_in, i_text = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Spoken instruction"), gr.Textbox(label="or text")
            with gr.Row():
                i_mode = gr.Radio(list(CHAT_MODES), value="Chat", label="Mode")
                i_len = gr.Slider(10, 400, value=150, step=10, label="Max new tokens")
            i_btn = gr.Button("Ask", variant="primary")
            i_reply, i_audio = gr.Textbox(label="Reply"), gr.Audio(label="Spoken reply")
            # one chat at a time: a new chat call interrupts the one in progress (user interruption)
            i_btn.click(instruct, [i_in, i_text, i_mode, i_len], [i_reply, i_audio], api_name="instruct", concurrency_limit=1)
            gr.Examples(commands + examples, i_in)
        with gr.Tab("Speech LLM"):
            gr.Markdown(speech_llm_intro(speech_llm, str(speech_llm_pipeline), speech_llm_reason))
            with gr.Row():
                s_in = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Speech")
                s_prompt = gr.Textbox(value=ASR_PROMPT, label="Prompt (empty: transcribe)")
            s_len = gr.Slider(8, 256, value=64, step=8, label="Max new tokens")
            s_btn = gr.Button("Answer", variant="primary")
            s_text = gr.Textbox(label="Answer")
            s_audio = gr.Audio(label="Spoken answer", visible=speech_llm is not None and speaks(speech_llm))
            s_btn.click(speech_llm_answer, [s_in, s_prompt, s_len], [s_text, s_audio], api_name="speech_llm")
            gr.Examples(examples + commands, s_in)
        with gr.Tab("Token inspector"):
            t_in = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Speech")
            t_dedup = gr.Checkbox(label="Deduplicate repeated units")
            t_btn = gr.Button("Tokenize", variant="primary")
            t_stats, t_table = gr.Markdown(), gr.Dataframe(headers=["frame", "time (s)", "unit", "LM token"], label="Units")
            t_units = gr.Textbox(label="Units (edit, then vocode)")
            t_btn.click(inspect, [t_in, t_dedup], [t_stats, t_table, t_units], api_name="inspect")
            v_btn, v_out = gr.Button("Vocode these units"), gr.Audio(label="Vocoded units")
            v_btn.click(vocode, t_units, v_out, api_name="vocode")
            gr.Examples(examples, t_in)
        with gr.Tab("Zero-shot TTS"):
            gr.Markdown(NO_TTS if tts_pipe is None else f"Variant `{tts_pipeline}`: says the text in the voice of a "
                        "~3 s prompt (VALL-E). Type the prompt's transcript too (VALL-E reads it first)."
                        + measured_on_recordings(tts_pipe))  # fmt: skip
            s_text = gr.Textbox(label="Text to say")
            with gr.Row():
                s_in = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Voice prompt (~3 s)")
                s_prompt_text, s_seed = gr.Textbox(label="Prompt transcript"), gr.Number(value=0, precision=0, label="Seed")
            s_btn = gr.Button("Speak", variant="primary", interactive=tts_pipe is not None)
            s_out, s_info = gr.Audio(label="Generated speech"), gr.Textbox(label="Frames")
            s_btn.click(text_to_speech, [s_text, s_in, s_prompt_text, s_seed], [s_out, s_info], api_name="text_to_speech")
            if tts_examples:
                gr.Examples(tts_examples, [s_text, s_in, s_prompt_text])
        with gr.Tab("Voice continuation"):
            gr.Markdown(NO_VOICE if codec_pipe is None else f"Variant `{codec_pipeline}` (codec-LM): continues the "
                        "prompt in codec codes, which carry its voice, and its codec speaks them "
                        "([measured](https://github.com/hf-slm/hf_slm/blob/main/docs/audiolm.md))."
                        + measured_on_recordings(codec_pipe))  # fmt: skip
            with gr.Row():
                w_in = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Prompt (~2-3 s)")
                with gr.Column():
                    w_len = gr.Slider(0.5, 5.0, value=2.0, step=0.5, label="Seconds to continue")
                    w_temp = gr.Slider(0.1, 1.5, value=0.8, step=0.05, label="Sampling temperature")
                    w_seed = gr.Number(value=0, precision=0, label="Seed")
            w_btn = gr.Button("Continue in this voice", variant="primary", interactive=codec_pipe is not None)
            w_out, w_plot = gr.Audio(label="Prompt + continuation"), gr.Image(label="Codebook 1 over the spectrogram")
            w_codes = gr.Textbox(label="New codes of codebook 1")
            w_btn.click(voice_continue, [w_in, w_len, w_temp, w_seed], [w_out, w_plot, w_codes], api_name="voice_continue")
            gr.Examples(examples, w_in)
        with gr.Tab("Live duplex"):
            gr.Markdown(duplex_intro(pipe))
            d_state = gr.State(None)
            d_mic = gr.Audio(sources=["microphone"], streaming=True, type="numpy", label="Talk")
            d_speaker = gr.Audio(streaming=True, autoplay=True, interactive=False, label="System", elem_id="duplex-speaker")
            d_log = gr.Textbox(label="Events (time in s of your audio: what and why)", lines=DUPLEX_LOG_LINES)
            d_mic.stream(duplex_feed, [d_mic, d_state], [d_speaker, d_state, d_log], stream_every=DUPLEX_STREAM_EVERY,
                         time_limit=DUPLEX_TIME_LIMIT, concurrency_limit=CONCURRENCY, api_name="duplex_stream")
            d_mic.start_recording(duplex_reset, None, [d_speaker, d_state, d_log], api_name=False)
            d_log.change(None, d_log, None, js=DUPLEX_PLAYER_JS)  # the browser's player follows hold / barge-in
            # the same step for API clients that send chunks themselves (gradio_client has no streaming input)
            d_chunk, d_send = gr.Audio(type="numpy", visible=False), gr.Button(visible=False)
            d_out = gr.Audio(visible=False, label="System chunk")
            d_send.click(duplex_feed, [d_chunk, d_state], [d_out, d_state, d_log], api_name="duplex_chunk")
            d_reset = gr.Button("Reset the conversation")
            d_reset.click(duplex_reset, None, [d_speaker, d_state, d_log], api_name="duplex_reset")
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=QUEUE_SIZE)
    demo.allowed_example_dir = str(out_dir)
    weakref.finalize(demo, shutil.rmtree, out_dir, ignore_errors=True)  # the example prompts go with the app
    return demo


def instruct_intro(pipe, chat_pipe, pipeline_path: str, chat_name: str) -> str:
    """The spoken-instruction tab's first line: which variant answers, or why none does."""
    if chat_pipe is None:
        return chat_support(pipe) + " (The instruct fallback is off: --instruct-pipeline none.)"
    by = f"Answered by `{chat_name}`" + ("" if chat_pipe is pipe else f" (`{pipeline_path}` has no instruct adapter)")
    return (
        f"{by}. Ask by voice or text; the reply streams as text and speech. Intent replies name one of: "
        f"{', '.join(INTENT_NAMES)}. In Chat mode, speech that is not addressed to the assistant (noise, side talk) "
        f"gets no reply, shown as *(silent)*.{measured_on_recordings(chat_pipe)}"
    )


def duplex_log(session) -> str:
    """The session's latest events, one a line: ``kind  time  reason``."""
    lines = []
    for event in session.events[-DUPLEX_LOG_LINES:]:
        extra = f" (onset {event.onset:.2f} s)" if event.onset is not None and event.kind != "user_start" else ""
        lines.append(f"{event.kind}  {event.time:.2f} s{extra}  {event.reason}".rstrip())
    return "\n".join(lines)


def duplex_intro(pipe) -> str:
    from hf_slm.pipelines.duplex import DuplexOptions

    options = DuplexOptions()
    replies = "answers in speech" if chat_support(pipe) is None else "continues your speech (a speech LM, no instruct adapter)"
    return (
        f"Talk into the microphone; the system {replies} after you pause for {options.turn_pause_s:g} s. Talk while it "
        f"speaks and it falls silent at once; after {options.backchannel_s:g} s of your speech it drops the rest of "
        f"its reply (barge-in). A short \"mm-hm\" or \"yeah\" is a backchannel: it goes on. Your audio is sent every "
        f"{DUPLEX_STREAM_EVERY:g} s; a stream lasts at most {DUPLEX_TIME_LIMIT} s."
    )


def make_examples(folder: Path, texts=EXAMPLE_TEXTS, prefix: str = "example", voice: str = "en-us") -> list[list[str]]:
    """Example prompts synthesised with espeak-ng at start-up (no binary files in the repo); none without espeak-ng."""
    try:
        from hf_slm.data import EspeakSynthesizer

        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for i, text in enumerate(texts):
            result = EspeakSynthesizer(voice).synthesize(text)
            sf.write(folder / f"{prefix}_{i}.wav", result.waveform, result.sampling_rate)
            paths.append([str(folder / f"{prefix}_{i}.wav")])
        return paths
    except Exception as error:  # the Space still works without examples
        print(f"no example prompts: {error}")
        return []


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", default=os.environ.get("HF_SLM_SPACE_PIPELINE", "default"), help="folder, repo id or 'default'")
    parser.add_argument("--instruct-pipeline", default=os.environ.get("HF_SLM_INSTRUCT_PIPELINE", "instruct-default"),
                        help="variant for the spoken-instruction tab when --pipeline cannot chat ('none': off)")
    parser.add_argument("--speech-llm-pipeline",
                        default=os.environ.get("HF_SLM_SPEECH_LLM_PIPELINE", SPEECH_LLM_DEFAULT),
                        help="SpeechLLMPipeline variant for the Speech LLM tab ('none': off; when it is not there, the "
                             "tab says so)")  # fmt: skip
    parser.add_argument("--tts-pipeline", default=os.environ.get("HF_SLM_TTS_PIPELINE", "tts-default"),
                        help="VallEPipeline variant for the zero-shot TTS tab ('none': off, the tab says how to set one)")
    parser.add_argument("--codec-pipeline", default=os.environ.get("HF_SLM_CODEC_PIPELINE", "codec-default"),
                        help="codec-LM variant for the voice continuation tab ('none': off)")
    parser.add_argument("--host", default="0.0.0.0" if os.environ.get("SPACE_ID") else "127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--threads", type=int, default=int(os.environ.get("HF_SLM_SPACE_THREADS", 1)),
                        help="torch CPU threads per process (0: torch's choice); requests already run CONCURRENCY at "
                             "once, and the small models run fastest on one thread each (docs/benchmarks.md)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    demo = build_demo(args.pipeline, args.instruct_pipeline, args.speech_llm_pipeline, args.tts_pipeline,
                      args.codec_pipeline)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # a stopped Space exits cleanly: its temporary files go
    demo.launch(server_name=args.host, server_port=args.port, max_file_size=f"{MAX_FILE_MB}mb", allowed_paths=[demo.allowed_example_dir])


if __name__ == "__main__":
    main()
