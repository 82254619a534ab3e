"""Bad input gets a clear error, or a correct result; never a deep traceback."""

import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import NotFittedError

from skcnn import CNNClassifier

from .conftest import TINY

X8 = np.random.RandomState(0).rand(40, 8, 8).astype(np.float32)
Y8 = np.arange(40) % 4


@pytest.mark.parametrize(
    "X, y, exc, match",
    [
        (
            np.where(np.arange(40 * 64).reshape(40, 8, 8) == 5, np.nan, X8),
            Y8,
            ValueError,
            "NaN",
        ),
        (
            np.where(np.arange(40 * 64).reshape(40, 8, 8) == 5, np.inf, X8),
            Y8,
            ValueError,
            "infinity",
        ),
        (X8, Y8[:30], ValueError, "inconsistent numbers of samples"),
        (np.empty((0, 8, 8)), np.empty(0), ValueError, "0 sample"),
        (np.array([["a", "b"], ["c", "d"]]), np.array([0, 1]), ValueError, "numeric"),
        (X8, np.zeros(40), ValueError, "only one class"),
        (X8, np.zeros((40, 2, 2)), ValueError, "y"),
        (X8, np.linspace(0, 1, 40), ValueError, "Unknown label type"),
        (X8, None, ValueError, "requires y"),
        # 5-D arrays are volumes (tests/test_volumes.py); 6-D is nothing
        (np.zeros((40, 2, 2, 2, 2, 2)), Y8, ValueError, "at most 5 dimensions"),
    ],
    ids=[
        "nan",
        "inf",
        "length",
        "empty",
        "strings",
        "one-class",
        "y-3d",
        "continuous-y",
        "no-y",
        "6d",
    ],
)
def test_bad_fit_inputs(X, y, exc, match):
    with pytest.raises(exc, match=match):
        CNNClassifier(**TINY).fit(X, y)


def test_bad_predict_inputs():
    clf = CNNClassifier(**TINY)
    with pytest.raises(NotFittedError):
        clf.predict(X8)
    clf.fit(X8, Y8)
    with pytest.raises(ValueError, match="fitted on 8x8 images with 1 channel"):
        clf.predict(np.zeros((2, 8, 8, 3)))
    with pytest.raises(ValueError, match="features"):
        clf.predict(np.zeros((2, 9, 9)))
    with pytest.raises(ValueError, match="NaN"):
        clf.predict(np.full((2, 8, 8), np.nan))
    with pytest.raises(TypeError, match="Sparse data"):
        from scipy import sparse

        clf.predict(sparse.csr_matrix(np.zeros((2, 64))))


