import numpy as np
import pytest
from PIL import Image

from skcnn import CNNClassifier
from skcnn.datasets import load_digits_images, load_image_folder, load_lfw, make_shifted


@pytest.fixture
def image_folder(tmp_path):
    X, y = load_digits_images()
    for i in range(60):
        folder = tmp_path / f"class_{y[i]}"
        folder.mkdir(exist_ok=True)
        Image.fromarray(X[i]).save(folder / f"{i}.png")
    return tmp_path, X[:60], y[:60]


def test_folder_round_trip_eager_and_lazy(image_folder):
    root, X, y = image_folder
    Xf, yf = load_image_folder(root)
    assert Xf.shape == (60, 8, 8) and Xf.dtype == np.uint8
    assert sorted(map(str, yf)) == sorted(f"class_{c}" for c in y)
    # every stored image comes back bit for bit
    stored = {img.tobytes() for img in X}
    assert all(img.tobytes() in stored for img in Xf)
    paths, yl = load_image_folder(root, lazy=True)
    assert len(paths) == 60 and list(yl) == list(yf)
    resized, _ = load_image_folder(root, image_size=16)
    assert resized.shape == (60, 16, 16)


def test_lazy_source_fits_and_predicts(image_folder):
    root, _, _ = image_folder
    paths, y = load_image_folder(root, lazy=True)
    clf = CNNClassifier(
        conv_filters=(8,), dense_units=(16,), max_epochs=2, device="cpu", random_state=0
    )
    clf.fit(paths, y)
    assert clf.layout_.shape == (1, 8, 8)
    pred = clf.predict(paths)
    assert pred.shape == (60,) and set(pred) <= set(y)
    X, _ = load_image_folder(root)
    np.testing.assert_allclose(
        clf.predict_proba(X), clf.predict_proba(paths), atol=1e-6
    )


def test_bad_folder(tmp_path):
    with pytest.raises(ValueError, match="not a folder"):
        load_image_folder(tmp_path / "missing")
    with pytest.raises(ValueError, match="No images"):
        load_image_folder(tmp_path)


def test_lfw_and_shifted_copy():
    X, y = load_lfw()
    assert X.shape == (200, 25, 25) and set(y) == {0, 1}
    shifted = make_shifted(X[:10], random_state=0)
    assert shifted.shape == X[:10].shape and shifted.dtype == np.uint8
    assert not np.array_equal(shifted, X[:10])
    np.testing.assert_array_equal(shifted, make_shifted(X[:10], random_state=0))


def test_baselines_take_image_files(image_folder):
    from skcnn.baselines import HOGTransformer, ImageFlattener

    root, _, _ = image_folder
    paths, _ = load_image_folder(root, lazy=True)
    X, _ = load_image_folder(root)
    np.testing.assert_allclose(
        HOGTransformer().fit_transform(paths), HOGTransformer().fit_transform(X)
    )
    assert ImageFlattener().fit(paths).transform(paths[:3]).shape == (3, 64)
