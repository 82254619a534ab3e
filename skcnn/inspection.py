"""Looking inside fitted networks: summary, kernels, feature maps, saliency, plots.

Every function takes a fitted skcnn network estimator (CNNClassifier,
CNNRegressor, DenseNetClassifier). Plots import matplotlib lazily and return
their Figure.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted
from torch import nn

from ._data import prepare_images, to_float_tensor

__all__ = [
    "Summary",
    "conv_kernels",
    "feature_maps",
    "plot_feature_maps",
    "plot_kernels",
    "plot_learning_curves",
    "plot_saliency",
    "saliency",
    "summary",
]

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _module(estimator):
    check_is_fitted(estimator, "net_")
    return estimator.module_


def _inputs(estimator, X):
    data, _, _ = prepare_images(estimator, X, reset=False)
    device = next(_module(estimator).parameters()).device
    return to_float_tensor(torch.as_tensor(data.numpy()).to(device))


def _own_counts(module):
    trainable = sum(
        p.numel() for p in module.parameters(recurse=False) if p.requires_grad
    )
    frozen = sum(
        p.numel() for p in module.parameters(recurse=False) if not p.requires_grad
    )
    if (
        isinstance(module, nn.modules.batchnorm._BatchNorm)
        and module.running_mean is not None
    ):
        # Keras counts the moving mean and variance as non-trainable parameters.
        frozen += module.running_mean.numel() + module.running_var.numel()
    return trainable, frozen


@dataclass
class Summary:
    """A Keras-style model summary. ``str()`` prints the table."""

    rows: list = field(default_factory=list)  # (name, type, output shape, params)
    trainable_params: int = 0
    non_trainable_params: int = 0

    @property
    def total_params(self):
        return self.trainable_params + self.non_trainable_params

    def __str__(self):
        header = ("Layer (type)", "Output Shape", "Param #")
        lines = [(f"{n} ({t})", str(s), f"{p:,}") for n, t, s, p in self.rows]
        w0 = max([len(header[0])] + [len(a) for a, _, _ in lines])
        w1 = max([len(header[1])] + [len(b) for _, b, _ in lines])
        rule = "=" * (w0 + w1 + 16)
        out = [f"{header[0]:<{w0}}  {header[1]:<{w1}}  {header[2]:>10}", rule]
        out += [f"{a:<{w0}}  {b:<{w1}}  {c:>10}" for a, b, c in lines]
        out += [
            rule,
            f"Total params: {self.total_params:,}",
            f"Trainable params: {self.trainable_params:,}",
            f"Non-trainable params: {self.non_trainable_params:,}",
        ]
        return "\n".join(out)

    def _repr_pretty_(self, p, cycle):  # pragma: no cover - IPython display
        p.text(str(self))


def summary(estimator):
    """Layers with output shapes and parameter counts, counted as Keras does.

    Parameters
    ----------
    estimator : fitted CNNClassifier, CNNRegressor or DenseNetClassifier
        The network to look into.

    Returns
    -------
    summary : Summary
        Rows and totals; ``print(summary)`` shows the table.

    Examples
    --------
    >>> import numpy as np
    >>> from skcnn import CNNClassifier
    >>> X, y = np.random.rand(20, 28, 28), np.arange(20) % 10
    >>> clf = CNNClassifier(conv_filters=(32, 32), padding="valid", batch_norm=False,
    ...                     dense_units=(64,), dropout=0, max_epochs=1).fit(X, y)
    >>> summary(clf).total_params
    61482
    """
    module = _module(estimator)
    layout = estimator.layout_
    leaves = [(n, m) for n, m in module.named_modules() if not list(m.children())]
    shapes = {}
    hooks = [
        m.register_forward_hook(
            lambda mod, i, o, name=n: shapes.__setitem__(name, tuple(o.shape[1:]))
        )
        for n, m in leaves
    ]
    device = next(module.parameters()).device
    was_training = module.training
    module.eval()
    try:
        with torch.inference_mode():
            module(torch.zeros((1, *layout.shape), device=device))
    finally:
        for h in hooks:
            h.remove()
        module.train(was_training)
    result = Summary()
    for name, m in leaves:
        trainable, frozen = _own_counts(m)
        result.trainable_params += trainable
        result.non_trainable_params += frozen
        if name in shapes or trainable or frozen:
            shape = shapes.get(name)
            result.rows.append(
                (
                    name,
                    type(m).__name__,
                    (None, *shape) if shape else "-",
                    trainable + frozen,
                )
            )
    return result


def _conv_layers(module):
    return [(n, m) for n, m in module.named_modules() if isinstance(m, _CONV)]


def _find_layer(module, layer):
    if isinstance(layer, str):
        named = dict(module.named_modules())
        if layer not in named:
            raise ValueError(
                f"No module named {layer!r}; conv layers are {[n for n, _ in _conv_layers(module)]}."
            )
        return layer, named[layer]
    convs = _conv_layers(module)
    if not -len(convs) <= int(layer) < len(convs):
        raise ValueError(
            f"layer={layer!r} is out of range: the network has {len(convs)} conv layers."
        )
    return convs[int(layer)]


def conv_kernels(estimator, layer=0):
    """Weights of a conv layer.

    Parameters
    ----------
    estimator : fitted CNNClassifier, CNNRegressor or DenseNetClassifier
        The network to look into.
    layer : int or str, default=0
        Index among the conv layers (negative from the end) or module name.

    Returns
    -------
    kernels : ndarray
        ``(filters, in_channels, kh, kw)``; ``(filters, in_channels, k)`` 1-D,
        ``(filters, in_channels, kd, kh, kw)`` 3-D (volumes).
    """
    _, conv = _find_layer(_module(estimator), layer)
    if not isinstance(conv, _CONV):
        raise ValueError(
            f"Layer {layer!r} is a {type(conv).__name__}, not a convolution."
        )
    return conv.weight.detach().float().cpu().numpy()


def feature_maps(estimator, X, layer=0):
    """Output of a layer for images ``X``.

    Parameters
    ----------
    estimator : fitted CNNClassifier, CNNRegressor or DenseNetClassifier
        The network to look into.
    X : array-like
        Images with the layout seen at fit.
    layer : int or str, default=0
        Index among the conv layers (negative from the end) or module name.

    Returns
    -------
    maps : ndarray
        ``(n, filters, H', W')`` (``(n, filters, L')`` for 1-D signals,
        ``(n, filters, D', H', W')`` for volumes; the plots show the middle
        depth slice).
    """
    module = _module(estimator)
    _, target = _find_layer(module, layer)
    captured = []
    hook = target.register_forward_hook(
        lambda m, i, o: captured.append(o.detach().float().cpu())
    )
    was_training = module.training
    module.eval()
    try:
        with torch.inference_mode():
            module(_inputs(estimator, X))
    finally:
        hook.remove()
        module.train(was_training)
    return captured[0].numpy()


def _target_score(estimator, logits, target):
    task = estimator.task_
    if task == "binary":
        sign = torch.where(target == 1, 1.0, -1.0).to(logits.device)
        return logits[:, 0] * sign
    if logits.shape[1] == 1:
        return logits[:, 0]
    return logits.gather(1, target.view(-1, 1).to(logits.device))[:, 0]


def saliency(
    estimator,
    X,
    target=None,
    method="gradient",
    n_samples=20,
    noise=0.1,
    steps=32,
    random_state=0,
):
    """Attribution maps at input resolution: ``(n, H, W)`` (``(n, L)`` for 1-D).

    Parameters
    ----------
    estimator : fitted CNNClassifier, CNNRegressor or DenseNetClassifier
        The network to look into.
    X : array-like
        Images with the layout seen at fit.
    target : array-like of labels or None, default=None
        The class to explain per image; None uses the predicted class.
    method : {"gradient", "smoothgrad", "integrated_gradients"}, default="gradient"
        Absolute input gradient; its average over noisy copies (SmoothGrad);
        or integrated gradients from a black baseline. Channels are reduced
        by their maximum absolute value.
    n_samples : int, default=20
        Noisy copies per image for SmoothGrad.
    noise : float, default=0.1
        SmoothGrad's noise, as a fraction of the input's value range.
    steps : int, default=32
        Steps of the integrated-gradients path.
    random_state : int, default=0
        Seeds SmoothGrad's noise.

    Returns
    -------
    maps : ndarray
        ``(n, H, W)`` attributions (``(n, L)`` for 1-D signals).
    """
    module = _module(estimator)
    x = _inputs(estimator, X)
    if target is None:
        with torch.inference_mode():
            module.eval()
            logits = module(x)
        if logits.shape[1] == 1:
            codes = (logits[:, 0] > 0).long().cpu()
        else:
            codes = logits.argmax(1).cpu()
    else:
        classes = getattr(estimator, "classes_", None)
        target = np.asarray(target).reshape(-1)
        if len(target) == 1:
            target = np.repeat(target, len(x))
        codes = torch.as_tensor(
            np.searchsorted(classes, target) if classes is not None else target
        )
    gen = torch.Generator().manual_seed(int(random_state))

    def grad_of(inp):
        inp = inp.clone().requires_grad_(True)
        score = _target_score(estimator, module(inp), codes).sum()
        (g,) = torch.autograd.grad(score, inp)
        return g

    module.eval()
    with torch.enable_grad():
        if method == "gradient":
            attr = grad_of(x).abs()
        elif method == "smoothgrad":
            sigma = noise * (x.max() - x.min()).clamp_min(1e-8)
            attr = (
                sum(
                    grad_of(
                        x + sigma * torch.randn(x.shape, generator=gen).to(x.device)
                    ).abs()
                    for _ in range(n_samples)
                )
                / n_samples
            )
        elif method == "integrated_gradients":
            total = torch.zeros_like(x)
            for alpha in torch.linspace(1 / steps, 1, steps):
                total += grad_of(alpha * x)
            attr = (x * total / steps).abs()
        else:
            raise ValueError(
                f"method must be 'gradient', 'smoothgrad' or 'integrated_gradients'; got {method!r}."
            )
    return attr.amax(1).detach().cpu().numpy()


# -- plots -------------------------------------------------------------------------
def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "Plotting needs matplotlib: pip install 'skcnn[plot]'."
        ) from exc
    return plt


def plot_learning_curves(estimator, ax=None, title=None):
    """Training and internal-validation loss (and accuracy) per epoch, the
    epoch whose weights the model kept marked (the best one under early
    stopping, the last one without it).

    The "validation" curve is the estimator's internal early-stopping split
    (``validation_fraction`` of the rows it was fitted on), not a test set.

    Parameters
    ----------
    estimator : fitted CNNClassifier, CNNRegressor or DenseNetClassifier
        The network to look into.
    ax : matplotlib Axes or array of them, default=None
        Where to draw (one per panel); None makes a new figure.
    title : str or None, default=None
        The figure's title; None names the estimator class.

    Returns
    -------
    fig : matplotlib Figure
        The figure drawn on.
    """
    plt = _pyplot()
    check_is_fitted(estimator, "history_")
    hist = estimator.history_
    epochs = [h["epoch"] for h in hist]
    has_acc = any("train_acc" in h for h in hist)
    if ax is None:
        fig, axes = plt.subplots(
            1, 2 if has_acc else 1, figsize=(10 if has_acc else 5, 3.5), squeeze=False
        )
        axes = axes[0]
    else:
        axes, fig = np.atleast_1d(ax), np.atleast_1d(ax)[0].figure
    panels = [("loss", "train_loss", "valid_loss")]
    if getattr(estimator, "early_stopping", False):
        kept, kept_label = (
            estimator.best_epoch_,
            f"best epoch ({estimator.best_epoch_})",
        )
    else:  # no early stopping: the weights are the last epoch's
        kept = epochs[-1] if epochs else 0
        kept_label = f"weights kept: last epoch ({kept})"
    if has_acc:
        panels.append(("accuracy", "train_acc", "valid_acc"))
    for a, (label, train_key, valid_key) in zip(axes, panels):
        a.plot(epochs, [h.get(train_key, np.nan) for h in hist], label="training")
        if any(valid_key in h for h in hist):
            a.plot(
                epochs,
                [h.get(valid_key, np.nan) for h in hist],
                label="early-stopping split",
            )
        a.axvline(kept, color="gray", linestyle="--", label=kept_label)
        a.set_xlabel("epoch")
        a.set_ylabel(label)
        a.legend()
    fig.suptitle(title or f"{type(estimator).__name__} learning curves")
    fig.tight_layout()
    return fig


def _shown(a):
    """What one panel shows of an array: a 1-D one as a row, a volume's
    middle depth slice."""
    if a.ndim == 1:
        return a[None]
    if a.ndim == 3:
        return a[a.shape[0] // 2]
    return a


def _slice_note(a):
    return " (middle depth slice)" if a.ndim == 3 else ""


def _grid(plt, n, size=1.2):
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(
        rows, cols, figsize=(cols * size, rows * size), squeeze=False
    )
    for a in axes.ravel():
        a.axis("off")
    return fig, axes.ravel()


def plot_kernels(estimator, layer=0, in_channel=0, max_filters=64):
    """Each filter of a conv layer (one input channel) as a small image.

    Parameters
    ----------
    estimator : fitted CNNClassifier, CNNRegressor or DenseNetClassifier
        The network to look into.
    layer : int or str, default=0
        Index among the conv layers or module name.
    in_channel : int, default=0
        Which input channel of the kernels to show.
    max_filters : int, default=64
        Most filters shown.

    Returns
    -------
    fig : matplotlib Figure
        The figure.
    """
    plt = _pyplot()
    kernels = conv_kernels(estimator, layer)[:max_filters, in_channel]
    fig, axes = _grid(plt, len(kernels))
    lim = float(np.abs(kernels).max()) or 1.0  # one symmetric scale for all
    for i, (a, k) in enumerate(zip(axes, kernels)):
        im = a.imshow(_shown(k), cmap="RdBu_r", vmin=-lim, vmax=lim)
        a.set_title(f"filter {i}", fontsize=7)
    fig.colorbar(im, ax=list(axes), shrink=0.7, label="weight")
    fig.suptitle(
        f"conv layer {layer} kernels (input channel {in_channel})"
        + _slice_note(kernels[0])
    )
    return fig


def plot_feature_maps(estimator, image, layer=0, max_maps=64):
    """The maps one image produces at a conv layer.

    Parameters
    ----------
    estimator : fitted CNNClassifier, CNNRegressor or DenseNetClassifier
        The network to look into.
    image : array-like
        One image, in the layout seen at fit (without the sample axis).
    layer : int or str, default=0
        Index among the conv layers or module name.
    max_maps : int, default=64
        Most maps shown.

    Returns
    -------
    fig : matplotlib Figure
        The figure.
    """
    plt = _pyplot()
    image = np.asarray(image)
    maps = feature_maps(estimator, image[None], layer)[0][:max_maps]
    fig, axes = _grid(plt, len(maps))
    lo, hi = float(maps.min()), float(maps.max())  # one scale for all maps
    for i, (a, m) in enumerate(zip(axes, maps)):
        im = a.imshow(_shown(m), cmap="viridis", vmin=lo, vmax=hi)
        a.set_title(f"map {i}", fontsize=7)
    fig.colorbar(im, ax=list(axes), shrink=0.7, label="activation")
    fig.suptitle(f"feature maps at conv layer {layer}" + _slice_note(maps[0]))
    return fig


def plot_saliency(estimator, X, target=None, method="gradient", **kwargs):
    """Images with their saliency maps overlaid.

    Parameters
    ----------
    estimator : fitted CNNClassifier, CNNRegressor or DenseNetClassifier
        The network to look into.
    X : array-like
        A few images with the layout seen at fit.
    target : array-like of labels or None, default=None
        The class to explain per image; None uses the predicted class.
    method : {"gradient", "smoothgrad", "integrated_gradients"}, default="gradient"
        As in :func:`saliency`.
    **kwargs : dict
        Passed to :func:`saliency`.

    Returns
    -------
    fig : matplotlib Figure
        The figure.
    """
    plt = _pyplot()
    X = np.asarray(X)
    maps = saliency(estimator, X, target=target, method=method, **kwargs)
    images = _inputs(estimator, X).cpu().numpy()
    if target is not None:
        labels = [f"target {t}" for t in np.asarray(target).ravel()]
    elif hasattr(estimator, "classes_"):
        labels = [f"predicted {p}" for p in estimator.predict(X)]
    else:
        labels = [f"image {i}" for i in range(len(X))]
    fig, axes = plt.subplots(
        1, len(X), figsize=(2.4 * len(X) + 0.8, 2.6), squeeze=False
    )
    for a, img, sal, label in zip(axes[0], images, maps, labels):
        if img.ndim == 4:  # a volume: its middle depth slice
            img = img[:, img.shape[1] // 2]
        shown = img[0] if img.shape[0] == 1 else np.moveaxis(img[:3], 0, -1)
        a.imshow(_shown(shown) if shown.ndim == 1 else shown, cmap="gray")
        im = a.imshow(_shown(sal), cmap="jet", alpha=0.5)
        a.set_title(label, fontsize=8)
        a.axis("off")
    fig.colorbar(im, ax=list(axes[0]), shrink=0.8, label="saliency")
    fig.suptitle(f"saliency ({method})")
    return fig
