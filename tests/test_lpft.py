"""Fine-tuning that starts from a linear probe (issue 25): a backbone cut at
any stage, ``head_init="probe"``, depths beyond the stages there are, kept
batch-norm statistics."""

import json

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import skcnn
from skcnn import DenseNetClassifier, PretrainedClassifier, PretrainedFeatureExtractor
from skcnn._engine.linear_probe import PROBE_C

from .conftest import TINY_DN


def _net():
    """Two stages (the children that hold parameters) and a head to cut."""
    torch.manual_seed(0)
    nn = torch.nn
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU()),
        nn.Sequential(nn.Conv2d(6, 8, 3, stride=2, padding=1), nn.ReLU()),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 5),
    )


@pytest.fixture(scope="module")
def digits(small_digits):
    X, y = small_digits
    return X[:120], y[:120]


CUT = dict(weights=None, layer=-2, pooling=None, input_size=None, device="cpu")


def test_probe_at_depth_zero_is_sklearns_logistic_regression(digits):
    """finetune_depth=0 with head_init="probe" is exactly a linear probe on
    the cut: the extractor's features, standardised, logistic regression."""
    X, y = digits
    # no validation split either: nothing would use it
    clf = PretrainedClassifier(_net(), head_init="probe", finetune_depth=0, **CUT).fit(
        X, y
    )
    assert clf.n_iter_ == 0 and clf.finetune_depth_ == 0
    extractor = PretrainedFeatureExtractor(
        _net(), weights=None, layer=-2, pooling=None, input_size=None, device="cpu"
    )
    probe = make_pipeline(
        extractor,
        StandardScaler(),
        LogisticRegression(C=PROBE_C, tol=1e-6, max_iter=2000),
    ).fit(X, y)
    np.testing.assert_allclose(
        clf.predict_proba(X), probe.predict_proba(X), atol=1e-3, rtol=0
    )
    assert (clf.predict(X) == probe.predict(X)).mean() == 1.0
    assert clf.probe_score_ == pytest.approx(probe.score(X, y))


def test_binary_probe_is_one_logit(digits):
    X, y = digits
    yb = (y >= 5).astype(int)
    clf = PretrainedClassifier(
        _net(), head_init="probe", finetune_depth=0, validation_fraction=0, **CUT
    ).fit(X, yb)
    assert clf.module_.classifier.out_features == 1
    feats = make_pipeline(
        PretrainedFeatureExtractor(
            _net(), weights=None, layer=-2, pooling=None, input_size=None
        ),
        StandardScaler(),
        LogisticRegression(C=PROBE_C, tol=1e-6, max_iter=2000),
    ).fit(X, yb)
    np.testing.assert_allclose(
        clf.predict_proba(X), feats.predict_proba(X), atol=1e-3, rtol=0
    )


def test_probe_then_fine_tuning_starts_from_the_probe(digits):
    """LP-FT: the first epoch's training loss is the probe's, far below a
    random head's, and the backbone trains after it."""
    X, y = digits
    common = dict(
        finetune_depth="all",
        max_epochs=1,
        validation_fraction=0,
        lr=1e-12,  # one step that changes nothing measurable
        random_state=0,
        **CUT,
    )
    probed = PretrainedClassifier(_net(), head_init="probe", **common).fit(X, y)
    random = PretrainedClassifier(_net(), head_init="random", **common).fit(X, y)
    assert probed.n_iter_ == 1
    assert probed.history_[0]["train_loss"] < 0.5 * random.history_[0]["train_loss"]


