import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV
from torchvision.models import densenet121

from skcnn import DenseNetClassifier

from .conftest import TINY_DN


@pytest.fixture(scope="module")
def densenet121_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "densenet121.pth"
    state = densenet121().state_dict()
    torch.save(state, path)
    return path, state


@pytest.mark.slow
def test_small_densenet_digits_accuracy(digits_uint8):
    Xtr, Xte, ytr, yte = digits_uint8
    clf = DenseNetClassifier(
        growth_rate=12, block_config=(4, 4, 4), num_init_features=24, random_state=0
    )
    assert clf.fit(Xtr, ytr).score(Xte, yte) >= 0.97


def test_small_stem_keeps_small_images(small_digits):
    X, y = small_digits
    clf = DenseNetClassifier(**TINY_DN).fit(X, y)
    conv0 = clf.module_.body.features.conv0
    assert conv0.kernel_size == (3, 3) and conv0.stride == (1, 1)
    assert isinstance(clf.module_.body.features.pool0, torch.nn.Identity)
    assert conv0.in_channels == 1  # from scratch: the images' own channels
    assert clf.predict(X).shape == (len(X),)


def test_named_arch_is_torchvisions():
    from skcnn.models.densenet import make_densenet

    ours = make_densenet("densenet121")
    ref = densenet121()
    assert sum(p.numel() for p in ours.parameters()) == sum(
        p.numel() for p in ref.parameters()
    )


@pytest.mark.parametrize("channels", [1, 3])
def test_pretrained_finetune_depths(densenet121_file, small_digits, channels):
    path, state = densenet121_file
    X, y = small_digits
    X, y = X[:40], y[:40]
    if channels == 3:
        X = np.repeat(X[..., None], 3, axis=-1)
    counts = []
    for depth in [0, 1, 2, "all"]:
        clf = DenseNetClassifier(
            arch="densenet121",
            weights=path,
            finetune_depth=depth,
            input_size=32,
            max_epochs=1,
            validation_fraction=0,
            device="cpu",
            random_state=0,
        ).fit(X, y)
        n_classes = len(clf.classes_)
        trainable = sum(p.numel() for p in clf.module_.parameters() if p.requires_grad)
        counts.append(trainable)
        if depth == 0:
            assert trainable == 1024 * n_classes + n_classes
        # frozen parameters and frozen batch-norm statistics equal the file's
        module_state = clf.module_.state_dict()
        frozen = {n for n, p in clf.module_.named_parameters() if not p.requires_grad}
        for name in frozen:
            # the file's names are the DenseNet's own; the module keeps it as "body"
            assert torch.equal(module_state[name], state[name.removeprefix("body.")]), (
                name
            )
        if depth == 0:
            assert torch.equal(
                module_state["body.features.norm0.running_mean"],
                state["features.norm0.running_mean"],
            )
    assert counts == sorted(counts) and len(set(counts)) == 4


def test_head_epochs_then_unfreeze_and_lr_scale(densenet121_file, small_digits):
    path, state = densenet121_file
    X, y = small_digits
    clf = DenseNetClassifier(
        arch="densenet121",
        weights=path,
        finetune_depth=1,
        head_epochs=1,
        max_epochs=2,
        backbone_lr_scale=0.1,
        lr=1e-3,
        input_size=32,
        validation_fraction=0,
        device="cpu",
        random_state=0,
    ).fit(X[:40], y[:40])
    mod = clf.module_
    assert all(p.requires_grad for p in mod.body.features.denseblock4.parameters())
    assert not any(p.requires_grad for p in mod.body.features.denseblock3.parameters())
    # denseblock4 trained in epoch 2 only
    assert not torch.equal(
        mod.state_dict()["body.features.denseblock4.denselayer1.conv1.weight"],
        state["features.denseblock4.denselayer1.conv1.weight"],
    )
    lrs = sorted(g["lr"] for g in clf.net_.optimizer_.param_groups)
    assert lrs == pytest.approx([1e-4, 1e-3])


