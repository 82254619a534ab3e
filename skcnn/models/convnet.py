"""A plain conv net built from conv / batch-norm / activation / pool blocks.

1-D, 2-D or 3-D (Keras' ``Conv1D`` / ``Conv2D`` / ``Conv3D``) by the number
of spatial dimensions of the input.

Expresses the classic Keras ``Sequential`` image nets: the conv part
is ``features`` (one block per entry of ``conv_filters``), then a dense
``head`` and a ``classifier`` layer, so parameter counts match Keras'.
"""

from __future__ import annotations

import math

from torch import nn

__all__ = ["ACTIVATIONS", "ConvNet", "make_activation"]

ACTIVATIONS = {
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "selu": nn.SELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}


def make_activation(activation):
    """A new activation module from a name of ``ACTIVATIONS`` or an
    ``nn.Module`` class (one instance per layer)."""
    if isinstance(activation, str):
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(ACTIVATIONS)} or an nn.Module class; "
                f"got {activation!r}."
            )
        return ACTIVATIONS[activation]()
    if isinstance(activation, type) and issubclass(activation, nn.Module):
        return activation()
    raise TypeError(
        f"activation must be a name or an nn.Module class; got {activation!r}."
    )


# conv, max-pool, batch norm per number of spatial dimensions
_LAYERS = {
    1: (nn.Conv1d, nn.MaxPool1d, nn.BatchNorm1d),
    2: (nn.Conv2d, nn.MaxPool2d, nn.BatchNorm2d),
    3: (nn.Conv3d, nn.MaxPool3d, nn.BatchNorm3d),
}
_GLOBAL_POOLS = {
    ("avg", 1): nn.AdaptiveAvgPool1d,
    ("avg", 2): nn.AdaptiveAvgPool2d,
    ("avg", 3): nn.AdaptiveAvgPool3d,
    ("max", 1): nn.AdaptiveMaxPool1d,
    ("max", 2): nn.AdaptiveMaxPool2d,
    ("max", 3): nn.AdaptiveMaxPool3d,
}


def _per_block(value, n, name):
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(
                f"{name} has {len(value)} entries but conv_filters has {n}."
            )
        return list(value)
    return [value] * n


class ConvNet(nn.Module):
    """Conv blocks, then dense layers, then a linear output layer.

    Parameters
    ----------
    in_channels : int
    input_size : tuple of int
        ``(H, W)`` for 2-D convolutions, ``(L,)`` for 1-D ones and
        ``(D, H, W)`` for 3-D ones (volumes).
    n_classes : int
        Number of outputs of the last layer.
    conv_filters : tuple of int, default=(32, 64)
    kernel_size : int or tuple, default=3
        One value, or one per block.
    pool_size : int or tuple, default=2
        Max-pooling after each block; 1 or None skips it. A block whose map is
        already smaller than the pool is not pooled.
    padding : {"same", "valid"}, default="same"
    dense_units : tuple of int, default=(128,)
    dropout : float, default=0.0
        Dropout after each hidden dense layer (before the output layer when
        there is none).
    batch_norm : bool, default=True
        Batch normalisation after each convolution.
    activation : str or nn.Module class, default="relu"
    global_pool : {None, "avg", "max"}, default=None
        None flattens the last map (as Keras ``Flatten``).
    """

    def __init__(
        self,
        in_channels,
        input_size,
        n_classes,
        conv_filters=(32, 64),
        kernel_size=3,
        pool_size=2,
        padding="same",
        dense_units=(128,),
        dropout=0.0,
        batch_norm=True,
        activation="relu",
        global_pool=None,
    ):
        super().__init__()
        ndim = len(input_size)
        if ndim not in (1, 2, 3):
            raise ValueError(
                f"input_size must be (L,), (H, W) or (D, H, W); got {input_size!r}."
            )
        if padding not in ("same", "valid"):
            raise ValueError(f"padding must be 'same' or 'valid'; got {padding!r}.")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1); got {dropout!r}.")
        conv, pool, norm = _LAYERS[ndim]
        conv_filters = tuple(int(f) for f in conv_filters)
        kernels = _per_block(kernel_size, len(conv_filters), "kernel_size")
        pools = _per_block(pool_size, len(conv_filters), "pool_size")

        size = list(input_size)
        channels = in_channels
        blocks = []
        for filters, k, p in zip(conv_filters, kernels, pools):
            ks = (k,) * ndim if isinstance(k, int) else tuple(k)
            layers = [conv(channels, filters, ks, padding=padding, bias=not batch_norm)]
            if padding == "valid":
                size = [s - kk + 1 for s, kk in zip(size, ks)]
                if min(size) < 1:
                    raise ValueError(
                        f"Input of size {tuple(input_size)} is too small for {len(conv_filters)} "
                        "'valid' conv blocks; use padding='same' or fewer blocks."
                    )
            if batch_norm:
                layers.append(norm(filters))
            layers.append(make_activation(activation))
            if p and p > 1 and min(size) >= p:
                layers.append(pool(p))
                size = [s // p for s in size]
            blocks.append(nn.Sequential(*layers))
            channels = filters
        self.features = nn.Sequential(*blocks)

        if global_pool is None:
            self.pool = nn.Flatten()
            width = channels * math.prod(size)
        elif global_pool in ("avg", "max"):
            adaptive = _GLOBAL_POOLS[(global_pool, ndim)]
            self.pool = nn.Sequential(adaptive(1), nn.Flatten())
            width = channels
        else:
            raise ValueError(
                f"global_pool must be None, 'avg' or 'max'; got {global_pool!r}."
            )

        head = []
        for units in dense_units:
            head += [nn.Linear(width, int(units)), make_activation(activation)]
            if dropout:
                head.append(nn.Dropout(dropout))
            width = int(units)
        if not dense_units and dropout:
            head.append(nn.Dropout(dropout))
        self.head = nn.Sequential(*head)
        self.num_features = width
        self.classifier = nn.Linear(width, n_classes)

    def forward_features(self, x):
        return self.pool(self.features(x))

    def forward_head(self, x, pre_logits=False):
        x = self.head(x)
        return x if pre_logits else self.classifier(x)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, n_classes):
        self.classifier = nn.Linear(self.num_features, n_classes)
