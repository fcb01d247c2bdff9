"""Registration as a fresh process sees it: `import hf_slm` stays light, the Auto classes find our components whichever
is imported first, and every registered family has its `ComponentTesterMixin` tester (which checks each component's
save/load, Auto classes and remote code)."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import hf_slm
from hf_slm.models.registration import REGISTERED
from tiny_components import COMPONENTS


def test_every_model_type_is_prefixed_and_registered_once():
    from transformers import CONFIG_MAPPING

    assert REGISTERED, "nothing registered on import"
    for model_type, entry in REGISTERED.items():
        assert model_type.startswith("hf_slm_")
        assert CONFIG_MAPPING[model_type] is entry["config"]
    tested = {type(factory()).config_class.model_type for factory, _, _ in COMPONENTS.values()}
    assert tested == set(REGISTERED), "every registered family needs a row in tiny_components.COMPONENTS"


def test_every_component_has_a_component_tester():
    """Each row of `tiny_components.COMPONENTS` is the `component` of one `ComponentTesterMixin` subclass in a family
    test file (found statically: importing every test module here would run their module-level set-up)."""
    declared = []
    for path in sorted(Path(__file__).parent.glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                for stmt in node.body:
                    if isinstance(stmt, ast.Assign) and [getattr(t, "id", None) for t in stmt.targets] == ["component"]:
                        declared.append(stmt.value.value)
    assert sorted(declared) == sorted(COMPONENTS), "one ComponentTesterMixin subclass per COMPONENTS row"


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
    import pkgutil

    import hf_slm.models

    families = [m.name for m in pkgutil.iter_modules(hf_slm.models.__path__) if m.ispkg]  # every family folder
    assert {"unit_encoder", "speech_lm", "codec", "unit_vocoder"} <= set(families), families
    for family in families:
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
