import pickle

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import Pipeline
from torchvision.models import densenet121

from skcnn import PretrainedFeatureExtractor
from skcnn.pretrained import UnsafeWeightsError


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "densenet121.pth"
    torch.save(densenet121().state_dict(), path)
    return path


def test_densenet121_features(weights_file, small_digits):
    X, y = small_digits
    X = X[:60]
    fe = PretrainedFeatureExtractor(weights=weights_file, device="cpu").fit(X)
    F = fe.transform(X)
    assert F.shape == (60, 1024) and F.dtype == np.float32
    np.testing.assert_array_equal(F, fe.transform(X))  # deterministic
    F3 = PretrainedFeatureExtractor(weights=weights_file, device="cpu").fit_transform(
        np.repeat(X[..., None], 3, -1)
    )
    np.testing.assert_allclose(F, F3, atol=1e-4)  # gray is repeated to 3 channels
    assert fe.get_feature_names_out().shape == (1024,)


def test_pipeline_under_cross_val_score(weights_file, small_digits, tmp_path):
    X, y = small_digits
    pipe = Pipeline(
        [
            (
                "features",
                PretrainedFeatureExtractor(
                    weights=weights_file, device="cpu", memory=tmp_path
                ),
            ),
            ("clf", LogisticRegression(max_iter=300)),
        ]
    )
    scores = cross_val_score(pipe, X[:100], y[:100], cv=2)
    assert scores.mean() > 0.6  # random-weight features, chance is 0.1


def test_memory_cache_serves_repeats(weights_file, small_digits, tmp_path, monkeypatch):
    X, _ = small_digits
    fe = PretrainedFeatureExtractor(
        weights=weights_file, device="cpu", memory=tmp_path
    ).fit(X[:10])
    first = fe.transform(X[:10])
    calls = []
    monkeypatch.setattr(
        type(fe), "_transform_uncached", lambda self, X: calls.append(1)
    )
    np.testing.assert_array_equal(fe.transform(X[:10]), first)
    assert calls == []


def test_memory_cache_sees_a_changed_weight_file(small_digits, tmp_path):
    from torchvision.models import resnet18

    X, _ = small_digits
    path = tmp_path / "resnet18.pth"
    torch.manual_seed(0)
    state = resnet18().state_dict()
    torch.save(state, path)
    kwargs = dict(backbone="resnet18", weights=path, device="cpu", memory=tmp_path)
    first = PretrainedFeatureExtractor(**kwargs).fit(X[:6]).transform(X[:6])
    # The same file name, one weight changed deep inside (not in a sample of keys).
    state["layer4.1.bn2.bias"][0] += 1.0
    torch.save(state, path)
    second = PretrainedFeatureExtractor(**kwargs).fit(X[:6]).transform(X[:6])
    assert not np.array_equal(first, second)


@pytest.mark.parametrize(
    "backbone,n", [("resnet18", 512), ("mobilenet_v3_small", 1024)]
)
def test_other_backbones_and_layers(backbone, n, small_digits):
    X, _ = small_digits
    fe = PretrainedFeatureExtractor(backbone, weights=None, device="cpu").fit(X[:4])
    assert fe.transform(X[:4]).shape == (4, n)


def test_named_layer_and_pooling(weights_file, small_digits):
    X, _ = small_digits
    avg = PretrainedFeatureExtractor(
        weights=weights_file, layer="features.transition1", device="cpu"
    ).fit(X[:3])
    assert avg.transform(X[:3]).shape == (3, 128)
    flat = PretrainedFeatureExtractor(
        weights=weights_file,
        layer="features.transition1",
        pooling=None,
        input_size=None,
        device="cpu",
    ).fit(X[:3])
    assert (
        flat.transform(X[:3]).shape[1] == 128 * 4 * 4
    )  # 32 px -> stem /4 -> transition /2
    # "auto": 8 px digits with pretrained weights are enlarged to 96 px
    auto = PretrainedFeatureExtractor(
        weights=weights_file, layer="features.transition1", pooling=None, device="cpu"
    ).fit(X[:3])
    assert auto.transform(X[:3]).shape[1] == 128 * 12 * 12
    # negative ints count the table's stages from the end
    by_stage = PretrainedFeatureExtractor(
        weights=weights_file, layer=-4, pooling=None, input_size=None, device="cpu"
    ).fit(X[:3])
    np.testing.assert_array_equal(by_stage.transform(X[:3]), flat.transform(X[:3]))
    with pytest.raises(ValueError, match="has 4: use -1 ... -4"):
        PretrainedFeatureExtractor(weights=weights_file, layer=-5, device="cpu").fit(
            X[:3]
        )
    with pytest.raises(ValueError, match="not a module"):
        PretrainedFeatureExtractor(
            weights=weights_file, layer="nope", device="cpu"
        ).fit(X[:3])


