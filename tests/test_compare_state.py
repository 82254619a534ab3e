"""A resumed comparison trusts nothing in its folder that the run did not
write, and one run at a time writes into a folder."""

import json
import os
import re
import subprocess
import sys

import pytest

from skcnn.cli import main
from skcnn.compare import run_comparison
from skcnn.compare.state import LOCK, STATE, hold_folder

MODELS = ["pixels+rf", "pca+svm"]


def _quiet(msg):
    pass


def _run(out, resume=False, progress=_quiet):
    """The small run of these tests (two classic rows, about 10 s)."""
    result = run_comparison(
        models=MODELS,
        quick=True,
        robustness=False,
        budget=None,
        out=out,
        resume=resume,
        progress=progress,
    )
    return {r["model"]: r for r in result.rows}, result


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished run's folder and its rows."""
    out = tmp_path_factory.mktemp("run")
    return out, _run(out)[0]


def _copy(finished, tmp_path, edit):
    """A copy of the finished run's state.json, edited ("NEST": a list nested
    100,000 deep, as JSON text)."""
    out = tmp_path / "run"
    out.mkdir()
    state = json.loads((finished[0] / STATE).read_text())
    edit(state)
    text = json.dumps(state).replace('"NEST"', "[" * 100_000 + "]" * 100_000)
    (out / STATE).write_text(text)
    return out


def _resume(out):
    said = []
    rows, result = _run(out, resume=True, progress=said.append)
    return rows, "\n".join(said), result


def test_an_edited_f1_is_recomputed_from_the_stored_predictions(finished, tmp_path):
    _, rows = finished
    out = _copy(finished, tmp_path, lambda s: s["rows"][0].update(val_f1=0.999))
    name = MODELS[0]
    got, said, _ = _resume(out)
    assert got[name]["val_f1"] == pytest.approx(rows[name]["val_f1"])
    assert got[name]["val_f1"] != 0.999
    assert "is not what its predictions score" in said
    assert "0.999" not in (out / "results.csv").read_text()


@pytest.mark.parametrize(
    "edit, why",
    [
        (
            lambda s: s["predictions"]["pca+svm"][0].__delitem__(slice(5, None)),
            "cut short",
        ),
        (
            lambda s: s["rows"][1].clear() or s["rows"][1].update(model="pca+svm"),
            "status None",
        ),
        (lambda s: s["rows"][1].update(fit_time_s=-3), "invalid fit_time_s"),
        (lambda s: s["predictions"]["pca+svm"][0].__setitem__(0, 77), "not labels"),
        (
            lambda s: s["rows"][1].update(best_params=["a", "list"]),
            "invalid best_params",
        ),
    ],
    ids=["cut-short", "name-only", "negative-time", "unknown-label", "params"],
)
def test_a_damaged_row_is_run_again_and_says_why(finished, tmp_path, edit, why):
    out = _copy(finished, tmp_path, edit)
    got, said, _ = _resume(out)
    assert "pca+svm" in said and "run again" in said and why in said, said
    assert got["pca+svm"]["status"] == "ok"
    assert got["pca+svm"]["val_f1"] == pytest.approx(finished[1]["pca+svm"]["val_f1"])


def test_a_row_for_a_model_the_run_never_had_is_not_shown(finished, tmp_path):
    def forge(state):
        row = dict(state["rows"][0], model="cnn", val_f1=0.999)
        state["rows"].append(row)
        state["predictions"]["cnn"] = state["predictions"][state["rows"][0]["model"]]

    out = _copy(finished, tmp_path, forge)
    got, said, _ = _resume(out)
    assert "cnn" not in got
    assert "'cnn' is not a model of this run" in said
    assert "cnn" not in (out / "results.csv").read_text().split("\n", 1)[1]


def test_a_negative_elapsed_time_counts_as_zero(finished, tmp_path):
    out = _copy(finished, tmp_path, lambda s: s.update(elapsed_s=-1e9))
    _, said, result = _resume(out)
    assert "not a time" in said
    assert 0 <= result.wall_time_s < 600


def test_a_damaged_robustness_profile_is_dropped(finished, tmp_path):
    out = _copy(
        finished,
        tmp_path,
        lambda s: s.update(robustness={"model": ["pca+svm"], "f1": [-1e9, 2]}),
    )
    _, said, result = _resume(out)
    assert "robustness profile" in said and result.robustness is None