def test_legacy_and_safetensors_weights(densenet121_file, small_digits, tmp_path):
    from safetensors.torch import save_file

    from skcnn.pretrained import remap_legacy_keys, resolve_weights

    path, state = densenet121_file
    # Files from before torchvision 0.2 name layers "norm.1" and have no step counters.
    legacy = {
        (
            k.replace("norm1", "norm.1").replace("conv1", "conv.1")
            if "denselayer" in k
            else k
        ): v
        for k, v in state.items()
        if not k.endswith("num_batches_tracked")
    }
    assert any("norm.1" in k for k in legacy)
    assert set(remap_legacy_keys(legacy)) == {
        k for k in state if not k.endswith("num_batches_tracked")
    }
    X, y = small_digits
    DenseNetClassifier(
        arch="densenet121",
        weights=legacy,
        finetune_depth=0,
        input_size=32,
        max_epochs=1,
        device="cpu",
    ).fit(X[:20], y[:20])
    st = tmp_path / "d.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(st))
    resolved = resolve_weights("densenet121", st)
    assert torch.equal(
        resolved.state_dict["features.conv0.weight"], state["features.conv0.weight"]
    )
    X, y = small_digits
    DenseNetClassifier(
        arch="densenet121",
        weights=st,
        finetune_depth=0,
        input_size=32,
        max_epochs=1,
        device="cpu",
    ).fit(X[:20], y[:20])


def _trainable(module):
    return {n for n, p in module.named_parameters() if p.requires_grad}


def test_grid_search_over_finetuning_params(densenet121_file, small_digits):
    X, y = small_digits
    base = DenseNetClassifier(
        arch="densenet121",
        weights=str(densenet121_file[0]),
        input_size=32,
        max_epochs=2,
        device="cpu",
        random_state=0,
    )
    grid = GridSearchCV(
        base,
        {"finetune_depth": [0, 1], "head_epochs": [0, 1], "backbone_lr_scale": [0.1]},
        cv=2,
    ).fit(X[:60], y[:60])
    assert len(grid.cv_results_["params"]) == 4
    assert np.isfinite(grid.cv_results_["mean_test_score"]).all()
    # Each candidate trains what its parameters say: refit the two depths.
    trainable = {
        depth: _trainable(
            base.set_params(finetune_depth=depth, head_epochs=1)
            .fit(X[:60], y[:60])
            .module_
        )
        for depth in (0, 1)
    }
    assert trainable[0] == {"classifier.weight", "classifier.bias"}
    assert trainable[0] < trainable[1]
    assert all(
        n.startswith(
            ("classifier.", "body.features.denseblock4", "body.features.norm5")
        )
        for n in trainable[1]
    )
    best = grid.best_estimator_
    assert _trainable(best.module_) == trainable[best.finetune_depth]


def test_finetune_depth_beyond_the_blocks_trains_them_all(small_digits):
    """A depth beyond the dense blocks there are trains them all, and
    says so (issue 25: a grid over depths must not crash on a shallow net)."""
    X, y = small_digits
    clf = DenseNetClassifier(**TINY_DN, finetune_depth=5).fit(X, y)
    assert clf.finetune_depth_ == len(TINY_DN["block_config"])
    # negative: the first blocks (surgical, issue 36), at most all of them
    first = DenseNetClassifier(**TINY_DN, finetune_depth=-5).fit(X, y)
    assert first.finetune_depth_ == -len(TINY_DN["block_config"])
    with pytest.raises(ValueError, match="finetune_depth"):
        DenseNetClassifier(**TINY_DN, finetune_depth="first").fit(X, y)


