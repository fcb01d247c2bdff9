"""The variants embedded in the package: their names, and the folder each name stands for (both ways).

Its own module so that model cards (`model_card`) can ask whether a folder is embedded without importing the loader.
"""

from __future__ import annotations

from pathlib import Path

#: Names of the variants embedded in the package (loaded with no network) -> the ``hf_slm`` constant holding the path.
EMBEDDED_PIPELINES = {
    "default": "DEFAULT_PIPELINE",
    "twist-default": "DEFAULT_TWIST_PIPELINE",
    "default-twist": "DEFAULT_TWIST_PIPELINE",
    "instruct-default": "DEFAULT_INSTRUCT_PIPELINE",
    "speech-llm-default": "DEFAULT_SPEECH_LLM_PIPELINE",
    "codec-default": "DEFAULT_CODEC_PIPELINE",
    "tts-default": "DEFAULT_TTS_PIPELINE",
}


def embedded_pipeline_path(name) -> str | None:
    """The local folder of an embedded variant name (``"default"``, ``"twist-default"``), else None.

    Index entries use these names to reference an embedded variant's components, which then resolve wherever the
    package is installed.
    """
    constant = EMBEDDED_PIPELINES.get(str(name))
    if constant is None:
        return None
    import hf_slm

    return getattr(hf_slm, constant)


def embedded_pipeline_name(folder) -> str | None:
    """The embedded variant name (``"default"``, ...) whose folder ``folder`` is, else None (the inverse of
    `embedded_pipeline_path`; its first name where two share a folder)."""
    if folder is None:
        return None
    folder = Path(folder).expanduser().resolve()
    for name in EMBEDDED_PIPELINES:
        if Path(embedded_pipeline_path(name)).resolve() == folder:
            return name
    return None


__all__ = ["EMBEDDED_PIPELINES", "embedded_pipeline_name", "embedded_pipeline_path"]
