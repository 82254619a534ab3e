"""The comparison's DenseNet row with the fused Adam step and with PyTorch's
default step, over seeds (issue 37): its printed-digits F1 went from 0.809
to 0.747 when the fused step came in; is that the step or the seed?

The row as the full digits comparison refits it (``DenseNetClassifier(
max_epochs=20, dropout=0.2)``, one thread) on the comparison's training
split, scored on its validation split and on the bundled printed digits,
for ``--seeds`` seeds with ``optimizer="adam"`` (fused) and with the class
``torch.optim.Adam`` (left as given: foreach).

    python benchmarks/bench_fused_densenet.py [--seeds 3]
"""

from __future__ import annotations

import argparse
import statistics

import torch
from _common import write_results
from sklearn.metrics import f1_score

from skcnn import DenseNetClassifier
from skcnn.compare import load_comparison_data


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    X_train, y_train, X_val, y_val, X_ext, y_ext = load_comparison_data()[:6]
    rows = []
    for seed in range(args.seeds):
        for name, optimizer in (("fused", "adam"), ("foreach", torch.optim.Adam)):
            clf = DenseNetClassifier(
                max_epochs=20,
                dropout=0.2,
                optimizer=optimizer,
                random_state=seed,
                device="cpu",
                num_threads=1,
            ).fit(X_train, y_train)
            row = {
                "seed": seed,
                "step": name,
                "val_f1": round(f1_score(y_val, clf.predict(X_val), average="macro"), 3),
                "ext_f1": round(f1_score(y_ext, clf.predict(X_ext), average="macro"), 3),
            }
            print(row, flush=True)
            rows.append(row)
    notes = []
    for name in ("fused", "foreach"):
        ext = [r["ext_f1"] for r in rows if r["step"] == name]
        notes.append(
            f"{name}: printed-digits F1 mean {statistics.mean(ext):.3f} "
            f"(min {min(ext):.3f}, max {max(ext):.3f})"
        )
    print("; ".join(notes))
    write_results("bench_fused_densenet", rows, "; ".join(notes))


if __name__ == "__main__":
    main()
