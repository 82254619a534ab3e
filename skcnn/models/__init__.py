"""PyTorch networks behind the skcnn estimators."""

from .adapter import InputAdapter
from .backbone import FeatureBackbone
from .convnet import ConvNet
from .densenet import DenseNetModule
from .finetune import PretrainedNet

__all__ = [
    "ConvNet",
    "DenseNetModule",
    "FeatureBackbone",
    "InputAdapter",
    "PretrainedNet",
]
