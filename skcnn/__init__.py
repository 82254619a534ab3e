"""skcnn: convolutional-network estimators for scikit-learn, trained with skorch."""

import importlib

__version__ = "0.3.0"

# Imported on first use (PEP 562), so that `skcnn --help` and submodules
# that need no network (skcnn.cli) do not import torch.
_LAZY = {
    "Augment": ".augmentation",
    "CNNClassifier": "._cnn",
    "CNNRegressor": "._cnn",
    "DenseNetClassifier": "._densenet",
    "PretrainedClassifier": "._pretrained_classifier",
    "PretrainedFeatureExtractor": "._feature_extraction",
    "load": "._bundle",
    "save": "._bundle",
}

__all__ = [*sorted(_LAZY), "__version__"]


def __getattr__(name):
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name], __name__)
        value = getattr(
            module, {"save": "save_any", "load": "load_any"}.get(name, name)
        )
        globals()[name] = value
        return value
    raise AttributeError(f"module 'skcnn' has no attribute {name!r}")


def __dir__():
    return __all__
