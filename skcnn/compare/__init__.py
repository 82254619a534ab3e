"""The baseline comparison: every model on the same data and folds, one table.

Each model gets a small grid search on the same stratified CV folds of the
training split, is refitted on the whole training split, and is scored on
the held-out validation split AND on an external test set: for digits,
printed digits (another population); otherwise a folder, or a shifted copy
of the validation split, labelled as such. The gap between the two F1
columns is what the table is for.
"""

from .._compare_names import GROUPS, MODEL_NAMES
from .data import (
    describe_data,
    describe_external,
    load_comparison_data,
    load_run_data,
)
from .report import COLUMNS
from .run import ComparisonResult, run_comparison
from .stats import PairedBootstrap
from .zoo import default_models, resolve_models

__all__ = [
    "COLUMNS",
    "ComparisonResult",
    "GROUPS",
    "MODEL_NAMES",
    "PairedBootstrap",
    "default_models",
    "describe_data",
    "describe_external",
    "load_comparison_data",
    "load_run_data",
    "resolve_models",
    "run_comparison",
]