def test_the_cut_drops_later_stages_and_depth_counts_before_it(digits):
    X, y = digits
    clf = PretrainedClassifier(
        _net(),
        finetune_depth=1,
        head_epochs=0,
        max_epochs=1,
        **{**CUT, "pooling": "avg"},
    ).fit(X, y)
    body = clf.module_.body
    assert isinstance(body[1], torch.nn.Identity)  # the last stage: dropped
    assert clf.module_.classifier.in_features == 6  # the cut's channels, pooled
    trainable = {n for n, p in clf.module_.named_parameters() if p.requires_grad}
    assert trainable == {
        "body.0.0.weight", "body.0.0.bias", "body.0.1.weight", "body.0.1.bias",
        "classifier.weight", "classifier.bias",
    }  # fmt: skip
    flat = PretrainedClassifier(_net(), finetune_depth=0, max_epochs=1, **CUT).fit(X, y)
    # 8 px digits enlarged to the backbone's 32 px minimum, flattened
    assert flat.module_.classifier.in_features == 6 * 32 * 32


def test_a_depth_beyond_the_stages_trains_them_all(digits):
    X, y = digits
    clf = PretrainedClassifier(
        _net(),
        weights=None,
        layer=None,
        max_epochs=1,
        finetune_depth=5,
        device="cpu",
    ).fit(X, y)
    assert clf.finetune_depth_ == 2
    assert all(p.requires_grad for p in clf.module_.parameters())
    grid = GridSearchCV(
        PretrainedClassifier(
            _net(), weights=None, max_epochs=1, input_size=None, device="cpu"
        ),
        {"finetune_depth": [0, 3], "layer": [None, -1]},
        cv=2,
        error_score="raise",
    ).fit(X, y)
    assert np.isfinite(grid.cv_results_["mean_test_score"]).all()


def test_densenet_shares_the_cut_and_the_probe(digits):
    X, y = digits
    clf = DenseNetClassifier(
        **{**TINY_DN, "max_epochs": 1},
        layer=-2,
        head_init="probe",
        finetune_depth=0,
        validation_fraction=0,
    ).fit(X, y)
    assert clf.n_iter_ == 0 and clf.probe_score_ > 0.3  # chance: 0.1
    assert clf.score(X, y) == pytest.approx(clf.probe_score_, abs=0.01)


def test_kept_batch_norm_statistics(digits):
    X, y = digits
    clf = PretrainedClassifier(
        _net(), finetune_depth="all", max_epochs=2, bn_statistics="frozen", **CUT
    ).fit(X, y)
    bn = clf.module_.body[0][1]
    assert bn.weight.requires_grad
    assert torch.equal(bn.running_mean, torch.zeros(6))  # never updated
    clf.module_.train()
    assert not bn.training
    moving = PretrainedClassifier(
        _net(), finetune_depth="all", max_epochs=2, bn_statistics="batch", **CUT
    ).fit(X, y)
    assert not torch.equal(moving.module_.body[0][1].running_mean, torch.zeros(6))


def test_files_without_the_new_parameters_load_as_fitted(digits, tmp_path):
    """A file written before layer / pooling / head_init / bn_statistics
    existed was fitted with the whole backbone, a random head and moving
    batch-norm statistics; it loads so, whatever the defaults are now."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    X, y = digits
    clf = PretrainedClassifier(
        "resnet18", weights=None, layer=None, head_init="random", bn_statistics="batch",
        max_epochs=1, device="cpu",
    ).fit(X, y)  # fmt: skip
    path = clf.save(tmp_path / "new.skcnn")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        state = {k: f.get_tensor(k) for k in f.keys()}
    header = json.loads(meta["skcnn"])
    for name in ("layer", "pooling", "head_init", "bn_statistics"):
        del header["params"][name]
    old = tmp_path / "old.skcnn"
    save_file(state, str(old), metadata={"skcnn": json.dumps(header)})
    loaded = skcnn.load(old)
    assert loaded.layer is None and loaded.bn_statistics == "batch"
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


def test_the_defaults_work_on_a_shallow_module(digits):
    """The issue's failing case: the defaults (layer=-4, finetune_depth
    "all", a probe) on a module of two stages."""
    X, y = digits
    clf = PretrainedClassifier(_net(), weights=None, max_epochs=2).fit(X, y)
    assert clf.layer_ == -2 and clf.finetune_depth_ == "all"
    assert isinstance(clf.module_.body[1], torch.nn.Identity)
    assert clf.score(X, y) > 0.5
