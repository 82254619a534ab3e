"""CUDA-only paths: mixed precision, grad scaling, channels-last, pinned memory.

All skipped without a GPU (CI has none); run them with ``pytest -m gpu`` on a
machine that has one.
"""

import gc
import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.model_selection import GridSearchCV
from torchvision.models import densenet121

import skcnn
from skcnn import (
    CNNClassifier,
    CNNRegressor,
    DenseNetClassifier,
    PretrainedFeatureExtractor,
)
from skcnn._data import TensorData
from skcnn._device import resolve_device

from .conftest import TINY

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]

GPU = {**TINY, "device": "cuda"}


def conv_weights(clf):
    return [m.weight for m in clf.module_.modules() if isinstance(m, torch.nn.Conv2d)]


def test_auto_device_precision_and_layout(digits_uint8):
    Xtr, Xte, ytr, yte = digits_uint8
    clf = CNNClassifier(random_state=0).fit(Xtr, ytr)  # device="auto"
    assert clf.device_.startswith("cuda") and resolve_device("auto") == clf.device_
    expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    assert clf.net_.amp_dtype is expected
    assert all(
        w.is_contiguous(memory_format=torch.channels_last) for w in conv_weights(clf)
    )
    assert torch.backends.cudnn.benchmark
    # the CPU default reaches 0.99 on this split; mixed precision must not cost more than 2 points
    assert clf.score(Xte, yte) >= 0.97
    proba = clf.predict_proba(Xte)
    assert proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(1), 1, atol=1e-5)


def test_fp16_trains_through_the_grad_scaler(digits_uint8):
    Xtr, Xte, ytr, yte = digits_uint8
    clf = CNNClassifier(precision="fp16", device="cuda", random_state=0).fit(Xtr, ytr)
    assert clf.net_.amp_dtype is torch.float16
    scaler = clf.net_.grad_scaler_
    assert scaler.is_enabled() and np.isfinite(scaler.get_scale())
    assert clf.score(Xte, yte) >= 0.97


def test_float32_on_gpu_agrees_with_cpu_after_unpickling(small_digits, tmp_path):
    X, y = small_digits
    clf = CNNClassifier(**{**GPU, "precision": "32"}).fit(X, y)
    assert clf.net_.amp_dtype is None
    on_gpu = clf.predict_proba(X)
    clf.save(tmp_path / "m.safetensors")
    restored = skcnn.load(tmp_path / "m.safetensors", device="cpu")
    assert restored.net_.device == "cpu"
    np.testing.assert_allclose(restored.predict_proba(X), on_gpu, atol=1e-4)
    unpickled = pickle.loads(pickle.dumps(clf))
    np.testing.assert_allclose(unpickled.predict_proba(X), on_gpu, atol=1e-6)


def test_data_kept_on_gpu_when_it_fits_and_pinned_otherwise(small_digits, monkeypatch):
    X, y = small_digits
    data = TensorData(torch.as_tensor(X), torch.as_tensor(y))
    on_device = data.to("cuda")
    assert on_device.X.is_cuda and on_device.X.dtype == torch.uint8
    free, total = torch.cuda.mem_get_info()
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *a: (1024, total))
    pinned = data.to("cuda")
    assert not pinned.X.is_cuda and pinned.X.is_pinned()
    # the whole fit runs from pinned host memory with the same result
    a = CNNClassifier(**{**GPU, "precision": "32"}).fit(X, y).predict_proba(X)
    monkeypatch.undo()
    b = CNNClassifier(**{**GPU, "precision": "32"}).fit(X, y).predict_proba(X)
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_augmentation_runs_on_the_device(small_digits):
    X, y = small_digits
    clf = CNNClassifier(**{**GPU, "augment": "default"}).fit(X, y)
    assert clf.predict(X).shape == y.shape
    assert clf.n_iter_ == TINY["max_epochs"]


def test_regressor_and_sample_weight_on_gpu(small_digits):
    X, y = small_digits
    reg = CNNRegressor(**GPU).fit(X, y.astype(np.float32))
    assert reg.predict(X).shape == y.shape
    w = np.where(y == 0, 5.0, 1.0)
    clf = CNNClassifier(**GPU).fit(X, y, sample_weight=w)
    assert clf.score(X, y) > 0.5


def test_image_files_stream_through_pinned_loader(tmp_path, small_digits):
    X, y = small_digits
    paths = []
    for i in range(64):
        p = tmp_path / f"{i}.png"
        Image.fromarray(X[i]).save(p)
        paths.append(str(p))
    clf = CNNClassifier(**{**GPU, "precision": "32", "num_workers": 2})
    clf.fit(paths, y[:64])
    np.testing.assert_allclose(
        clf.predict_proba(paths), clf.predict_proba(X[:64]), atol=1e-5
    )


def test_densenet_and_extractor_on_gpu(tmp_path, small_digits):
    X, y = small_digits
    X = X[:64]
    torch.manual_seed(0)
    weights = tmp_path / "densenet121.pth"
    torch.save(densenet121().state_dict(), weights)
    cpu = PretrainedFeatureExtractor(weights=weights, device="cpu").fit_transform(X)
    gpu = PretrainedFeatureExtractor(weights=weights, device="cuda").fit_transform(X)
    assert gpu.shape == cpu.shape == (64, 1024)
    # bf16 autocast on the GPU, float32 on the CPU: close, not equal
    scale = np.abs(cpu).max()
    assert np.abs(gpu - cpu).max() < 0.05 * scale
    gpu32 = PretrainedFeatureExtractor(
        weights=weights, device="cuda", precision="32"
    ).fit_transform(X)
    np.testing.assert_allclose(gpu32, cpu, atol=2e-3 * scale)
    clf = DenseNetClassifier(
        weights=weights, max_epochs=2, device="cuda", random_state=0
    ).fit(X, y[:64])
    assert clf.predict(X).shape == (64,)


def test_gpu_memory_released_between_search_folds(small_digits):
    X, y = small_digits
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    search = GridSearchCV(CNNClassifier(**GPU), {"lr": [1e-3, 5e-3]}, cv=2)
    search.fit(X, y)
    del search
    gc.collect()
    torch.cuda.empty_cache()
    # nothing from the folds or the refit stays allocated once they are gone
    assert torch.cuda.memory_allocated() - before < 1 << 20


def test_parallel_search_workers_use_the_gpu(small_digits):
    X, y = small_digits
    base = {**TINY, "device": "auto"}
    search = GridSearchCV(CNNClassifier(**base), {"lr": [1e-3, 5e-3]}, cv=2, n_jobs=2)
    search.fit(X, y)
    assert search.best_estimator_.device_.startswith("cuda")
    serial = GridSearchCV(CNNClassifier(**base), {"lr": [1e-3, 5e-3]}, cv=2)
    serial.fit(X, y)
    np.testing.assert_allclose(
        search.cv_results_["mean_test_score"],
        serial.cv_results_["mean_test_score"],
        atol=0.05,
    )


def test_compile_on_gpu(small_digits):
    X, y = small_digits
    clf = CNNClassifier(**{**GPU, "compile": True, "max_epochs": 2}).fit(X, y)
    plain = CNNClassifier(**{**GPU, "max_epochs": 2}).fit(X, y)
    assert clf.predict(X).shape == plain.predict(X).shape
    assert abs(clf.score(X, y) - plain.score(X, y)) < 0.1
