"""The embedded default variant ships inside the package, loads offline, fits the size budget, and works."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import hf_slm
from component_tester import BLOCK_HF_SLM

DEFAULT = Path(hf_slm.DEFAULT_PIPELINE)


def test_default_is_small_and_complete(tmp_path, monkeypatch):
    import torch

    from embedded_variants import check_embedded_folder
    from hf_slm import SpeechLMPipeline

    size = sum(f.stat().st_size for f in DEFAULT.rglob("*") if f.is_file())
    assert size <= 30e6, f"embedded default is {size / 1e6:.1f} MB, over the 30 MB budget"
    monkeypatch.chdir(tmp_path)  # "default" cannot name a local folder
    check_embedded_folder("default", DEFAULT, 30, float16=["vocoder"])  # the vocoder stored in half the bytes ...
    assert SpeechLMPipeline.from_pretrained("default").vocoder.dtype == torch.float32  # ... computes in float32
    index = json.loads((DEFAULT / "pipeline_index.json").read_text())
    for name in ("feature_extractor", "speech_tokenizer", "language_model", "vocoder"):
        assert index[name] is not None and (DEFAULT / name).is_dir(), name
    assert not list(DEFAULT.rglob("*.bin")) and not list(DEFAULT.rglob("*.pkl"))
    summary = json.loads((DEFAULT / "training_summary.json").read_text())
    assert summary["lm_eval_loss"] < np.log(summary["arguments"]["num_units"]), "the LM learned less than uniform"


def test_default_loads_offline_in_fresh_process_and_resynthesises(tmp_path):
    code = """
