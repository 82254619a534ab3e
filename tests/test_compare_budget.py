"""The comparison at a user's scale: the time budget and its planner, .npz data,
several external sets, the ensemble row, the report's rebuild code, --resume."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from skcnn.cli import main
from skcnn.compare import run_comparison
from skcnn.compare.plan import Cost, calibrate, plan_rows


def _quiet(msg):
    pass


def test_a_slow_row_is_not_run_with_its_reason_and_a_tight_budget_cuts_epochs():
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import SVC

    from skcnn import CNNClassifier
    from skcnn.baselines import ImageFlattener

    cheap = make_pipeline(ImageFlattener(), SVC())
    net = CNNClassifier(max_epochs=30)
    fast = Cost(m=100, const=0.0, fixed=0.0, per_epoch=0.1, predict=0.0)
    net_cost = Cost(m=100, const=0.1, fixed=0.0, per_epoch=0.2, predict=0.0)
    slow = Cost(m=100, const=500.0, fixed=0.0, per_epoch=1.0, predict=0.0)
    rows = {
        "svm": (cheap, {"svc__C": [1.0, 10.0]}, fast),
        "cnn": (net, {"dropout": [0.25, 0.5]}, net_cost),
        "slow": (cheap, {}, slow),
    }
    kw = dict(cv=3, n_train=100, n_predict=100, robustness=[0])
    roomy = plan_rows(rows, 10_000, **kw)
    assert all(p.run and p.note == "full" for p in roomy.rows.values())
    assert roomy.rows["cnn"].epochs == 30
    plan = plan_rows(rows, 60, **kw)
    assert not plan.rows["slow"].run
    assert "needs ~50" in plan.rows["slow"].note  # its cheapest level: 500 s+
    assert plan.rows["svm"].run and plan.rows["cnn"].run
    assert plan.rows["cnn"].epochs == 30  # room enough: the searches keep going
    tight = plan_rows(rows, 6, **kw)
    assert tight.rows["cnn"].run and tight.rows["cnn"].grid is None
    assert tight.rows["cnn"].epochs < 30
    assert tight.seconds <= 6
    # the searches are cut before any epoch is
    middle = plan_rows(rows, 9, **kw)
    assert middle.rows["cnn"].epochs == 30 and middle.rows["cnn"].grid is None
    # a fit without a search takes the grid's first candidate
    assert middle.rows["cnn"].params == {"dropout": 0.25}
    assert plan_rows(rows, None, **kw).rows["slow"].run  # no budget: everything


def test_calibration_measures_the_row_on_the_data():
    from skcnn import CNNClassifier
    from skcnn.datasets import load_digits_images

    X, y = load_digits_images()
    small = calibrate(CNNClassifier(max_epochs=3, random_state=0), X[:300], y[:300])
    assert small.m == 256 and small.per_epoch > 0 and small.predict > 0
    # a fit of more epochs on more images is estimated to cost more
    assert small.fit(1000, 30) > small.fit(1000, 3) > small.fit(100, 3)


def _npz(path, X, y):
    np.savez(path, X=X, y=y)
    return str(path)


def test_npz_data_two_external_sets_ensemble_and_report(tmp_path):
    from skcnn.datasets import load_digits_external, load_digits_images

    X, y = load_digits_images()
    data = _npz(tmp_path / "digits.npz", X, y)
    X_ext, y_ext = load_digits_external()
    # float pixels in [0, 1] are read as the estimators read them
    ext = _npz(tmp_path / "printed.npz", X_ext / 255.0, y_ext)
    out = tmp_path / "out"
    result = run_comparison(
        data,
        external=[ext, "shifted"],
        models=["pixels+rf", "cnn"],
        quick=True,
        robustness=False,
        out=out,
        budget=None,  # every row runs, whatever the machine's load
        progress=_quiet,
    )
    assert [e["label"] for e in result.externals] == ["ext", "ext2"]
    assert [e["name"] for e in result.externals] == [
        "printed.npz",
        "shifted validation",
    ]
    ok = {r["model"]: r for r in result.rows}
    assert set(ok) == {"pixels+rf", "cnn", "ensemble"}
    for r in ok.values():
        assert r["worst_ext_f1"] == min(r["ext_f1"], r["ext2_f1"])
        assert 0 <= r["ext2_f1_ci"][0] <= r["ext2_f1"] <= r["ext2_f1_ci"][1] <= 1
    # members of two families, chosen on validation; the vote is the weighted
    # mean of the members' probabilities
    members, weights = result.ensemble["members"], result.ensemble["weights"]
    assert sorted(members) == ["cnn", "pixels+rf"] and sum(weights) == pytest.approx(1)
    p = sum(w * result.probabilities[m][0] for m, w in zip(members, weights))
    np.testing.assert_array_equal(
        result.predictions["ensemble"][0], np.unique(y)[p.argmax(1)]
    )
    report = (out / "report.md").read_text()
    assert "Best on the external set printed.npz (ext)" in report
    assert "Best on the external set shifted validation (ext2)" in report
    assert "Most robust across the 2 external sets" in report
    assert "chance F1 0.100" in report and "no time budget" in report
    assert "## Plan" in report and "## Rebuild a model" in report
    assert str(tmp_path) not in report  # folder and file names, never the path
    header = (out / "results.csv").read_text().splitlines()[0].split(",")
    assert {"ext2_f1", "ext2_f1_ci", "worst_ext_f1", "notes"} <= set(header)


def test_rebuild_code_rebuilds_the_row(tmp_path):
    from skcnn.compare.report import rebuild_code

    result = run_comparison(
        models=["pca+svm"], quick=True, robustness=False, budget=None, progress=_quiet
    )
    fitted = result.fitted["pca+svm"]
    code = rebuild_code(fitted)
    assert "from sklearn.decomposition import PCA" in code
    from skcnn.compare import load_comparison_data

    X_train, y_train, X_val, *_ = load_comparison_data()
    scope = {"X_train": X_train, "y_train": y_train}
    exec(code, scope)  # noqa: S102 - our own generated code
    np.testing.assert_array_equal(scope["model"].predict(X_val), fitted.predict(X_val))
    # report.md says how to get the run's split: that code, then the row's
    report = tmp_path / "out"
    run_comparison(
        models=["pca+svm"],
        quick=True,
        robustness=False,
        budget=None,
        out=report,
        progress=_quiet,
    )
    text = (report / "report.md").read_text()
    blocks = text.split("## Rebuild a model")[1].split("```python\n")[1:]
    data_code, row_code = (b.split("```")[0] for b in blocks[:2])
    assert "load_run_data(" in data_code and "random_state=0" in data_code
    scope = {}
    exec(data_code + row_code, scope)  # noqa: S102 - the report's code
    np.testing.assert_array_equal(scope["model"].predict(X_val), fitted.predict(X_val))
    assert len(scope["y_ext"]) == 500  # the printed digits


def test_notes_say_one_class_and_chance():
    from skcnn.compare.data import chance_f1
    from skcnn.compare.row import Sets

    class Set:
        label, name = "ext", "e"

    y = np.repeat([0, 1, 2], 20)
    s = Set()
    s.y = y
    sets = Sets.of(y, [s])
    row = sets.row("m", [y, np.zeros_like(y)])
    assert row["notes"] == "ext: predicts one class"
    assert row["ext_f1"] == pytest.approx(0.5 / 3)  # F1 0.5 on one class of 3
    assert row.scores["ext"].f1 == row["ext_f1"]  # the mapping is the flat row
    assert chance_f1(y) == pytest.approx(1 / 3)
    rng = np.random.default_rng(0)
    guess = rng.permutation(y)  # random guesses in the class proportions
    assert "ext: not above chance" in sets.row("m", [y, guess])["notes"]


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--budget", "-5"], "--budget takes seconds (a positive number)"),
        (["--budget", "soon"], "--budget takes seconds"),
        (["--resume", "/nonexistent/run"], "Nothing to resume"),
    ],
)
def test_bad_budget_and_resume_fail_clearly(argv, match, capsys):
    assert main(["compare", "--models", "pca+svm", *argv]) == 2
    assert match in capsys.readouterr().err


def test_npz_errors_are_clear(tmp_path):
    from skcnn.compare.data import load_npz

    np.savez(tmp_path / "a.npz", images=np.zeros((4, 8, 8)))
    with pytest.raises(ValueError, match=r"expected X \(images\) and y"):
        load_npz(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", X=np.full((4, 8, 8), 7.5), y=np.arange(4))
    with pytest.raises(ValueError, match=r"floats in \[0, 1\]"):
        load_npz(tmp_path / "b.npz")
    np.savez(
        tmp_path / "c.npz", X=np.zeros((4, 8, 8), np.uint8), y=np.array([1, 2], object)
    )
    with pytest.raises(ValueError, match="not read"):
        load_npz(tmp_path / "c.npz")


def test_resume_after_a_kill_gives_one_table_and_one_verdict(tmp_path):
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "skcnn",
        "compare",
        "--quick",
        "--no-robustness",
        "--models",
        "pixels+rf,hog+svm,pca+svm,cnn",
        "--budget",
        "none",
        "--out",
        str(out),
    ]
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    state = out / "state.json"
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if state.exists() and len(json.loads(state.read_text())["rows"]) >= 1:
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the run finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    done = [r["model"] for r in json.loads(state.read_text())["rows"]]
    assert 1 <= len(done) < 4
    report = (out / "report.md").read_text()  # a killed run leaves its report
    assert "the run stopped or is still running" in report
    assert main(["compare", "--resume", str(out)]) == 0
    rows = (out / "results.csv").read_text().splitlines()[1:]
    models = [r.split(",")[0] for r in rows]
    assert sorted(models) == sorted(
        ["pixels+rf", "hog+svm", "pca+svm", "cnn", "ensemble"]
    )
    report = (out / "report.md").read_text()
    assert "the run stopped" not in report
    assert report.count("## Verdict") == 1
    # every fitted row has its rebuild code, those of the stopped run too
    for name in ["pixels+rf", "hog+svm", "pca+svm", "cnn", "ensemble"]:
        assert f"### {name}\n" in report, name
    # a resumed run with other arguments is refused
    with pytest.raises(ValueError, match="started with other arguments"):
        run_comparison(
            models=["cnn"], quick=True, out=out, resume=True, progress=_quiet
        )


def test_to_onnx_on_a_pipeline_says_which_step_to_export():
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from skcnn.baselines import ImageFlattener
    from skcnn.export import to_onnx

    with pytest.raises(TypeError, match="has none"):
        to_onnx(make_pipeline(ImageFlattener(), StandardScaler()), "x.onnx")


def test_learning_curve_marks_the_weights_kept():
    pytest.importorskip("matplotlib")
    from skcnn import CNNClassifier
    from skcnn.datasets import load_digits_images
    from skcnn.inspection import plot_learning_curves

    X, y = load_digits_images()
    clf = CNNClassifier(
        conv_filters=(4,),
        dense_units=(),
        max_epochs=3,
        early_stopping=False,
        random_state=0,
    ).fit(X[:200], y[:200])
    fig = plot_learning_curves(clf)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "weights kept: last epoch (3)" in labels


def test_the_cnn_rows_deepen_with_the_image_size():
    """One conv block per halving down to 8 px (at least CNNClassifier's two):
    the digits rows are the default network; 64 px images get a third block,
    so the dense layer sees 8x8x128 instead of 16x16x64 values."""
    from skcnn.compare.zoo import cnn_filters, default_models

    assert cnn_filters((8, 8)) == cnn_filters((32, 32, 3)) == (32, 64)
    assert cnn_filters((64, 64)) == (32, 64, 128)
    assert cnn_filters((128, 96, 3)) == (32, 64, 128, 128)
    assert cnn_filters((1024, 1024)) == (32, 64, 128, 128, 128)
    assert cnn_filters((16, 16, 16, 1), volumes=True) == (32, 64)
    digits = default_models(image_shape=(8, 8), device="cpu")
    assert digits["cnn"][0].conv_filters == (32, 64)
    big = default_models(image_shape=(64, 64, 3), device="cpu")
    for name in ("cnn", "cnn+aug", "cnn+noise"):
        assert big[name][0].conv_filters == (32, 64, 128)


def test_a_feature_row_extracts_once_per_extractor_setting(monkeypatch):
    """The search of a pretrained-features row gives GridSearchCV's result
    (same candidates, folds, scores, best) with the training images
    extracted once per extractor setting instead of once per fit."""
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from skcnn import PretrainedFeatureExtractor
    from skcnn.compare.fit import _feature_search
    from skcnn.compare.registry import Built, RowSpec
    from skcnn.datasets import load_digits_images

    torch.manual_seed(0)
    nn = torch.nn
    net = nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU()),
        nn.Sequential(nn.Conv2d(6, 8, 3, stride=2, padding=1), nn.ReLU()),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 5),
    )
    X, y = load_digits_images()
    X, y = X[:240], y[:240]
    pipe = Pipeline(
        [
            (
                "features",
                PretrainedFeatureExtractor(
                    net, weights=None, layer=-1, pooling=None, input_size=None
                ),
            ),
            ("scale", StandardScaler()),
            ("logreg", LogisticRegression(max_iter=300)),
        ]
    )
    built = Built(RowSpec("mine", group="transfer", build=pipe), pipe, None)
    assert built.feature_step == "features" and not built.network
    grid = {"features__layer": [-1, -2], "logreg__C": [0.1, 1.0]}
    folds = StratifiedKFold(3, shuffle=True, random_state=0)
    seen = []
    transform = PretrainedFeatureExtractor.transform
    monkeypatch.setattr(
        PretrainedFeatureExtractor,
        "transform",
        lambda self, X: seen.append(len(X)) or transform(self, X),
    )
    fast = _feature_search(pipe, grid, "f1_macro", folds, 1, X, y, "features")
    assert sum(seen) == 2 * len(X)
    seen.clear()
    slow = GridSearchCV(pipe, grid, scoring="f1_macro", cv=folds).fit(X, y)
    assert sum(seen) > 6 * len(X)
    assert fast.best_params_ == slow.best_params_
    assert fast.cv_results_["params"] == list(slow.cv_results_["params"])
    np.testing.assert_allclose(
        fast.cv_results_["mean_test_score"],
        slow.cv_results_["mean_test_score"],
        atol=0.01,
    )
    np.testing.assert_allclose(
        fast.best_estimator_.predict_proba(X[:20]),
        slow.best_estimator_.predict_proba(X[:20]),
        atol=1e-3,
    )


def test_npz_files_that_cannot_be_data_fail_before_any_allocation(tmp_path, capsys):
    import io
    import zipfile

    from skcnn.compare.data import load_npz

    # a header that claims (10**9, 64, 64) images in a 300-byte member
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        head, {"descr": "|u1", "fortran_order": False, "shape": (10**9, 64, 64)}
    )
    labels = io.BytesIO()
    np.save(labels, np.arange(10))
    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as z:
        z.writestr("X.npy", head.getvalue() + bytes(100))
        z.writestr("y.npy", labels.getvalue())
    with pytest.raises(ValueError, match=r"claims shape \(1000000000, 64, 64\)"):
        load_npz(tmp_path / "huge.npz")
    np.savez(tmp_path / "nan.npz", X=np.full((10, 8, 8), np.nan), y=np.arange(10))
    with pytest.raises(ValueError, match="NaN or infinite pixels in 10 of its 10"):
        load_npz(tmp_path / "nan.npz")
    # 2 images per class, 10 classes: too few for a split that holds every class
    X = np.random.RandomState(0).randint(0, 255, (20, 8, 8)).astype(np.uint8)
    np.savez(tmp_path / "few.npz", X=X, y=np.repeat(np.arange(10), 2))
    assert main(["compare", "--data", str(tmp_path / "few.npz")]) == 2
    err = capsys.readouterr().err
    assert "20 images in 10 classes: too few" in err and "at least 40" in err


def test_pace_is_per_family_and_goes_both_ways():
    """Rows that ran faster than planned give their time back to their
    family; a family with no finished row takes another's pace only when it
    is slow."""
    from skcnn.compare.plan import Pace

    pace = Pace()
    assert pace.of("networks") == pace.of("classic") == 1.0
    pace.record("classic", 10.0, 4.0)  # classic rows ran 2.5x faster than planned
    assert pace.of("classic") == 0.75  # the floor
    assert pace.of("transfer") == 1.0  # says nothing of a pretrained network
    pace.record("classic", 10.0, 60.0)  # now 64 s for 20 planned
    assert pace.of("classic") == pytest.approx(3.2)
    assert pace.of("transfer") == pytest.approx(3.2)  # slow: a busy machine
    pace.record("transfer", 10.0, 5.0)
    assert pace.of("transfer") == 0.75


def test_the_last_row_of_a_family_is_dropped_last():
    """A tight budget drops a third CNN before the only transfer row."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    from skcnn import CNNClassifier
    from skcnn.compare.registry import Built, RowSpec

    def row(name, group, est, per_epoch):
        cost = Cost(m=100, const=0.0, fixed=0.0, per_epoch=per_epoch, predict=0.0)
        return (Built(RowSpec(name, group, est), est, None), None, cost)

    probe = make_pipeline(FunctionTransformer(), FunctionTransformer())
    rows = {
        "cnn": row("cnn", "networks", CNNClassifier(max_epochs=2), 1.0),
        "cnn+aug": row("cnn+aug", "networks", CNNClassifier(max_epochs=2), 1.0),
        "transfer": row("transfer", "transfer", probe, 9.0),
    }
    plan = plan_rows(rows, 14, cv=3, n_train=100, n_predict=0, robustness=[0])
    assert plan.rows["transfer"].run
    assert sum(plan.rows[n].run for n in ("cnn", "cnn+aug")) == 1


def test_cheap_rows_run_first_and_a_row_that_does_not_fit_gets_a_second_try():
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import SVC

    from skcnn import CNNClassifier
    from skcnn.baselines import ImageFlattener
    from skcnn.compare.plan import Planner
    from skcnn.compare.registry import Built, RowSpec

    def built(name, est, grid):
        return Built(RowSpec(name, "classic", est), est, grid)

    svm = make_pipeline(ImageFlattener(), SVC())
    rows = {
        "net": built("net", CNNClassifier(max_epochs=30), None),
        "svm": built("svm", svm, {"svc__C": [1.0, 10.0]}),
    }
    costs = {
        "net": Cost(m=100, const=0.0, fixed=0.0, per_epoch=1.0, predict=0.0),
        "svm": Cost(m=100, const=0.0, fixed=0.0, per_epoch=0.1, predict=0.0),
    }

    class Clock:
        left, now = {}, 0.0

        def elapsed(self):
            return self.now

    clock = Clock()
    planner = Planner(rows, costs, 3, 100, 100, 60.0, clock)
    plan = planner.first(["net", "svm"], [0], None)
    assert list(plan.rows) == ["svm", "net"]  # the table's order is another
    assert plan.rows["net"].run and plan.rows["net"].epochs == 30
    # the time is gone when its turn comes: not run now, a second try later
    clock.now = 55.0
    from skcnn.compare.plan import Pace

    late = planner.now("net", [], Pace(), 0, None)
    assert not late.run and planner.defer("net") and not planner.defer("net")
    # the last row to run gets the 5% kept for the estimates' error of the
    # rows after it: 18.8 s left, one fit of 15 epochs needs 16 s
    clock.now = 60.0 - 18.8
    last = planner.now("net", [], Pace(), 0, None)
    assert last.run and last.epochs == 15
    assert not planner.now("net", ["svm"], Pace(), 0, None).run  # with a row after it


def test_a_step_that_saves_nothing_does_not_stop_the_cuts():
    """A feature row's 2-fold level costs what its 3-fold level does (one
    extraction serves every fold): the planner still reaches its one fit."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    from skcnn.compare.registry import Built, RowSpec

    est = make_pipeline(FunctionTransformer(), FunctionTransformer())
    spec = RowSpec("probe", "transfer", est, features_first=True)
    built = Built(spec, est, {"functiontransformer-1__validate": [False, True]})
    cost = Cost(m=100, const=0.0, fixed=0.0, per_epoch=5.0, predict=0.0)
    rows = {"probe": (built, built.grid, cost)}
    kw = dict(cv=3, n_train=100, n_predict=0, robustness=[0])
    assert plan_rows(rows, 100, **kw).rows["probe"].grid is not None
    tight = plan_rows(rows, 8, **kw).rows["probe"]
    assert tight.run and tight.grid is None


def test_network_searches_race_their_candidates_by_epochs():
    """A network row with several candidates is searched by epoch halving
    (half the candidates stop at each rung, the race ends when one is
    left); the planner counts the epochs the rungs train, not a full fit
    per candidate."""
    from skcnn import CNNClassifier
    from skcnn.compare.fit import fit_row
    from skcnn.compare.plan import RowPlan, _levels, by_epochs, halving_epochs
    from skcnn.compare.registry import Built, Context, RowSpec
    from skcnn.compare.row import Sets
    from skcnn.compare.zoo import registered
    from skcnn.datasets import load_digits_images

    rows = registered()
    cnn = rows["cnn"].make(Context((8, 8)))
    assert by_epochs(cnn, {"dropout": [0.5, 0.25]})
    assert not by_epochs(cnn, {"dropout": [0.5]})  # one candidate: nothing to race
    assert not by_epochs(cnn, {"max_epochs": [5, 10]})  # the halving sets epochs
    assert not by_epochs(rows["pca+svm"].make(Context((8, 8))), {"svm__C": [1, 10]})
    assert halving_epochs(2, 30) == 30 and halving_epochs(4, 30) == 46
    # the plan of a 2-candidate network search: half a grid's epochs
    cost = Cost(m=100, const=0.0, fixed=0.0, per_epoch=0.01, predict=0.0)
    full = _levels(cnn, {"dropout": [0.5, 0.25]}, 3, cost, 100, 0)[0]
    assert full.seconds - 1.0 == pytest.approx(3 * 30 * 0.01 * 2 / 3 + 30 * 0.01)

    X, y = load_digits_images()
    X, y = X[:300], y[:300]
    est = CNNClassifier(
        conv_filters=(4,), dense_units=(8,), max_epochs=4, random_state=0
    )
    built = Built(RowSpec("tiny", group="networks", build=est), est, None)
    said = []
    sets = Sets.of(y[250:], [], 0)
    fitted = fit_row(
        built,
        RowPlan({"lr": [1e-3, 3e-3]}, 2, None, 0.0),
        (X[:250], y[:250], [X[250:]]),
        sets,
        random_state=0,
        n_jobs=1,
        progress=said.append,
        clock="now",
        tag="tiny",
    )
    assert "raced to 2 of 4 epochs" in said[0] and "fit 4/4" in said[-1]
    assert fitted.row["trained"] == "2 candidate(s) x 2 folds, raced to 2 of 4 epochs"
    assert sum("fold F1" in m for m in said) == 2 * 2  # one rung: 2 x 2
    assert fitted.row["cv_f1"] is not None and fitted.model.max_epochs == 4
    # the winner is refit as a grid search refits it: the estimator's own
    # training (its validation split), not the halving's continued fits
    params = fitted.model.get_params()
    assert params["validation_fraction"] == 0.1 and not params["warm_start"]


def test_the_hog_rows_compute_hog_once_and_search_as_a_grid_search_does(monkeypatch):
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    from skcnn.baselines import HOGTransformer
    from skcnn.compare.fit import _feature_search
    from skcnn.compare.registry import Context
    from skcnn.compare.zoo import registered
    from skcnn.datasets import load_digits_images

    built = registered()["hog+pca+svm"].make(Context((8, 8)))
    assert built.feature_step == "hog"
    X, y = load_digits_images()
    X, y = X[:300], y[:300]
    folds = StratifiedKFold(3, shuffle=True, random_state=0)
    seen = []
    transform = HOGTransformer.transform
    monkeypatch.setattr(
        HOGTransformer,
        "transform",
        lambda self, X: seen.append(len(X)) or transform(self, X),
    )
    args = (built.estimator, built.grid, "f1_macro", folds, 1, X, y)
    fast = _feature_search(*args, "hog")
    assert sum(seen) == len(X)  # one HOG pass for 4 candidates x 3 folds + refit
    seen.clear()
    slow = GridSearchCV(built.estimator, built.grid, scoring="f1_macro", cv=folds)
    slow.fit(X, y)
    assert sum(seen) > 12 * len(X) * 2 / 3
    assert fast.best_params_ == slow.best_params_
    np.testing.assert_allclose(
        fast.cv_results_["mean_test_score"], slow.cv_results_["mean_test_score"]
    )
    np.testing.assert_array_equal(
        fast.best_estimator_.predict(X[:50]), slow.best_estimator_.predict(X[:50])
    )