@pytest.mark.parametrize(
    "edit, match",
    [
        (
            lambda s: s["args"].update(dask="tcp://127.0.0.1:9"),
            "never writes: \\['dask'\\]",
        ),
        (lambda s: s["args"].update(device="cuda:3"), "never writes"),
        (lambda s: s["args"].update(cv="3"), "argument cv='3' is not int"),
        (lambda s: s["args"].update(external=[1]), "argument external"),
        (lambda s: s.update(rows={"a": 1}), "'rows' is a dict"),
        (lambda s: s.update(rows="NEST"), "is not a comparison state"),
    ],
    ids=["dask", "device", "cv-type", "external-type", "rows-type", "deep-nesting"],
)
def test_resume_takes_only_typed_result_arguments(
    finished, tmp_path, edit, match, capsys
):
    out = _copy(finished, tmp_path, edit)
    assert main(["compare", "--resume", str(out)]) == 2
    err = capsys.readouterr().err
    assert re.search(match, err), err


def test_resume_options_come_from_the_command_line(finished, tmp_path, monkeypatch):
    from skcnn import cli

    seen = {}

    def record(**kw):
        seen.update(kw)
        raise ValueError("recorded")

    monkeypatch.setattr("skcnn.compare.run_comparison", record)
    out = _copy(finished, tmp_path, lambda s: None)
    assert (
        cli.main(["compare", "--resume", str(out), "--n-jobs", "1", "--budget", "40"])
        == 2
    )
    assert seen["n_jobs"] == 1 and seen["budget"] == 40 and seen["dask"] is None
    assert seen["models"] == MODELS and seen["resume"] is True


def test_one_run_at_a_time_in_a_folder(tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    with hold_folder(out):
        assert (out / LOCK).is_file()
        with pytest.raises(ValueError, match="in use by another skcnn compare run"):
            run_comparison(models=["pca+svm"], quick=True, out=out, progress=_quiet)
        with pytest.raises(ValueError, match="in use"):
            with hold_folder(out):
                pass
    assert not (out / LOCK).exists()


def test_a_lock_whose_process_died_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "stale"
    out.mkdir()
    (out / LOCK).write_text(
        json.dumps({"pid": dead.pid, "host": os.uname().nodename, "started": 0})
    )
    with hold_folder(out):
        assert json.loads((out / LOCK).read_text())["pid"] == os.getpid()
    assert not (out / LOCK).exists()


@pytest.mark.parametrize("budget", ["0", "-1", "inf", "nan"])
def test_budget_zero_is_an_error_not_no_budget(budget, capsys):
    assert main(["compare", "--models", "pca+svm", "--budget", budget]) == 2
    assert (
        "--budget takes seconds (a positive number) or 'none'"
        in capsys.readouterr().err
    )


def test_a_budget_too_small_for_any_row_exits_non_zero(capsys):
    code = main(
        ["compare", "--models", "cnn", "--quick", "--no-robustness", "--budget", "1"]
    )
    captured = capsys.readouterr()
    assert code == 1, captured.err
    assert "no model ran within the budget" in captured.err
    assert "needs ~" in captured.out and "the budget left ~" in captured.out


def test_sigterm_stops_a_background_run_and_keeps_its_rows(tmp_path):
    """``kill PID`` on a run started in the background (where Python ignores
    SIGINT) stops it as Ctrl-C does: finished rows kept, resumable."""
    import signal
    import time

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "skcnn", "compare", "--quick", "--no-robustness"]
    models = ["pixels+rf", "densenet", "cnn", "cnn+aug"]
    cmd += ["--models", ",".join(models), "--budget", "none", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        # as a script's `cmd &` starts it: SIGINT ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    state = out / STATE
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if state.exists() and json.loads(state.read_text())["rows"]:
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the run finished before it could be stopped"
        proc.send_signal(signal.SIGINT)  # ignored, as in a background job
        time.sleep(0.3)
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "skcnn compare: stopped; finished rows and report.md are in" in err
    done = [r["model"] for r in json.loads(state.read_text())["rows"]]
    assert done[0] == "pixels+rf" and len(done) < len(models)
    assert not (out / LOCK).exists()  # the lock goes with the run
    assert "the run stopped or is still running" in (out / "report.md").read_text()
