"""PyTorch networks behind the skcnn estimators."""

from .convnet import ConvNet
from .adapter import InputAdapter
from .densenet import DenseNetModule

__all__ = ["ConvNet", "DenseNetModule", "InputAdapter"]