# -- one fine-tuning stack (issue 24 step 4) ---------------------------------------
def test_pretrained_densenet_is_pretrained_classifier(densenet121_file, small_digits):
    """A named DenseNet with weights and PretrainedClassifier on the same
    architecture and weights are one implementation: the same module, the
    same parameter names and, from the same seed, the same predictions."""
    from skcnn import PretrainedClassifier
    from skcnn.models.finetune import PretrainedNet

    path, _ = densenet121_file
    X, y = small_digits[0][:40], small_digits[1][:40]
    common = dict(
        weights=path,
        # PretrainedClassifier's defaults differ since 0.3 (issue 25)
        layer=None,
        head_init="random",
        bn_statistics="batch",
        lr=1e-3,
        finetune_depth=1,
        head_epochs=1,
        backbone_lr_scale=0.1,
        input_size=32,
        max_epochs=2,
        validation_fraction=0,
        device="cpu",
        random_state=0,
    )
    dense = DenseNetClassifier(arch="densenet121", **common).fit(X, y)
    other = PretrainedClassifier("densenet121", **common).fit(X, y)
    assert type(dense.module_) is type(other.module_) is PretrainedNet
    assert dense.module_.stage_starts() == other.module_.stage_starts()
    assert list(dense.module_.state_dict()) == list(other.module_.state_dict())
    assert _trainable(dense.module_) == _trainable(other.module_)
    np.testing.assert_allclose(
        dense.predict_proba(X[:10]), other.predict_proba(X[:10]), atol=1e-6
    )


def test_densenet_options_reach_the_pretrained_network(densenet121_file):
    path, _ = densenet121_file
    clf = DenseNetClassifier(
        arch="densenet121", weights=path, dropout=0.25, memory_efficient=True
    )
    layer = clf._resolve_pretrained().model.features.denseblock1.denselayer1
    assert layer.drop_rate == 0.25 and layer.memory_efficient


def test_weights_without_or_with_another_head_load(densenet121_file, small_digits):
    """The old classifier is never loaded: a features-only file and a file
    fine-tuned for 10 classes both start the same backbone."""
    path, state = densenet121_file
    X, y = small_digits[0][:30], small_digits[1][:30]
    features_only = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    ten_classes = {
        **state,
        "classifier.weight": torch.zeros(10, 1024),
        "classifier.bias": torch.zeros(10),
    }
    for weights in (features_only, ten_classes):
        clf = DenseNetClassifier(
            arch="densenet121", weights=weights, finetune_depth=0, input_size=32,
            max_epochs=1, device="cpu", random_state=0,
        ).fit(X, y)  # fmt: skip
        assert torch.equal(
            clf.module_.state_dict()["body.features.conv0.weight"],
            state["features.conv0.weight"],
        )


def test_files_of_skcnn_0_2_load(small_digits, tmp_path):
    """skcnn 0.2 kept a DenseNet's features at the top of its module; such a
    file loads into the shared stack with the same predictions."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    import skcnn

    X, y = small_digits
    clf = DenseNetClassifier(**TINY_DN).fit(X, y)
    new = clf.save(tmp_path / "new.skcnn")
    with safe_open(str(new), framework="pt") as f:
        meta = f.metadata()
        old_state = {k.removeprefix("body."): f.get_tensor(k) for k in f.keys()}
    assert any(k.startswith("features.") for k in old_state)
    old = tmp_path / "old.skcnn"
    save_file(old_state, str(old), metadata=meta)
    np.testing.assert_array_equal(
        skcnn.load(old).predict_proba(X), clf.predict_proba(X)
    )


def test_densenet_module_is_deprecated_but_works():
    from torchvision.models import DenseNet

    from skcnn.models import DenseNetModule

    with pytest.warns(FutureWarning, match="DenseNetModule is deprecated"):
        module = DenseNetModule(DenseNet(8, (2, 2), 16), n_classes=3)
    assert module(torch.zeros(2, 3, 32, 32)).shape == (2, 3)
    assert module.stage_starts() == [
        "body.features.denseblock1",
        "body.features.denseblock2",
    ]
