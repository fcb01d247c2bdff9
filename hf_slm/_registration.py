"""Registration with the transformers Auto classes, deferred to the first Auto-class lookup.

`import hf_slm` must stay as cheap as `import transformers` (which imports no torch), so it cannot import the model
classes (`hf_slm.models`, which needs torch). Instead, whenever one of transformers' Auto modules is imported, the
registries of its Auto classes are made to import `hf_slm.models` on their first read; `hf_slm.models` registers
every family when it is imported (`hf_slm.models.registration`). transformers has no public hook for lazy
registration, so this wraps the registries' `_extra_content` dict (the store that `AutoConfig.register` & co. write):
`make test-latest` and tests/test_registration.py catch a change of that attribute.
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys

#: transformers' Auto modules -> the registries in them that hf_slm registers into
AUTO_REGISTRIES = {
    "transformers.models.auto.configuration_auto": ("CONFIG_MAPPING",),
    "transformers.models.auto.modeling_auto": (
        "MODEL_MAPPING",
        "MODEL_FOR_CAUSAL_LM_MAPPING",
        "MODEL_FOR_MULTIMODAL_LM_MAPPING",
        "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING",
    ),
    "transformers.models.auto.feature_extraction_auto": ("FEATURE_EXTRACTOR_MAPPING",),
    "transformers.models.auto.processing_auto": ("PROCESSOR_MAPPING",),
}
_wrapped: list = []  # registries whose store imports hf_slm.models on first read
_triggered = False


def _register_now() -> None:
    global _triggered
    if _triggered:
        return
    _triggered = True
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, _AutoModuleFinder)]
    importlib.import_module("hf_slm.models")  # registers into the wrapped stores (writes do not trigger)
    for registry in _wrapped:  # then plain dicts again, with what was registered
        registry._extra_content = dict(registry._extra_content)
    _wrapped.clear()


class _RegisterOnFirstRead(dict):
    """A registry store that registers hf_slm's families before its first read."""

    def _ready(self):
        _register_now()
        return self

    def __contains__(self, key):
        return dict.__contains__(self._ready(), key)

    def __getitem__(self, key):
        return dict.__getitem__(self._ready(), key)

    def __iter__(self):
        return dict.__iter__(self._ready())

    def __len__(self):
        return dict.__len__(self._ready())

    def get(self, key, default=None):
        return dict.get(self._ready(), key, default)

    def keys(self):
        return dict.keys(self._ready())

    def values(self):
        return dict.values(self._ready())

    def items(self):
        return dict.items(self._ready())


def _wrap_registries(module) -> None:
    if _triggered:
        return
    for name in AUTO_REGISTRIES[module.__name__]:
        registry = getattr(module, name)
        store = registry._extra_content
        if not isinstance(store, _RegisterOnFirstRead):
            registry._extra_content = _RegisterOnFirstRead(store)
            _wrapped.append(registry)


class _AutoModuleFinder(importlib.abc.MetaPathFinder):
    """Wraps the registries of an Auto module right after transformers imports it (a post-import hook)."""

    def find_spec(self, fullname, path, target=None):
        if fullname not in AUTO_REGISTRIES:
            return None
        for finder in sys.meta_path:
            if finder is self:
                continue
            spec = finder.find_spec(fullname, path, target) if hasattr(finder, "find_spec") else None
            if spec is not None and spec.loader is not None:
                exec_module = spec.loader.exec_module

                def exec_and_wrap(module, _exec=exec_module):
                    _exec(module)
                    _wrap_registries(module)

                spec.loader.exec_module = exec_and_wrap
                return spec
        return None


def install() -> None:
    """Called once by `import hf_slm`: wrap the Auto modules already imported, and hook the others."""
    if "hf_slm.models" in sys.modules:
        return
    for name in AUTO_REGISTRIES:
        if name in sys.modules:
            _wrap_registries(sys.modules[name])
    if not any(isinstance(finder, _AutoModuleFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AutoModuleFinder())
