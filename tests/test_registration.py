"""Every component round-trips through the Auto classes (hf_slm imported) and through remote code (hf_slm never
imported, and blocked from importing), each check in a fresh subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import hf_slm
from hf_slm.models.registration import REGISTERED
from tiny_components import COMPONENTS, main_output

REPO_ROOT = Path(__file__).resolve().parents[1]

# Loads a component in a process that cannot import hf_slm: any attempt raises.
BLOCK_HF_SLM = """
import sys, importlib.abc
class _BlockHfSlm(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "hf_slm" or name.startswith("hf_slm."):
            raise ImportError("hf_slm is blocked in this process")
sys.meta_path.insert(0, _BlockHfSlm())
"""

CHILD = """
import json, sys, torch, transformers
{prelude}
results = {{}}
for name, job in json.load(open(sys.argv[1])).items():
    auto = getattr(transformers, job["auto"])
    model = auto.from_pretrained(job["folder"], subfolder=job.get("subfolder", ""), {load_kwargs}).eval()
    with torch.no_grad():
        out = model(**torch.load(job["inputs"]))
    value = next(getattr(out, n) for n in ("units", "logits", "waveform") if getattr(out, n, None) is not None)
    torch.save(value.float() if value.is_floating_point() else value, job["out"])
    results[name] = type(model).__module__
print(json.dumps({{"modules": results, "hf_slm_imported": "hf_slm" in sys.modules}}))
"""


def run_child(tmp_path: Path, jobs: dict, remote: bool) -> dict:
    """Load every saved component in ONE fresh process (interpreter start-up dominates on 2 cores)."""
    jobs_file = tmp_path / f"jobs_{remote}.json"
    jobs_file.write_text(json.dumps(jobs))
    code = CHILD.format(
        prelude=BLOCK_HF_SLM if remote else "import hf_slm",
        load_kwargs="trust_remote_code=True" if remote else "",
    )
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / f"modules_{remote}"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), str(jobs_file)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,  # not the repo root, so `hf_slm` is importable only as an installed package
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_every_model_type_is_prefixed_and_registered_once():
    from transformers import CONFIG_MAPPING

    assert REGISTERED, "nothing registered on import"
    for model_type, entry in REGISTERED.items():
        assert model_type.startswith("hf_slm_")
        assert CONFIG_MAPPING[model_type] is entry["config"]
    tested = {type(factory()).config_class.model_type for factory, _, _ in COMPONENTS.values()}
    assert tested == set(REGISTERED), "every registered family needs a row in tiny_components.COMPONENTS"


def run_python(code: str, tmp_path: Path) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


def test_import_is_light_and_public_names_resolve(tmp_path):
    """`import hf_slm` imports neither torch nor the model classes; a public name imports them when used."""
    out = run_python(
        """
        import sys, hf_slm
        light = not any(m in sys.modules for m in ("torch", "hf_slm.models", "datasets", "gradio", "matplotlib"))
        cls = hf_slm.SpeechLMForCausalLM
        print(light, cls.__module__, "hf_slm.models" in sys.modules, set(dir(hf_slm)) >= set(hf_slm.__all__))
        """,
        tmp_path,
    )
    assert out == "True hf_slm.models.speech_lm.modeling_speech_lm True True", out


def test_lazy_names_match_each_family():
    """`hf_slm` exports every name each model family exports, and each of its names resolves."""
    import importlib

    for family in ("unit_encoder", "speech_lm", "unit_vocoder", "codec", "speech_llm"):
        exported = importlib.import_module(f"hf_slm.models.{family}").__all__
        assert set(exported) <= set(hf_slm.__all__), family
    for name in hf_slm.__all__:
        assert getattr(hf_slm, name) is not None, name


@pytest.mark.parametrize("order", ["hf_slm_first", "transformers_first"])
def test_auto_classes_find_hf_slm_without_touching_its_classes(order, tmp_path):
    """Registration happens on the first Auto look-up, whether transformers' Auto modules were imported before
    `import hf_slm` or after."""
    first, second = ("import hf_slm", "import transformers.models.auto.modeling_auto") if order == "hf_slm_first" else (
        "import transformers.models.auto.modeling_auto", "import hf_slm"
    )
    out = run_python(
        f"""
        {first}
        {second}
        import sys, hf_slm
        from transformers import AutoConfig, AutoFeatureExtractor, AutoModel
        before = "hf_slm.models" in sys.modules
        config = AutoConfig.from_pretrained(hf_slm.DEFAULT_PIPELINE, subfolder="vocoder")
        model = AutoModel.from_config(config)
        fe = AutoFeatureExtractor.from_pretrained(hf_slm.DEFAULT_PIPELINE, subfolder="feature_extractor")
        print(before, type(model).__name__, type(fe).__name__)
        """,
        tmp_path,
    )
    assert out == "False UnitMelVocoder SpeechFeatureExtractor", out


@pytest.fixture(scope="module")
def saved_components(tmp_path_factory):
    """Every tiny component saved once, with its inputs and the output it gave before saving."""
    root = tmp_path_factory.mktemp("components")
    saved = {}
    for name, (factory, auto_name, make_inputs) in COMPONENTS.items():
        model, inputs = factory(), make_inputs()
        folder = root / name
        model.save_pretrained(folder)
        torch.save(inputs, root / f"{name}_inputs.pt")
        saved[name] = {
            "folder": str(folder),
            "auto": auto_name,
            "inputs": str(root / f"{name}_inputs.pt"),
            "expected": main_output(model, inputs),
        }
    return root, saved


def test_saved_components_carry_auto_map_and_safetensors(saved_components):
    _, saved = saved_components
    for name, job in saved.items():
        folder = Path(job["folder"])
        config = json.loads((folder / "config.json").read_text())
        assert config["model_type"].startswith("hf_slm_"), name
        assert job["auto"] in config["auto_map"], f"{name}: register_for_auto_class must record {job['auto']}"
        assert (folder / "model.safetensors").exists() and not list(folder.glob("*.bin")), name
        assert list(folder.glob("modeling_*.py")), f"{name}: the model's source must travel with it"


@pytest.mark.parametrize("remote", [False, True], ids=["auto", "remote_code"])
def test_components_round_trip_in_fresh_process(saved_components, remote, tmp_path):
    root, saved = saved_components
    jobs = {
        name: {k: job[k] for k in ("folder", "auto", "inputs")} | {"out": str(tmp_path / f"{name}_out.pt")}
        for name, job in saved.items()
    }
    info = run_child(tmp_path, jobs, remote=remote)
    assert info["hf_slm_imported"] is (not remote)
    for name, job in saved.items():
        module = info["modules"][name]
        assert module.startswith("transformers_modules" if remote else "hf_slm."), (name, module)
        got = torch.load(tmp_path / f"{name}_out.pt")
        assert got.shape == job["expected"].shape, name
        torch.testing.assert_close(got, job["expected"], rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize("remote", [False, True], ids=["auto", "remote_code"])
def test_feature_extractor_round_trip_in_fresh_process(remote, tmp_path):
    fe = hf_slm.SpeechFeatureExtractor(sampling_rate=16000, max_duration_s=30.0)
    fe.save_pretrained(tmp_path / "fe")
    saved = json.loads((tmp_path / "fe" / "preprocessor_config.json").read_text())
    assert saved["auto_map"]["AutoFeatureExtractor"].endswith("SpeechFeatureExtractor")
    code = (BLOCK_HF_SLM if remote else "import hf_slm\n") + textwrap.dedent(
        f"""
        import sys, numpy as np
        from transformers import AutoFeatureExtractor
        fe = AutoFeatureExtractor.from_pretrained({str(tmp_path / 'fe')!r}, trust_remote_code={remote})
        out = fe([np.ones(22050, dtype=np.float32) * 0.1, np.linspace(-1, 1, 11025, dtype=np.float32)], sampling_rate=22050)
        print(type(fe).__module__, tuple(out["input_values"].shape), int(out["attention_mask"].sum()), "hf_slm" in sys.modules)
        """
    )
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    module, *shape, mask_sum, imported = proc.stdout.split()
    assert module.startswith("transformers_modules" if remote else "hf_slm.")
    assert imported == ("False" if remote else "True")
    assert int(mask_sum) == 16000 + 8000  # both utterances resampled 22050 -> 16000 Hz, padding masked


def test_auto_processor_never_prompts_on_a_variant(tmp_path):
    """With hf_slm imported, AutoProcessor on each component folder of the embedded default either loads our class or
    fails at once: it never reaches transformers' y/N trust prompt (which waits 15 s on a terminal)."""
    code = textwrap.dedent(
        """
        import hf_slm
        from transformers import AutoProcessor
        for sub in ("feature_extractor", "language_model"):
            print(sub, type(AutoProcessor.from_pretrained(hf_slm.DEFAULT_PIPELINE, subfolder=sub)).__name__)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], stdin=subprocess.PIPE, capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "[y/N]" not in proc.stdout + proc.stderr
    assert proc.stdout.split() == ["feature_extractor", "SpeechFeatureExtractor", "language_model", "SpeechLMProcessor"]
