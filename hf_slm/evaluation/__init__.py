"""Evaluation of speech language models: `evaluate` metric modules and benchmark builders.

- `metrics/`: self-contained `evaluate` modules (`load_metric(name)` or `evaluate.load(path)`, offline).
- `pairs`: spoken minimal pairs (sWUGGY / sBLIMP style): build, read, score with a pipeline's LM.
"""

from .metrics import METRICS, load_metric, metric_path
from .pairs import (
    PHENOMENA,
    build_lexical_pairs,
    build_syntactic_pairs,
    format_pair_table,
    read_pairs,
    score_pairs,
    write_pairs,
)

__all__ = [
    "METRICS",
    "PHENOMENA",
    "build_lexical_pairs",
    "build_syntactic_pairs",
    "format_pair_table",
    "load_metric",
    "metric_path",
    "read_pairs",
    "score_pairs",
    "write_pairs",
]
