"""`hf-slm evaluate ...`: thin command-line wrappers over `hf_slm.evaluation` (imports stay inside the commands).

Every command writes OUT.json, a Markdown report OUT.md next to it and its plots (OUT.<name>.png), and prints a
short table. `--pipeline` takes a folder, a Hub repo id, or `default` (`hf_slm.DEFAULT_PIPELINE`).
"""

from __future__ import annotations

from pathlib import Path

from .arguments import (
    LazyChoices,
    csv_list,
    existing_path,
    fraction,
    json_object,
    non_negative_int,
    positive_float,
    positive_int,
)


def _pipeline(spec: str, device: str):
    from ..pipelines import SpeechLMPipeline

    return SpeechLMPipeline.from_pretrained(spec).to(device)


def _outputs(output: str) -> tuple[Path, Path, str]:
    json_path = Path(output)
    return json_path, json_path.with_suffix(".md"), str(json_path.with_suffix(""))


def _texts(spec: str, limit: int | None, seed: int) -> list[str]:
    from ..data import load_text_corpus

    return load_text_corpus(spec, limit=limit, seed=seed)


# ---------------------------------------------------------------------------------------------------- pairs
def cmd_build_pairs(args) -> int:
    from ..data import read_text_file
    from ..evaluation.pairs import build_lexical_pairs, build_storycloze_pairs, build_syntactic_pairs, write_pairs

    def word_file(path) -> list[str]:  # whitespace-separated words of a UTF-8 file (a binary one is named)
        return " ".join(read_text_file(path)).split()

    pairs = []
    if "lexical" in args.kinds:
        words = None
        known = word_file(args.known_words) if args.known_words else None
        if args.words == "open-heldout":
            from ..data import load_heldout_words, load_sentences, normalize_sentence
            from ..evaluation.pairs import english_dictionary

            sentences = load_sentences()
            words = load_heldout_words(sentences=sentences)
            if known is None:  # no non-word may be a token of the corpus either (names, old spellings)
                known = english_dictionary() | {w for s in sentences for w in normalize_sentence(s).split()}
        elif args.words:
            words = word_file(args.words)
        pairs += build_lexical_pairs(words, n=args.num_lexical, seed=args.seed, known_words=known, vowels=args.vowels,
                                     consonants=args.consonants)  # fmt: skip
    if "syntactic" in args.kinds:
        pairs += build_syntactic_pairs(args.num_per_phenomenon, phenomena=args.phenomena, seed=args.seed)
    if "storycloze" in args.kinds:
        pairs += build_storycloze_pairs(args.num_storycloze, seed=args.seed)
    unknown = sorted(set(args.kinds) - {"lexical", "syntactic", "storycloze"})
    if unknown or not pairs:
        raise ValueError(f"no pairs built or unknown kinds {unknown}; give --kinds from lexical,syntactic,storycloze")
    write_pairs(pairs, args.output)
    counts = {}
    for pair in pairs:
        counts[pair["phenomenon"]] = counts.get(pair["phenomenon"], 0) + 1
    print(f"wrote {len(pairs)} pairs to {args.output}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def cmd_pairs(args) -> int:
    from ..evaluation.pairs import read_pairs, read_storycloze_pairs, read_zerospeech_pairs, score_pairs

    sources = {"--pairs": args.pairs, "--zerospeech": args.zerospeech, "--storycloze": args.storycloze}
    given = [name for name, value in sources.items() if value]
    if len(given) != 1:
        raise ValueError(f"give exactly one of --pairs, --zerospeech ROOT (+ --task) and --storycloze DIR; got {given}")
    if args.zerospeech:
        pairs = read_zerospeech_pairs(args.zerospeech, args.task, args.split)
    else:
        pairs = read_storycloze_pairs(args.storycloze) if args.storycloze else read_pairs(args.pairs)
    pairs = pairs[: args.limit]
    pipe = _pipeline(args.pipeline, args.device)
    result = score_pairs(pipe, pairs, voice=args.voice, rate=args.rate, normalize=args.normalize,
                         batch_size=args.batch_size, show_progress=True)  # fmt: skip
    result.update(pipeline=args.pipeline, pairs=str(sources[given[0]]), source=given[0].lstrip("-"))
    if args.zerospeech:
        result.update(task=args.task, split=args.split)
    keys = ("accuracy", "accuracy_summed", "accuracy_normalized", "n", "voice", "pipeline")
    return _write_pair_report(result, args.output, "Spoken minimal pairs", "minimal-pair accuracy", keys)


def _write_pair_report(result: dict, output: str, title: str, plot_title: str, summary_keys) -> int:
    """JSON, a Markdown report with the per-phenomenon table and an accuracy bar plot; the table printed."""
    from ..evaluation.pairs import format_pair_table
    from ..evaluation.report import bar_plot, write_json, write_report

    json_path, md_path, stem = _outputs(output)
    write_json(result, json_path)
    per = {k: v["accuracy"] for k, v in result["per_phenomenon"].items()} | {"all": result["accuracy"]}
    plot = bar_plot(per, f"{stem}.accuracy.png", plot_title, "accuracy", chance=0.5)
    table = format_pair_table(result)
    write_report(md_path, title, {k: result[k] for k in summary_keys}, table, [plot])
    print(table)
    print(f"wrote {json_path}, {md_path}, {plot}")
    return 0


def cmd_pairs_topline(args) -> int:
    from ..evaluation.pairs import read_pairs, score_pairs_ngram
    from ..training import fit_phone_lm

    texts = _texts(args.text, args.text_limit, args.seed)
    lm = fit_phone_lm(texts, order=args.order, voice=args.voice, show_progress=True)
    result = score_pairs_ngram(lm, read_pairs(args.pairs)[: args.limit], voice=args.voice)
    result.update(pairs=str(args.pairs), text=str(args.text), text_limit=args.text_limit, texts=len(texts),
                  seed=args.seed)  # fmt: skip
    return _write_pair_report(result, args.output, "Spoken minimal pairs: phone-LM topline",
                              f"phone {args.order}-gram topline", ("accuracy", "n", "order", "text", "texts", "voice"))


# ---------------------------------------------------------------------------------------------------- abx
def cmd_abx(args) -> int:
    from ..evaluation.abx import build_abx_items, evaluate_abx
    from ..evaluation.report import bar_plot, write_json, write_report

    pipe = _pipeline(args.pipeline, args.device)
    items = build_abx_items(words=args.words, voices=args.voices, rates=args.rates)
    representations = ["features", "units"] if args.representation == "both" else [args.representation]
    if args.speaker_adaptation and getattr(pipe.speech_tokenizer.config, "vtln_warps", None) is None:
        raise ValueError(f"--speaker-adaptation searches a vocal tract length warp per speaker, but the speech "
                         f"tokenizer of {args.pipeline} has no vtln_warps (fit one with hf-slm fit-tokenizer --vtln)")
    result = {rep: evaluate_abx(pipe, items, rep, speaker_adaptation=args.speaker_adaptation)
              for rep in representations}  # fmt: skip
    result.update(pipeline=args.pipeline, words=args.words, voices=args.voices, rates=args.rates,
                  speaker_adaptation=args.speaker_adaptation)  # fmt: skip
    json_path, md_path, stem = _outputs(args.output)
    write_json(result, json_path)
    values, lines = {}, [f"{'representation':<16}{'within':>10}{'between':>10}   (ABX error, %)"]
    for rep in representations:
        within, between = 100 * result[rep]["within_speaker_error"], 100 * result[rep]["between_speaker_error"]
        values[f"{rep} within"], values[f"{rep} between"] = within, between
        lines.append(f"{rep:<16}{within:>10.2f}{between:>10.2f}")
    plot = bar_plot(values, f"{stem}.abx.png", "ABX error", "error (%)", chance=50)
    table = "\n".join(lines)
    write_report(md_path, "ABX", {k.replace(" ", "_") + "_error_percent": v for k, v in values.items()}, table, [plot])
    print(table)
    print(f"wrote {json_path}, {md_path}, {plot}")
    return 0


# ---------------------------------------------------------------------------------------------------- purity
def cmd_purity(args) -> int:
    from ..evaluation.report import write_json, write_report
    from ..evaluation.unit_purity import build_phone_items, evaluate_unit_purity
    from ..pipelines.loading import load_speech_tokenizer

    feature_extractor, tokenizer = load_speech_tokenizer(args.pipeline)
    items = build_phone_items(_texts(args.texts, args.limit, args.seed), voices=args.voices, rates=args.rates)
    result = evaluate_unit_purity(feature_extractor, tokenizer.to(args.device).eval(), items,
                                  exclude_silence=args.exclude_silence)  # fmt: skip
    result.update(pipeline=args.pipeline, voices=args.voices, rates=args.rates, num_utterances=len(items))
    json_path, md_path, _ = _outputs(args.output)
    write_json(result, json_path)
    table = (f"phone purity {result['phone_purity']:.3f}   cluster purity {result['cluster_purity']:.3f}   "
             f"PNMI {result['pnmi']:.3f}   ({result['num_frames']} frames, {result['num_phones']} phones)")  # fmt: skip
    write_report(md_path, "Unit-to-phone purity", {k: result[k] for k in ("phone_purity", "cluster_purity", "pnmi")},
                 table, [])  # fmt: skip
    print(table)
    print(f"wrote {json_path}, {md_path}")
    return 0


# ---------------------------------------------------------------------------------------------------- resynthesis
def _audio_and_texts(args) -> tuple[list | None, list[str]]:
    """The inputs of resynthesis and asr from exactly one of --texts / --audio-dir / --dataset / --real-speech."""
    from ..data import real_speech

    given = [name for name in ("texts", "audio_dir", "dataset", "real_speech") if getattr(args, name)]
    if len(given) != 1:
        raise ValueError("give exactly one of --texts (synthesised with espeak-ng), --audio-dir (.wav + .txt), "
                         "--dataset (audio and text columns) and --real-speech (installed clips); "
                         f"got {given or 'none'}")
    if args.texts:
        return None, _texts(args.texts, args.limit, args.seed)
    if args.audio_dir:
        audio, texts = real_speech.read_audio_dir(args.audio_dir)
    elif args.real_speech:
        audio, texts = real_speech.load_real_speech(args.real_speech)
    else:
        ds = real_speech.load_local_dataset(args.dataset, split=args.split)
        if args.limit is not None:
            ds = ds.select(range(min(args.limit, len(ds))))
        base = Path(args.dataset) if Path(args.dataset).is_dir() else Path(args.dataset).parent
        audio, texts = real_speech.audio_text_columns(ds, args.audio_column, args.text_column, base_dir=base)
    return audio[: args.limit], texts[: args.limit]


def _source(args) -> dict:
    """What was heard, so that `collect_eval_results` keeps real speech apart from espeak-ng speech."""
    if args.texts:
        return {"texts": Path(args.texts).name, "voice": args.voice, "rate": args.rate}
    if args.real_speech:
        return {"real_speech": args.real_speech}
    return {"audio_dir": Path(args.audio_dir).name} if args.audio_dir else {"dataset": Path(args.dataset).name}


def cmd_resynthesis(args) -> int:
    from ..evaluation.asr import load_asr
    from ..evaluation.report import bar_plot, write_json, write_report
    from ..evaluation.resynthesis import evaluate_resynthesis

    audio, texts = _audio_and_texts(args)
    json_path, md_path, stem = _outputs(args.output)
    pipe = _pipeline(args.pipeline, args.device)
    asr = args.asr if args.asr == "pocketsphinx" else load_asr(args.asr, device=args.device)
    result = evaluate_resynthesis(pipe, texts, audio=audio, voice=args.voice, rate=args.rate, asr=asr,
                                  vocabulary=args.vocabulary, dnsmos=args.dnsmos, show_progress=True,
                                  output_dir=f"{stem}.audio" if args.save_audio else None)  # fmt: skip
    result.update(pipeline=args.pipeline, **_source(args))
    write_json(result, json_path)
    keys = ("wer_original", "wer_resynthesized", "cer_original", "cer_resynthesized")
    plot = bar_plot({k: result[k] for k in keys}, f"{stem}.error_rates.png", "ASR error rates", "error rate")
    scores = keys + ("mel_distance",) + (("dnsmos_ovrl_original", "dnsmos_ovrl_resynthesized") if args.dnsmos else ())
    table = "\n".join([f"{k:<26}{result[k]:>8.3f}" for k in scores] + [f"{'n':<26}{result['n']:>8}"])
    summary = {k: result[k] for k in scores + ("n", "asr", "pipeline")}
    write_report(md_path, "Resynthesis", summary, table, [plot],
                 notes="WER/CER of the original audio is the ASR's own floor; the gap to the resynthesis is what the "
                       "units and the vocoder lose.")  # fmt: skip
    print(table)
    print(f"wrote {json_path}, {md_path}, {plot}")
    return 0


# ---------------------------------------------------------------------------------------------------- generation
def cmd_generation(args) -> int:
    from ..data import make_synthesizer
    from ..evaluation.generation import evaluate_generation, plot_generation
    from ..evaluation.report import write_json, write_report

    texts = _texts(args.texts, args.limit, args.seed)
    spoken = make_synthesizer(voice=args.voice).synthesize_many(texts)
    prompts = [{"array": speech.waveform, "sampling_rate": speech.sampling_rate} for speech in spoken]
    pipe = _pipeline(args.pipeline, args.device)
    judge = _pipeline(args.judge, args.device) if args.judge else None
    result = evaluate_generation(pipe, prompts, temperatures=args.temperatures, num_samples=args.num_samples,
                                 max_new_tokens=args.max_new_tokens, judge=judge, prompt_fraction=args.prompt_fraction,
                                 seed=args.seed, show_progress=True)  # fmt: skip
    result.update(pipeline=args.pipeline, judge=args.judge or "generator", texts=args.texts, voice=args.voice)
    json_path, md_path, stem = _outputs(args.output)
    write_json(result, json_path)
    plot = plot_generation(result, f"{stem}.ppl_vert.png")
    lines = [f"{'T':>6}{'perplexity':>12}{'VERT':>8}{'auto-BLEU':>11}{'self-BLEU':>11}{'length':>8}"]
    for r in result["per_temperature"]:
        lines.append(f"{r['temperature']:>6.2f}{r['perplexity']:>12.2f}{r['vert']:>8.3f}{r['auto_bleu']:>11.3f}"
                     f"{r['self_bleu']:>11.3f}{r['mean_length']:>8.1f}")  # fmt: skip
    lines.append(f"AUC (perplexity over VERT): {result['auc']:.4g}")
    table = "\n".join(lines)
    write_report(md_path, "Generation quality and diversity", {"auc": result["auc"], "prompts": result["num_prompts"],
                 "judge": result["judge"], "pipeline": args.pipeline}, table, [plot])  # fmt: skip
    print(table)
    print(f"wrote {json_path}, {md_path}, {plot}")
    return 0


# ---------------------------------------------------------------------------------------------------- prosody
def cmd_prosody(args) -> int:
    from ..data import make_synthesizer
    from ..evaluation.prosody import evaluate_prosody, plot_f0_contours
    from ..evaluation.report import write_json, write_report

    texts = _texts(args.texts, args.limit, args.seed)
    audio = []
    for index, text in enumerate(texts):  # pitches cycle over the prompts, so that consistency has a spread to follow
        speech = make_synthesizer(voice=args.voice, pitch=args.pitches[index % len(args.pitches)]).synthesize(text)
        audio.append({"array": speech.waveform, "sampling_rate": speech.sampling_rate})
    pipe = _pipeline(args.pipeline, args.device)
    result = evaluate_prosody(pipe, audio, num_samples=args.num_samples, prompt_fraction=args.prompt_fraction,
                              temperature=args.temperature, max_new_tokens=args.max_new_tokens, f0_method=args.f0,
                              speaker_similarity=args.speaker_similarity, seed=args.seed)  # fmt: skip
    for item in result["items"]:
        item.update(text=texts[item["index"]], espeak_pitch=args.pitches[item["index"] % len(args.pitches)])
    result.update(pipeline=args.pipeline, voice=args.voice, pitches=args.pitches)
    json_path, md_path, stem = _outputs(args.output)
    write_json(result, json_path)
    plot = plot_f0_contours(result, f"{stem}.f0.png")
    keys = ("min_mae", "resynthesis_mae", "consistency", "reference_consistency", "expressiveness")
    lines = [f"{k:<24}{result[k]:>8.3f}" for k in keys]
    lines += [f"{'voiced ' + k:<24}{v:>8.3f}" for k, v in result["voiced_fraction"].items()]
    lines += [f"{'speaker sim. ' + k:<24}{v:>8.3f}" for k, v in result.get("speaker_similarity", {}).items()]
    lines.append(f"{'n (skipped)':<24}{result['n']:>4} ({len(result['skipped'])})")
    lines += ["", f"{'pitch':>5}{'prompt Hz':>11}{'reference Hz':>14}{'samples Hz':>12}{'min-MAE':>9}"]
    lines += [f"{i['espeak_pitch']:>5}{i['prompt_mean_f0']:>11.1f}{i['reference_mean_f0']:>14.1f}"
              f"{i['sample_mean_f0']:>12.1f}{i['min_mae']:>9.3f}" for i in result["items"]]  # fmt: skip
    table = "\n".join(lines)
    summary = {k: result[k] for k in keys + ("n", "num_samples", "f0_method", "pipeline")}
    summary |= {f"speaker_similarity_{k}": v for k, v in result.get("speaker_similarity", {}).items()}
    write_report(md_path, "Prosody of continuations (pGSLM)", summary, table, [plot],
                 notes="min-MAE: mean |log-F0 difference| of the closest sample to the true continuation (lower is "
                       "better); resynthesis_mae is that of the vocoded true units. consistency: Pearson "
                       "correlation of prompt and continuation mean log-F0 across prompts; reference_consistency is "
                       "that of the true continuations. expressiveness: log-F0 std of the samples / the reference's "
                       "(1 = as lively).")  # fmt: skip
    print(table)
    print(f"wrote {json_path}, {md_path}, {plot}")
    return 0


# ---------------------------------------------------------------------------------------------------- asr
def cmd_asr(args) -> int:
    from ..evaluation.asr import evaluate_asr, load_asr_pipeline
    from ..evaluation.report import bar_plot, write_json, write_report

    audio, texts = _audio_and_texts(args)
    asr = load_asr_pipeline(args.pipeline, device=args.device, transcribe_kwargs=args.transcribe_kwargs)
    result = evaluate_asr(asr, texts, voice=args.voice, rate=args.rate, audio=audio, show_progress=True,
                          baselines=[b for b in args.baseline if b != "none"], batch_size=args.batch_size)  # fmt: skip
    result.update(pipeline=args.pipeline, transcribe_kwargs=args.transcribe_kwargs or {}, **_source(args))
    json_path, md_path, stem = _outputs(args.output)
    write_json(result, json_path)
    scores = {"wer": result["wer"], "cer": result["cer"]}
    lines = [f"{'':<22}{'WER':>8}{'CER':>8}", f"{args.pipeline[-22:]:<22}{result['wer']:>8.3f}{result['cer']:>8.3f}"]
    for vocabulary, sphinx in result["pocketsphinx"].items():
        scores |= {f"pocketsphinx_{vocabulary}_wer": sphinx["wer"], f"pocketsphinx_{vocabulary}_cer": sphinx["cer"]}
        lines.append(f"{'pocketsphinx ' + vocabulary:<22}{sphinx['wer']:>8.3f}{sphinx['cer']:>8.3f}")
    speech = f"espeak-ng {args.voice} at {args.rate} words/min" if audio is None else "recordings"
    lines.append(f"n = {result['n']}, {speech}")
    plot = bar_plot(scores, f"{stem}.error_rates.png", f"ASR error rates on {speech}", "error rate")
    table = "\n".join(lines)
    write_report(md_path, f"ASR on {speech}", scores | {k: result[k] for k in ("n", "asr", "voice", "rate")},
                 table, [plot], notes="Per-item hypotheses are in the JSON file. pocketsphinx closed: restricted to the "
                 "words of the texts (an intelligibility probe).")  # fmt: skip
    print(table)
    print(f"wrote {json_path}, {md_path}, {plot}")
    return 0


# ---------------------------------------------------------------------------------------------------- speech-llm-tasks
def cmd_speech_llm_tasks(args) -> int:
    from ..evaluation.report import bar_plot, write_json, write_report
    from ..evaluation.speech_llm_tasks import TASKS, evaluate_speech_llm_tasks, summarize
    from ..pipelines import SpeechLLMPipeline

    unknown = sorted(set(args.tasks) - set(TASKS))
    if unknown:
        raise ValueError(f"--tasks: unknown task(s) {unknown}; choose from {list(TASKS)}")
    pipe = SpeechLLMPipeline.from_pretrained(args.pipeline).to(args.device)
    result = evaluate_speech_llm_tasks(pipe, tasks=args.tasks, num_examples=args.num_examples, voice=args.voice,
                                       rate=args.rate, seed=args.seed, show_progress=True)  # fmt: skip
    result["pipeline"] = args.pipeline
    json_path, md_path, stem = _outputs(args.output)
    write_json(result, json_path)
    scores = summarize(result)
    table = "\n".join(f"{name:<28}{value:>8.3f}" if isinstance(value, float) else f"{name:<28}{value!s:>8}"
                      for name, value in scores.items())  # fmt: skip
    plot = bar_plot({k: v for k, v in scores.items() if isinstance(v, float)}, f"{stem}.tasks.png",
                    "speech LLM tasks", "rate")  # fmt: skip
    write_report(md_path, "Speech LLM tasks on espeak-ng speech", scores | {"voice": args.voice, "rate": args.rate},
                 table, [plot], notes="Per-item answers are in the JSON file. spoken_answer_wer: pocketsphinx (closed "
                 "vocabulary) on the vocoded answers against the text answers; wer_espeak: on espeak-ng's audio of "
                 "the same texts.")  # fmt: skip
    print(table)
    print(f"wrote {json_path}, {md_path}, {plot}")
    return 0


# ---------------------------------------------------------------------------------------------------- instruct-tasks
def cmd_instruct_tasks(args) -> int:
    from ..evaluation.instruct_tasks import (
        HELD_OUT_VOICES,
        RECORDING_TASKS,
        TASKS,
        evaluate_instruct_tasks,
        read_tuning_texts,
        summarize,
    )
    from ..evaluation.report import bar_plot, write_json, write_report
    from ..pipelines import SpokenChatPipeline

    explicit_tasks = args.tasks is not None
    args.tasks = list(TASKS if args.tasks is None else args.tasks)
    args.voices = list(HELD_OUT_VOICES if args.voices is None else args.voices)
    unknown = sorted(set(args.tasks) - set(TASKS))
    if unknown:
        raise ValueError(f"--tasks: unknown task(s) {unknown}; choose from {list(TASKS)}")
    if args.num_examples < 2:
        raise ValueError(f"--num-examples must be at least 2 (silence mode splits them between noise and side talk), "
                         f"got {args.num_examples}")  # fmt: skip
    if args.threads:
        __import__("torch").set_num_threads(args.threads)
    recordings, source = None, {}
    if any(getattr(args, name) for name in ("audio_dir", "dataset", "real_speech")):
        wrong = sorted(set(args.tasks) - set(RECORDING_TASKS)) if explicit_tasks else []
        if wrong:
            raise ValueError(f"--tasks {','.join(wrong)}: not measurable on recordings (they need texts chosen for "
                             f"the task); with recordings choose from {','.join(RECORDING_TASKS)}")  # fmt: skip
        args.tasks = [task for task in args.tasks if task in RECORDING_TASKS]
        recordings, source = _audio_and_texts(args), _source(args)  # every input checked before the model loads
    pipe = SpokenChatPipeline.from_pretrained(args.pipeline).to(args.device)
    # the tuning's texts are held out; unknown (no file): held-out sentences cannot avoid them, `text_overlap` is null
    tuning_path, tuning_texts = read_tuning_texts(pipe, args.exclude_texts)
    result = evaluate_instruct_tasks(pipe, tasks=args.tasks, num_examples=args.num_examples, voices=args.voices,
                                     rates=args.rates, seed=args.seed, exclude_texts=tuning_texts,
                                     cache_dir=args.synth_cache_dir, show_progress=True,
                                     recordings=recordings)  # fmt: skip
    result = {"pipeline": args.pipeline, "tuning_texts": None if tuning_path is None else str(tuning_path),
              **source, **result}  # fmt: skip
    json_path, md_path, stem = _outputs(args.output)
    write_json(result, json_path)
    scores = summarize(result)
    table = "\n".join(f"{name:<28}{value:>8.3f}" for name, value in scores.items())
    plot = bar_plot(scores, f"{stem}.tasks.png", f"spoken tasks of {args.pipeline}", "value")
    write_report(md_path, f"Spoken tasks of {args.pipeline}", scores, table, [plot],
                 notes=(f"Recordings: {source}; the silence-mode queries and noise are synthetic as below. "
                        if source else "") +
                 f"Held-out speech: voices {', '.join(args.voices)}, rates {args.rates}, seed {args.seed}, "
                 f"{args.num_examples} utterances per task; greedy decoding. `tts_wer_espeak` is the recogniser's WER "
                 "on espeak-ng's own audio of the same texts; `intent_chance` is 1 / number of intents; a constant "
                 "policy has silence balanced accuracy 0.5. `text_overlap` in the JSON: the fraction of a task's texts "
                 "also seen in tuning (null when the tuning's texts are unknown: no --exclude-texts and no "
                 "tuning_texts.txt in the variant). Per-item answers are in the JSON file.")  # fmt: skip
    print(table)
    print(f"wrote {json_path}, {md_path}, {plot}")
    return 0


# ---------------------------------------------------------------------------------------------------- turn-taking
def cmd_turn_taking(args) -> int:
    from ..evaluation.report import bar_plot, write_json, write_report
    from ..evaluation.turn_taking import EVENTS, dialogue_files, format_turn_taking_table, turn_taking_statistics

    labels = args.names or [Path(spec).name or str(spec) for spec in args.audio]
    if len(labels) != len(args.audio):
        raise ValueError(f"--names gives {len(labels)} names for {len(args.audio)} --audio sets")
    if len(set(labels)) != len(labels):
        raise ValueError(f"the sets need different names (give --names), got {labels}")
    vad = {"min_silence": args.min_silence, "threshold": args.threshold}
    files = {label: dialogue_files(spec) for label, spec in zip(labels, args.audio)}  # check every input first
    result = {label: turn_taking_statistics(paths, **vad) for label, paths in files.items()}
    json_path, md_path, stem = _outputs(args.output)
    write_json({"sets": result, "audio": {label: str(spec) for label, spec in zip(labels, args.audio)}, **vad}, json_path)
    values = {f"{label} {event}": result[label][event]["per_minute"] for label in labels for event in EVENTS}
    plot = bar_plot(values, f"{stem}.turn_taking.png", "turn-taking events", "count per minute")
    table = format_turn_taking_table(result)
    summary = {f"{label}_minutes": result[label]["minutes"] for label in labels}
    write_report(md_path, "Turn-taking (dGSLM)", summary, table, [plot],
                 notes="N/min: events per minute of dialogue; s/min: seconds of the event per minute. Overlap "
                       "within: the same speaker holds the turn on both sides (backchannel); between: a turn change.")  # fmt: skip
    print(table)
    print(f"wrote {json_path}, {md_path}, {plot}")
    return 0


# ---------------------------------------------------------------------------------------------------- stsp
def _directions(text: str) -> list[str]:
    import argparse

    from ..evaluation.stsp import DIRECTIONS

    directions = [d.strip() for d in text.split(",") if d.strip()]
    bad = [d for d in directions if d not in DIRECTIONS]
    if bad or not directions:
        raise argparse.ArgumentTypeError(f"unknown direction(s) {bad or [text]}; choose from {', '.join(DIRECTIONS)}")
    return directions


def cmd_stsp(args) -> int:
    from ..data.sentiment import build_sentiment_prompts
    from ..evaluation.report import bar_plot, write_json, write_report
    from ..evaluation.stsp import evaluate_stsp, format_stsp_table, split_prompts, train_classifiers
    from ..pipelines import ExpressiveSpeechLMPipeline

    if args.train_fraction >= 1.0:
        raise ValueError(f"--train-fraction must be below 1 (some prompts are held out), got {args.train_fraction}")
    pipe = ExpressiveSpeechLMPipeline.from_pretrained(args.pipeline).to(args.device)
    if any(d.endswith("->text") or d.startswith("text->") for d in args.directions) and pipe.tokenizer is None:
        raise ValueError(f"directions {args.directions} involve text but the pipeline {args.pipeline} has no text tokenizer")
    prompts = build_sentiment_prompts(args.num_prompts, seed=args.seed)
    train, held_out = split_prompts(prompts, args.train_fraction, seed=args.seed)
    speech_clf, text_clf, accuracy = train_classifiers(train, held_out, seed=args.seed)
    results = evaluate_stsp(pipe, held_out, speech_clf, text_clf, directions=args.directions,
                   max_new_tokens=args.max_new_tokens, min_new_tokens=args.min_new_tokens,
                   temperature=args.temperature, seed=args.seed)  # fmt: skip
    json_path, md_path, stem = _outputs(args.output)
    write_json({"directions": results, **accuracy, "pipeline": str(args.pipeline), "num_prompts": args.num_prompts,
                "held_out_prompts": len(held_out), "seed": args.seed}, json_path)  # fmt: skip
    plot = bar_plot({d: r["stsp"] for d, r in results.items()}, f"{stem}.stsp.png", "STSP", "preserved fraction",
                    chance=1.0 / 3)  # fmt: skip
    table = format_stsp_table(results, accuracy)
    write_report(md_path, "STSP (speech-text sentiment preservation)", accuracy, table, [plot],
                 notes="STSP: fraction of continuations classified with the prompt's sentiment; random: 1/3 "
                       "(SpiRit-LM's baseline); chance|pred: agreement expected from the predicted label frequencies.")  # fmt: skip
    print(table)
    print(f"wrote {json_path}, {md_path}, {plot}")
    return 0


# ---------------------------------------------------------------------------------------------------- duplex
def cmd_duplex_behaviour(args) -> int:
    from ..evaluation.duplex_behaviour import KINDS, duplex_behaviour, format_duplex_table, make_scenarios
    from ..evaluation.report import write_json, write_report
    from ..pipelines import SpokenChatPipeline

    options = {"turn_pause_s": args.turn_pause, "backchannel_s": args.backchannel, "hold_on_onset": not args.no_hold,
               "reply_units": args.reply_units}  # fmt: skip
    unknown = [kind for kind in args.kinds if kind not in KINDS]
    if unknown:
        raise ValueError(f"--kinds: unknown scenario kind(s) {unknown}; choose from {','.join(KINDS)}")
    if args.short_pause >= args.turn_pause:
        raise ValueError(f"--short-pause {args.short_pause} must be shorter than --turn-pause {args.turn_pause}")
    if args.chunk > 5.0:
        raise ValueError(f"--chunk {args.chunk} s is longer than a live chunk may be (5 s)")
    pipe = SpokenChatPipeline.from_pretrained(args.pipeline).to(args.device)
    scenarios = make_scenarios(args.kinds, num_per_kind=args.num, seed=args.seed, turn_pause_s=args.turn_pause,
                               short_pause_s=args.short_pause, long_pause_s=max(2.0, args.turn_pause + 1.0),
                               min_barge_in_s=max(1.6, args.backchannel + 0.6),
                               sampling_rate=int(pipe.feature_extractor.sampling_rate))  # fmt: skip
    result = duplex_behaviour(pipe, scenarios, chunk_s=args.chunk, **options)
    json_path, md_path, _ = _outputs(args.output)
    write_json(result | {"pipeline": args.pipeline, "num_per_kind": args.num, "seed": args.seed}, json_path)
    table = format_duplex_table(result["summary"])
    write_report(md_path, "Duplex behaviour (Full-Duplex-Bench style)",
                 {"pipeline": args.pipeline, "chunk_s": args.chunk, **options}, table,
                 notes="Latencies in seconds of audio: stop = user onset -> last system sample; reply dropped = onset "
                       "-> the rest of the reply dropped; take turn = end of user speech -> first reply sample.")  # fmt: skip
    print(table)
    print(f"wrote {json_path}, {md_path}")
    return 0


# ---------------------------------------------------------------------------------------------------- voice, tts, codec
def _any_pipeline(spec: str, device: str):
    """A variant with `continue_speech` / `resynthesize`: an AudioLM variant, or any `SpeechLMPipeline` variant."""
    from ..pipelines import AudioLMPipeline, SpeechLMPipeline, read_index, resolve_pipeline_path

    path = resolve_pipeline_path(spec)
    kind = read_index(path).get("_class_name")
    return (AudioLMPipeline if kind == "AudioLMPipeline" else SpeechLMPipeline).from_pretrained(path).to(device)


def _resynthesis_pipeline(spec: str, device: str):
    """`_any_pipeline`, or a bare codec folder (`examples/codec`'s output or one of its `checkpoint-N` folders: a
    `config.json` and no pipeline index), wrapped as a tokenizer-only `SpeechLMPipeline` so that a codec can be
    measured before any LM is trained on it."""
    from ..models.codec.modeling_codec import CodecModelMixin
    from ..models.unit_encoder import SpeechFeatureExtractor
    from ..pipelines import SpeechLMPipeline
    from ..pipelines.pipeline_utils import INDEX_FILE
    from ..training.arguments import load_codec

    folder = Path(spec).expanduser()
    if not folder.is_dir() or (folder / INDEX_FILE).is_file() or not (folder / "config.json").is_file():
        return _any_pipeline(spec, device)
    codec = load_codec(str(folder))
    if not isinstance(codec, CodecModelMixin):
        raise ValueError(f"{folder} holds a {type(codec).__name__}, not a codec; give a pipeline variant or a codec folder")
    fe = SpeechFeatureExtractor(sampling_rate=codec.sampling_rate, do_normalize=False)
    return SpeechLMPipeline(feature_extractor=fe, speech_tokenizer=codec).to(device)


def _named_pipelines(specs: list[str]) -> dict[str, str]:
    """`["default", "codec=runs/x/variant"]` -> `{"default": "default", "codec": "runs/x/variant"}`."""
    named = {}
    for spec in specs:
        name, _, path = spec.rpartition("=")
        name = name or Path(path).name
        if name in named:
            raise ValueError(f"--pipelines names {name!r} twice; give name=path to tell them apart")
        named[name] = path
    return named


def _speech_rows(path: Path, limit: int | None, columns=("audio",)):
    """Rows of a saved `datasets` folder (a DatasetDict: its test / validation / first split) with `columns`."""
    import datasets

    if not any((Path(path) / name).is_file() for name in ("dataset_info.json", "dataset_dict.json")):
        raise ValueError(f"--dataset {path} is not a dataset folder (what save_to_disk and `hf-slm synth` write, with "
                         "dataset_info.json or dataset_dict.json)")  # fmt: skip
    ds = datasets.load_from_disk(str(path))
    if isinstance(ds, datasets.DatasetDict):
        ds = ds[next((s for s in ("test", "validation") if s in ds), next(iter(ds)))]
    missing = [c for c in columns if c not in ds.column_names]
    if missing:
        raise ValueError(f"--dataset {path} has no column(s) {missing}; columns: {ds.column_names}")
    return ds.select(range(min(limit, len(ds)))) if limit else ds


def _similarity_table(rows: dict) -> str:
    lines = [f"{'':<22}{'speaker sim.':>13}{'std':>7}{'n':>4}"]
    lines += [f"{name:<22}{r['speaker_similarity']:>13.3f}{r['std']:>7.3f}{r['n']:>4}" for name, r in rows.items()]
    return "\n".join(lines)


def _dataset_or_recordings(args, columns=("audio",)) -> tuple[dict, dict]:
    """``{column: values}`` of `voice` / `tts` / `codec`: ``columns`` of --dataset (a saved dataset), or ``audio`` and
    ``text`` of --real-speech recordings (exactly one of the two); and what it was, so that `collect_eval_results`
    keeps recordings apart."""
    if (args.dataset is None) == (args.real_speech is None):
        raise ValueError(f"give exactly one of --dataset (a saved dataset with the columns {list(columns)}) and "
                         "--real-speech (installed recordings)")  # fmt: skip
    if args.real_speech:
        from ..data.real_speech import load_real_speech

        audio, texts = load_real_speech(args.real_speech)
        return {"audio": audio[: args.limit], "text": texts[: args.limit]}, {"real_speech": args.real_speech}
    rows = _speech_rows(args.dataset, args.limit, columns)
    return {column: list(rows[column]) for column in columns}, {"dataset": str(args.dataset)}


def cmd_voice(args) -> int:
    from ..evaluation.report import bar_plot, write_json, write_report
    from ..evaluation.voice import evaluate_continuation_voice

    inputs, source = _dataset_or_recordings(args)
    pipelines = {name: _any_pipeline(spec, args.device) for name, spec in _named_pipelines(args.pipelines).items()}
    result = evaluate_continuation_voice(pipelines, inputs["audio"], prompt_seconds=args.prompt_seconds,
                                         new_seconds=args.new_seconds, temperature=args.temperature, seed=args.seed,
                                         show_progress=True)  # fmt: skip
    result |= {"pipelines": _named_pipelines(args.pipelines), **source}
    json_path, md_path, stem = _outputs(args.output)
    write_json(result, json_path)
    rows = {**result["systems"], **{f"[{k}]": v for k, v in result["references"].items()}}
    plot = bar_plot({k: v["speaker_similarity"] for k, v in rows.items()}, f"{stem}.voice.png",
                    "Speaker similarity: prompt vs continuation", "cosine (Resemblyzer)")  # fmt: skip
    table = _similarity_table(rows)
    write_report(md_path, "Voice preservation of continuations", {k: v["speaker_similarity"] for k, v in rows.items()},
                 table, [plot], notes=f"Prompt: the first {args.prompt_seconds} s of each utterance; continuation: "
                 f"{args.new_seconds} s, compared alone. [same_voice]: the rest of the same utterance (ceiling); "
                 "[other_voice]: the rest of the next prompt's utterance (floor).")  # fmt: skip
    print(table)
    print(f"wrote {json_path}, {md_path}, {plot}")
    return 0


def cmd_tts(args) -> int:
    from ..evaluation.report import write_json, write_report
    from ..evaluation.voice import evaluate_tts_voice
    from ..pipelines import VallEPipeline

    inputs, source = _dataset_or_recordings(args, ("audio", "text", "voice", "rate", "pitch"))
    texts = inputs["text"]
    if args.real_speech:  # recordings: espeak-ng's reference speaks in --voice, a voice other than the prompt's
        inputs |= {"voice": [args.voice] * len(texts), "rate": [175] * len(texts), "pitch": [50] * len(texts)}
    if len(texts) < 2:
        what = f"--real-speech {args.real_speech}" if args.real_speech else f"--dataset {args.dataset}"
        raise ValueError(f"{what} has {len(texts)} utterance(s); each prompt says the next one's text, so 2 are needed")
    pipe = VallEPipeline.from_pretrained(args.pipeline).to(args.device)
    result = evaluate_tts_voice(pipe, list(zip(inputs["audio"], texts)), texts[1:] + texts[:1], inputs["voice"],
                                inputs["rate"], inputs["pitch"],
                                temperature=args.temperature, top_p=args.top_p, seed=args.seed,
                                language=args.language, show_progress=True)  # fmt: skip
    result |= {"pipeline": args.pipeline, **source}
    json_path, md_path, _ = _outputs(args.output)
    write_json(result, json_path)
    lines = [f"{'':<10}{'WER':>7}{'CER':>7}{'speaker sim.':>14}{'n':>4}"]
    lines += [f"{side:<10}{result[side]['wer']:>7.3f}{result[side]['cer']:>7.3f}"
              f"{result[side]['speaker_similarity']:>14.3f}{result[side]['n']:>4}" for side in ("tts", "espeak")]  # fmt: skip
    lines.append(f"WER ratio (tts / espeak-ng): {result['wer_ratio']:.2f}")
    table = "\n".join(lines)
    summary = {f"{side}_{k}": result[side][k] for side in ("tts", "espeak") for k in ("wer", "cer", "speaker_similarity")}
    write_report(md_path, "Zero-shot TTS: intelligibility and voice", summary | {"wer_ratio": result["wer_ratio"]},
                 table, notes=f"ASR: {result['asr']}. Each prompt (a whole utterance and its transcript) is followed "
                 "by the next utterance's text; espeak-ng says that text in the prompt's voice, rate and pitch (of "
                 f"recordings: in {args.voice}, a voice other than the prompt's).")  # fmt: skip
    print(table)
    print(f"wrote {json_path}, {md_path}")
    return 0


def cmd_codec(args) -> int:
    from ..evaluation.report import write_json, write_report
    from ..evaluation.voice import evaluate_codec_quality

    inputs, source = _dataset_or_recordings(args)
    named = _named_pipelines(args.pipelines)
    result = {name: evaluate_codec_quality(_resynthesis_pipeline(spec, args.device), inputs["audio"], show_progress=True)
              for name, spec in named.items()}  # fmt: skip
    json_path, md_path, _ = _outputs(args.output)
    write_json({"systems": result, "pipelines": named, **source}, json_path)
    keys = ("bitrate_bps", "mel_distance", "stoi", "speaker_similarity")
    lines = [f"{'':<22}{'bps':>8}{'mel dist.':>11}{'STOI':>7}{'speaker sim.':>14}{'n (speech)':>12}"]
    lines += [f"{name:<22}{r['bitrate_bps']:>8.0f}{r['mel_distance']:>11.3f}{r['stoi']:>7.3f}{r['speaker_similarity']:>14.3f}"
              f"{r['n']:>5} ({r['speaker_similarity_n']})" for name, r in result.items()]  # fmt: skip
    table = "\n".join(lines)
    write_report(md_path, "Resynthesis quality of the tokenizers", {f"{n}_{k}": r[k] for n, r in result.items() for k in keys},
                 table, notes="Resynthesis: audio -> tokens -> decoder. mel dist.: log-mel L1 (lower is better); "
                 "speaker sim.: Resemblyzer cosine of the resynthesis with its original, over the (speech) resyntheses where "
                 "its VAD found speech.")  # fmt: skip
    print(table)
    print(f"wrote {json_path}, {md_path}")
    return 0


# ---------------------------------------------------------------------------------------------------- parser
def add_evaluate_parser(sub) -> None:
    """Add the `evaluate` command group to the `hf-slm` sub-parsers."""
    # choices of heavy modules are read only when a sub-command parses or shows them (hf-slm --help stays fast);
    # a metavar keeps argparse from listing them in the usage line it checks while building the parser
    zerospeech_tasks = LazyChoices("hf_slm.evaluation.pairs", "ZEROSPEECH_TASKS")
    real_speech_sources = LazyChoices("hf_slm.data.real_speech", "REAL_SPEECH_SOURCES")
    f0_methods = LazyChoices("hf_slm.evaluation.metrics.prosody.prosody", "F0_METHODS")

    group = sub.add_parser(
        "evaluate", help="benchmarks: pairs, build-pairs, pairs-topline, abx, purity, resynthesis, asr, speech-llm-tasks, "
        "instruct-tasks, generation, prosody, turn-taking, stsp, duplex-behaviour, voice, tts, codec"
    )
    commands = group.add_subparsers(dest="evaluate_command", required=True)

    def recordings(p):  # the recorded inputs of `_audio_and_texts`, beside --texts
        p.add_argument("--audio-dir", default=None, type=existing_path, help="folder of .wav files with .txt transcripts")
        p.add_argument("--dataset", default=None,
                       help="local dataset: save_to_disk folder, csv/json/jsonl/parquet file, or audiofolder")  # fmt: skip
        p.add_argument("--audio-column", default="audio", help="--dataset column of audio (or audio file paths)")
        p.add_argument("--text-column", default="text", help="--dataset column of transcripts")
        p.add_argument("--split", default=None, help="--dataset split (default: the first)")
        p.add_argument("--real-speech", choices=real_speech_sources, metavar="SOURCE", default=None,
                       help="installed clips, %(choices)s: librivox and cards (apt pocketsphinx-testdata, one speaker "
                            "each), alsa (apt alsa-utils)")  # fmt: skip

    def common(p, output_help="results JSON (a Markdown report and PNG plots are written next to it)"):
        p.add_argument("--pipeline", default="default", help="pipeline folder, Hub repo id, 'default' or 'twist-default'")
        p.add_argument("--device", default="cpu")
        p.add_argument("--seed", type=non_negative_int, default=0)
        p.add_argument("--output", required=True, help=output_help)

    p = commands.add_parser("build-pairs", help="make a minimal-pair JSONL benchmark (lexical, syntactic, storycloze)")
    p.add_argument("--kinds", type=csv_list(str), default=["lexical", "syntactic"],
                   help="comma-separated: lexical, syntactic, storycloze (topic-StoryCloze-style stories)")  # fmt: skip
    p.add_argument("--words", default=None, help="word list file, or 'open-heldout': the open-vocabulary split's "
                   "held-out words, never in open-train (default: the built-in grammar's words)")
    p.add_argument("--known-words", default=None, help="lexicon file of the language (no non-word may be in it)")
    p.add_argument("--num-lexical", type=positive_int, default=None, help="at most this many lexical pairs")
    p.add_argument("--num-per-phenomenon", type=positive_int, default=20)
    p.add_argument("--num-storycloze", type=positive_int, default=None, help="at most this many story pairs (default all 72)")
    p.add_argument("--phenomena", type=csv_list(str), default=None, help="comma-separated phenomena (default: all; an unknown name is refused with the list)")
    p.add_argument("--vowels", default="aeiou")
    p.add_argument("--consonants", default="bdfgklmnprstvz")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--output", required=True, help="JSONL file")
    p.set_defaults(func=cmd_build_pairs)

    p = commands.add_parser("pairs", help="minimal-pair accuracy (sWUGGY / sBLIMP style) of a pipeline's LM")
    p.add_argument("--pairs", default=None, type=existing_path, help="JSONL with good/bad texts or good_audio/bad_audio files")
    p.add_argument("--zerospeech", default=None, help="ZeroSpeech 2021 root (<root>/<task>/<split>/gold.csv + wavs)")
    p.add_argument("--task", choices=zerospeech_tasks, metavar="TASK", default="lexical",
                   help="with --zerospeech: %(choices)s (sWUGGY or sBLIMP)")
    p.add_argument("--split", default="dev", help="with --zerospeech: dev (test has no public gold.csv)")
    p.add_argument("--storycloze", default=None,
                   help="spoken StoryCloze (sSC / tSC): a folder of <index>_<name>.wav, or a saved dataset / parquet "
                        "file with positive / negative audio columns")  # fmt: skip
    p.add_argument("--limit", type=positive_int, default=None, help="score only the first N pairs")
    p.add_argument("--voice", default="en-us", help="voice for text pairs: espeak-ng, or festival:<name>")
    p.add_argument("--rate", type=positive_int, default=175, help="espeak-ng speaking rate (words/min)")
    p.add_argument("--normalize", action="store_true", help="compare per-token NLL instead of summed NLL")
    p.add_argument("--batch-size", type=positive_int, default=16)
    common(p)
    p.set_defaults(func=cmd_pairs)

    p = commands.add_parser(
        "pairs-topline", help="phone-LM topline of text minimal pairs: an n-gram over the espeak-ng phonemes of a "
        "training text, scoring each side's phonemes (what units as clean as phonemes could reach)")
    p.add_argument("--pairs", required=True, type=existing_path, help="JSONL with good/bad texts (build-pairs)")
    p.add_argument("--text", required=True, help="the LM's training text: 'builtin', 'open-train', 'fortunes', "
                   "'wordnet' or a text file (one sentence a line)")
    p.add_argument("--text-limit", type=positive_int, default=None, help="at most this many sentences (as the "
                   "recipe's num_sentences, drawn with --seed)")
    p.add_argument("--order", type=positive_int, default=5, help="n-gram order (phonemes)")
    p.add_argument("--limit", type=positive_int, default=None, help="score only the first N pairs")
    p.add_argument("--voice", default="en-us", help="espeak-ng voice whose phonemes are read")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--output", required=True, help="results JSON (a Markdown report and a PNG plot next to it)")
    p.set_defaults(func=cmd_pairs_topline)

    p = commands.add_parser("abx", help="within/between-speaker ABX of the tokenizer's features and units")
    p.add_argument("--words", type=csv_list(str), default=["bat", "pat", "mat", "sat", "hat", "bet", "bit", "but"])
    p.add_argument("--voices", type=csv_list(str), default=["en-us", "en-us+m3", "en-us+f2"])
    p.add_argument("--rates", type=csv_list(positive_int), default=[150, 200])
    p.add_argument("--representation", choices=["features", "units", "both"], default="both")
    p.add_argument("--speaker-adaptation", action="store_true",
                   help="tokenise each voice's items at one vocal tract length warp (a tokenizer fitted with --vtln)")
    common(p)
    p.set_defaults(func=cmd_abx)

    p = commands.add_parser("purity", help="unit-to-phone purity and PNMI on espeak-ng phone alignments")
    p.add_argument("--texts", default="builtin", help="'builtin', 'fortunes', 'wordnet' or a text file (one sentence a line)")
    p.add_argument("--limit", type=positive_int, default=20, help="at most this many sentences")
    p.add_argument("--voices", type=csv_list(str), default=["en-us", "en-us+m3", "en-us+f2"])
    p.add_argument("--rates", type=csv_list(positive_int), default=[150, 200])
    p.add_argument("--exclude-silence", action="store_true", help="score only frames inside phones, not pauses")
    common(p)
    p.set_defaults(func=cmd_purity)

    p = commands.add_parser("resynthesis", help="audio -> units -> vocoder -> ASR: WER/CER and mel distance")
    p.add_argument("--texts", default=None, help="text file (one sentence a line) or 'builtin', synthesised")
    recordings(p)
    p.add_argument("--limit", type=positive_int, default=None)
    p.add_argument("--voice", default="en-us")
    p.add_argument("--rate", type=positive_int, default=175)
    p.add_argument("--asr", default="pocketsphinx",
                   help="'pocketsphinx' or a transformers CTC/seq2seq ASR (folder or cached Hub id)")  # fmt: skip
    p.add_argument("--vocabulary", choices=["closed", "open"], default=None,
                   help="pocketsphinx: the words of the texts (closed, default) or its full English LM")  # fmt: skip
    p.add_argument("--dnsmos", action="store_true",
                   help="also DNSMOS OVRL of both (a quality score, not naturalness; needs hf_slm[eval])")  # fmt: skip
    p.add_argument("--save-audio", action="store_true", help="also write the original and resynthesised wavs")
    common(p)
    p.set_defaults(func=cmd_resynthesis)

    p = commands.add_parser("asr", help="espeak-ng speech or recordings -> an ASR model or pipeline: WER/CER next to "
                            "pocketsphinx")  # fmt: skip
    p.add_argument("--pipeline", required=True,
                   help="a CTC / seq2seq ASR model folder or Hub id (AutoModelForCTC + processor, Whisper), a pipeline "
                        "variant whose class has transcribe(waveforms, sampling_rate), or 'pocketsphinx'")  # fmt: skip
    p.add_argument("--texts", default=None,
                   help="text file (one sentence a line), 'open-eval' (held-out WordNet/fortunes) or 'builtin', "
                        "synthesised with espeak-ng")  # fmt: skip
    recordings(p)
    p.add_argument("--limit", type=positive_int, default=None, help="only N texts (a file: its first N lines)")
    p.add_argument("--voice", default="en-us", help="espeak-ng voice, or festival:<name>")
    p.add_argument("--rate", type=positive_int, default=175, help="espeak-ng speaking rate (words/min)")
    p.add_argument("--baseline", type=csv_list(str), default=["open", "closed"],
                   help="pocketsphinx on the same audio, comma-separated: open (its full English LM), closed (the "
                        "texts' words only), or none")  # fmt: skip
    p.add_argument("--batch-size", type=positive_int, default=8, help="waveforms per call of a pipeline's transcribe")
    p.add_argument("--transcribe-kwargs", type=json_object, default=None,
                   help='a pipeline variant\'s transcribe options as JSON, e.g. \'{"num_beams": 1, "ctc_weight": 0, '
                        '"use_lexicon": false}\' (the LM alone, greedy); default: the variant\'s own')  # fmt: skip
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of a --limit subset of a corpus")
    p.add_argument("--output", required=True, help="results JSON (a Markdown report and a PNG plot are written next to it)")
    p.set_defaults(func=cmd_asr)

    p = commands.add_parser("speech-llm-tasks", help="a speech LLM variant: intent accuracy, spoken-answer WER "
                            "(pocketsphinx)")  # fmt: skip
    p.add_argument("--pipeline", required=True, help="a SpeechLLMPipeline variant: folder, Hub id or embedded name")
    p.add_argument("--tasks", type=csv_list(str), default=["intent", "spoken_answer"],
                   help="comma-separated: intent, spoken_answer")  # fmt: skip
    p.add_argument("--num-examples", type=positive_int, default=30, help="utterances per task")
    p.add_argument("--voice", default="en-us", help="voice of the spoken inputs: espeak-ng, or festival:<name>")
    p.add_argument("--rate", type=positive_int, default=175, help="espeak-ng speaking rate (words/min)")
    p.add_argument("--seed", type=non_negative_int, default=1000, help="seed of the held-out draws")
    p.add_argument("--device", default="cpu")
    p.add_argument("--output", required=True, help="results JSON (a Markdown report and a PNG plot are written next to it)")
    p.set_defaults(func=cmd_speech_llm_tasks)

    p = commands.add_parser("instruct-tasks", help="an instruct variant: ASR WER, TTS intelligibility, intent accuracy, "
                            "silence mode on held-out espeak-ng speech")  # fmt: skip
    p.add_argument("--pipeline", required=True, help="an instruct variant: folder, Hub id or 'instruct-default'")
    p.add_argument("--tasks", type=csv_list(str), default=None,
                   help="comma-separated, out of asr, tts, intent, silence (default: all)")  # fmt: skip
    p.add_argument("--num-examples", type=positive_int, default=30, help="utterances per task")
    p.add_argument("--voices", type=csv_list(str), default=None,
                   help="espeak-ng voices of the held-out speech (default: voices the tuning did not use)")  # fmt: skip
    p.add_argument("--rates", type=csv_list(positive_int), default=[175], help="espeak-ng rates (words per minute)")
    p.add_argument("--seed", type=non_negative_int, default=1000, help="seed of the held-out draws")
    p.add_argument("--exclude-texts", type=existing_path, default=None,
                   help="the tuning's tuning_texts.txt, whose sentences the held-out ones avoid (default: the "
                        "variant's own copy, where it has one)")  # fmt: skip
    p.add_argument("--synth-cache-dir", default=None, help="cache of the synthesised speech (datasets)")
    p.add_argument("--threads", type=non_negative_int, default=1, help="torch threads (0: torch's default)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--output", required=True, help="results JSON (a Markdown report and a PNG plot are written next to it)")
    recordings(p)  # with one of them: ASR of the recordings, and silence mode with them as side talk
    p.add_argument("--limit", type=positive_int, default=None, help="at most this many recordings")
    p.set_defaults(func=cmd_instruct_tasks, texts=None)

    p = commands.add_parser("generation", help="continuations over temperatures: perplexity, VERT, AUC, plot")
    p.add_argument("--texts", default="builtin", help="prompt texts: a file or 'builtin' (synthesised)")
    p.add_argument("--limit", type=positive_int, default=10, help="number of prompts")
    p.add_argument("--voice", default="en-us")
    p.add_argument("--temperatures", type=csv_list(positive_float), default=[0.5, 0.7, 0.9, 1.1, 1.3])
    p.add_argument("--num-samples", type=positive_int, default=1, help="continuations per prompt and temperature")
    p.add_argument("--max-new-tokens", type=positive_int, default=100)
    p.add_argument("--prompt-fraction", type=fraction, default=0.5, help="part of each utterance used as the prompt")
    p.add_argument("--judge", default=None, help="pipeline whose LM judges perplexity (default: the generator)")
    common(p)
    p.set_defaults(func=cmd_generation)

    p = commands.add_parser("prosody", help="pGSLM prosody of continuations: F0 min-MAE, consistency, expressiveness")
    p.add_argument("--texts", default="builtin", help="utterance texts: a file or 'builtin' (synthesised)")
    p.add_argument("--limit", type=positive_int, default=12, help="number of utterances")
    p.add_argument("--voice", default="en-us")
    p.add_argument("--pitches", type=csv_list(int), default=[20, 50, 80],
                   help="espeak-ng base pitches (0-99), cycled over the utterances")  # fmt: skip
    p.add_argument("--num-samples", type=positive_int, default=5, help="continuations per prompt (min-MAE takes the best)")
    p.add_argument("--temperature", type=positive_float, default=1.0)
    p.add_argument("--max-new-tokens", type=positive_int, default=None, help="default: the true continuation's length")
    p.add_argument("--prompt-fraction", type=fraction, default=0.5, help="part of each utterance used as the prompt")
    p.add_argument("--f0", choices=f0_methods, metavar="TRACKER", default="autocorrelation",
                   help="F0 tracker, %(choices)s: hf_slm's autocorrelation, WORLD's harvest/dio, Praat's parselmouth")  # fmt: skip
    p.add_argument("--speaker-similarity", action="store_true",
                   help="also compare the prompt's voice with the continuations' (needs resemblyzer)")  # fmt: skip
    common(p)
    p.set_defaults(func=cmd_prosody)

    p = commands.add_parser("turn-taking", help="dGSLM turn-taking statistics of stereo dialogues (IPU, pause, gap, overlap)")
    p.add_argument("--audio", nargs="+", required=True, type=existing_path,
                   help="one or more sets to compare (e.g. reference and generated): each a stereo wav or a folder "
                        "of them, one speaker per channel")  # fmt: skip
    p.add_argument("--names", type=csv_list(str), default=None, help="comma-separated names of the sets (default: "
                   "the file / folder names)")  # fmt: skip
    p.add_argument("--min-silence", type=positive_float, default=0.2, help="silence (s) that ends an IPU")
    p.add_argument("--threshold", type=fraction, default=0.5, help="Silero VAD speech probability threshold")
    p.add_argument("--output", required=True, help="results JSON (a Markdown report and a PNG plot are written next to it)")
    p.set_defaults(func=cmd_turn_taking)

    p = commands.add_parser("stsp", help="SpiRit-LM STSP: sentiment preservation of an expressive pipeline's continuations")
    p.add_argument("--pipeline", required=True, help="an ExpressiveSpeechLMPipeline folder or Hub repo id")
    p.add_argument("--num-prompts", type=positive_int, default=30, help="sentiment prompts per class (espeak-ng)")
    p.add_argument("--train-fraction", type=fraction, default=0.7, help="prompts that train the classifiers; the "
                   "rest are continued")  # fmt: skip
    p.add_argument("--directions", type=_directions, default=["speech->speech", "text->speech", "speech->text"],
                   help="comma-separated, from speech->speech, text->speech, speech->text")  # fmt: skip
    p.add_argument("--max-new-tokens", type=positive_int, default=100)
    p.add_argument("--min-new-tokens", type=non_negative_int, default=10)
    p.add_argument("--temperature", type=positive_float, default=0.8)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--output", required=True, help="results JSON (a Markdown report and a PNG plot are written next to it)")
    p.set_defaults(func=cmd_stsp)
    p = commands.add_parser("duplex-behaviour", help="Full-Duplex-Bench-style checks of live duplex: yields to a "
                            "barge-in, keeps the turn through a backchannel, takes the turn after a pause")  # fmt: skip
    p.add_argument("--kinds", type=csv_list(str), default=["barge_in", "backchannel", "pause"],
                   help="comma-separated scenario kinds: barge_in, backchannel, pause")  # fmt: skip
    p.add_argument("--num", type=positive_int, default=5, help="scenarios per kind (espeak-ng, grammar sentences)")
    p.add_argument("--chunk", type=positive_float, default=0.1, help="seconds of user audio per streamed chunk")
    p.add_argument("--turn-pause", type=positive_float, default=0.8, help="user silence (s) before the system replies")
    p.add_argument("--short-pause", type=positive_float, default=0.4, help="within-turn pause (s) of the pause scenarios")
    p.add_argument("--backchannel", type=positive_float, default=1.0, help="user speech (s) below which it is a backchannel")
    p.add_argument("--reply-units", type=positive_int, default=150, help="units of each spoken reply")
    p.add_argument("--no-hold", action="store_true", help="keep speaking until the barge-in is confirmed")
    common(p, "results JSON (a Markdown report is written next to it)")
    p.set_defaults(func=cmd_duplex_behaviour)

    p = commands.add_parser("voice", help="speaker similarity of continuations to their prompts (codec-LM, AudioLM, "
                            "unit variants), with same-voice and other-voice references")  # fmt: skip
    p.add_argument("--pipelines", type=csv_list(str), default=["default"],
                   help="comma-separated variants, each PATH or NAME=PATH ('default' is the embedded GSLM variant)")
    p.add_argument("--dataset", type=existing_path, default=None,
                   help="a saved `datasets` folder with an audio column (e.g. make_voice_corpus.py's unseen_voices)")
    p.add_argument("--real-speech", choices=real_speech_sources, metavar="SOURCE", default=None,
                   help="instead of --dataset, installed recordings, %(choices)s (librivox: 3 of its 5 clips are long "
                        "enough for 3 s prompts; --prompt-seconds 2.5 takes all)")  # fmt: skip
    p.add_argument("--limit", type=positive_int, default=None, help="first N utterances")
    p.add_argument("--prompt-seconds", type=positive_float, default=3.0)
    p.add_argument("--new-seconds", type=positive_float, default=2.0, help="continuation compared with the prompt")
    p.add_argument("--temperature", type=positive_float, default=0.8)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--output", required=True, help="results JSON (a Markdown report and a PNG plot are written next to it)")
    p.set_defaults(func=cmd_voice)

    p = commands.add_parser("tts", help="zero-shot TTS (VALL-E variant): pocketsphinx WER and speaker similarity next "
                            "to espeak-ng's rendering in the prompt's voice")  # fmt: skip
    p.add_argument("--pipeline", required=True, help="a VallEPipeline variant folder or Hub repo id")
    p.add_argument("--dataset", type=existing_path, default=None,
                   help="a saved `datasets` folder with audio, text, voice, rate and pitch columns (hf-slm synth, "
                        "make_voice_corpus.py)")  # fmt: skip
    p.add_argument("--real-speech", choices=real_speech_sources, metavar="SOURCE", default=None,
                   help="instead of --dataset, installed recordings as prompts, %(choices)s: librivox, cards (apt "
                        "pocketsphinx-testdata), alsa (apt alsa-utils)")  # fmt: skip
    p.add_argument("--voice", default="en-us", help="--real-speech: the espeak-ng voice of the reference rendering")
    p.add_argument("--limit", type=positive_int, default=None, help="first N utterances")
    p.add_argument("--language", default="en-us", help="phonemizer language")
    p.add_argument("--temperature", type=positive_float, default=1.0)
    p.add_argument("--top-p", type=fraction, default=0.8)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--output", required=True, help="results JSON (a Markdown report is written next to it)")
    p.set_defaults(func=cmd_tts)

    p = commands.add_parser("codec", help="resynthesis quality of variants' tokenizers: bitrate, mel distance, STOI, "
                            "speaker similarity")  # fmt: skip
    p.add_argument("--pipelines", type=csv_list(str), default=["default"],
                   help="comma-separated variants, each PATH or NAME=PATH (codec-LM, AudioLM or unit variants, or a bare "
                   "codec folder such as examples/codec's output or one of its checkpoint-N folders)")
    p.add_argument("--dataset", type=existing_path, default=None, help="a saved `datasets` folder with an audio column")
    p.add_argument("--real-speech", choices=real_speech_sources, metavar="SOURCE", default=None,
                   help="instead of --dataset, installed recordings, %(choices)s")  # fmt: skip
    p.add_argument("--limit", type=positive_int, default=None, help="first N utterances")
    p.add_argument("--device", default="cpu")
    p.add_argument("--output", required=True, help="results JSON (a Markdown report is written next to it)")
    p.set_defaults(func=cmd_codec)


__all__ = ["add_evaluate_parser"]
