"""The comparison's rows: one registry, every table derived from it, a row of
your own in one declaration, and the structure kept small."""

import ast
import inspect
import json
from pathlib import Path

import numpy as np
import pytest

from skcnn.compare import registry, zoo
from skcnn.compare.registry import Context, RowSpec
from skcnn.compare.zoo import registered

ROOT = Path(__file__).resolve().parents[1] / "skcnn" / "compare"


def _ctx(**kw):
    return Context(image_shape=(8, 8), device="cpu", **kw)


def test_every_declared_row_builds_and_its_abilities_are_its_estimator_s():
    """Each built-in row builds, its grid names its estimator's parameters,
    and what it declares (trains epochs, features first, takes volumes,
    gives probabilities) is what its estimator does."""
    from sklearn.base import clone

    specs = registered()
    assert len(specs) == 14
    built_any = 0
    for name, spec in specs.items():
        built = spec.make(_ctx())
        if built.reason is not None:  # weights or packages not here
            assert built.reason.startswith("skipped: "), name
            continue
        built_any += 1
        est = built.estimator
        last = est.steps[-1][1] if hasattr(est, "steps") else est
        assert spec.trains_epochs == ("max_epochs" in last.get_params()), name
        first = est.steps[0][1] if hasattr(est, "steps") else est
        assert spec.features_first == getattr(first, "_learns_nothing", False), name
        assert spec.probabilities == hasattr(est, "predict_proba"), name
        # declared abilities agree with what a row of your own would read
        undeclared = RowSpec(name, group=spec.group, build=est)
        derived = undeclared.make(_ctx())
        assert derived.network == built.network, name
        assert bool(derived.feature_step) == bool(built.feature_step), name
        assert derived.takes_volumes == built.takes_volumes, name
        assert derived.probabilities == built.probabilities, name
        for grid in (built.grid, spec.make(_ctx(quick=True)).grid):
            for key, values in (grid or {}).items():
                clone(est).set_params(**{key: values[0]})  # a real parameter
        if spec.cost_as is not None:
            like = specs[spec.cost_as].make(_ctx()).estimator
            assert type(like) is type(est), name  # the same model, calibrated once
    assert built_any >= 10


def test_derived_tables_agree_with_the_registry():
    specs = registered()
    groups = zoo.GROUPS
    assert zoo.MODEL_NAMES == tuple(specs) == groups["all"]
    for family in registry.FAMILIES:
        assert groups[family] == tuple(n for n, s in specs.items() if s.group == family)
    assert sorted(sum((groups[f] for f in registry.FAMILIES), ())) == sorted(specs)
    assert groups["noise"] == ("pca+svm+noise", "cnn+noise")
    assert zoo.CALIBRATE_AS == {
        "hog+pca+svm": "hog+svm",
        "pca+svm+noise": "pca+svm",
        "cnn+aug": "cnn",
        "cnn+noise": "cnn",
    }
    for like in zoo.CALIBRATE_AS.values():
        assert like in specs and specs[like].cost_as is None
    assert all(s.why for s in specs.values())  # the search-space section's reason


def test_help_lists_the_rows_without_torch():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from skcnn.cli import _parser\n"
        "text = _parser().format_help()\n"
        "from skcnn.compare.zoo import GROUPS\n"
        "assert 'torch' not in sys.modules and 'sklearn' not in sys.modules\n"
        "print(len(GROUPS['all']))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "14"


def test_a_row_of_your_own_runs_in_the_comparison(tmp_path):
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline

    from skcnn.baselines import HOGTransformer
    from skcnn.compare import run_comparison

    knn = RowSpec(
        "hog+knn",
        group="classic",
        build=make_pipeline(HOGTransformer(), KNeighborsClassifier()),
        grid={"kneighborsclassifier__n_neighbors": [3, 7]},
        why="a non-parametric baseline on HOG features",
    )
    result = run_comparison(
        models=["hog+knn", "cnn"],
        extra_rows=[knn],
        quick=True,
        robustness=False,
        budget=None,
        out=tmp_path,
        progress=lambda m: None,
    )
    rows = {r.model: r for r in result.rows}
    assert rows["hog+knn"].ok and rows["hog+knn"]["val_f1"] > 0.9
    assert rows["hog+knn"].best_params["kneighborsclassifier__n_neighbors"] in (3, 7)
    assert "### hog+knn" in (tmp_path / "report.md").read_text()
    assert "hog+knn" not in registered()  # for this run only
    with pytest.raises(ValueError, match="exists already"):
        run_comparison(
            models=["cnn"], extra_rows=[RowSpec("cnn", "classic", knn.build)]
        )
    with pytest.raises(ValueError, match="group must be one of"):
        RowSpec("x", group="deep", build=knn.build)