def test_pickle_round_trip_and_gpu_model_on_cpu(small_digits):
    X = small_digits[0][:8]
    fe = PretrainedFeatureExtractor(
        "resnet18", weights=None, random_state=0, device="cpu"
    ).fit(X)
    F = fe.transform(X)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(fe)).transform(X), F)
    if torch.cuda.is_available():
        return
    # as if fitted on a GPU in fp16: here it runs on the CPU, in float32
    fe.device_ = "cuda:0"
    fe.set_params(precision="fp16")
    restored = pickle.loads(pickle.dumps(fe))
    assert restored.device_ == "cpu"
    np.testing.assert_array_equal(restored.transform(X), F)
    with pytest.raises(ValueError, match="needs a CUDA device"):
        PretrainedFeatureExtractor(
            "resnet18", weights=None, device="cpu", precision="fp16"
        ).fit(X)


def test_module_backbone():
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(4, 2),
    )
    fe = PretrainedFeatureExtractor(net, weights=None, device="cpu").fit(
        np.zeros((2, 8, 8, 3), np.uint8)
    )
    assert fe.transform(np.zeros((2, 8, 8, 3), np.uint8)).shape == (2, 4)


def test_unsafe_weights_refused(tmp_path, small_digits):
    import os

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'ran'}",))

    bad = tmp_path / "bad.pth"
    torch.save({"w": Evil()}, bad)
    X, y = small_digits
    with pytest.raises(UnsafeWeightsError):
        PretrainedFeatureExtractor(weights=bad, device="cpu").fit(X[:2])
    from skcnn import DenseNetClassifier

    with pytest.raises(UnsafeWeightsError):
        DenseNetClassifier(arch="densenet121", weights=bad, device="cpu").fit(
            X[:20], y[:20]
        )
    assert not (tmp_path / "ran").exists()


def _resnet_upto_layer3(model, x):
    x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    return model.layer3(model.layer2(model.layer1(x)))


def test_a_cut_is_a_traced_graph_not_a_hook(small_digits):
    """layer= cuts with torch.fx (torchvision's create_feature_extractor):
    no hook on the model, the same features as running it by hand up to the
    layer, the same after pickling and copying, and torch.export follows it."""
    import copy

    X, _ = small_digits
    fe = PretrainedFeatureExtractor(
        "resnet18", weights=None, layer=-2, input_size=None, device="cpu"
    ).fit(X[:4])
    module = fe.module_
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in module.modules())
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        by_hand = _resnet_upto_layer3(module.model, module.adapter(x)).mean((2, 3))
        torch.testing.assert_close(module(x), by_hand, rtol=0, atol=0)
        for other in (copy.deepcopy(module), pickle.loads(pickle.dumps(module))):
            torch.testing.assert_close(other(x), by_hand, rtol=0, atol=0)
        exported = torch.export.export(module, (x,), strict=False)
        torch.testing.assert_close(exported.module()(x), by_hand, rtol=1e-6, atol=1e-6)
    # the cut runs the graph of the model's mode; a frozen batch norm keeps its own
    module.train()
    module.model.bn1.eval()
    before = module.model.bn1.running_mean.clone()
    module(torch.rand(4, 1, 8, 8))
    torch.testing.assert_close(module.model.bn1.running_mean, before)
    assert module.model.layer1[0].bn1.training


def test_a_module_torch_fx_cannot_trace_gets_a_clear_error():
    from .conftest import Branchy

    X = np.zeros((2, 8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="torch.fx"):
        PretrainedFeatureExtractor(Branchy(), weights=None, layer="a").fit(X)