import sys, numpy as np
from hf_slm import SpeechLMPipeline
from hf_slm.data import EspeakSynthesizer
pipe = SpeechLMPipeline.from_pretrained("default")
speech = EspeakSynthesizer("en-us").synthesize("the red dog runs home")
out = pipe.resynthesize({"array": speech.waveform, "sampling_rate": speech.sampling_rate})
cont = pipe.continue_speech({"array": speech.waveform, "sampling_rate": speech.sampling_rate}, max_new_tokens=20, seed=0)
w = out.waveforms[0]
print(len(out.units[0]), len(w), float(np.abs(w).max()), len(cont.units[0]))
"""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    n_units, n_samples, peak, n_cont = proc.stdout.split()[-4:]
    assert int(n_units) > 50 and int(n_samples) == int(n_units) * 320
    assert 0.01 < float(peak) <= 1.5 and 0 < int(n_cont) <= 20


SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "default_pipeline" / "train_default.py"
TINY = ["--num_units", "12", "--lm_max_steps", "2", "--vocoder_max_steps", "2", "--lm_hidden_size", "32",
        "--lm_num_layers", "1", "--lm_num_heads", "2", "--lm_intermediate_size", "64", "--num_proc", "1",
        "--kmeans_max_frames", "5000", "--torch_threads", "1"]  # fmt: skip


def run_script(tmp_path, *extra) -> dict:
    args = [sys.executable, str(SCRIPT), *TINY, *extra, "--output_dir", str(tmp_path / "variant"),
            "--work_dir", str(tmp_path / "work")]  # fmt: skip
    env = {**os.environ, "HF_SLM_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((tmp_path / "variant" / "training_summary.json").read_text())


def test_training_script_smoke_and_resume(tmp_path):
    """The reproduction script runs end to end on a tiny setting, and a rerun loads every finished stage."""
    summary = run_script(tmp_path, "--num_sentences", "24", "--num_eval_sentences", "4", "--eval_resynthesis_sentences", "1")
    assert summary["train_utterances"] + summary["eval_utterances"] == 28 and summary["size_mb"] > 0
    assert (tmp_path / "variant" / "pipeline_index.json").exists()
    assert {name: stage["status"] for name, stage in summary["stages"].items()} == dict.fromkeys(
        ["corpus", "units", "lm", "vocoder", "evaluation"], "ran"
    )
    assert summary["evaluation"]["resynthesis_heldout"]["n"] == 1
    card = (tmp_path / "variant" / "README.md").read_text()  # rendered again once the summary was written
    assert f"{summary['train_utterances']} training utterances" in card and "Stage times when each ran" in card
    tokenizer_file = next((tmp_path / "work").glob("units-*/speech_tokenizer/model.safetensors"))
    stamp = tokenizer_file.stat().st_mtime_ns
    again = run_script(tmp_path, "--num_sentences", "24", "--num_eval_sentences", "4", "--eval_resynthesis_sentences", "1")
    assert {stage["status"] for stage in again["stages"].values()} == {"cached"}
    # each stage keeps what it cost when it ran, so a summary written from the cache still reports it
    assert again["stage_minutes"] == summary["stage_minutes"] and set(again["stage_minutes"]) == set(summary["stages"])
    assert all(again["stages"][name]["seconds_when_ran"] == stage["seconds"] for name, stage in summary["stages"].items())
    assert tokenizer_file.stat().st_mtime_ns == stamp, "the cached speech tokenizer stage was recomputed"
    assert again["lm_eval_loss"] == summary["lm_eval_loss"] and again["evaluation"] == summary["evaluation"]

    # the GAN stage: the trained mel vocoder gets an inverse-STFT head; only it and the evaluation run
    gan = run_script(tmp_path, "--num_sentences", "24", "--num_eval_sentences", "4", "--eval_resynthesis_sentences",
                     "1", "--vocoder_gan_steps", "2", "--vocoder_gan_istft_layers", "1")  # fmt: skip
    status = {name: stage["status"] for name, stage in gan["stages"].items()}
    assert status == {"corpus": "cached", "units": "cached", "lm": "cached", "vocoder": "cached",
                      "vocoder_gan": "ran", "evaluation": "ran"}  # fmt: skip
    assert gan["vocoder_gan_steps"] == 2
    vocoder_config = json.loads((tmp_path / "variant" / "vocoder" / "config.json").read_text())
    assert vocoder_config["waveform_head"] == "istft" and vocoder_config["istft_num_layers"] == 1
    assert vocoder_config["keep_discriminators"] is False

    # --parallel_training in another work dir holding only this run's data stages: the LM trains in a second process
    # beside the vocoder stages, into the same weights as this run's, whose LM and vocoder trained in the process
    # that ran the k-means (each training stage seeds itself)
    for stage in (tmp_path / "work").glob("*"):
        if stage.name.startswith(("corpus-", "units-")):
            shutil.copytree(stage, tmp_path / "parallel" / "work" / stage.name)
    parallel = run_script(tmp_path / "parallel", "--num_sentences", "24", "--num_eval_sentences", "4",
                          "--eval_resynthesis_sentences", "1", "--vocoder_gan_steps", "2", "--vocoder_gan_istft_layers",
                          "1", "--parallel_training", "true")  # fmt: skip
    assert parallel["stages"]["lm"] | {"seconds": 0} == {"key": gan["stages"]["lm"]["key"], "status": "ran",
                                                         "process": "parallel", "seconds": 0}  # fmt: skip
    status = {name: stage["status"] for name, stage in parallel["stages"].items()}
    assert status == {"corpus": "cached", "units": "cached", "vocoder": "ran", "vocoder_gan": "ran", "lm": "ran",
                      "evaluation": "ran"}  # fmt: skip
    (lm_arguments,) = (tmp_path / "parallel" / "work").glob("lm-*.arguments.json")
    from safetensors.torch import load_file

    for component in ("language_model", "vocoder"):
        ours = load_file(tmp_path / "parallel" / "variant" / component / "model.safetensors")
        theirs = load_file(tmp_path / "variant" / component / "model.safetensors")
        assert ours.keys() == theirs.keys() and all(ours[k].equal(theirs[k]) for k in ours), component
    assert parallel["lm_eval_loss"] == summary["lm_eval_loss"] and parallel["evaluation"] == gan["evaluation"]
    # a LM process that fails (3 heads do not divide the width 32) fails the run, naming its command
    failing = subprocess.run([sys.executable, str(SCRIPT), *TINY, "--num_sentences", "24", "--num_eval_sentences", "4",
                              "--lm_num_heads", "3", "--parallel_training", "true", "--output_dir",
                              str(tmp_path / "failed"), "--work_dir", str(tmp_path / "parallel" / "work")],
                             capture_output=True, text=True, timeout=600,
                             env={**os.environ, "HF_SLM_CACHE": str(tmp_path / "parallel" / "cache")})  # fmt: skip
    assert failing.returncode != 0 and not (tmp_path / "failed").exists()
    assert f"the LM training process failed with exit code 1 (its output is above): {sys.executable}" in failing.stderr
    (arguments,) = set((tmp_path / "parallel" / "work").glob("lm-*.arguments.json")) - {lm_arguments}
    assert str(arguments) in failing.stderr.splitlines()[-1]
    assert json.loads(arguments.read_text())["only_stage"] == "lm"

    # --float16_components: the vocoder stored in half the bytes, computing in float32; only the evaluation reruns,
    # on what was stored, and its figures stay those of the float32 vocoder up to rounding
    half = run_script(tmp_path, "--num_sentences", "24", "--num_eval_sentences", "4", "--eval_resynthesis_sentences",
                      "1", "--vocoder_gan_steps", "2", "--vocoder_gan_istft_layers", "1", "--float16_components",
                      "vocoder")  # fmt: skip
    status = {name: stage["status"] for name, stage in half["stages"].items()}
    cached = dict.fromkeys(["corpus", "units", "lm", "vocoder", "vocoder_gan"], "cached")
    assert status == {**cached, "evaluation": "ran"}
    import torch
    from safetensors import safe_open

    from hf_slm import SpeechLMPipeline

    with safe_open(str(tmp_path / "variant" / "vocoder" / "model.safetensors"), "pt") as stored:
        assert {stored.get_tensor(k).dtype for k in stored.keys()} == {torch.float16}
    assert not list((tmp_path / "variant").rglob("*.py"))  # an embedded variant: the package serves the code
    assert SpeechLMPipeline.from_pretrained(tmp_path / "variant").vocoder.dtype == torch.float32
    heldout, heldout_half = gan["evaluation"]["resynthesis_heldout"], half["evaluation"]["resynthesis_heldout"]
    assert heldout_half["n"] == heldout["n"] and abs(heldout_half["mel_distance"] - heldout["mel_distance"]) < 0.05

    # --vocoder_gan_thread_schedule: a GAN stage of its own (threads may move the weights' last bits), trained with it
    scheduled = run_script(tmp_path, "--num_sentences", "24", "--num_eval_sentences", "4", "--eval_resynthesis_sentences",
                           "1", "--vocoder_gan_steps", "2", "--vocoder_gan_istft_layers", "1", "--float16_components",
                           "vocoder", "--vocoder_gan_thread_schedule", "1:2")  # fmt: skip
    status = {name: stage["status"] for name, stage in scheduled["stages"].items()}
    assert status == {**cached, "vocoder_gan": "ran", "evaluation": "ran"} and scheduled["vocoder_gan_steps"] == 2
    assert scheduled["stages"]["vocoder_gan"]["key"] != half["stages"]["vocoder_gan"]["key"]

    # unit_draws.py --synthesise builds the corpus stage of a config that has none; recipe flags override the config
    flags = [*TINY, "--num_sentences", "24", "--num_eval_sentences", "4", "--work_dir", str(tmp_path / "fresh")]
    config = tmp_path / "draws_config.json"
    config.write_text(json.dumps({flags[i][2:]: flags[i + 1] for i in range(0, len(flags), 2)}))
    draws = subprocess.run([sys.executable, str(SCRIPT.parent / "unit_draws.py"), str(config), "--seeds", "3",
                            "--synthesise", "--output", str(tmp_path / "draws.json"),
                            "--utterance_normalization", "true", "--vtln", "true", "--vtln_tokenization", "unwarped"],
                           capture_output=True, text=True, env={**os.environ, "HF_SLM_CACHE": str(tmp_path / "cache")},
                           timeout=600)  # fmt: skip
    assert draws.returncode == 0, draws.stderr[-3000:]
    result = json.loads((tmp_path / "draws.json").read_text())
    assert result["utterance_normalization"] is True and result["training_utterances"] == summary["train_utterances"]
    assert result["vtln"] is True and result["vtln_tokenization"] == "unwarped" and len(result["draws"]) == 1
    assert len(list((tmp_path / "fresh").glob("corpus-*/done.json"))) == 1


def test_open_vocabulary_augmented_run_redoes_only_what_changed(tmp_path):
    """Open-vocabulary corpus + augmentation end to end; changing an LM argument reruns the LM and the evaluation
    only; no evaluation sentence is in the training speech."""
    from hf_slm.data import load_text_split, normalize_sentence

    augmentation = tmp_path / "augmentation.json"
    augmentation.write_text(json.dumps({"seed": 0, "steps": [{"name": "speed", "factor": [0.9, 1.1]},
                                                             {"name": "noise", "snr_db": [5, 20]}]}))  # fmt: skip
    common = ["--text_source", "open", "--num_sentences", "12", "--num_eval_sentences", "3", "--voices",
              "en-us,en-gb+f3", "--rates", "170", "--pitches", "40,60", "--augmentation", str(augmentation),
              "--eval_resynthesis_sentences", "2", "--utterance_normalization", "true", "--vtln", "true"]  # fmt: skip
    first = run_script(tmp_path, *common)
    tokenizer_config = json.loads((tmp_path / "variant" / "speech_tokenizer" / "config.json").read_text())
    assert tokenizer_config["utterance_normalization"] is True  # the recipe's units: per-utterance normalised MFCCs
    assert tokenizer_config["vtln_warps"] == list(hf_slm.DEFAULT_VTLN_WARPS)  # ... at each utterance's vocal tract warp
    assert first["train_utterances"] == 12 and first["augmented_utterances"] == 12 and first["eval_utterances"] == 3
    assert {stage["status"] for stage in first["stages"].values()} == {"ran"} and len(first["stages"]) == 6
    second = run_script(tmp_path, *common, "--lm_max_steps", "3")
    status = {name: stage["status"] for name, stage in second["stages"].items()}
    assert status == {"corpus": "cached", "augment": "cached", "units": "cached", "lm": "ran", "vocoder": "cached",
                      "evaluation": "ran"}  # fmt: skip
    assert second["stages"]["lm"]["key"] != first["stages"]["lm"]["key"]
    import datasets

    (corpus,) = (tmp_path / "work").glob("units-*")
    trained = {normalize_sentence(t) for t in datasets.load_from_disk(str(corpus / "train"))["text"]}
    evaluated = {normalize_sentence(t) for t in datasets.load_from_disk(str(corpus / "test"))["text"]}
    assert trained and evaluated and trained.isdisjoint(evaluated)
    assert evaluated <= {normalize_sentence(t) for t in load_text_split("eval")}

    # unit_draws.py refits the run's tokenizer from its cached audio: seed 0 gives the run's own units' ABX
    flags = [*TINY, *common, "--output_dir", str(tmp_path / "variant"), "--work_dir", str(tmp_path / "work")]
    config = tmp_path / "config.json"
    config.write_text(json.dumps({flags[i][2:]: flags[i + 1] for i in range(0, len(flags), 2)}))
    draws = subprocess.run([sys.executable, str(SCRIPT.parent / "unit_draws.py"), str(config), "--seeds", "0,1",
                            "--output", str(tmp_path / "draws.json")], capture_output=True, text=True,
                           env={**os.environ, "HF_SLM_CACHE": str(tmp_path / "cache")}, timeout=600)  # fmt: skip
    assert draws.returncode == 0, draws.stderr[-3000:]
    result = json.loads((tmp_path / "draws.json").read_text())
    assert result["training_utterances"] == 24 and [d["seed"] for d in result["draws"]] == [0, 1]  # 12 + augmented
    from hf_slm import SpeechLMPipeline
    from hf_slm.evaluation.abx import evaluate_abx

    own = evaluate_abx(SpeechLMPipeline.from_pretrained(tmp_path / "variant"), representation="units")
    assert result["draws"][0]["within"] == 100 * own["within_speaker_error"]
    assert result["draws"][0]["between"] == 100 * own["between_speaker_error"]


@pytest.fixture
def recipe(monkeypatch):
    """`train_default.py` as a module, in this process (no interpreter start per call); torch's thread count, which
    the script sets, is restored afterwards."""
    import torch

    from example_loader import load_script

    script = load_script(SCRIPT, "train_default_recipe", monkeypatch=monkeypatch)
    threads = torch.get_num_threads()
    yield script
    torch.set_num_threads(threads)


def test_bad_pipeline_arguments_are_refused_before_any_work(tmp_path, recipe, monkeypatch):
    """`main` refuses each bad argument by name before any stage runs: nothing is written (a CLI run exits 1 with
    the message, as `sys.exit(main())` lets the exception through)."""
    monkeypatch.setenv("HF_SLM_CACHE", str(tmp_path / "cache"))
    for extra, message in ((["--device", "tpu"], "--device must be 'cpu' or 'cuda', got 'tpu'"),
                           (["--augmentation", '{"steps": [{"name": "echo"}]}'], "unknown step 'echo'"),
                           (["--voices", "english"], "--voices english needs --text_source open"),
                           (["--float16_components", "vocodr"],
                            "--float16_components names no component of the variant: ['vocodr']"),
                           (["--vtln_tokenization", "unwarped"], "--vtln_tokenization unwarped reads speech with a "),
                           (["--vtln", "true", "--vtln_tokenization", "x"],
                            "must be 'search' or 'unwarped', got 'x'"),
                           (["--vocoder_gan_thread_schedule", "700"],
                            "a thread schedule is STEP:THREADS[,STEP:THREADS...], e.g. 700:2; got '700'")):  # fmt: skip
        argv = [*TINY, *extra, "--num_sentences", "4", "--work_dir", str(tmp_path / "w"),
                "--output_dir", str(tmp_path / "v")]  # fmt: skip
        with pytest.raises(ValueError, match=re.escape(message)):
            recipe.main(argv)
        assert not (tmp_path / "v").exists() and not (tmp_path / "w").exists() and not (tmp_path / "cache").exists()


def test_every_default_recipe_config_parses(recipe):
    """The JSON configs of `train_default.py` name only its arguments, with valid values (a typo fails here, not
    after an hour of synthesis)."""
    configs = sorted(p for p in SCRIPT.parent.glob("config_*.json") if "twist" not in p.name)
    assert {p.name for p in configs} >= {"config_cpu.json", "config_grammar_cpu.json", "config_open_vocab_cpu.json",
                                         "config_vtln_cpu.json"}
    for path in configs:
        args = recipe.parse_arguments(recipe.DefaultPipelineArguments, [str(path)])
        assert args.num_units >= 2, path
    vtln = recipe.parse_arguments(recipe.DefaultPipelineArguments, [str(SCRIPT.parent / "config_vtln_cpu.json")])
    assert vtln.vtln and vtln.vtln_tokenization == "unwarped" and vtln.utterance_normalization
    shipped = recipe.parse_arguments(recipe.DefaultPipelineArguments, [str(SCRIPT.parent / "config_cpu.json")])
    assert Path(shipped.output_dir).resolve() == DEFAULT.resolve(), "config_cpu.json is the recipe of the shipped default"
    assert "festival" in shipped.voices.split(",") and shipped.voice_weights and shipped.vocoder_gan_steps > 0
    others = [p for p in configs if p.name != "config_cpu.json"] + sorted(SCRIPT.parent.glob("config_twist*.json"))
    for path in others:  # only the shipped recipes write into the package
        output = Path(json.loads(path.read_text())["output_dir"]).resolve()
        assert output != DEFAULT.resolve(), path
    # the shipped default's summary is that recipe's (the configuration file and the folder agree)
    summary = json.loads((DEFAULT / "training_summary.json").read_text())["arguments"]
    keys = json.loads((SCRIPT.parent / "config_cpu.json").read_text())
    assert {k: summary[k] for k in keys} == {k: getattr(shipped, k) for k in keys}


SHIPPED = [DEFAULT, Path(hf_slm.DEFAULT_TWIST_PIPELINE)]


def test_no_model_code_is_committed_inside_the_variants():
    """The embedded variants ship weights and configs only; the model code is written when they are saved/pushed."""
    assert not [str(f) for variant in SHIPPED for f in variant.rglob("*.py")]


# Loads each job's component by subfolder with trust_remote_code, in a process that cannot import hf_slm.
REMOTE_SUBFOLDER_CHILD = BLOCK_HF_SLM + """
import json, sys, torch, transformers
results = {}
for name, job in json.load(open(sys.argv[1])).items():
    auto = getattr(transformers, job["auto"])
    model = auto.from_pretrained(job["folder"], subfolder=job["subfolder"], trust_remote_code=True).eval()
    with torch.no_grad():
        out = model(**torch.load(job["inputs"]))
    value = next(getattr(out, n) for n in ("units", "logits", "waveform") if getattr(out, n, None) is not None)
    torch.save(value.float() if value.is_floating_point() else value, job["out"])
    results[name] = type(model).__module__
