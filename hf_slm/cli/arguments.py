"""argparse types shared by the `hf-slm` commands: numbers within a range, existing paths, comma-separated lists."""

from __future__ import annotations

import argparse
import functools
import importlib
from collections.abc import Sequence
from pathlib import Path


def number(kind, minimum=None, maximum=None, exclusive_minimum=False, what=None):
    """An argparse type: `kind` (int / float) within [minimum, maximum] (``exclusive_minimum``: above minimum)."""
    what = what or ("a positive " if exclusive_minimum and minimum == 0 else "") + kind.__name__

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if kind is float and value != value or value in (float("inf"), float("-inf")):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        low_ok = minimum is None or (value > minimum if exclusive_minimum else value >= minimum)
        if not low_ok or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    parse.__name__ = what  # argparse names the type in its messages
    return parse


positive_int = number(int, 0, exclusive_minimum=True, what="a positive int")
non_negative_int = number(int, 0, what="an int >= 0")
positive_float = number(float, 0.0, exclusive_minimum=True, what="a positive number")
fraction = number(float, 0.0, 1.0, exclusive_minimum=True, what="a number in (0, 1]")
probability = number(float, 0.0, 1.0, what="a number in [0, 1]")


def sampling_rate_type(text: str) -> int:
    """An argparse type: a sampling rate in the range the feature extractor accepts."""
    from ..models.unit_encoder.feature_extraction_unit_encoder import MAX_SAMPLING_RATE, MIN_SAMPLING_RATE

    return number(int, MIN_SAMPLING_RATE, MAX_SAMPLING_RATE,
                  what=f"a sampling rate in [{MIN_SAMPLING_RATE}, {MAX_SAMPLING_RATE}] Hz")(text)  # fmt: skip


def existing_path(text: str) -> Path:
    """An argparse type: a file or folder that exists."""
    path = Path(text).expanduser()
    if not path.exists():
        raise argparse.ArgumentTypeError(f"no such file or folder: {text!r}")
    return path


def existing_folder_or_embedded(text: str) -> Path:
    """An argparse type: a folder that exists, or an embedded variant's name (`default`, `twist-default`, ...)."""
    from ..pipelines.pipeline_utils import embedded_pipeline_path

    embedded = embedded_pipeline_path(text)
    return Path(embedded) if embedded else existing_path(text)


def folder_or_hub_id(text: str) -> str:
    """An argparse type: a local folder, or a Hub repo id (``namespace/name``); an existing file, or a path that
    does not exist, is refused by name instead of reaching the Hub client as a malformed repo id."""
    path = Path(text).expanduser()
    if path.is_file():
        raise argparse.ArgumentTypeError(f"{text!r} is a file: give the checkpoint's folder or a Hub repo id")
    looks_local = text.startswith((".", "/", "~")) or text.count("/") > 1 or "\\" in text
    if not path.is_dir() and looks_local:
        raise argparse.ArgumentTypeError(f"no such folder: {text!r}")
    return text


def existing_file(text: str) -> Path:
    """An argparse type: a file that exists (not a folder)."""
    path = existing_path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"not a file: {text!r}")
    return path


def csv_list(kind):
    """An argparse type: a comma-separated list of `kind` (empty items skipped; no item at all is refused: an empty
    list is never what a flag means, and each command's own default is what leaving the flag out gives)."""

    def parse(text: str):
        try:
            values = [kind(x) for x in text.split(",") if x.strip()]
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {kind.__name__}: {text!r}") from err
        if not values:
            raise argparse.ArgumentTypeError(f"expected at least one comma-separated value, got {text!r}")
        return values

    return parse


class LazyChoices(Sequence):
    """argparse ``choices`` read from ``module.attribute`` only when a sub-command parses or shows them, so that
    building the whole parser (``hf-slm --help``) imports no heavy module. Give the argument a ``metavar``: without
    one, argparse lists the choices in the usage line while it builds the parser."""

    def __init__(self, module: str, attribute: str):
        self.module, self.attribute = module, attribute

    @functools.cached_property
    def values(self) -> list:
        return sorted(getattr(importlib.import_module(self.module), self.attribute))

    def __getitem__(self, index):
        return self.values[index]

    def __len__(self) -> int:
        return len(self.values)

    def __contains__(self, value) -> bool:
        return value in self.values


def json_object(text: str) -> dict:
    """An argparse type: a JSON object (`'{"num_beams": 1}'`)."""
    import json

    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r} ({err.msg})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object ({{...}}), got {text!r}")
    return value


json_object.__name__ = "a JSON object"


def add_pipeline_argument(parser, default: str | None, help: str) -> None:
    """The variant a command runs: ``--pipeline X`` as every command takes it, or positionally (``hf-slm chat X``,
    ``hf-slm info X``) as these commands always did; `merge_pipeline_argument` joins them after parsing."""
    parser.add_argument("pipeline_positional", nargs="?", default=None, metavar="PIPELINE", help=f"{help} (or --pipeline)")
    parser.add_argument("--pipeline", default=None, help=help)
    parser.set_defaults(pipeline_default=default, pipeline_parser=parser)


def merge_pipeline_argument(args) -> None:
    """``args.pipeline`` from the positional or the option (the default when neither); both and different, or
    neither without a default, is an argparse error (status 2) naming them."""
    if not hasattr(args, "pipeline_positional"):
        return
    parser, positional, option = args.pipeline_parser, args.pipeline_positional, args.pipeline
    if positional is not None and option is not None and positional != option:
        parser.error(f"two variants given: {positional!r} and --pipeline {option!r}; give one")
    args.pipeline = option or positional or args.pipeline_default
    if args.pipeline is None:
        parser.error("the following arguments are required: PIPELINE (or --pipeline)")


__all__ = [
    "LazyChoices", "add_pipeline_argument", "csv_list", "existing_file", "existing_folder_or_embedded", "existing_path",
    "folder_or_hub_id", "fraction", "json_object", "merge_pipeline_argument", "non_negative_int", "number",
    "positive_float", "positive_int", "probability", "sampling_rate_type",
]
