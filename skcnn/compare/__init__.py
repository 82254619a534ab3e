"""The baseline comparison: every model on the same data and folds, one table.

Each model gets a small grid search on the same stratified CV folds of the
training split, is refitted on the whole training split, and is scored on
the held-out validation split AND on an external test set: for digits,
printed digits (another population); otherwise a folder, or a shifted copy
of the validation split, labelled as such. The gap between the two F1
columns is what the table is for.

The rows are declared in one registry (:mod:`skcnn.compare.registry`); this
package imports torch only when a run needs it (``skcnn --help`` lists the
rows without it).
"""

__all__ = [
    "COLUMNS",
    "ComparisonResult",
    "GROUPS",
    "MODEL_NAMES",
    "PairedBootstrap",
    "Row",
    "RowSpec",
    "default_models",
    "describe_data",
    "describe_external",
    "load_comparison_data",
    "load_run_data",
    "register_row",
    "resolve_models",
    "run_comparison",
]


def _module(name):
    # Import statements, not import by name: the import graph test sees them.
    if name == "COLUMNS":
        from . import report as module
    elif name in ("ComparisonResult", "run_comparison"):
        from . import run as module
    elif name == "PairedBootstrap":
        from . import stats as module
    elif name == "Row":
        from . import row as module
    elif name == "RowSpec":
        from . import registry as module
    elif name in (
        "GROUPS",
        "MODEL_NAMES",
        "default_models",
        "register_row",
        "resolve_models",
    ):
        from . import zoo as module
    else:
        from . import data as module
    return module


def __getattr__(name):
    if name in __all__:
        return getattr(_module(name), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
