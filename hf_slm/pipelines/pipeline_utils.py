"""Hosted pipeline variants: one repo made of component subfolders plus an index file (diffusers' layout).

A variant is saved as::

    pipeline_index.json          {"_class_name": ..., "feature_extractor": ["hf_slm", "SpeechFeatureExtractor"], ...}
    feature_extractor/           written by the component's own ``save_pretrained``
    speech_tokenizer/
    language_model/
    vocoder/
    tokenizer/   adapter/        optional

so each component also loads alone, e.g. ``AutoModel.from_pretrained(repo, subfolder="vocoder")``. An index entry may
instead be a dict ``{"library": ..., "class": ..., "repo": "org/other-variant", "subfolder": "vocoder",
"revision": ...}`` so that variants share a component without copying its weights.
"""

from __future__ import annotations

import importlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

from ..utils import atomic_open, atomic_save_directory  # noqa: F401  (their home before 0.2)
from .embedded import EMBEDDED_PIPELINES, embedded_pipeline_path  # noqa: F401  (their home before 0.2)
from .remote_code import write_remote_code

INDEX_FILE = "pipeline_index.json"

#: Components in the order they are loaded; ``adapter`` wraps ``language_model`` and so comes after it.
COMPONENT_NAMES = ("feature_extractor", "speech_tokenizer", "tokenizer", "language_model", "vocoder", "adapter")
REQUIRED_COMPONENTS = ("feature_extractor", "speech_tokenizer")
#: Components of an `AudioLMPipeline` variant (all required), in load order.
AUDIOLM_COMPONENTS = ("feature_extractor", "unit_encoder", "semantic_lm", "coarse_lm", "fine_lm", "codec")
#: Pipeline classes whose index holds other components than `COMPONENT_NAMES`: ``_class_name`` -> (component names in
#: load order, required ones). `read_index` checks an index against the layout of the class it names.
PIPELINE_LAYOUTS = {
    "AudioLMPipeline": (AUDIOLM_COMPONENTS, AUDIOLM_COMPONENTS),
    "SpeechLLMPipeline": (("processor", "language_model", "vocoder"), ("processor", "language_model")),
    "VallEPipeline": (("feature_extractor", "speech_tokenizer", "tokenizer", "ar_model", "nar_model"),) * 2,
    "ExpressiveSpeechLMPipeline": (
        ("feature_extractor", "speech_tokenizer", "expressive_encoder", "tokenizer", "language_model", "vocoder"),
        ("feature_extractor", "speech_tokenizer", "expressive_encoder"),
    ),
}