def test_a_pipeline_ending_in_a_network_is_a_network_row():
    """Abilities are read from the estimator, not guessed from its top level:
    a Pipeline ending in a CNN trains for epochs, and the planner sets them
    on its last step."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    from skcnn import CNNClassifier

    pipe = make_pipeline(FunctionTransformer(), CNNClassifier(max_epochs=12))
    built = RowSpec("mine", group="networks", build=pipe).make(_ctx())
    assert built.network and built.epochs_param == "cnnclassifier__max_epochs"
    assert built.probabilities and built.feature_step is None


def _code_lines(node):
    doc = ast.get_docstring(node)
    return node.end_lineno - node.lineno + 1 - (len(doc.splitlines()) + 2 if doc else 0)


def test_the_comparison_stays_small():
    """run.py orders the work and nothing else: at most 400 lines, and
    run_comparison at most 120 lines of code (its numpydoc docstring aside)."""
    source = (ROOT / "run.py").read_text()
    assert len(source.splitlines()) <= 400
    tree = ast.parse(source)
    run = next(n for n in tree.body if getattr(n, "name", "") == "run_comparison")
    assert _code_lines(run) <= 120
    # one row finisher: every Row with scores is made by Sets.row
    for path in ROOT.glob("*.py"):
        if path.name == "row.py":
            continue
        text = path.read_text()
        assert "SetScore(" not in text, path.name


def test_a_replay_runs_the_same_plan_and_gives_the_same_table(tmp_path):
    from skcnn.compare import run_comparison

    kw = dict(models=["pixels+rf", "cnn"], quick=True, robustness=False)
    first = run_comparison(out=tmp_path / "a", progress=lambda m: None, **kw)
    state = json.loads((tmp_path / "a" / "state.json").read_text())
    assert set(state["plans"]) == {"pixels+rf", "cnn"}
    lines = []
    again = run_comparison(
        out=tmp_path / "b", replay=tmp_path / "a", progress=lines.append, **kw
    )
    assert any(line.startswith("replayed plan") for line in lines)
    assert again.budget is None
    for a, b in zip(first.rows, again.rows):
        assert a.model == b.model and a.trained == b.trained
        assert a["best_params"] == b["best_params"]
        for label in ("val", "ext"):
            assert b[f"{label}_f1"] == pytest.approx(a[f"{label}_f1"], abs=1e-9)
    np.testing.assert_array_equal(
        first.predictions["cnn"][1], again.predictions["cnn"][1]
    )


@pytest.mark.parametrize(
    "record, reason",
    [
        (
            {
                "grid": {"checkpoint_dir": ["/tmp/x"]},
                "folds": 2,
                "epochs": None,
                "params": {},
            },
            "grid",
        ),
        (
            {"grid": None, "folds": 0, "epochs": None, "params": {"dropout": 0.9}},
            "parameters",
        ),
        ({"grid": None, "folds": 0, "epochs": 10_000, "params": {}}, "epochs"),
        (
            {"grid": {"dropout": [0.5]}, "folds": 99, "epochs": None, "params": {}},
            "folds",
        ),
        ({"grid": None}, "damaged"),
    ],
)
def test_a_replayed_plan_sets_only_what_the_row_could_have_run(record, reason):
    from skcnn.compare.plan import checked_plan

    built = registered()["cnn"].make(_ctx())
    assert reason in checked_plan(record, built, cv=3)
    ok = {"grid": None, "folds": 0, "epochs": 15, "params": {"dropout": 0.25}}
    assert checked_plan(ok, built, cv=3).params == {"dropout": 0.25}


def _verdict(preds, set_name="e", finished=True, **fields):
    """The verdict of a result whose rows predicted ``preds`` (model ->
    external predictions; the validation set is 20 images all right), with
    ``fields`` set on the result and rows (``trained``: model -> words)."""
    from skcnn.compare.report import verdict
    from skcnn.compare.result import ComparisonResult
    from skcnn.compare.row import Sets
    from skcnn.compare.stats import ranked

    class Ext:
        label, name = "ext", set_name
        y = np.repeat([0, 1], 10)

    sets = Sets.of(Ext.y, [Ext])
    trained = fields.pop("trained", {})
    rows = [
        sets.row(m, [Ext.y, p], trained=trained.get(m, "")) for m, p in preds.items()
    ]
    rows = ranked(rows, {m: (Ext.y, p) for m, p in preds.items()}, sets)
    result = ComparisonResult(rows, "d", 20, 20, 20, 1.0)
    result.externals = [{"label": "ext", "name": set_name, "chance_f1": 0.5}]
    result.finished = finished
    for key, value in fields.items():
        setattr(result, key, value)
    return rows, verdict(result)


Y = np.repeat([0, 1], 10)


def test_the_rows_of_one_family_train_with_the_budget_they_were_given():
    """The table says what each row got; the verdict says when rows of one
    family got different budgets."""
    _, lines = _verdict(
        {"cnn": Y, "cnn+aug": Y[::-1]},
        families={"cnn": "networks", "cnn+aug": "networks"},
        trained={
            "cnn": "one fit, no CV, 7 epochs",
            "cnn+aug": "2 candidate(s) x 3 folds",
        },
    )
    text = " ".join(lines)
    assert "trained with different budgets" in text and "7 epochs" in text


def test_ties_are_called_ties_and_a_partial_report_says_so():
    rows, lines = _verdict({"a": Y, "b": Y}, finished=False, to_run=["c"])
    assert [r["ext_rank"] for r in rows] == ["tied best", "tied best"]
    text = " ".join(lines)
    assert "a tie between **a**, **b**" in text
    assert "significantly better than every other" not in text
    assert "partial" in text and "(c)" in text


def test_the_verdict_on_the_shifted_set_carries_its_caveat():
    _, lines = _verdict(
        {"cnn+aug": Y, "cnn": Y[::-1]},
        set_name="shifted validation",
        flattered={"cnn+aug": ["rotation", "shift"]},
    )
    line = next(x for x in lines if x.startswith("Best on the external set"))
    assert "not another population" in line and "flattered" in line


def test_the_recommendation_never_looks_at_the_external_sets():
    """The recommended model has the best worst case over validation and the
    selection set; the external set's best is another row, and the verdict
    says the recommendation was not the best there."""
    from skcnn.compare.recommend import evidence, recommended
    from skcnn.compare.report import verdict
    from skcnn.compare.result import ComparisonResult
    from skcnn.compare.row import Sets
    from skcnn.compare.stats import ranked

    class Ext:
        label, name, y = "ext", "printed", np.repeat([0, 1], 10)

    class Sel:
        label, name, y = "sel", "faces", np.repeat([0, 1], 10)

    sets = Sets.of(Y, [Ext], selections=[Sel])
    wrong3 = Y.copy()
    wrong3[:3] = 1
    preds = {  # (validation, external, selection)
        "a": (Y, Y, wrong3),  # best on the external set, worse on selection
        "b": (Y, wrong3, Y),
    }
    rows = [sets.row(m, list(p)) for m, p in preds.items()]
    rows = ranked(rows, preds, sets)
    found = evidence(rows, None, {"sel": "faces"})
    assert recommended(found).model == "b"
    assert found["a"].parts == {
        "validation": 1.0,
        "faces (selection)": rows[0]["sel_f1"],
    }
    # the selection set is neither ranked nor counted as external
    assert "sel_rank" not in rows[0] and "worst_ext_f1" not in rows[0]
    result = ComparisonResult(rows, "d", 20, 20, 20, 1.0)
    result.externals = [{"label": "ext", "name": "printed", "chance_f1": 0.5}]
    result.selections = [{"label": "sel", "name": "faces", "chance_f1": 0.5}]
    text = " ".join(verdict(result))
    assert "Recommended: **b**" in text and "the external sets played no part" in text
    assert "The recommendation on printed (ext)" in text and "**not the best**" in text


def test_registry_module_imports_neither_torch_nor_sklearn():
    source = inspect.getsource(registry) + inspect.getsource(zoo)
    top = [
        n for n in ast.parse(source).body if isinstance(n, (ast.Import, ast.ImportFrom))
    ]
    names = [getattr(n, "module", None) or n.names[0].name for n in top]
    assert not any(str(m).startswith(("torch", "sklearn")) for m in names)


def test_the_vote_takes_a_family_only_when_it_does_not_make_the_vote_worse():
    """The best row of each family by selection score; the next joins when
    the equal-weight vote with it is at least as good on validation and the
    selection set (never the external set)."""
    from skcnn.compare.ensemble import select_members
    from skcnn.compare.recommend import Evidence
    from skcnn.compare.row import Sets

    class Ext:
        label, name, y = "ext", "e", np.repeat([0, 1], 10)

    class Sel:
        label, name, y = "sel", "s", np.repeat([0, 1], 10)

    sets = Sets.of(Y, [Ext], selections=[Sel])
    classes = np.array([0, 1])

    def probs(right):  # one array per set: val, ext, sel
        p = np.eye(2)[Y] * right + np.eye(2)[1 - Y] * (1 - right)
        return [p, np.eye(2)[1 - Y], p]  # every row wrong on ext: not looked at

    right = {"lp": 0.7, "cnn": 0.6, "cnn2": 0.55, "rf": 0.0}
    probabilities = {m: probs(r) for m, r in right.items()}
    families = {
        "lp": "transfer",
        "cnn": "networks",
        "cnn2": "networks",
        "rf": "classic",
    }
    found = {m: Evidence(m, {"validation": r}) for m, r in right.items()}
    chosen = select_members(found, families, probabilities, sets, classes)
    # rf (0.0 on the true class) would turn the vote of three wrong: it does
    # not join; cnn2 is not its family's best
    assert chosen.members == ("lp", "cnn") and chosen.weights == (0.5, 0.5)
    # one family only: no vote
    assert (
        select_members(
            {m: found[m] for m in ("cnn", "cnn2")},
            families,
            probabilities,
            sets,
            classes,
        )
        is None
    )
