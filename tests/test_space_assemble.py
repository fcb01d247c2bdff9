"""`spaces/assemble.py` writes a Space folder that deploys without hf_slm on PyPI: pinned PyPI requirements only, and
`app.py` imports the hf_slm copy next to it."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "spaces"))
import assemble  # noqa: E402

pytest.importorskip("gradio", reason="the Space needs gradio (pip install -e '.[space]')")


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    return assemble.assemble(tmp_path_factory.mktemp("space") / "space")


def test_requirements_are_pinned_pypi_distributions(space):
    text = (space / "requirements.txt").read_text()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    names = set()
    for line in lines:
        req = Requirement(line)  # raises on anything pip would not read as a requirement
        assert req.url is None and "/" not in line and "@" not in line, f"not a PyPI requirement: {line}"
        (spec,) = req.specifier
        assert spec.operator == "==", f"not pinned: {line}"
        assert metadata.version(req.name) == spec.version, f"{line} is not the version installed here"
        names.add(req.name.lower().replace("_", "-"))
    assert "hf-slm" not in names and "hf_slm" not in names
    assert {"torch", "transformers", "gradio"} <= names
    for requirement in metadata.requires("hf_slm"):  # every runtime dependency of hf_slm is there
        if "extra ==" not in requirement:
            assert Requirement(requirement).name.lower().replace("_", "-") in names, requirement


def test_folder_is_self_contained(space):
    assert (space / "app.py").read_text() == (ROOT / "spaces" / "app.py").read_text()
    assert (space / "README.md").read_text().startswith("---\n")  # the Space metadata block
    package = space / "hf_slm"
    for variant in ("default_pipeline", "default_twist_pipeline", "default_instruct_pipeline"):
        assert (package / variant / "pipeline_index.json").is_file(), variant
    templates = package / "model_card_templates"
    assert not templates.is_symlink() and (templates / "_base.md").is_file()
    assert not list(package.rglob("__pycache__"))
    assert "espeak-ng" in (space / "packages.txt").read_text().split()


def test_app_imports_the_copied_package(space):
    """In a fresh process started in the folder (as a Space runs it), `app` and `hf_slm` come from the folder, and the
    spoken-instruction tab's default `instruct-default` resolves to the copied package and can chat."""
    code = (
        "import app, hf_slm\n"
        "from hf_slm.pipelines.pipeline_utils import resolve_pipeline_path\n"
        "chat, name = app.load_chat_pipeline(app.SpokenChatPipeline.from_pretrained('default'))\n"
        "print(name, app.chat_support(chat))\n"
        "print(hf_slm.__file__, app.__file__, resolve_pipeline_path('instruct-default'))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=space, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    name, support, package_file, app_file, instruct = proc.stdout.split()[-5:]
    assert (name, support) == ("instruct-default", "None"), proc.stdout[-2000:]
    assert Path(package_file).resolve().is_relative_to(space.resolve()), package_file
    assert Path(instruct).resolve().is_relative_to(space.resolve()), instruct
    assert Path(app_file).resolve() == (space / "app.py").resolve()
