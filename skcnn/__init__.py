"""skcnn: convolutional-network estimators for scikit-learn, trained with skorch."""

from ._cnn import CNNClassifier, CNNRegressor
from ._densenet import DenseNetClassifier
from ._feature_extraction import PretrainedFeatureExtractor
from ._persistence import load
from ._pretrained_classifier import PretrainedClassifier
from .augmentation import Augment

__version__ = "0.1.0"

__all__ = [
    "Augment",
    "CNNClassifier",
    "CNNRegressor",
    "DenseNetClassifier",
    "PretrainedClassifier",
    "PretrainedFeatureExtractor",
    "__version__",
    "load",
]
