"""
The baseline comparison
=======================

Every model on the same folds, scored on a validation split and on an
external test set (for digits: printed digits, another population). This
is ``skcnn compare --quick`` from Python (five of its rows); the full run is
``skcnn compare``.
"""

from skcnn.compare import run_comparison

result = run_comparison(
    "digits",
    quick=True,
    models=["pixels+rf", "hog+svm", "pca+svm", "cnn", "cnn+aug"],
    out="compare_example",
)
print(result.to_markdown())
print(f"wall time {result.wall_time_s:.0f}s; figures in compare_example/")
