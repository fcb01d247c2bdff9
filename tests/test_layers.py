"""The package's import structure, read from the source alone (nothing is imported).

- Layers point down: a module imports its own layer and the ones below it (`LAYERS`), and no modules import each
  other in a cycle. Imports inside functions count: a lazy import still ties two modules together.
- A model family folder (`hf_slm/models/<family>/`) imports only its own files and third-party packages: it is the
  remote code that a saved component carries, and loads without hf_slm installed.
- No module imports another package's private (underscore) names, and no test imports a private name of hf_slm.

docs/architecture.md draws the same picture.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "hf_slm"
TESTS = ROOT / "tests"

#: Lowest first: a module may import its own layer and the ones before it. `hf_slm/__init__.py` is not judged.
LAYERS = [
    {"models"},
    {"data", "streaming", "visualization", "utils", "_registration"},  # _registration: imports models lazily
    {"pipelines", "hub", "model_cards"},  # model_cards: the deprecated alias of pipelines.model_card
    {"training", "evaluation", "instruct", "converters"},
    {"cli"},
]

#: Known upward imports, each with why it is still here (none today).
ALLOWED_UPWARD: set[tuple[str, str]] = set()

#: The snapshot copies of the embedded variants (generated files, not package sources).
SKIPPED = ("default_pipeline", "default_twist_pipeline", "default_instruct_pipeline", "default_speech_llm_pipeline")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_of(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def imports_of(path: Path, name: str | None = None) -> list[tuple[str, list[str], int]]:
    """``(module, [imported names], line)`` for each import of hf_slm in ``path`` (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    base = package_of(name, path).split(".") if name else []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names if alias.name.split(".")[0] == "hf_slm"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - node.level + 1]
                module = ".".join(anchor + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] == "hf_slm":
                found.append((module, [alias.name for alias in node.names], node.lineno))
    return found


def package_files() -> dict[str, Path]:
    return {
        module_name(path): path
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.relative_to(PACKAGE).parts[0] not in SKIPPED
    }


def import_graph(files: dict[str, Path]) -> dict[str, set[str]]:
    graph = {}
    for name, path in files.items():
        targets = set()
        for module, names, _ in imports_of(path, name):
            targets |= {module} | {f"{module}.{n}" for n in names}
        graph[name] = {t for t in targets if t in files and t != name and not name.startswith(t + ".")}
    return graph


def cycles(graph: dict[str, set[str]], files: dict[str, Path]) -> list[list[str]]:
    """Strongly connected components (Tarjan) of more than one module that are not only `__init__` re-exports."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if sum(files[m].name != "__init__.py" for m in component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def layer_of(name: str) -> int | None:
    top = name.split(".")[1] if "." in name else ""
    return next((i for i, names in enumerate(LAYERS) if top in names), None)


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_no_import_cycles():
    files = package_files()
    found = cycles(import_graph(files), files)
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_layers_point_down():
    files = package_files()
    graph = import_graph(files)
    upward = sorted(
        (a, b)
        for a, targets in graph.items()
        for b in targets
        if layer_of(a) is not None and layer_of(b) is not None and layer_of(b) > layer_of(a)
    )
    unknown = sorted({name.split(".")[1] for name in files if "." in name} - set().union(*LAYERS))
    assert all(is_private(top) for top in unknown), f"place these top-level modules in LAYERS: {unknown}"
    new = [f"{a} imports {b}" for a, b in upward if (a, b) not in ALLOWED_UPWARD]
    assert not new, "upward imports (see LAYERS):\n" + "\n".join(new)
    gone = ALLOWED_UPWARD - set(upward)
    assert not gone, f"these upward imports are gone: remove them from ALLOWED_UPWARD: {sorted(gone)}"


def test_model_family_folders_import_only_themselves():
    for family in sorted(p for p in (PACKAGE / "models").iterdir() if (p / "__init__.py").is_file()):
        for path in sorted(family.glob("*.py")):
            if path.name == "__init__.py":
                continue  # the family's public names and its Auto registration live outside the remote code
            name = module_name(path)
            outside = [
                f"{path.relative_to(ROOT)}:{line} imports {module}"
                for module, _, line in imports_of(path, name)
                if module != package_of(name, path) and not module.startswith(package_of(name, path) + ".")
            ]
            assert not outside, "remote code must import only its own folder:\n" + "\n".join(outside)


def test_no_private_names_across_packages():
    offenders = []
    for name, path in package_files().items():
        own = package_of(name, path)
        for module, names, line in imports_of(path, name):
            target = package_of(module, PACKAGE.parent / (module.replace(".", "/") + ".py"))
            if (PACKAGE.parent / module.replace(".", "/")).is_dir():
                target = module
            private = [n for n in names if is_private(n)]
            private += [part for part in module.split(".") if is_private(part)]
            if private and target != own:
                offenders.append(f"{path.relative_to(ROOT)}:{line} imports {private} from {module}")
    assert not offenders, "private names used across packages (make them public or move them):\n" + "\n".join(
        offenders
    )


def test_tests_import_public_names_only():
    offenders = []
    for path in sorted(TESTS.glob("*.py")):
        for module, names, line in imports_of(path):
            private = [n for n in names if is_private(n)] + [p for p in module.split(".") if is_private(p)]
            if private:
                offenders.append(f"{path.relative_to(ROOT)}:{line} imports {private} from {module}")
    assert not offenders, "tests use hf_slm's public names only:\n" + "\n".join(offenders)
