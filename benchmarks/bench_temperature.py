"""Temperature scaling (``temperature="auto"``): the calibration of the
comparison's network rows before and after, on digits.

Each model is fitted once per seed with ``temperature="auto"`` (the
temperature is fitted on the estimator's internal validation split, 10% of
the training split, after training); its probabilities at temperature 1 are
the same network's without scaling, so every pair is paired. Scored on the
comparison's validation split (held out, not used for the temperature) and on
the bundled printed digits (another population), as ``skcnn compare`` splits
them: expected calibration error (15 bins), log-loss, macro F1 (the same
before and after: a temperature never changes the winning class).

Rows: ``lite0-finetune`` (the comparison's LP-FT row: ``PretrainedClassifier``
defaults on EfficientNet-Lite0, 1 epoch) and ``cnn`` (``CNNClassifier``
defaults).

    python benchmarks/bench_temperature.py --seeds 0 1 2

Results: ``results/bench_temperature.{csv,md}``.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from _common import write_results
from sklearn.metrics import f1_score, log_loss

from skcnn import CNNClassifier, PretrainedClassifier
from skcnn.compare import load_comparison_data
from skcnn.compare.stats import calibration_error


def models(seed):
    return {
        "lite0-finetune": PretrainedClassifier(
            "efficientnet_lite0",
            max_epochs=1,
            temperature="auto",
            random_state=seed,
        ),
        "cnn": CNNClassifier(temperature="auto", random_state=seed),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    X_train, y_train, X_val, y_val, X_ext, y_ext = load_comparison_data()
    rows = []
    for seed in args.seeds:
        for name, est in models(seed).items():
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est.fit(X_train, y_train)
            fit_s = time.perf_counter() - start
            fitted_t = est.temperature_
            for t, label in ((1.0, "none"), (fitted_t, "auto")):
                est.temperature_ = t
                for set_name, X, y in (("val", X_val, y_val), ("ext", X_ext, y_ext)):
                    proba = est.predict_proba(X)
                    pred = est.classes_[proba.argmax(1)]
                    rows.append(
                        {
                            "seed": seed,
                            "model": name,
                            "temperature": label,
                            "T": round(t, 3),
                            "set": set_name,
                            "ece": round(calibration_error(y, proba, est.classes_), 4),
                            "log_loss": round(
                                log_loss(y, proba, labels=est.classes_), 4
                            ),
                            "f1": round(f1_score(y, pred, average="macro"), 4),
                            "fit_s": round(fit_s, 1),
                        }
                    )
                    print(rows[-1], flush=True)
            est.temperature_ = fitted_t
    summary = []
    for name in dict.fromkeys(r["model"] for r in rows):
        for set_name in ("val", "ext"):
            pick = {
                label: [
                    r["ece"]
                    for r in rows
                    if r["model"] == name
                    and r["set"] == set_name
                    and r["temperature"] == label
                ]
                for label in ("none", "auto")
            }
            temps = [
                r["T"]
                for r in rows
                if r["model"] == name
                and r["temperature"] == "auto"
                and r["set"] == "val"
            ]
            summary.append(
                f"- {name}, {set_name}: ECE median {np.median(pick['none']):.4f} -> "
                f"{np.median(pick['auto']):.4f} (per seed {pick['none']} -> "
                f"{pick['auto']}); fitted T {temps}"
            )
    write_results(
        "bench_temperature",
        rows,
        "Digits as skcnn compare splits them (1347 train, 450 validation); ext: the "
        "500 bundled printed digits. The temperature is fitted on the estimator's "
        "internal validation split (10% of train), never on these sets.\n\n"
        + "\n".join(summary),
    )


if __name__ == "__main__":
    main()
