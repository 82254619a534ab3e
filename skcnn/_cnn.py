"""CNNClassifier and CNNRegressor: conv nets as scikit-learn estimators."""

from __future__ import annotations

from torch import nn

from ._base import BaseNetEstimator, NetClassifierMixin, NetRegressorMixin
from ._validation import Int, Num, Sizes, StrOptions, SubclassOf
from .models.convnet import ACTIVATIONS, ConvNet

__all__ = ["CNNClassifier", "CNNRegressor"]

_CNN_PARAMETER_CONSTRAINTS = {
    "conv_filters": [Sizes(1)],
    "kernel_size": [Int(1), Sizes(1, nested=True, nonempty=True)],
    "pool_size": [Int(1), None, Sizes(1, none=True, nonempty=True)],
    "padding": [StrOptions({"same", "valid"})],
    "dense_units": [Sizes(1)],
    "dropout": [Num(0, 1, closed="left")],
    "batch_norm": ["boolean"],
    "activation": [
        StrOptions(set(ACTIVATIONS)),
        SubclassOf(nn.Module, "torch.nn.Module"),
    ],
    "global_pool": [StrOptions({"avg", "max"}), None],
}


# The architecture parameters of both CNN estimators' docstrings.
_CNN_PARAMETERS_DOC = """\
    conv_filters : tuple of int, default=(32, 64)
        Filters of each conv block (conv, batch norm, activation, max-pool).
    kernel_size : int or tuple, default=3
        Kernel size, one for all blocks or one per block.
    pool_size : int or tuple, default=2
        Max-pool size after each block (1 or None: no pooling); a map
        already smaller than the pool is not pooled.
    padding : {"same", "valid"}, default="same"
        "same" keeps each block's map size before pooling; "valid" shrinks it.
    dense_units : tuple of int, default=(128,)
        Hidden dense layers between the conv blocks and the output layer.
    dropout : float, default=0.25
        Dropout rate after each hidden dense layer.
    batch_norm : bool, default=True
        Batch normalisation after each convolution.
    activation : str, default="relu"
        "relu", "elu", "leaky_relu", "gelu", "selu", "silu", "tanh" or "sigmoid".
    global_pool : {None, "avg", "max"}, default=None
        None flattens the last feature map (as Keras ``Flatten``).
"""


class _CNNMixin:
    _parameter_constraints = _CNN_PARAMETER_CONSTRAINTS
    _takes_volumes = True  # 3-D convolutions for (C, D, H, W) samples

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.__doc__ = cls.__doc__.replace("    @cnn_parameters@\n", _CNN_PARAMETERS_DOC)

    def _build_module(self, layout, n_outputs, pretrained=None):
        return ConvNet(
            in_channels=layout.in_channels,
            input_size=layout.spatial,
            n_classes=n_outputs,
            conv_filters=self.conv_filters,
            kernel_size=self.kernel_size,
            pool_size=self.pool_size,
            padding=self.padding,
            dense_units=self.dense_units,
            dropout=self.dropout,
            batch_norm=self.batch_norm,
            activation=self.activation,
            global_pool=self.global_pool,
        )


class CNNClassifier(NetClassifierMixin, _CNNMixin, BaseNetEstimator):
    """Convolutional network classifier (binary, multiclass, multilabel).

    Binary targets get one sigmoid output and binary cross-entropy,
    multiclass targets softmax and cross-entropy, multilabel indicator
    matrices one sigmoid per label. Labels may be of any type.

    Parameters
    ----------
    @cnn_parameters@
    @shared_parameters@

    Attributes
    ----------
    classes_ : ndarray
    n_features_in_ : int
    layout_ : ImageLayout
        The ``(C, H, W)`` shape seen at fit (``(C, L)`` for 1-D signals,
        ``(C, D, H, W)`` for volumes).
    net_ : skorch.NeuralNet
        The trained skorch net; ``module_`` is its torch module.
    history_ : list of dict
        Per-epoch ``train_loss``, ``valid_loss``, ``train_acc``, ``valid_acc``, ``dur``.
    best_epoch_ : int
    n_iter_ : int

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skcnn import CNNClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = CNNClassifier(image_shape=(8, 8), max_epochs=2, random_state=0)
    >>> clf.fit(X[:200], y[:200]).predict(X[:3]).shape
    (3,)
    """

    def __init__(
        self,
        conv_filters=(32, 64),
        kernel_size=3,
        pool_size=2,
        padding="same",
        dense_units=(128,),
        dropout=0.25,
        batch_norm=True,
        activation="relu",
        global_pool=None,
        max_epochs=30,
        batch_size="auto",
        lr=3e-3,
        optimizer="adam",
        weight_decay=0.0,
        clip_grad_norm=None,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=6,
        tol=0.0,
        monitor="auto",
        augment=None,
        image_shape=None,
        channels="auto",
        device="auto",
        precision="auto",
        compile=False,
        random_state=None,
        verbose=0,
        warm_start=False,
        checkpoint_dir=None,
        num_workers=0,
        num_threads="auto",
        callbacks=None,
        progress=False,
        lr_schedule="onecycle",
        warmup_epochs=0,
        schedule_epochs=None,
        mixup=0.0,
        cutmix=0.0,
        tta=0,
        class_weight=None,
        label_smoothing=0.1,
        temperature=None,
    ):
        self._set_init_params(locals())


class CNNRegressor(NetRegressorMixin, _CNNMixin, BaseNetEstimator):
    """Convolutional network regressor (linear output, mean squared error).

    Parameters
    ----------
    @cnn_parameters@
    @shared_parameters@
    scale_target : bool, default=True
        Standardise the targets (per output: minus the mean, over the
        standard deviation of the training targets) for training and undo
        it in ``predict``, so targets of any scale train well. The losses in
        ``history_`` are then in standardised units.

    Attributes
    ----------
    n_outputs_ : int
    target_mean_, target_scale_ : ndarray of shape (n_outputs,)
        The standardisation of the targets (0 and 1 with ``scale_target=False``).
    n_features_in_ : int
    layout_ : ImageLayout
    net_ : skorch.NeuralNet
    history_ : list of dict
    """

    _parameter_constraints = {
        **_CNN_PARAMETER_CONSTRAINTS,
        "scale_target": ["boolean"],
    }

    def __init__(
        self,
        conv_filters=(32, 64),
        kernel_size=3,
        pool_size=2,
        padding="same",
        dense_units=(128,),
        dropout=0.25,
        batch_norm=True,
        activation="relu",
        global_pool=None,
        max_epochs=40,
        batch_size="auto",
        lr=1e-3,
        optimizer="adam",
        weight_decay=0.0,
        clip_grad_norm=None,
        early_stopping=True,
        validation_fraction=0.1,
        n_iter_no_change=6,
        tol=0.0,
        monitor="auto",
        augment=None,
        image_shape=None,
        channels="auto",
        device="auto",
        precision="auto",
        compile=False,
        random_state=None,
        verbose=0,
        warm_start=False,
        checkpoint_dir=None,
        num_workers=0,
        num_threads="auto",
        callbacks=None,
        progress=False,
        lr_schedule=None,
        warmup_epochs=0,
        schedule_epochs=None,
        mixup=0.0,
        cutmix=0.0,
        tta=0,
        scale_target=True,
    ):
        self._set_init_params(locals())
