"""Deprecated alias, removed in 0.3: the measured spoken tasks of an instruct variant live in
`hf_slm.evaluation.instruct_tasks` (evaluation has one home)."""

from ..evaluation.instruct_tasks import *  # noqa: F401,F403
from ..evaluation.instruct_tasks import __all__  # noqa: F401
