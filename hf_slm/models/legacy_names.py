"""Reading checkpoints saved under a family's former `model_type` / class names (hf_slm < 0.2), until hf_slm 0.3.

A family's config lists its former names as data (`legacy_model_types`, `legacy_architectures`); `read_legacy_names`,
called once per config class at registration, makes its `get_config_dict` / `from_dict` rename them with a
FutureWarning. It lives here, not in each family folder, because only an installed hf_slm meets old names: a
checkpoint loaded as remote code carries the code it was saved with.
"""

from __future__ import annotations

import warnings


def upgrade_legacy_names(config_class, config_dict: dict) -> dict:
    """``config_dict`` with a pre-0.2 `model_type` / `architectures` renamed (and its `auto_map`, which names the old
    code files, dropped: `save_pretrained` writes a new one). Unchanged when it has today's names."""
    if config_dict.get("model_type") not in getattr(config_class, "legacy_model_types", ()):
        return config_dict
    warnings.warn(
        f"model_type {config_dict['model_type']!r} was renamed {config_class.model_type!r} in hf_slm 0.2; it is read "
        "until hf_slm 0.3: re-save the checkpoint (save_pretrained) to write the new name",
        FutureWarning,
        stacklevel=4,
    )
    upgraded = {key: value for key, value in config_dict.items() if key != "auto_map"}
    upgraded["model_type"] = config_class.model_type
    if upgraded.get("architectures"):
        renamed = getattr(config_class, "legacy_architectures", {})
        upgraded["architectures"] = [renamed.get(name, name) for name in upgraded["architectures"]]
    return upgraded


def read_legacy_names(config_class) -> None:
    """Make ``config_class`` (and its subclasses) read configs saved under its ``legacy_model_types``."""
    if not getattr(config_class, "legacy_model_types", ()) or "_reads_legacy_names" in vars(config_class):
        return
    get_config_dict = config_class.get_config_dict.__func__
    from_dict = config_class.from_dict.__func__

    def get_config_dict_reading_legacy_names(cls, *args, **kwargs):
        config_dict, kwargs = get_config_dict(cls, *args, **kwargs)
        return upgrade_legacy_names(cls, config_dict), kwargs

    def from_dict_reading_legacy_names(cls, config_dict, **kwargs):
        return from_dict(cls, upgrade_legacy_names(cls, config_dict), **kwargs)

    config_class.get_config_dict = classmethod(get_config_dict_reading_legacy_names)
    config_class.from_dict = classmethod(from_dict_reading_legacy_names)
    config_class._reads_legacy_names = True


def renamed_module_attributes(old_module: str, new_module, renamed: dict[str, str]):
    """``(__getattr__, __dir__)`` for a deprecated alias module ``old_module`` of ``new_module``: every public name of
    the new module, and each old name in ``renamed`` (old -> new), with a FutureWarning naming the new import."""
    new_name = new_module.__name__

    def __getattr__(name: str):
        new = renamed.get(name, name)
        if name.startswith("__") or new not in new_module.__all__:
            raise AttributeError(f"module {old_module!r} has no attribute {name!r}")
        what = f"{name} was renamed {new}" if new != name else f"{old_module} was renamed {new_name}"
        warnings.warn(
            f"{what} in hf_slm 0.2; the old name is removed in hf_slm 0.3: use "
            f"`from {new_name} import {new}` (or `hf_slm.{new}`)",
            FutureWarning,
            stacklevel=2,
        )
        return getattr(new_module, new)

    def __dir__():
        return sorted(set(new_module.__all__) | set(renamed))

    return __getattr__, __dir__
