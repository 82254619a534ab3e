"""What report.md shows beyond the table: calibration, per-class scores and
the images each family's best row gets most confidently wrong."""

import csv

import numpy as np
import pytest
from sklearn.metrics import f1_score

from skcnn.compare import load_comparison_data, run_comparison
from skcnn.compare.stats import calibration_error


def test_calibration_error_by_hand():
    classes = np.array([0, 1])
    # two confident right answers, two 0.6 answers of which one is wrong
    proba = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.4], [0.4, 0.6]])
    y = np.array([0, 1, 0, 0])
    # bins: {1.0: 2 images, all right: gap 0}, {0.6: 2 images, half right: 0.1}
    assert calibration_error(y, proba, classes) == pytest.approx(0.5 * 0.1)
    assert calibration_error(np.array([0, 1]), np.eye(2), classes) == 0.0
    # string labels: the columns are the classes' order
    names = np.array(["cat", "dog"])
    got = calibration_error(np.array(["dog"]), np.array([[0.2, 0.8]]), names)
    assert got == pytest.approx(0.2)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    result = run_comparison(
        models=["pca+svm", "pixels+rf", "cnn"],
        quick=True,
        robustness=False,
        budget=None,
        out=out,
        progress=lambda m: None,
    )
    return out, result


def test_ece_columns_for_rows_with_probabilities(quick_run):
    out, result = quick_run
    rows = {r["model"]: r for r in result.rows}
    _, _, _, y_val, _, y_ext = load_comparison_data()
    probs = result.probabilities["cnn"]
    classes = np.unique(y_val)
    assert rows["cnn"]["val_ece"] == pytest.approx(
        calibration_error(y_val, probs[0], classes)
    )
    assert rows["cnn"]["ext_ece"] == pytest.approx(
        calibration_error(y_ext, probs[1][0], classes)
    )
    assert 0 <= rows["ensemble"]["ext_ece"] <= 1
    assert "val_ece" not in rows["pca+svm"]  # an SVM: no probabilities of its own
    header = (out / "results.csv").read_text().splitlines()[0].split(",")
    assert {"val_ece", "ext_ece"} <= set(header)


def test_per_class_scores_in_a_csv_and_the_report(quick_run):
    out, result = quick_run
    with open(out / "per_class.csv") as f:
        table = list(csv.DictReader(f))
    assert set(table[0]) == {
        "model",
        "set",
        "class",
        "precision",
        "recall",
        "f1",
        "support",
    }
    _, _, _, y_val, _, y_ext = load_comparison_data()
    pred = result.predictions["cnn"][1]
    want = f1_score(y_ext, pred, average=None)
    got = [float(r["f1"]) for r in table if r["model"] == "cnn" and r["set"] == "ext"]
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert sum(int(r["support"]) for r in table if r["model"] == "cnn") == len(
        y_val
    ) + len(y_ext)
    report = (out / "report.md").read_text()
    assert (
        "## Per-class F1" in report and "| class | pca+svm | cnn | ensemble |" in report
    )


def test_mistake_figures_per_set(quick_run):
    out, _ = quick_run
    for label in ("val", "ext"):
        assert (out / f"mistakes_{label}.png").stat().st_size > 0
    report = (out / "report.md").read_text()
    assert "## The most confidently wrong images" in report
    assert "![mistakes_ext](mistakes_ext.png)" in report


def test_selective_f1_and_reliability_by_hand():
    from skcnn.compare.stats import reliability, selective_f1

    classes = np.array([0, 1])
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.55, 0.45], [0.6, 0.4]])
    y = np.array([0, 1, 1, 1])  # the two unsure answers are wrong
    assert selective_f1(y, proba, classes, 1.0) == pytest.approx(
        f1_score(y, [0, 1, 0, 0], average="macro")
    )
    assert selective_f1(y, proba, classes, 0.5) == 1.0  # the two confident ones
    points = reliability(y, proba, classes, n_bins=2)  # bins [0, .5), [.5, 1]
    assert points == [(pytest.approx(0.7125), 0.5, 4)]


def test_coverage_table_and_reliability_figure(quick_run):
    out, result = quick_run
    report = (out / "report.md").read_text()
    assert "## Confidence you can act on" in report
    assert (
        "| model | val 100% | val 90% | val 80% | ext 100% | ext 90% | ext 80% |"
        in (report)
    )
    section = report.split("## Confidence you can act on")[1]
    row = next(x for x in section.splitlines() if x.startswith("| cnn | "))
    full = float(row.split("|")[5])  # ext 100%: the table's ext F1
    assert full == pytest.approx(
        {r["model"]: r for r in result.rows}["cnn"]["ext_f1"], abs=5e-4
    )
    assert (out / "calibration.png").stat().st_size > 0
    assert "![reliability diagrams](calibration.png)" in report


def test_the_mistakes_of_a_network_carry_its_saliency(quick_run):
    from skcnn.compare.report import _saliency_maps

    _, result = quick_run
    _, _, X_val, *_ = load_comparison_data()
    maps = _saliency_maps(result.fitted["cnn"], X_val[:3])
    assert maps.shape == (3, 8, 8) and np.isfinite(maps).all() and maps.max() > 0
    assert _saliency_maps(result.fitted["pca+svm"], X_val[:3]) is None
    assert _saliency_maps(None, X_val[:3]) is None  # a row restored by a resume
