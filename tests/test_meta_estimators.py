"""Images in scikit-learn's meta-estimators: the flattened-input +
``image_shape`` route, and data-frame output of the image transformers."""

import numpy as np
import pytest
from sklearn.ensemble import BaggingClassifier, StackingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.semi_supervised import SelfTrainingClassifier
from sklearn.svm import SVC

from skcnn import CNNClassifier
from skcnn.baselines import AddNoise, HOGTransformer, ImageResizer

from .conftest import TINY


@pytest.fixture(scope="module")
def flat_digits(small_digits, heldout_digits):
    # meta-estimators that check X as a 2-D table get flat rows; the networks
    # and HOG read them back as 8x8 images through image_shape
    X, y = small_digits
    Xt, yt = heldout_digits
    return X.reshape(len(X), -1), y, Xt[:200].reshape(200, -1), yt[:200]


def cnn():
    return CNNClassifier(**{**TINY, "max_epochs": 8}, image_shape=(8, 8))


def test_bagging(flat_digits):
    X, y, Xt, yt = flat_digits
    bag = BaggingClassifier(cnn(), n_estimators=3, random_state=0).fit(X, y)
    assert bag.score(Xt, yt) > 0.7


def test_self_training(flat_digits):
    X, y, Xt, yt = flat_digits
    partial = y.copy()
    partial[100:] = -1  # two thirds unlabelled
    st = SelfTrainingClassifier(cnn(), criterion="k_best", k_best=50, max_iter=2)
    st.fit(X, partial)
    assert st.score(Xt, yt) > 0.4  # 100 labels, a tiny net: chance is 0.1
    assert (st.transduction_ != -1).sum() > 100  # it labelled some rows itself


def test_stacking_with_passthrough(flat_digits):
    X, y, Xt, yt = flat_digits
    stack = StackingClassifier(
        [
            ("cnn", cnn()),
            ("hog", make_pipeline(HOGTransformer(image_shape=(8, 8)), SVC())),
        ],
        final_estimator=LogisticRegression(max_iter=500),
        passthrough=True,
        cv=2,
    ).fit(X, y)
    assert stack.score(Xt, yt) > 0.7


def test_image_outputs_become_flat_frames(small_digits):
    pd = pytest.importorskip("pandas")
    X, _ = small_digits
    resizer = ImageResizer(16, flatten=False).set_output(transform="pandas")
    frame = resizer.fit_transform(X[:10])
    assert isinstance(frame, pd.DataFrame) and frame.shape == (10, 256)
    assert list(frame.columns) == list(resizer.get_feature_names_out())
    images = ImageResizer(16, flatten=False).fit_transform(X[:10])
    np.testing.assert_array_equal(frame.to_numpy(), images.reshape(10, -1))
    noise = AddNoise(random_state=0).set_output(transform="pandas")
    frame = noise.fit_transform(X[:10])
    assert frame.shape == (10, 64) and list(frame.columns)[:2] == ["x0", "x1"]
    # 2-D frames keep their column names
    named = pd.DataFrame(X[:10].reshape(10, -1), columns=[f"p{i}" for i in range(64)])
    assert list(noise.fit(named).get_feature_names_out())[:2] == ["p0", "p1"]
    # without set_output, images stay images
    assert AddNoise().fit_transform(X[:10]).shape == (10, 8, 8)
