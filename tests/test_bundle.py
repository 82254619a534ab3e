"""Safe files for whole Pipelines: skcnn.save / skcnn.load."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.svm import SVC

import skcnn
from skcnn import CNNClassifier, PretrainedFeatureExtractor
from skcnn.baselines import AddNoise, HOGTransformer

from .conftest import TINY

sio = pytest.importorskip("skops.io")


def _round_trip(model, X, tmp_path):
    path = skcnn.save(model, tmp_path / "model.skcnn")
    restored = skcnn.load(path)
    assert restored is not model
    np.testing.assert_array_equal(restored.predict(X), model.predict(X))
    return path, restored


def _untrusted(path):
    import zipfile

    with zipfile.ZipFile(path) as z:
        return sio.get_untrusted_types(data=z.read("objects.skops"))


def test_hog_svc_pipeline(small_digits, tmp_path):
    X, y = small_digits
    model = make_pipeline(HOGTransformer(), SVC()).fit(X, y)
    path, _ = _round_trip(model, X, tmp_path)
    assert all(t.startswith("skcnn.") for t in _untrusted(path))


def test_extractor_and_logistic_regression(small_digits, tmp_path):
    torch = pytest.importorskip("torch")
    from torchvision.models import resnet18

    X, y = small_digits
    torch.manual_seed(0)
    torch.save(resnet18().state_dict(), tmp_path / "r18.pth")
    model = make_pipeline(
        PretrainedFeatureExtractor(
            "resnet18", weights=str(tmp_path / "r18.pth"), layer=-2, input_size=32
        ),
        StandardScaler(),
        LogisticRegression(max_iter=200),
    ).fit(X, y)
    path, restored = _round_trip(model, X, tmp_path)
    np.testing.assert_allclose(
        restored.predict_proba(X), model.predict_proba(X), rtol=1e-6
    )
    assert all(t.startswith("skcnn.") for t in _untrusted(path))


def test_pipeline_with_a_cnn(small_digits, tmp_path):
    X, y = small_digits
    model = make_pipeline(AddNoise(std=0.05, random_state=0), CNNClassifier(**TINY))
    model.fit(X, y)
    path, restored = _round_trip(model, X, tmp_path)
    np.testing.assert_array_equal(restored.predict_proba(X), model.predict_proba(X))
    # the network came back as a skcnn model, rebuilt from its safe file
    assert isinstance(restored[-1], CNNClassifier) and restored[-1].history_
    assert _untrusted(path) == [
        "skcnn._bundle.SavedNetwork",
        "skcnn.baselines.AddNoise",
    ]


def halve(X):
    return X / 2


def test_foreign_types_need_trust(small_digits, tmp_path):
    X, y = small_digits
    model = make_pipeline(
        FunctionTransformer(halve), CNNClassifier(**TINY, image_shape=(8, 8))
    ).fit(X.reshape(len(X), -1).astype(float), y)
    path = skcnn.save(model, tmp_path / "m.skcnn")
    with pytest.raises(ValueError, match="not trusted: .*test_bundle.halve"):
        skcnn.load(path)
    restored = skcnn.load(path, trusted=[f"{__name__}.halve"])
    Xf = X[:20].reshape(20, -1).astype(float)
    np.testing.assert_array_equal(restored.predict(Xf), model.predict(Xf))


def test_single_estimators_still_write_plain_safe_files(small_digits, tmp_path):
    X, y = small_digits
    clf = CNNClassifier(**TINY).fit(X, y)
    path = skcnn.save(clf, tmp_path / "m.safetensors")
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        assert "skcnn" in f.metadata()


def test_a_zip_that_is_not_a_bundle(tmp_path):
    import zipfile

    with zipfile.ZipFile(tmp_path / "x.zip", "w") as z:
        z.writestr("a.txt", "hello")
    with pytest.raises(ValueError, match="not an skcnn bundle"):
        skcnn.load(tmp_path / "x.zip")


def test_a_fitted_search(small_digits, tmp_path):
    from sklearn.model_selection import GridSearchCV

    X, y = small_digits
    search = GridSearchCV(
        CNNClassifier(**{**TINY, "max_epochs": 2}, augment={"rotation": 5}),
        {"dropout": [0.0, 0.2]},
        cv=2,
    ).fit(X, y)
    path = skcnn.save(search, tmp_path / "search.skcnn")
    # skops does not trust these sklearn types by default: the user says so
    extra = [t for t in _untrusted(path) if not t.startswith("skcnn.")]
    restored = skcnn.load(path, trusted=extra)
    np.testing.assert_array_equal(restored.predict(X), search.predict(X))
    assert restored.best_params_ == search.best_params_
    assert restored.estimator.augment == {"rotation": 5}
