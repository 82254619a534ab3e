import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.svm import SVC

from skcnn.baselines import (
    AddNoise,
    ColorHistogram,
    HOGTransformer,
    ImageFlattener,
    ImageResizer,
)


def test_hog_svm_grid_search_on_digits(digits_uint8):
    Xtr, Xte, ytr, yte = digits_uint8
    grid = GridSearchCV(
        make_pipeline(HOGTransformer(pixels_per_cell=(2, 2)), SVC()),
        {"svc__C": [1, 10]},
        cv=3,
    )
    grid.fit(Xtr, ytr)
    assert grid.score(Xte, yte) >= 0.9


def test_hog_matches_skimage_and_converts_colour():
    from skimage.feature import hog

    rng = np.random.RandomState(0)
    gray = rng.rand(3, 16, 16).astype(np.float32)
    ours = HOGTransformer(pixels_per_cell=(4, 4)).fit_transform(gray)
    ref = hog(
        gray[0],
        orientations=9,
        pixels_per_cell=(4, 4),
        cells_per_block=(2, 2),
        block_norm="L2-Hys",
    )
    np.testing.assert_allclose(ours[0], ref, rtol=1e-5, atol=1e-6)
    rgb = np.repeat(gray[..., None], 3, -1)
    np.testing.assert_allclose(
        HOGTransformer(pixels_per_cell=(4, 4)).fit_transform(rgb), ours, atol=1e-5
    )
    assert HOGTransformer(input_size=(8, 8)).fit_transform(gray).shape[0] == 3


def test_hog_parallel_equals_serial():
    X = np.random.RandomState(0).rand(300, 8, 8)
    np.testing.assert_allclose(
        HOGTransformer(n_jobs=2).fit_transform(X), HOGTransformer().fit_transform(X)
    )


def test_color_histogram():
    X = np.zeros((2, 4, 4, 3), np.uint8)
    X[1, ..., 0] = 255
    H = ColorHistogram(bins=4).fit_transform(X)
    assert H.shape == (2, 12)
    np.testing.assert_allclose(H.reshape(2, 3, 4).sum(-1), 1)
    assert H[0, 0] == 1 and H[1, 3] == 1 and H[1, 4] == 1


def test_flattener_and_resizer_layouts():
    X = np.arange(2 * 8 * 8 * 3, dtype=np.uint8).reshape(2, 8, 8, 3)
    flat = ImageFlattener().fit(X)
    assert flat.transform(X).shape == (2, 192) and flat.transform(X).max() <= 1
    assert flat.get_feature_names_out().shape == (192,)
    np.testing.assert_allclose(
        ImageFlattener().fit_transform(X.transpose(0, 3, 1, 2)), flat.transform(X)
    )
    assert ImageResizer((4, 4)).fit_transform(X).shape == (2, 4, 4, 3)
    assert ImageResizer((4, 4), flatten=True).fit_transform(X).shape == (2, 48)
    with pytest.raises(ValueError, match="fitted on"):
        flat.transform(np.zeros((2, 8, 8), np.uint8))


def test_add_noise_only_on_training_rows():
    X = np.full((5, 8, 8), 0.5)
    noise = AddNoise(std=0.1, random_state=0)
    noisy = noise.fit_transform(X)
    assert not np.allclose(noisy, X)
    np.testing.assert_array_equal(noise.transform(X), X)
    u8 = AddNoise(std=0.1, random_state=0).fit_transform(
        np.full((2, 4, 4), 250, np.uint8)
    )
    assert u8.dtype == np.uint8 and u8.max() <= 255


def test_default_hog_is_a_strong_baseline_on_tiny_images():
    """Cells chosen from the image size: digits (8x8) are enlarged to 32 px and
    cut into 8 px cells, so a user's plain pipeline is as strong as a tuned one."""
    import warnings

    from sklearn.datasets import load_digits
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import SVC

    d = load_digits()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # floats 0-16
        scores = cross_val_score(
            make_pipeline(HOGTransformer(), SVC()), d.images, d.target, cv=3
        )
    assert scores.mean() >= 0.95
    hog = HOGTransformer().fit(d.images[:5])
    assert hog.input_size_ == (32, 32) and hog.pixels_per_cell_ == (8, 8)
    assert HOGTransformer(pixels_per_cell=(4, 4)).fit(d.images[:5]).input_size_ is None