print(json.dumps({"modules": results, "hf_slm_imported": "hf_slm" in sys.modules}))
"""


def run_remote_child(tmp_path: Path, jobs: dict) -> dict:
    """Every job in ONE fresh process (interpreter start-up dominates on 2 cores), outside the repo root so that
    hf_slm is not importable from the working directory either."""
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", REMOTE_SUBFOLDER_CHILD, str(tmp_path / "jobs.json")],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_default_components_load_as_remote_code_without_hf_slm(tmp_path):
    """Each weighted component of a saved copy of the default, loaded by subfolder with trust_remote_code in a
    process that cannot import hf_slm, computes what the package computes (the LM through AutoModel too)."""
    import torch
    from transformers import AutoModel, AutoModelForCausalLM

    from hf_slm import SpeechLMPipeline

    saved = SpeechLMPipeline.from_pretrained("default").save_pretrained(tmp_path / "saved")
    inputs = {
        "speech_tokenizer": ("speech_tokenizer", AutoModel, {"input_values": torch.randn(1, 8000)}),
        "language_model": ("language_model", AutoModelForCausalLM, {"input_ids": torch.tensor([[1, 2, 10, 11, 40]])}),
        "language_model_base": ("language_model", AutoModel, {"input_ids": torch.tensor([[1, 2, 10, 11, 40]])}),
        "vocoder": ("vocoder", AutoModel, {"input_ids": torch.tensor([[5, 5, 7, 9, 9, 9]])}),
    }
    jobs, expected = {}, {}
    for name, (subfolder, auto, kwargs) in inputs.items():
        torch.save(kwargs, tmp_path / f"{name}.pt")
        jobs[name] = {"auto": auto.__name__, "folder": str(saved), "subfolder": subfolder,
                      "inputs": str(tmp_path / f"{name}.pt"), "out": str(tmp_path / f"{name}.out.pt")}  # fmt: skip
        with torch.no_grad():
            out = auto.from_pretrained(DEFAULT / subfolder).eval()(**kwargs)
        expected[name] = next(getattr(out, n) for n in ("units", "logits", "waveform") if getattr(out, n, None) is not None)
    result = run_remote_child(tmp_path, jobs)
    assert not result["hf_slm_imported"]
    for name in inputs:
        assert not result["modules"][name].startswith("hf_slm"), result["modules"][name]
        want = expected[name].float() if expected[name].is_floating_point() else expected[name]
        # Griffin-Lim's 32 momentum iterations carry float rounding of another thread count up to ~1e-4 (seen in CI)
        tolerance = 1e-3 if name == "vocoder" else 1e-5
        torch.testing.assert_close(torch.load(tmp_path / f"{name}.out.pt"), want, rtol=tolerance, atol=tolerance)


def test_augmentation_and_tokenisation_in_two_processes_equal_one(tmp_path):
    """`--num_proc 2` shares augmentation and tokenisation between forked workers (one torch thread each, after the
    parent's OpenMP pool ran: a multi-threaded op in a worker would deadlock) and gives the same rows as one process (up to one 16-bit step of the stored audio)."""
    import types

    import datasets
    import numpy as np
    import torch

    from example_loader import load_script
    from hf_slm.data import synthesize_dataset
    from tiny_components import tiny_unit_encoder

    module = load_script("examples/default_pipeline/train_default.py")
    texts = ["the red dog runs home", "a cat sat on a mat", "we like green tea", "she reads a long book"] * 2
    train = synthesize_dataset(texts, voices=["en-us", "en-gb+f3"], rates=[170], pitches=[50], cache_dir=tmp_path / "c",
                               show_progress=False).cast_column("audio", datasets.Audio(sampling_rate=16000))  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    (torch.ones(1 << 20) + 1).sum()  # the parent's OpenMP pool has run
    try:
        results = {}
        for num_proc in (1, 2):
            args = types.SimpleNamespace(augmentation={"seed": 0, "steps": [{"name": "pitch", "semitones": [-2, 2]},
                                         {"name": "noise", "snr_db": [10, 20]}]}, augment_copies=1, num_proc=num_proc)  # fmt: skip
            augmented = module.augment_dataset(args, train, tmp_path / f"scratch{num_proc}")
            fe, tokenizer = module.SpeechFeatureExtractor(sampling_rate=16000), tiny_unit_encoder()
            units = module.add_units(augmented, fe, tokenizer, target_column="target", num_proc=num_proc,
                                     cache_file_name=str(tmp_path / f"units{num_proc}.arrow"))  # fmt: skip
            results[num_proc] = (augmented, units)
    finally:
        torch.set_num_threads(threads)
    (aug1, units1), (aug2, units2) = results[1], results[2]
    assert len(aug2) == len(train) and len(units2) == len(train)
    for a, b in zip(aug1["audio"], aug2["audio"]):  # one 16-bit step: float sums differ with the thread count
        np.testing.assert_allclose(a["array"], b["array"], rtol=0, atol=1.01 / 32768)
    assert units1["units"] == units2["units"] and units1["waveform"] == units2["waveform"]
    assert len({tuple(u) for u in units2["units"]}) > 1
