"""Ctrl-C, checkpoints and parallel searches: no training lost or mixed up."""

import os
import signal

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV

from skcnn import CNNClassifier

from .conftest import TINY

X8 = np.random.RandomState(0).rand(40, 8, 8).astype(np.float32)
Y8 = np.arange(40) % 4


@pytest.fixture
def terminal_sigint():
    """Background jobs (CI) start with SIGINT ignored; act as a terminal would."""
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, outer)


class CtrlC:
    """An augmentation that presses Ctrl-C (``presses`` times) at batch ``at``."""

    def __init__(self, at, presses=1):
        self.at, self.presses, self.calls = at, presses, 0

    def __call__(self, xb):
        self.calls += 1
        if self.calls == self.at:
            for _ in range(self.presses):
                os.kill(os.getpid(), signal.SIGINT)
        return xb


def test_ctrl_c_stops_after_the_batch_and_keeps_best_weights(terminal_sigint):
    ctrl_c = CtrlC(at=7)  # during the 4th epoch (2 batches per epoch)
    clf = CNNClassifier(**{**TINY, "max_epochs": 50, "batch_size": 18}, augment=ctrl_c)
    # Ctrl-C stops fit (and so any search or comparison around it)...
    with pytest.raises(KeyboardInterrupt, match="interrupted after epoch 4"):
        clf.fit(X8, Y8)
    # ...and the estimator keeps what was trained, marked as cut short.
    assert clf.interrupted_
    assert ctrl_c.calls == 7  # the batch in flight finished, no further batch started
    assert clf.n_iter_ == 4
    assert clf.predict(X8).shape == (40,)
    # the handler is removed after fit: Ctrl-C behaves normally again
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_second_ctrl_c_aborts_the_batch_and_still_marks_the_fit(terminal_sigint):
    ctrl_c = CtrlC(at=3, presses=2)  # impatient: abort at once
    clf = CNNClassifier(**{**TINY, "max_epochs": 50, "batch_size": 18}, augment=ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        clf.fit(X8, Y8)
    assert clf.interrupted_
    assert ctrl_c.calls == 3


def test_ctrl_c_stops_a_grid_search(terminal_sigint):
    ctrl_c = CtrlC(at=3)

    def augment(xb):  # a function: clones share it (and ctrl_c's count)
        return ctrl_c(xb)

    search = GridSearchCV(
        CNNClassifier(**TINY, augment=augment), {"dropout": [0.0, 0.5]}, cv=2
    )
    with pytest.raises(KeyboardInterrupt):
        search.fit(X8, Y8)
    assert ctrl_c.calls == 3  # no later fold or candidate trained
    assert not hasattr(search, "best_params_")


def test_checkpoints_per_fit_and_resume(tmp_path):
    CNNClassifier(**TINY, checkpoint_dir=tmp_path).fit(X8, Y8)
    GridSearchCV(
        CNNClassifier(**TINY, checkpoint_dir=tmp_path),
        {"dropout": [0.0, 0.2]},
        cv=2,
        n_jobs=2,
    ).fit(X8, Y8)
    folders = list(tmp_path.glob("fit-*"))
    assert len(folders) == 1 + 4 + 1  # one folder per fit, none shared
    assert all((f / "params.pt").is_file() for f in folders)
    resumed = CNNClassifier(
        **{**TINY, "max_epochs": 1}, checkpoint_dir=tmp_path, warm_start=True
    ).fit(X8, Y8)
    assert resumed.resumed_from_.endswith("params.pt")


def test_same_results_for_n_jobs_1_and_2():
    grid = {"dropout": [0.0, 0.3]}
    a = (
        GridSearchCV(CNNClassifier(**TINY), grid, cv=2, n_jobs=1)
        .fit(X8, Y8)
        .cv_results_
    )
    b = (
        GridSearchCV(CNNClassifier(**TINY), grid, cv=2, n_jobs=2)
        .fit(X8, Y8)
        .cv_results_
    )
    np.testing.assert_allclose(a["mean_test_score"], b["mean_test_score"])


def test_checkpoints_never_cross_folds_or_data(tmp_path):
    """cross_val_score with warm_start must not resume a fold from weights
    trained on its own test fold: checkpoints are keyed to the data."""
    import json

    from sklearn.model_selection import cross_val_score

    rng = np.random.default_rng(0)
    X = rng.random((60, 8, 8)).astype(np.float32)
    y = rng.integers(0, 2, 60)  # random labels: any leak would show as skill
    est = CNNClassifier(**TINY, warm_start=True, checkpoint_dir=tmp_path)
    cross_val_score(est, X, y, cv=3)
    keys = {json.loads(m.read_text())["key"] for m in tmp_path.glob("fit-*/meta.json")}
    assert len(keys) == 3  # each fold its own key: no fold resumed another's
    again = CNNClassifier(**TINY, warm_start=True, checkpoint_dir=tmp_path)
    again.fit(X[:40], y[:40])
    assert not hasattr(again, "resumed_from_")  # rows no fold trained on
    same = CNNClassifier(**TINY, warm_start=True, checkpoint_dir=tmp_path)
    same.fit(X[:40], y[:40])  # the same rows again: resumes
    assert hasattr(same, "resumed_from_")
    different = CNNClassifier(
        **{**TINY, "dropout": 0.5}, warm_start=True, checkpoint_dir=tmp_path
    ).fit(X[:40], y[:40])
    assert not hasattr(different, "resumed_from_")  # another estimator


def test_resume_takes_the_best_checkpoint_not_the_newest(tmp_path):
    import json

    CNNClassifier(**TINY, checkpoint_dir=tmp_path).fit(X8, Y8)
    CNNClassifier(**TINY, checkpoint_dir=tmp_path).fit(X8, Y8)
    metas = sorted(tmp_path.glob("fit-*/meta.json"))
    assert len(metas) == 2
    # Make the older one the best.
    older = json.loads(metas[0].read_text())
    older["loss"] = -1.0
    metas[0].write_text(json.dumps(older))
    resumed = CNNClassifier(**TINY, checkpoint_dir=tmp_path, warm_start=True).fit(
        X8, Y8
    )
    assert resumed.resumed_from_ == str(metas[0].with_name("params.pt"))


def test_corrupt_checkpoint_is_named(tmp_path):
    CNNClassifier(**TINY, checkpoint_dir=tmp_path).fit(X8, Y8)
    (params,) = tmp_path.glob("fit-*/params.pt")
    params.write_bytes(params.read_bytes()[:100])  # truncated
    with pytest.raises(ValueError, match=f"checkpoint {params} cannot be loaded"):
        CNNClassifier(**TINY, checkpoint_dir=tmp_path, warm_start=True).fit(X8, Y8)


def test_failed_checkpoint_write_raises(tmp_path, monkeypatch):
    import errno

    import skcnn._engine.checkpoints as training

    def full_disk(f):
        raise OSError(errno.ENOSPC, "No space left on device")

    real = training.atomic_write
    monkeypatch.setattr(
        training, "atomic_write", lambda path, write, what: real(path, full_disk, what)
    )
    with pytest.raises(OSError, match="Could not write the checkpoint"):
        CNNClassifier(**TINY, checkpoint_dir=tmp_path).fit(X8, Y8)
    assert not list(tmp_path.glob("fit-*/params.pt"))
    assert not list(tmp_path.glob("fit-*/.*.tmp"))
