import numpy as np
import pytest
from PIL import Image

from skcnn import CNNClassifier
from skcnn._data import ImagePaths
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


# -- image files: every problem named up front, with its path ---------------------
def _save(path, array, mode=None):
    from PIL import Image

    Image.fromarray(array, mode).save(path)
    return str(path)


def test_one_gray_file_does_not_turn_colour_images_gray(tmp_path):
    rng = np.random.default_rng(0)
    paths = [_save(tmp_path / "a_gray.png", rng.integers(0, 255, (8, 8), np.uint8))]
    paths += [
        _save(tmp_path / f"b{i}.png", rng.integers(0, 255, (8, 8, 3), np.uint8))
        for i in range(3)
    ]
    source = ImagePaths(paths)
    assert source.layout.shape == (3, 8, 8)
    colour = source.numpy()[1]
    from PIL import Image

    np.testing.assert_array_equal(
        colour.transpose(1, 2, 0), np.array(Image.open(paths[1]))
    )


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path):
    from PIL import Image

    wide = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(wide).save(path)
    got = ImagePaths([str(path)]).numpy()[0, 0]
    np.testing.assert_array_equal(got, np.round(wide / 257.0).astype(np.uint8))
    assert got.max() > 200  # 63000 / 257: not clipped to 255 for everything above 255


def test_different_sizes_are_announced(tmp_path):
    rng = np.random.default_rng(0)
    paths = [
        _save(tmp_path / "a.png", rng.integers(0, 255, (8, 8), np.uint8)),
        _save(tmp_path / "b.png", rng.integers(0, 255, (16, 12), np.uint8)),
    ]
    with pytest.warns(UserWarning, match="2 different sizes; all are resized to 8x8"):
        assert ImagePaths(paths).numpy().shape == (2, 1, 8, 8)


@pytest.mark.parametrize("problem", ["missing", "folder", "truncated", "not-an-image"])
def test_bad_files_are_named_before_any_work(tmp_path, problem):
    rng = np.random.default_rng(0)
    good = _save(tmp_path / "good.png", rng.integers(0, 255, (8, 8), np.uint8))
    bad = tmp_path / "bad.png"
    if problem == "folder":
        bad.mkdir()
    elif problem == "truncated":
        _save(bad, rng.integers(0, 255, (32, 32), np.uint8))
        bad.write_bytes(bad.read_bytes()[:-40])
    elif problem == "not-an-image":
        bad.write_text("hello")
    with pytest.raises(ValueError, match=str(bad)):
        ImagePaths([good, str(bad)])


def test_load_image_folder_skips_folders_named_like_images(tmp_path):
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        _save(tmp_path / c / "x.png", rng.integers(0, 255, (8, 8), np.uint8))
        (tmp_path / c / "not_an_image.png").mkdir()
    X, y = load_image_folder(tmp_path)
    assert X.shape == (2, 8, 8) and sorted(y) == ["a", "b"]