def test_too_few_samples_for_split_warns_and_trains():
    X, y = X8[:6], np.array([0, 0, 0, 0, 0, 1])
    with pytest.warns(UserWarning, match="stratified"):
        clf = CNNClassifier(**TINY, validation_fraction=0.5).fit(X, y)
    assert clf.predict(X).shape == (6,)
    with pytest.warns(UserWarning, match="too few"):
        CNNClassifier(**TINY, validation_fraction=0.1).fit(X8[:2], Y8[:2])


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    shape=st.lists(st.integers(0, 9), min_size=1, max_size=5),
    dtype=st.sampled_from(
        ["uint8", "float32", "float64", "int64", "bool", "complex64", "object"]
    ),
    n_classes=st.integers(1, 3),
)
def test_random_shapes_and_dtypes_fail_cleanly_or_work(shape, dtype, n_classes):
    """Any input either trains and predicts, or raises ValueError / TypeError."""
    rng = np.random.RandomState(0)
    X = (rng.rand(*shape) * 3).astype(dtype)
    n = shape[0]
    y = np.arange(n) % n_classes
    clf = CNNClassifier(
        conv_filters=(2,), dense_units=(), max_epochs=1, device="cpu", random_state=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            clf.fit(X, y)
        except (ValueError, TypeError) as exc:
            assert str(exc)
            return
        assert clf.predict(X).shape == (n,)


def test_bad_parameters():
    for kwargs, match in [
        ({"max_epochs": 0}, "max_epochs"),
        ({"lr": -1}, "lr"),
        ({"validation_fraction": 1.5}, "validation_fraction"),
        ({"padding": "full"}, "padding"),
        ({"activation": "swish2"}, "activation"),
        ({"dropout": 1.0}, "dropout"),
        (
            {"device": "cuda:7"}
            if not torch.cuda.is_available()
            else {"max_epochs": -1},
            "CUDA|max_epochs",
        ),
        ({"precision": "fp8"}, "precision"),
        ({"image_shape": (7, 7)}, "image_shape"),
    ]:
        with pytest.raises(ValueError, match=match):
            CNNClassifier(**{**TINY, **kwargs}).fit(
                X8.reshape(40, -1) if "image_shape" in kwargs else X8, Y8
            )


# -- the same pixels in any dtype give the same result --------------------------
@pytest.fixture(scope="module")
def pixel_model(digits_uint8):
    Xtr, _, ytr, _ = digits_uint8
    return CNNClassifier(**TINY).fit(Xtr[:300], ytr[:300])


@pytest.mark.parametrize(
    "convert",
    [
        lambda X: X.astype(np.int64),
        lambda X: X.astype(np.float64),
        lambda X: X.astype(np.float32) / 255,
        lambda X: X.astype(np.uint16),
    ],
    ids=["int64", "float 0-255", "float 0-1", "uint16"],
)
def test_same_pixels_in_any_dtype_predict_the_same(pixel_model, digits_uint8, convert):
    X = digits_uint8[1][:100]
    expected = pixel_model.predict_proba(X)
    np.testing.assert_allclose(
        pixel_model.predict_proba(convert(X)), expected, rtol=1e-5, atol=1e-6
    )


def test_baselines_read_pixels_the_same_in_any_dtype(digits_uint8):
    from skcnn.baselines import ColorHistogram

    X = digits_uint8[0][:50]
    hist = ColorHistogram(bins=8).fit(X)
    np.testing.assert_allclose(hist.transform(X.astype(np.int64)), hist.transform(X))
    np.testing.assert_allclose(hist.transform(X.astype(float)), hist.transform(X))


def test_pixels_out_of_range_for_a_pixel_model(pixel_model, digits_uint8):
    X = digits_uint8[1][:10]
    with pytest.raises(ValueError, match="fitted on 0-255 pixels"):
        pixel_model.predict(X.astype(np.int64) * 4)
    with pytest.raises(ValueError, match="fitted on 0-255 pixels"):
        pixel_model.predict(X.astype(float) - 300)


def test_float_images_far_from_unit_scale_warn():
    from sklearn.datasets import load_digits

    d = load_digits()  # floats 0..16
    with pytest.warns(UserWarning, match=r"far outside \[0, 1\]"):
        CNNClassifier(**{**TINY, "max_epochs": 1}).fit(d.images[:64], d.target[:64])


def test_float_model_reads_uint8_as_plain_numbers():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 3, (60, 8, 8)).astype(np.float32)  # floats 0, 1, 2
    y = (X.mean((1, 2)) > 1).astype(int)
    clf = CNNClassifier(**TINY).fit(X, y)
    np.testing.assert_allclose(
        clf.predict_proba(X.astype(np.uint8)), clf.predict_proba(X), atol=1e-6
    )


# -- layouts ------------------------------------------------------------------------
def test_ambiguous_channel_axis_needs_channels():
    X = np.random.default_rng(0).random((20, 5, 8, 8)).astype(np.float32)
    y = np.arange(20) % 2
    with pytest.raises(ValueError, match="no clear channel axis"):
        CNNClassifier(**TINY).fit(X, y)
    clf = CNNClassifier(**TINY, channels="first").fit(X, y)
    assert clf.layout_.shape == (5, 8, 8)
    with pytest.warns(UserWarning, match="reading it as channels-last"):
        CNNClassifier(**TINY).fit(X[:, :3, :3, :3], y)


