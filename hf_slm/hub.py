"""Push and pull pipeline variants and single components to and from the Hugging Face Hub.

Everything goes through the real ``huggingface_hub`` client, so ``HF_ENDPOINT`` (a mirror, a private Hub, or the
loopback server of ``tests/hub_server.py``) and ``HF_TOKEN`` apply. A push uploads a folder as one commit and mirrors
it: remote files that the folder no longer has are deleted in the same commit, so that a pull gives back exactly the
folder that was pushed. Weights must be safetensors: a folder with pickled weights is refused before any upload.

>>> from hf_slm.hub import pull, push
>>> push("my_variant", "me/slm-tiny", revision="v1", private=True)  # doctest: +SKIP
>>> pull("me/slm-tiny", revision="v1", local_dir="slm-tiny-v1")  # doctest: +SKIP
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .pipelines.pipeline_utils import (
    INDEX_FILE,
    PipelineLoadError,
    normalise_spec,
    embedded_pipeline_path,
    is_local_reference,
    read_index,
    upload_mirrored,
)
from .pipelines.remote_code import write_remote_code

#: Pickle-based weight formats: loading them runs code, so hf_slm never publishes them.
PICKLED_WEIGHT_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
#: Files that make a folder a loadable component (model, feature extractor, tokenizer, processor, PEFT adapter).
COMPONENT_MARKERS = (
    "config.json",
    "preprocessor_config.json",
    "tokenizer_config.json",
    "processor_config.json",
    "adapter_config.json",
)


def check_folder(folder: str | os.PathLike) -> str:
    """Validate a folder before pushing it; returns ``"pipeline"`` or ``"component"``.

    Raises ``ValueError`` naming the problem: not a folder, pickled weights, an index that lists a component whose
    subfolder is missing, or a folder that is neither a variant nor a component.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder")
    files = [p for p in folder.rglob("*") if p.is_file() and ".cache" not in p.relative_to(folder).parts]
    pickled = sorted(str(p.relative_to(folder)) for p in files if p.suffix in PICKLED_WEIGHT_SUFFIXES)
    if pickled:
        raise ValueError(f"{folder} holds pickled weights {pickled}; hf_slm publishes safetensors only")
    if (folder / INDEX_FILE).exists():
        index = read_index(folder)
        for name, raw in index.items():
            spec = None if name.startswith("_") else normalise_spec(name, raw)
            if spec is not None and not spec.get("repo") and not (folder / name).is_dir():
                raise PipelineLoadError(f"{folder / INDEX_FILE} lists {name!r} but {folder / name} is missing")
        return "pipeline"
    if any((folder / marker).is_file() for marker in COMPONENT_MARKERS):
        return "component"
    raise ValueError(f"{folder} is neither a pipeline variant ({INDEX_FILE}) nor a component ({COMPONENT_MARKERS})")


def push_folder(
    folder: str | os.PathLike,
    repo_id: str,
    revision: str | None = None,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str | None = None,
    create_pr: bool = False,
):
    """Upload ``folder`` as one commit on ``revision`` (created from ``main`` when missing); returns a ``CommitInfo``.

    ``private`` applies when the repo is created; an existing repo keeps its visibility (as in transformers).
    """
    kind = check_folder(folder)
    with tempfile.TemporaryDirectory() as tmp:  # the folder plus the model code it needs for trust_remote_code
        staged = Path(tmp) / "upload"
        shutil.copytree(folder, staged, ignore=shutil.ignore_patterns(".cache"))
        write_remote_code(staged)
        message = commit_message or f"Upload hf_slm {kind} with hf_slm.hub.push"
        return upload_mirrored(staged, repo_id, revision, private, token, message, create_pr)


def push(
    path_or_object,
    repo_id: str,
    revision: str | None = None,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str | None = None,
    create_pr: bool = False,
):
    """Push a variant or component folder, a pipeline, or a single component (anything with ``save_pretrained``).

    A pipeline goes through its own ``push_to_hub``; a component is saved (safetensors) into a temporary folder
    first. Returns the ``CommitInfo`` of the upload (``.oid`` is the new commit id).
    """
    from .pipelines.pipeline_utils import PipelineMixin

    if isinstance(path_or_object, (str, os.PathLike)):
        return push_folder(path_or_object, repo_id, revision, private, token, commit_message, create_pr)
    if isinstance(path_or_object, PipelineMixin):
        kwargs = {"commit_message": commit_message} if commit_message else {}
        return path_or_object.push_to_hub(
            repo_id, revision=revision, private=private, token=token, create_pr=create_pr, **kwargs
        )
    if not hasattr(path_or_object, "save_pretrained"):
        raise TypeError(f"cannot push a {type(path_or_object).__name__}: give a folder, a pipeline or a component")
    with tempfile.TemporaryDirectory() as tmp:
        path_or_object.save_pretrained(tmp)  # transformers 5 writes safetensors; check_folder refuses anything else
        return push_folder(tmp, repo_id, revision, private, token, commit_message, create_pr)


def pull(
    repo_id: str,
    revision: str | None = None,
    local_dir: str | os.PathLike | None = None,
    token: str | None = None,
    include_shared: bool = True,
) -> Path:
    """Download a variant or component at ``revision`` (branch, tag or commit id); returns its local folder.

    Without ``local_dir`` the files stay in the Hugging Face cache. With ``include_shared``, components that the index
    borrows from other repos (``{"repo": ..., "subfolder": ...}``) are fetched into the cache too, so that the variant
    then loads with ``local_files_only=True``.
    """
    from huggingface_hub import snapshot_download

    path = Path(snapshot_download(repo_id, revision=revision, local_dir=local_dir, token=token))
    if include_shared and (path / INDEX_FILE).exists():
        for name, spec in read_index(path).items():
            if not isinstance(spec, dict) or not spec.get("repo") or embedded_pipeline_path(spec["repo"]):
                continue  # not shared, or shared from a variant embedded in the package (no download)
            if not (is_local_reference(spec["repo"]) or Path(spec["repo"]).is_dir()):
                # the same revision rule as PipelineMixin.from_pretrained: pinned, else this revision for this very
                # repo, else the other repo's default branch
                shared_revision = spec.get("revision") or (revision if spec["repo"] == repo_id else None)
                subfolder = spec.get("subfolder", name)
                snapshot_download(
                    spec["repo"], revision=shared_revision, allow_patterns=[f"{subfolder}/*"], token=token
                )
    return path


__all__ = ["PICKLED_WEIGHT_SUFFIXES", "check_folder", "pull", "push", "push_folder"]