def component_layout(class_name) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(component names, required component names) of the pipeline class an index names in ``_class_name``."""
    return PIPELINE_LAYOUTS.get(str(class_name), (COMPONENT_NAMES, REQUIRED_COMPONENTS))


class PipelineLoadError(ValueError):
    """A pipeline folder or repo is missing its index, a component, or names a class that does not exist."""


def library_of(obj) -> str:
    module = type(obj).__module__.split(".")[0]
    if module == "hf_slm" or module.startswith("transformers_modules"):
        return "hf_slm"
    return module


def class_name_of(obj) -> str:
    if library_of(obj) == "peft":  # an adapter is saved from the PeftModel that wraps the language model
        return "PeftModel"
    return type(obj).__name__


def _base_state_dict(base_model) -> dict:
    """The base weights of a model that PEFT injected adapter layers into, under their original names."""
    state = {}
    for key, value in base_model.state_dict().items():
        if "lora_" in key or ".modules_to_save." in key:
            continue
        state[key.replace(".base_layer.", ".").replace(".original_module.", ".")] = value
    return state


#: What an index entry may name, diffusers' ``LOADABLE_CLASSES`` idea: library -> the base classes a component of
#: that library must derive from (dotted paths, imported on use). Anything else (``["os", "system"]``, a function,
#: a class of another library) is refused before it is called.
LOADABLE_CLASSES = {
    "hf_slm": (
        "transformers.PreTrainedModel",
        "transformers.FeatureExtractionMixin",
        "transformers.PreTrainedTokenizerBase",
        "transformers.ProcessorMixin",
    ),
    "transformers": (
        "transformers.PreTrainedModel",
        "transformers.FeatureExtractionMixin",
        "transformers.PreTrainedTokenizerBase",
        "transformers.ProcessorMixin",
    ),
    "peft": ("peft.PeftModel",),
}
#: Class names an index saved before hf_slm 0.2 may hold -> today's names; read with a FutureWarning until hf_slm 0.3.
RENAMED_CLASSES = {
    "hf_slm": {
        "KMeansUnitTokenizer": "UnitEncoderModel",  # rename: keep
        "CodecTokenizer": "CodecModel",  # rename: keep
        "RVQCodec": "RVQCodecModel",  # rename: keep
    },
}


def _import_dotted(dotted: str):
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _resolve_class(library: str, class_name: str, where: str = INDEX_FILE):
    """The class an index entry names, if `LOADABLE_CLASSES` allows it; `PipelineLoadError` naming `where` else."""
    if not isinstance(library, str) or not isinstance(class_name, str):
        raise PipelineLoadError(f"{where}: library and class must be strings, got {library!r}, {class_name!r}")
    if library not in LOADABLE_CLASSES:
        raise PipelineLoadError(
            f"{where}: library {library!r} (class {class_name!r}) is not loadable; an index may name only "
            f"{sorted(LOADABLE_CLASSES)}"
        )
    if not class_name.isidentifier() or class_name.startswith("_"):
        raise PipelineLoadError(f"{where}: {class_name!r} is not a public class name")
    renamed = RENAMED_CLASSES.get(library, {}).get(class_name)
    if renamed is not None:
        warnings.warn(
            f"{where}: class {class_name!r} was renamed {renamed!r} in {library} 0.2 and is read until 0.3: re-save "
            "the pipeline (save_pretrained) to write the new name",
            FutureWarning,
            stacklevel=3,
        )
        class_name = renamed
    try:
        module = importlib.import_module(library)
    except ImportError as err:
        raise PipelineLoadError(f"component library {library!r} is not installed (needed for {class_name})") from err
    try:
        component_cls = getattr(module, class_name)
    except AttributeError as err:
        raise PipelineLoadError(f"{where}: library {library!r} has no class {class_name!r}") from err
    bases = tuple(_import_dotted(base) for base in LOADABLE_CLASSES[library])
    if not (isinstance(component_cls, type) and issubclass(component_cls, bases)):
        raise PipelineLoadError(
            f"{where}: {library}.{class_name} is not a loadable component (it must derive from one of "
            f"{[b.__name__ for b in bases]})"
        )
    return component_cls


def normalise_spec(name: str, spec, where: str = INDEX_FILE) -> dict[str, Any] | None:
    if spec is None or (isinstance(spec, (list, tuple)) and (len(spec) < 2 or spec[0] is None)):
        return None
    if isinstance(spec, (list, tuple)) and len(spec) == 2 and all(isinstance(x, str) for x in spec):
        return {"library": spec[0], "class": spec[1]}
    if isinstance(spec, dict) and isinstance(spec.get("library"), str) and isinstance(spec.get("class"), str):
        return dict(spec)
    raise PipelineLoadError(
        f"{where}: entry {name!r} must be [library, class] (two strings) or a dict with string library/class, "
        f"got {spec!r}"
    )


def is_local_reference(repo) -> bool:
    """Whether an index entry's ``repo`` names a folder (``./x``, ``../x``, an absolute path, ``~/x``), not a Hub id or
    an embedded variant name."""
    return str(repo).startswith(("./", "../", "/", "~")) or str(repo) in (".", "..")


def resolve_reference(repo, index_folder: str | os.PathLike) -> str:
    """The ``repo`` of an index entry as it loads: a relative folder against ``index_folder`` (the folder holding the
    index), made absolute; a Hub id or an embedded name unchanged."""
    if not is_local_reference(repo):
        return str(repo)
    return os.path.normpath(Path(index_folder).resolve() / Path(str(repo)).expanduser())


def relative_reference(repo, save_directory: str | os.PathLike) -> str:
    """The ``repo`` of an index entry as a variant saved in ``save_directory`` stores it: a local folder relative to
    ``save_directory`` (so the two move together); a Hub id or an embedded name unchanged."""
    if embedded_pipeline_path(repo) or not (is_local_reference(repo) or Path(str(repo)).is_dir()):
        return str(repo)
    relative = os.path.relpath(Path(str(repo)).expanduser().resolve(), Path(save_directory).resolve())
    return relative if relative.startswith("..") else f"./{relative}"


def resolve_pipeline_path(path_or_repo_id: str | os.PathLike, revision: str | None = None, **hub_kwargs) -> Path:
    """A local folder as it is, an embedded name (`EMBEDDED_PIPELINES`) as its folder, anything else as a Hub repo id.

    Hub repos are fetched with ``snapshot_download`` (which honours ``HF_ENDPOINT`` and the local cache).
    """
    embedded = embedded_pipeline_path(path_or_repo_id)
    if embedded is not None and revision is not None:
        raise PipelineLoadError(
            f"revision={revision!r}: the embedded variant {str(path_or_repo_id)!r} is the copy installed with hf_slm "
            "and has no revisions; load a Hub repo id to pin one"
        )
    path_or_repo_id = embedded or path_or_repo_id
    local = Path(path_or_repo_id).expanduser()
    if local.is_dir():
        if revision is not None:
            raise PipelineLoadError(f"revision={revision!r}: {local} is a local folder, which has no revisions")
        return local
    if local.exists():
        raise PipelineLoadError(f"{local} is a file, not a pipeline folder")
    if str(path_or_repo_id).startswith((".", "/", "~")) or str(path_or_repo_id).count("/") > 1:
        raise PipelineLoadError(f"pipeline folder {path_or_repo_id} does not exist (and it is not a Hub repo id)")
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(str(path_or_repo_id), revision=revision, **hub_kwargs))


def read_index(path: Path) -> dict[str, Any]:
    index_file = Path(path) / INDEX_FILE
    if not index_file.is_file():
        raise PipelineLoadError(f"{path} is not a pipeline variant: {INDEX_FILE} is missing")
    try:
        index = json.loads(index_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise PipelineLoadError(f"{index_file} is not valid JSON: {err}") from err
    if not isinstance(index, dict):
        raise PipelineLoadError(f"{index_file} must hold a JSON object, got {type(index).__name__}")
    names, required = component_layout(index.get("_class_name"))
    unknown = sorted(k for k in index if not k.startswith("_") and k not in names)
    if unknown:
        raise PipelineLoadError(f"{index_file}: unknown component(s) {unknown}; expected names from {names}")
    for name in names:
        normalise_spec(name, index.get(name), str(index_file))
    missing = [name for name in required if normalise_spec(name, index.get(name)) is None]
    if missing:
        raise PipelineLoadError(f"{index_file} lacks the required component(s) {missing}")
    return index


def _describe_load_failure(name: str, component_cls, folder: Path, err: Exception) -> str:
    """One line naming the component, its folder and, for unreadable weights, the file."""
    what = f"cannot load component {name!r} ({component_cls.__name__}) from {folder}"
    weights = sorted(folder.glob("*.safetensors"))
    if not weights and issubclass(component_cls, _import_dotted("transformers.PreTrainedModel")):
        return f"{what}: no weights file (*.safetensors) in {folder}"
    from safetensors import safe_open

    for file in weights:
        try:
            with safe_open(str(file), framework="pt") as handle:
                for key in handle.keys():
                    handle.get_slice(key)
        except Exception as file_err:
            return f"{what}: weights file {file} is corrupt or truncated ({str(file_err).splitlines()[0][:200]})"
    lines = str(err).strip().splitlines() or [type(err).__name__]
    return f"{what}: {type(err).__name__}: {lines[0][:300]}"


def _interface(component) -> tuple[dict, dict]:
    """(produces, consumes) a component declares on itself or its config (empty when it declares nothing)."""
    holder = component if hasattr(component, "produces") or hasattr(component, "consumes") else None
    holder = holder or getattr(component, "config", None)
    produces = getattr(holder, "produces", None) or {}
    consumes = getattr(holder, "consumes", None) or {}
    return dict(produces), dict(consumes)


#: Order of the data flow: a component may consume what any component before it produces.
FLOW_ORDER = ("feature_extractor", "speech_tokenizer", "language_model", "vocoder")

#: Keys whose consumed value is a lower bound, not a value to equal: the producer's must be at least it (the feature
#: extractor's shortest accepted utterance, `audio.min_samples`, against the tokenizer's receptive field).
AT_LEAST_KEYS = frozenset({"audio.min_samples"})


_SAVE_BOOKKEEPING = {"architectures", "auto_map", "dtype", "torch_dtype", "transformers_version"}  # written by saving


def _component_difference(mine, theirs) -> str | None:
    """Why two components are not the same (class, configuration, tensors, vocabulary), or None."""
    if type(mine) is not type(theirs):
        return f"{type(mine).__name__} vs {type(theirs).__name__}"
    if hasattr(mine, "state_dict"):
        ours, other = mine.state_dict(), theirs.state_dict()
        if ours.keys() != other.keys():
            return f"parameter names differ: {sorted(ours.keys() ^ other.keys())[:3]}"
        changed = [k for k in ours if (ours[k].shape, ours[k].dtype) != (other[k].shape, other[k].dtype)
                   or not bool((ours[k] == other[k]).all())]  # fmt: skip
        if changed:
            return f"{len(changed)} tensor(s) differ, e.g. {changed[0]!r}"
        ours, other = mine.config.to_diff_dict(), theirs.config.to_diff_dict()
    elif hasattr(mine, "get_vocab"):
        ours, other = mine.get_vocab(), theirs.get_vocab()
    else:
        ours, other = mine.to_dict(), theirs.to_dict()
    keys = sorted(k for k in ours.keys() | other.keys() if not k.startswith("_") and k not in _SAVE_BOOKKEEPING
                  and ours.get(k) != other.get(k))  # fmt: skip
    return f"configuration differs in {keys[:3]}" if keys else None


def check_compatibility(components: dict[str, Any]) -> None:
    """Refuse components that disagree on what flows between them.

    Each config (or feature extractor) declares ``produces`` and ``consumes``: dicts of named quantities such as
    ``audio.sampling_rate``, ``units.num_units``, ``units.frame_rate``, ``codes.num_codebooks``. Every key a
    component consumes must equal the value of the same key produced by each component upstream of it
    (`FLOW_ORDER`), or for `AT_LEAST_KEYS` be at most it (checked after the equal keys, so that a sampling-rate
    mismatch is named first); a `PipelineLoadError` names both components and both values. Components that declare
    nothing (a text tokenizer, an outside model) are not compared.
    """
    present = [(name, components[name]) for name in FLOW_ORDER if components.get(name) is not None]
    for i, (consumer, component) in enumerate(present):
        _, consumes = _interface(component)
        for producer, upstream in present[:i]:
            produces, _ = _interface(upstream)
            for key in sorted(consumes.keys() & produces.keys(), key=lambda k: (k in AT_LEAST_KEYS, k)):
                have, want = float(produces[key]), float(consumes[key])
                tolerance = 1e-6 * max(abs(have), 1.0)
                if key in AT_LEAST_KEYS and have < want - tolerance:
                    raise PipelineLoadError(
                        f"incompatible components: {producer} ({type(upstream).__name__}) produces {key}="
                        f"{produces[key]} but {consumer} ({type(component).__name__}) needs {key} >= {consumes[key]}"
                    )
                if key not in AT_LEAST_KEYS and abs(have - want) > tolerance:
                    raise PipelineLoadError(
                        f"incompatible components: {producer} ({type(upstream).__name__}) produces {key}="
                        f"{produces[key]} but {consumer} ({type(component).__name__}) consumes {key}={consumes[key]}"
                    )


def upload_mirrored(
    folder: str | os.PathLike,
    repo_id: str,
    revision: str | None = None,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str | None = None,
    create_pr: bool = False,
):
    """Upload ``folder`` as one commit on ``revision`` (repo and branch created when missing), deleting the remote
    files the folder no longer has, so that a pull gives back exactly this folder; returns the ``CommitInfo``.

    Ours, not `huggingface_hub.ModelHubMixin.push_to_hub` (no branch creation, no atomic save, and its
    `from_pretrained` cannot resolve embedded variant names) nor transformers' `PushToHubMixin.push_to_hub`
    (replaces the model card, uploads one folder level deep, keeps stale remote files).
    """
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
    if revision is not None:
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    return api.upload_folder(folder_path=str(folder), repo_id=repo_id, revision=revision, create_pr=create_pr,
                             commit_message=commit_message, delete_patterns="*")  # fmt: skip


class PipelineMixin:
    """Index-driven save / load / push for compositions of Hugging Face components (inference only, owns no weights).

    ``component_names`` (load order) is what a subclass's index may hold; a class with other components than
    `COMPONENT_NAMES` also declares them in `PIPELINE_LAYOUTS`, so that `read_index` checks its index without
    importing it.
    """

    component_names: tuple[str, ...] = COMPONENT_NAMES

    def register_modules(self, **components) -> None:
        if not hasattr(self, "_components"):
            self._components: dict[str, Any] = {}
        for name, component in components.items():
            if name not in self.component_names:
                raise ValueError(f"unknown pipeline component {name!r}; expected one of {self.component_names}")
            self._components[name] = component
            setattr(self, name, component)

    def __setattr__(self, name: str, value: Any) -> None:
        """`pipe.vocoder = other` replaces the component everywhere (decoding, saving, pushing), as in diffusers,
        after the same compatibility check as loading; a replaced component is no longer a reference to the variant
        it came from, so `save_pretrained` writes its weights."""
        components = self.__dict__.get("_components")
        if components is not None and name in self.component_names and components.get(name) is not value:
            check_compatibility({**components, name: value})
            components[name] = value
            self.__dict__.get("_shared_components", {}).pop(name, None)
        super().__setattr__(name, value)

    @property
    def components(self) -> dict[str, Any]:
        return {name: c for name, c in self._components.items() if c is not None}

    def reference_components(self, variant: str | os.PathLike, names) -> None:
        """Save the components ``names`` as references to the same components of ``variant`` (an embedded name, a
        local folder or a Hub id) instead of copies: `save_pretrained` writes ``{"library", "class", "repo",
        "subfolder"}`` index entries and no weights, as `twist-default` refers to `default`'s vocoder.

        Each component must equal the variant's (class, configuration and every tensor), so the saved reference
        loads back what this pipeline holds; an entry that is itself a reference in ``variant`` is followed to the
        variant that stores the weights.
        """
        path = resolve_pipeline_path(variant)
        index = read_index(path)
        references = {}
        for name in names:
            spec = normalise_spec(name, index.get(name), str(path / INDEX_FILE))
            mine = self._components.get(name)
            if mine is None or spec is None:
                have = "this pipeline has none" if mine is None else f"{variant} has none"
                raise ValueError(f"cannot reference component {name!r} of {variant}: {have}")
            origin = {**spec, "repo": resolve_reference(spec["repo"], path)} if spec.get("repo") else None
            theirs = self._load_component(name, spec, path, {}, None, None, {})
            difference = _component_difference(mine, theirs)
            if difference:
                raise ValueError(f"cannot reference component {name!r} of {variant}: it differs from this pipeline's "
                                 f"({difference}); save it as a copy instead")  # fmt: skip
            references[name] = origin or {**spec, "repo": str(variant), "subfolder": name}
        self.__dict__.setdefault("_shared_components", {}).update(references)

    # ------------------------------------------------------------------ saving
    def model_card(self, eval_results=None, repo_id: str | None = None, embedded: bool | None = None) -> str:
        """The README.md text `save_pretrained` / `push_to_hub` write, from the template of the variant's family
        (`model_cards/<family>.md`): see `hf_slm.pipelines.model_card` (``embedded``: a variant shipped in the
        package, named by ``repo_id``)."""
        from .model_card import render_model_card

        return str(render_model_card(self, eval_results=eval_results, repo_id=repo_id, embedded=embedded))

    def _index(self, save_directory: Path) -> dict[str, Any]:
        from .. import __version__

        index: dict[str, Any] = {"_class_name": type(self).__name__, "_hf_slm_version": __version__}
        for name in self.component_names:
            component = self._components.get(name)
            if name == "language_model" and component is not None and library_of(component) == "peft":
                component = component.get_base_model()
            index[name] = None if component is None else [library_of(component), class_name_of(component)]
        if self._components.get("language_model") is not None and library_of(self._components["language_model"]) == "peft":
            index["adapter"] = ["peft", "PeftModel"]
        for name, spec in getattr(self, "_shared_components", {}).items():
            if spec.get("repo"):  # a local variant: relative to where this one is saved, so that both can move
                spec = {**spec, "repo": relative_reference(spec["repo"], save_directory)}
            index[name] = spec
        return index

    def save_pretrained(self, save_directory: str | os.PathLike, push_to_hub: bool = False, repo_id: str | None = None,
                        **push_kwargs) -> Path:  # fmt: skip
        """Save every component into its own subfolder (safetensors) plus ``pipeline_index.json``, atomically.

        Components shared from another local variant are stored as a path relative to ``save_directory``, so the two
        folders can move together. ``repo_id`` names the variant in its model card (default: the folder's name) and,
        with ``push_to_hub=True``, is where it is pushed.
        """
        shared = set(getattr(self, "_shared_components", {}))
        target = Path(save_directory).resolve()

        def write(tmp: Path) -> None:
            from .adapters import save_adapter

            index = self._index(target)
            for name, component in self.components.items():
                if name in shared:
                    if name == "language_model" and library_of(component) == "peft":  # adapter-only variant
                        save_adapter(component, tmp / "adapter", base_model_name_or_path=index[name]["repo"])
                    continue
                if name == "language_model" and library_of(component) == "peft":
                    save_adapter(component, tmp / "adapter", base_model_name_or_path=repo_id or target.name)
                    base = component.get_base_model()
                    base.save_pretrained(tmp / name, state_dict=_base_state_dict(base))
                    continue
                kwargs = {"safe_serialization": True} if hasattr(component, "state_dict") else {}
                component.save_pretrained(tmp / name, **kwargs)
            (tmp / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
            write_remote_code(tmp)
            card = self.model_card(repo_id=repo_id or target.name, embedded=False)  # the code is written above
            (tmp / "README.md").write_text(card, encoding="utf-8")

        path = atomic_save_directory(target, write)
        if push_to_hub:
            if repo_id is None:
                raise ValueError("push_to_hub=True needs repo_id")
            self.push_to_hub(repo_id, **push_kwargs)
        return path

    def push_to_hub(
        self,
        repo_id: str,
        revision: str | None = None,
        private: bool | None = None,
        token: str | None = None,
        commit_message: str = "Upload hf_slm pipeline variant",
        create_pr: bool = False,
    ):
        """Save into a temporary folder and upload it as one commit (`upload_mirrored`)."""
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "variant"
            self.save_pretrained(folder, repo_id=repo_id)
            return upload_mirrored(folder, repo_id, revision, private, token, commit_message, create_pr)

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(
        cls,
        path_or_repo_id: str | os.PathLike = "default",
        revision: str | None = None,
        device: str | None = None,
        dtype=None,
        token: str | None = None,
        local_files_only: bool | None = None,
        **components,
    ):
        """Load a variant from a folder, a Hub repo id, or ``"default"`` (the embedded default).

        Keyword arguments named like a component replace that component instead of loading it.
        """
        hub_kwargs = {k: v for k, v in {"token": token, "local_files_only": local_files_only}.items() if v is not None}
        path = resolve_pipeline_path(path_or_repo_id, revision=revision, **hub_kwargs)
        index = read_index(path)
        if component_layout(index.get("_class_name"))[0] != cls.component_names:
            raise PipelineLoadError(
                f"{path / INDEX_FILE} is a {index.get('_class_name')} variant, whose components "
                f"{component_layout(index.get('_class_name'))[0]} {cls.__name__} cannot hold: load it with "
                f"{index.get('_class_name')}.from_pretrained"
            )
        loaded: dict[str, Any] = {}
        for name in cls.component_names:
            if name in components:
                loaded[name] = components.pop(name)
                continue
            spec = normalise_spec(name, index.get(name))
            if spec is None:
                continue
            if spec.get("repo") == str(path_or_repo_id) and not spec.get("revision"):
                spec["revision"] = revision  # a subfolder of this very repo: same revision as the variant
            loaded[name] = cls._load_component(name, spec, path, loaded, revision, dtype, hub_kwargs)
        if components:
            raise TypeError(f"unexpected keyword argument(s) {sorted(components)}")
        adapter = loaded.pop("adapter", None)
        if adapter is not None:
            loaded["language_model"] = adapter
        check_compatibility(loaded)
        pipe = cls(**loaded)
        pipe._shared_components = {  # local references made absolute: a save elsewhere stores them relative to itself
            name: {**spec, "repo": resolve_reference(spec["repo"], path)}
            for name, spec in index.items()
            if isinstance(spec, dict) and spec.get("repo")
        }
        pipe.name_or_path = str(path_or_repo_id)
        pipe.local_path = str(path)
        return pipe.to(device) if device is not None else pipe

    @staticmethod
    def _load_component(name, spec, path: Path, loaded, revision, dtype, hub_kwargs):
        location, sub_kwargs = str(path / name), dict(hub_kwargs)
        if spec.get("repo"):  # shared component: another repo (or folder, or embedded variant) + subfolder
            location = embedded_pipeline_path(spec["repo"]) or resolve_reference(spec["repo"], path)
            sub_kwargs["subfolder"] = spec.get("subfolder", name)
            if spec.get("revision"):  # another repo: its own pinned revision, else its default branch
                sub_kwargs["revision"] = spec["revision"]
            if is_local_reference(spec["repo"]) and not (Path(location) / sub_kwargs["subfolder"]).is_dir():
                raise PipelineLoadError(
                    f"component {name!r} of {path / INDEX_FILE} references {spec['repo']!r} (subfolder "
                    f"{sub_kwargs['subfolder']!r}), looked up at {Path(location) / sub_kwargs['subfolder']}, which "
                    "does not exist: copy or move the referenced variant along with this one (a relative reference "
                    "is resolved against the folder holding the index)"
                )
            if Path(location).is_dir():
                location, sub_kwargs = str(Path(location) / sub_kwargs.pop("subfolder")), {}
        elif not (path / name).is_dir():
            raise PipelineLoadError(f"component {name!r} is listed in {path / INDEX_FILE} but {path / name} is missing")
        component_cls = _resolve_class(spec["library"], spec["class"], f"{path / INDEX_FILE} entry {name!r}")
        if Path(location).is_dir():  # local files: a failure names the component, its folder and the bad file
            try:
                return PipelineMixin._from_pretrained(component_cls, name, spec, location, loaded, dtype, sub_kwargs)
            except PipelineLoadError:
                raise
            except Exception as err:
                raise PipelineLoadError(_describe_load_failure(name, component_cls, Path(location), err)) from err
        return PipelineMixin._from_pretrained(component_cls, name, spec, location, loaded, dtype, sub_kwargs)

    @staticmethod
    def _from_pretrained(component_cls, name, spec, location, loaded, dtype, sub_kwargs):
        if name == "adapter":
            if "language_model" not in loaded:
                raise PipelineLoadError("an adapter needs a language_model component to attach to")
            from .adapters import expose_tied_weights, peft_wrapping  # the adapter's token rows reach a tied head too

            with peft_wrapping():
                return component_cls.from_pretrained(expose_tied_weights(loaded["language_model"]), location,
                                                     **sub_kwargs)  # fmt: skip
        if dtype is not None and name in ("language_model", "vocoder"):
            sub_kwargs["dtype"] = dtype
        component = component_cls.from_pretrained(location, **sub_kwargs)
        if spec.get("add_task_tokens"):  # an instruct variant's tags over a shared base LM (rows come with the adapter)
            from .adapters import add_task_tokens

            # the adapter overwrites the new rows, so skip transformers' mean resizing (a covariance fit, and a log
            # line on every load)
            component = add_task_tokens(component, spec["add_task_tokens"], init="normal")
        return component

    def to(self, device):
        for component in self.components.values():
            if hasattr(component, "to") and hasattr(component, "parameters"):
                component.to(device)
        return self

    @property
    def device(self):
        import torch

        for name in ("language_model", "speech_tokenizer", "vocoder"):
            component = self._components.get(name)
            if component is not None and hasattr(component, "parameters"):
                for p in component.parameters():
                    return p.device
        return torch.device("cpu")


__all__ = [
    "INDEX_FILE",
    "upload_mirrored",
    "COMPONENT_NAMES",
    "PipelineLoadError",
    "PipelineMixin",
    "PIPELINE_LAYOUTS",
    "EMBEDDED_PIPELINES",
    "LOADABLE_CLASSES",
    "RENAMED_CLASSES",
    "atomic_open",
    "atomic_save_directory",
    "check_compatibility",
    "component_layout",
    "embedded_pipeline_path",
    "is_local_reference",
    "read_index",
    "relative_reference",
    "resolve_pipeline_path",
    "resolve_reference",
]