def test_image_shape_that_does_not_describe_3d_input_raises():
    X = np.random.default_rng(0).random((20, 8, 8)).astype(np.float32)
    y = np.arange(20) % 2
    with pytest.raises(ValueError, match="image_shape=.* describes flattened"):
        CNNClassifier(**TINY, image_shape=(4, 16)).fit(X, y)
    CNNClassifier(**TINY, image_shape=(8, 8)).fit(X, y)  # consistent: fine


def test_tensors_read_only_arrays_and_ragged_lists():
    rng = np.random.default_rng(0)
    X = rng.random((20, 8, 8)).astype(np.float32)
    y = np.arange(20) % 2
    t = torch.tensor(X, requires_grad=True)
    clf = CNNClassifier(**TINY).fit(t, y)
    ro = X.copy()
    ro.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's non-writable warning included
        np.testing.assert_allclose(clf.predict_proba(ro), clf.predict_proba(t))
    ragged = [X[0], X[1], X[2, :6]]
    with pytest.raises(ValueError, match=r"image 2 is \(6, 8\)"):
        clf.predict(ragged)


def test_class_weight_with_multilabel_targets_is_refused():
    X = np.random.default_rng(0).random((20, 8, 8)).astype(np.float32)
    Y = np.stack([np.arange(20) % 2, np.arange(20) // 10], 1)
    with pytest.raises(
        ValueError, match="class_weight is not supported for multilabel"
    ):
        CNNClassifier(**TINY, class_weight="balanced").fit(X, Y)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    dtype=st.sampled_from(["int16", "int32", "int64", "uint16", "float32", "float64"]),
    low=st.integers(0, 100),
    high=st.integers(101, 255),
)
def test_property_same_pixels_agree_across_dtypes(
    pixel_model, digits_uint8, dtype, low, high
):
    """Pixels of any range within 0-255, in any dtype: the same predictions as
    uint8, or (never silently) a ValueError naming the problem."""
    X = np.clip(digits_uint8[1][:20], low, high).astype(np.uint8)
    expected = pixel_model.predict_proba(X)
    got = pixel_model.predict_proba(X.astype(dtype))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


# -- parameters that would do nothing, or fail late, are said at fit ----------


def test_num_threads_is_bounded_and_capped_at_the_cores():
    from skcnn._device import MAX_THREADS, usable_cores

    with pytest.raises(ValueError, match="'num_threads' parameter"):
        CNNClassifier(**TINY, num_threads=10**6).fit(X8, Y8)
    seen = []

    from skorch.callbacks import Callback

    class Threads(Callback):
        def on_epoch_begin(self, net, **kwargs):
            seen.append(torch.get_num_threads())

    too_many = min(MAX_THREADS, usable_cores() + 1)
    with pytest.warns(UserWarning, match=f"num_threads={too_many} exceeds the"):
        CNNClassifier(
            **{**TINY, "max_epochs": 1}, num_threads=too_many, callbacks=[Threads()]
        ).fit(X8, Y8)
    assert seen == [usable_cores()]


def test_a_typo_in_a_tta_view_fails_at_fit():
    clf = CNNClassifier(**TINY, tta=[{"shfit": 0.1}])
    with pytest.raises(ValueError, match="Unknown augment option.*shfit"):
        clf.fit(X8, Y8)
    assert not hasattr(clf, "net_")


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_augmentation_is_refused(value):
    with pytest.raises(ValueError, match="rotation must be a finite number"):
        CNNClassifier(**TINY, augment={"rotation": value}).fit(X8, Y8)


@pytest.mark.parametrize(
    "params, match",
    [
        (
            {"lr_schedule": "cosine", "warmup_epochs": 9, "max_epochs": 5},
            "warmup_epochs=9 >= the schedule.s 5 epochs",
        ),
        ({"lr_schedule": None, "warmup_epochs": 2}, "warmup_epochs=2 does nothing"),
    ],
)
def test_warmup_that_does_nothing_is_said(params, match):
    with pytest.warns(UserWarning, match=match):
        CNNClassifier(**{**TINY, "max_epochs": 1, **params}).fit(X8, Y8)


def test_head_epochs_that_leave_the_backbone_frozen_are_said():
    from skcnn import DenseNetClassifier

    from .conftest import TINY_DN

    X = np.random.RandomState(0).rand(24, 16, 16).astype(np.float32)
    with pytest.warns(UserWarning, match="head_epochs=2 >= max_epochs=2: the backbone"):
        DenseNetClassifier(**TINY_DN, head_epochs=2).fit(X, np.arange(24) % 2)


def test_2d_augmentation_on_signals_is_said():
    X = np.random.RandomState(0).rand(40, 32).astype(np.float32)
    with pytest.warns(UserWarning, match=r"\['rotation'\] do nothing on 1-D signals"):
        CNNClassifier(**{**TINY, "max_epochs": 1}, augment={"rotation": 10}).fit(X, Y8)


def test_out_of_memory_names_the_batch_size(monkeypatch):
    from skcnn._engine.net import TensorBatchNet

    def oom(self, *args, **kwargs):
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate "
            "memory: you tried to allocate 99999999999 bytes."
        )

    monkeypatch.setattr(TensorBatchNet, "partial_fit", oom)
    with pytest.raises(MemoryError, match="batch_size=32 on 8x8 images.*smaller batch"):
        CNNClassifier(**TINY).fit(X8, Y8)


