"""callbacks=, progress= and the verbose epoch table."""

import io

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV
from skorch.callbacks import Callback, LRScheduler

import skcnn
from skcnn import CNNClassifier
from skcnn._engine.logging import EpochProgress

from .conftest import TINY


class Recorder(Callback):
    """A user hook: remembers the epochs it saw."""

    def __init__(self, seen=None):
        self.seen = seen

    def on_epoch_end(self, net, **kwargs):
        self.seen.append(len(net.history))


def test_user_callbacks_run_and_lr_schedulers_work(small_digits):
    X, y = small_digits
    seen = []
    clf = CNNClassifier(
        **{**TINY, "early_stopping": False},
        callbacks=[
            LRScheduler(policy="StepLR", step_size=2, gamma=0.1),
            ("recorder", Recorder(seen)),
        ],
    ).fit(X, y)
    assert seen == [1, 2, 3, 4, 5]
    lrs = [h["event_lr"] if "event_lr" in h else h.get("lr") for h in clf.history_]
    assert lrs == pytest.approx(
        [clf.lr, clf.lr, clf.lr / 10, clf.lr / 10, clf.lr / 100]
    )


class JsonLogger(Callback):
    """A user logger: one JSON line per epoch, appended to a file."""

    def __init__(self, path=None):
        self.path = path

    def on_epoch_end(self, net, **kwargs):
        import json

        row = net.history[-1]
        with open(self.path, "a") as f:
            f.write(json.dumps({"lr": net.lr, "train_loss": row["train_loss"]}) + "\n")


def test_a_logger_and_a_scheduler_inside_a_search(small_digits, tmp_path):
    import json

    X, y = small_digits
    log = tmp_path / "log.jsonl"
    search = GridSearchCV(
        CNNClassifier(
            **{**TINY, "max_epochs": 3, "early_stopping": False},
            callbacks=[JsonLogger(str(log)), LRScheduler(policy="StepLR", step_size=1)],
        ),
        {"lr": [1e-3, 1e-2]},
        cv=2,
    ).fit(X, y)
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    # 2 candidates x 2 folds + the refit, 3 epochs each
    assert len(rows) == 5 * 3
    assert {r["lr"] for r in rows} == {1e-3, 1e-2}
    assert search.best_estimator_.history_[-1]["event_lr"] < search.best_params_["lr"]


def test_callbacks_are_searchable_in_a_grid(small_digits):
    X, y = small_digits
    schedule = LRScheduler(policy="StepLR", step_size=1, gamma=0.5)
    search = GridSearchCV(
        CNNClassifier(**{**TINY, "max_epochs": 3}),
        {"callbacks": [None, [schedule]], "dropout": [0.0]},
        cv=2,
    ).fit(X, y)
    assert len(search.cv_results_["params"]) == 2
    assert search.predict(X[:3]).shape == (3,)
    # the grid's callback object itself was not trained on (clones were)
    assert not hasattr(schedule, "lr_scheduler_")


@pytest.mark.parametrize(
    "callbacks, error, match",
    [
        ([object()], TypeError, "skorch callback instances"),
        ([LRScheduler], TypeError, "skorch callback instances"),
        (
            [("a", Recorder([])), ("a", Recorder([]))],
            ValueError,
            "repeated names",
        ),
        ("LRScheduler", ValueError, "callbacks"),
    ],
)
def test_bad_callbacks_fail_before_training(small_digits, callbacks, error, match):
    X, y = small_digits
    clf = CNNClassifier(**TINY, callbacks=callbacks)
    with pytest.raises(error, match=match):
        clf.fit(X, y)
    assert not hasattr(clf, "history_")


def test_verbose_table_is_plain_labelled_and_complete(small_digits, capsys):
    X, y = small_digits
    clf = CNNClassifier(
        **{**TINY, "max_epochs": 40, "n_iter_no_change": 1}, dropout=0.4, verbose=1
    ).fit(X, y)
    assert len(clf.history_) < 40  # early stopping ended it
    out = capsys.readouterr().out
    assert "\x1b[" not in out  # no colour codes in a captured / redirected stream
    lines = out.splitlines()
    assert lines[0].startswith("CNNClassifier(") and "dropout=0.4" in lines[0]
    rows = [line for line in lines if line.split() and line.split()[0].isdigit()]
    # every epoch has its row, the one early stopping ended included
    assert [int(r.split()[0]) for r in rows] == list(range(1, len(clf.history_) + 1))


def test_progress_lines_in_a_log(small_digits, capsys):
    X, y = small_digits
    clf = CNNClassifier(
        **{**TINY, "max_epochs": 40, "n_iter_no_change": 1}, progress=True
    )
    clf.fit(X, y)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if " epoch " in line]
    assert len(lines) == len(clf.history_)
    assert lines[-1].split(" epoch ")[1].startswith(f"{len(clf.history_)}/40")
    assert "train_loss" in lines[0] and "valid_loss" in lines[0] and "left)" in lines[0]
    assert "\r" not in err


def test_progress_bar_on_a_terminal(small_digits):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    X, y = small_digits
    screen = Terminal()
    clf = CNNClassifier(**TINY, callbacks=[("bar", EpochProgress("fit", file=screen))])
    clf.fit(X, y)
    text = screen.getvalue()
    assert "\r" in text and "5/5" in text and "train_loss" in text


def test_callbacks_are_not_written_to_safe_files(small_digits, tmp_path):
    X, y = small_digits
    clf = CNNClassifier(**TINY, callbacks=[LRScheduler()], progress=True).fit(X, y)
    restored = skcnn.load(clf.save(tmp_path / "m.safetensors"))
    assert restored.callbacks is None and restored.progress is True
    np.testing.assert_allclose(restored.predict_proba(X), clf.predict_proba(X))
