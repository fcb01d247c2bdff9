"""Model code written next to the weights when a component or variant is saved or pushed, never kept in git.

transformers loads a folder whose config has an ``auto_map`` with ``trust_remote_code=True`` where hf_slm is not
installed, from the ``.py`` files beside the config. A component's own ``save_pretrained`` already writes them
(`register_for_auto_class`); this module completes what it cannot:

- every Auto class a family is registered with gets its ``auto_map`` entry (transformers records only one, so the
  speech LM would load through ``AutoModelForCausalLM`` but not ``AutoModel``);
- a variant also carries the code of its components at its root, because transformers looks for remote code at the
  repo root even when it loads ``subfolder=...``;
- folders saved without code (the variants embedded in the package ship none) get it from the installed package.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

#: config files whose ``auto_map`` names classes to load as remote code
CODE_CONFIG_FILES = ("config.json", "preprocessor_config.json", "processor_config.json")


def _package_module_files() -> dict[str, Path]:
    """hf_slm's model-code files by module name (every family folder holds uniquely named modules)."""
    from .. import models

    return {path.stem: path for path in Path(models.__file__).parent.glob("*/*.py") if path.stem != "__init__"}


def _code_files(module_file: Path) -> list[Path]:
    from transformers.dynamic_module_utils import get_relative_import_files

    return [module_file, *map(Path, get_relative_import_files(str(module_file)))]


def _complete_auto_map(config_file: Path) -> dict:
    """Add the ``auto_map`` entries of every Auto class the family is registered with; returns the config."""
    from ..models.registration import REGISTERED

    config = json.loads(config_file.read_text(encoding="utf-8"))
    entry = REGISTERED.get(config.get("model_type", ""))
    auto_map = config.get("auto_map")
    if entry is None or not auto_map or "model" not in entry:
        return config
    model_ref = f"{entry['model'].__module__.rsplit('.', 1)[-1]}.{entry['model'].__name__}"
    missing = {auto: model_ref for auto in entry["auto_classes"] if auto not in auto_map}
    if missing:
        config["auto_map"] = {**auto_map, **missing}
        config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return config


def write_component_code(folder: str | Path) -> list[Path]:
    """Write into a component folder the hf_slm code its ``auto_map`` names; returns the code files it needs."""
    folder = Path(folder)
    package_files = _package_module_files()
    needed: list[Path] = []
    for name in CODE_CONFIG_FILES:
        config_file = folder / name
        if not config_file.is_file():
            continue
        config = _complete_auto_map(config_file) if name == "config.json" else json.loads(config_file.read_text())
        for ref in (config.get("auto_map") or {}).values():
            for class_ref in ref if isinstance(ref, (list, tuple)) else [ref]:
                if not class_ref or "--" in class_ref:  # code that lives in another repo stays there
                    continue
                source = package_files.get(class_ref.rsplit(".", 1)[0])
                if source is not None:
                    needed += [f for f in _code_files(source) if f not in needed]
    for source in needed:
        if not (folder / source.name).exists():
            shutil.copyfile(source, folder / source.name)
    return needed


def write_remote_code(folder: str | Path) -> list[Path]:
    """Complete a saved component or variant folder for ``trust_remote_code`` loading; returns the files written.

    A variant (a folder whose subfolders are components) gets each component's code in the component's subfolder
    and at its root.
    """
    folder = Path(folder)
    before = set(folder.rglob("*.py"))
    needed = write_component_code(folder)
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        needed += [f for f in write_component_code(sub) if f not in needed]
    for source in needed:
        if not (folder / source.name).exists():
            shutil.copyfile(source, folder / source.name)
    return sorted(p for p in folder.rglob("*.py") if p not in before)


__all__ = ["CODE_CONFIG_FILES", "write_component_code", "write_remote_code"]