def test_shift_profile_of_no_estimators():
    from skcnn.robustness import shift_profile

    with pytest.raises(ValueError, match="empty dict of estimators"):
        shift_profile({}, X8, Y8)


def test_round_four_messages_say_what_was_wrong_and_what_was_expected():
    clf = CNNClassifier(**TINY).fit(X8, Y8)
    # a gray model given a channel axis: in images, not scikit-learn's features
    with pytest.raises(ValueError, match=r"shape \(40, 1, 8, 8\) does not hold") as e:
        clf.predict(X8[:, None])
    assert "(n, H, W)" in str(e.value) and "In images" in str(e.value)
    # channels='none' given a channel axis
    V = np.random.RandomState(0).rand(12, 6, 6, 6).astype(np.float32)
    vol = CNNClassifier(**{**TINY, "max_epochs": 1}, channels="none").fit(
        V, np.arange(12) % 2
    )
    with pytest.raises(ValueError, match="channels='none' means X has no channel"):
        vol.predict(V[..., None])
    # class weights that leave nothing to learn, before any training
    with pytest.raises(ValueError, match="weight of 0: there is nothing to learn"):
        CNNClassifier(**TINY, class_weight=dict.fromkeys(range(4), 0)).fit(X8, Y8)
    with pytest.raises(ValueError, match="class_weight has invalid weights"):
        CNNClassifier(**TINY, class_weight={0: -1.0, 1: 1, 2: 1, 3: 1}).fit(X8, Y8)


def test_one_sample_batches_with_frozen_batch_norm_train():
    from skcnn import PretrainedClassifier

    X = np.random.RandomState(1).rand(12, 32, 32, 3).astype(np.float32)
    y = np.arange(12) % 2
    kw = dict(
        backbone="resnet18",
        weights=None,
        input_size=None,
        max_epochs=1,
        batch_size=1,
        head_init="random",
        validation_fraction=None,
        device="cpu",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        PretrainedClassifier(**kw, bn_statistics="frozen").fit(X, y)
    with pytest.raises(ValueError, match='or bn_statistics="frozen"') as e:
        PretrainedClassifier(**kw, bn_statistics="batch").fit(X, y)
    assert "batch_norm=False" not in str(e.value)
    with pytest.raises(ValueError, match="or batch_norm=False"):
        CNNClassifier(**{**TINY, "batch_size": 1}, batch_norm=True).fit(X8, Y8)
