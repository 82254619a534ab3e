"""How a fitted model's score falls as its test images drift away from its
training images: the quantitative form of "validation F1 0.9, external F1
0.3".

:func:`shift_images` makes one controlled shift of an image set (8 kinds, a
severity scale like ImageNet-C's 1-5); :func:`shift_profile` scores any
fitted estimator (a network, or a baseline pipeline) on every kind at every
severity and returns a tidy table; :func:`plot_shift_profile` draws it.

Every image gets the same random direction (sign of the rotation, direction
of the translation, place of the occlusion, ...) at every severity: only the
magnitude grows, so the curves are comparable across severities and models.
"""

from __future__ import annotations

import csv
import math
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import check_scoring

from ._data import from_channels_first, to_channels_first
from ._files import atomic_write
from .augmentation import gaussian_blur, grey_morphology

__all__ = [
    "SHIFT_KINDS",
    "plot_shift_profile",
    "shift_images",
    "shift_profile",
    "write_profile_csv",
]

# kind -> (magnitude per severity step, what one step is): severity s
# applies s * step.
SHIFT_KINDS = {
    "rotation": (10.0, "10 degrees"),
    "translation": (0.08, "8% of the side"),
    "scale": (0.12, "12% zoom in or out"),
    "blur": (0.05, "sigma 5% of the side"),
    "noise": (0.08, "std 8% of the range"),
    "contrast": (0.2, "20% contrast lost"),
    "stroke": (0.04, "dilation 4% of the side"),
    "occlusion": (0.15, "square 15% of the side"),
}
MAX_SEVERITY = 5


def _affine(x, draws, *, angle=0.0, shift=0.0, scale=1.0):
    """One affine warp per image; ``draws`` gives each image's direction."""
    n = x.shape[0]
    sign, direction = draws["sign"], draws["direction"]
    a = torch.as_tensor(sign * math.radians(angle), dtype=torch.float32)
    s = torch.as_tensor(np.where(sign > 0, scale, 1 / scale), dtype=torch.float32)
    cos, sin = torch.cos(a) / s, torch.sin(a) / s
    # affine_grid works in [-1, 1] coordinates: a translation t of the side is 2t.
    tx = torch.as_tensor(2 * shift * np.cos(direction), dtype=torch.float32)
    ty = torch.as_tensor(2 * shift * np.sin(direction), dtype=torch.float32)
    theta = torch.stack(
        [torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1
    ).reshape(n, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(
        x, grid, mode="bilinear", padding_mode="border", align_corners=False
    )


def _occlude(x, frac, draws):
    n, _, h, w = x.shape
    side_h, side_w = max(1, round(frac * h)), max(1, round(frac * w))
    top = np.floor(draws["u"] * (h - side_h + 1)).astype(int)
    left = np.floor(draws["v"] * (w - side_w + 1)).astype(int)
    x = x.clone()
    fill = x.mean(dim=(1, 2, 3))
    for i in range(n):
        x[i, :, top[i] : top[i] + side_h, left[i] : left[i] + side_w] = fill[i]
    return x


def _shift_tensor(x, kind, magnitude, draws, lo, hi):
    """Apply one shift to float images ``x`` (n, C, H, W) in [lo, hi]."""
    side = min(x.shape[-2:])
    if kind == "rotation":
        return _affine(x, draws, angle=magnitude)
    if kind == "translation":
        return _affine(x, draws, shift=magnitude)
    if kind == "scale":
        return _affine(x, draws, scale=1 + magnitude)
    if kind == "blur":
        return gaussian_blur(x, magnitude * side)
    if kind == "noise":
        gen = torch.Generator().manual_seed(int(draws["seed"]))
        noise = torch.randn(x.shape, generator=gen, dtype=x.dtype)
        return (x + magnitude * (hi - lo) * noise).clamp(lo, hi)
    if kind == "contrast":
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return mean + max(0.0, 1 - magnitude) * (x - mean)
    if kind == "stroke":
        return grey_morphology(x, magnitude * side)
    if kind == "occlusion":
        return _occlude(x, magnitude, draws)
    raise AssertionError(kind)


def _check_kinds(kinds):
    kinds = (
        list(SHIFT_KINDS)
        if kinds is None
        else [kinds]
        if isinstance(kinds, str)
        else list(kinds)
    )
    unknown = [k for k in kinds if k not in SHIFT_KINDS]
    if unknown or not kinds:
        raise ValueError(
            f"Unknown shift kind(s) {unknown}; choose from {list(SHIFT_KINDS)}."
        )
    return kinds


def _check_severities(severities):
    severities = [severities] if np.isscalar(severities) else list(severities)
    bad = [
        s
        for s in severities
        if isinstance(s, bool)
        or not isinstance(s, (int, float, np.integer, np.floating))
        or not 0 <= s <= MAX_SEVERITY
    ]
    if bad or not severities:
        raise ValueError(
            f"severities must be numbers in [0, {MAX_SEVERITY}]; got {bad or severities!r}."
        )
    return [float(s) for s in severities]


def _draws(n, random_state, kind):
    """Per-image directions, the same at every severity of one kind."""
    seed = np.random.SeedSequence([int(random_state), list(SHIFT_KINDS).index(kind)])
    rng = np.random.default_rng(seed)
    return {
        "sign": rng.choice([-1.0, 1.0], n),
        "direction": rng.uniform(0, 2 * np.pi, n),
        "u": rng.uniform(size=n),
        "v": rng.uniform(size=n),
        "seed": int(rng.integers(2**31)),
    }


class _Images:
    """An image set held once in network layout, shifted on demand."""

    def __init__(self, X, image_shape, channels):
        self.X = X
        self.image_shape, self.channels = image_shape, channels
        with warnings.catch_warnings():  # the value range is kept, not learned
            warnings.simplefilter("ignore", UserWarning)
            arr, layout = to_channels_first(
                X, image_shape=image_shape, channels=channels
            )
        if layout.ndim != 2:
            raise ValueError(
                f"Shifts need images; X holds {layout.describe()}. Pass image_shape= "
                "for flattened images."
            )
        if arr.dtype == np.uint8:
            self.lo, self.hi = 0.0, 255.0
        else:
            self.lo, self.hi = float(arr.min()), float(arr.max())
        self.x = torch.as_tensor(arr, dtype=torch.float32)

    def shifted(self, kind, severity, random_state):
        if severity == 0:
            return self.X
        step, _ = SHIFT_KINDS[kind]
        draws = _draws(len(self.x), random_state, kind)
        out = _shift_tensor(self.x, kind, severity * step, draws, self.lo, self.hi)
        return from_channels_first(
            out.clamp(self.lo, self.hi).numpy(),
            self.X,
            image_shape=self.image_shape,
            channels=self.channels,
        )


def shift_images(
    X, kind, severity, *, image_shape=None, channels="auto", random_state=0
):
    """A shifted copy of the images ``X``, in their layout and dtype.

    Parameters
    ----------
    X : array-like
        Images in any layout skcnn takes: ``(n, H, W)``, ``(n, H, W, C)``,
        ``(n, C, H, W)``, or flattened with ``image_shape``.
    kind : str
        One of :data:`SHIFT_KINDS`: "rotation", "translation", "scale",
        "blur", "noise", "contrast", "stroke" (grey dilation: bright strokes
        thicken) or "occlusion" (a square filled with the image's mean).
    severity : float in [0, 5]
        0 leaves the images as they are; severity ``s`` applies ``s`` times
        the kind's step (``SHIFT_KINDS[kind]``: the step and what it is),
        e.g. 10 degrees of rotation per step.
    image_shape : tuple or None, default=None
        Shape of one image when ``X`` is flattened.
    channels : {"auto", "last", "first"}, default="auto"
        Where the channel axis of 4-D ``X`` is.
    random_state : int, default=0
        Seeds each image's direction (the same at every severity).

    Returns
    -------
    X_shifted : ndarray
        Same shape and dtype as ``X``; values stay in ``X``'s range.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.zeros((2, 8, 8), dtype=np.uint8); X[:, 3:5, 2:6] = 255
    >>> shift_images(X, "rotation", 3).shape
    (2, 8, 8)
    """
    (kind,) = _check_kinds([kind])
    (severity,) = _check_severities([severity])
    return _Images(X, image_shape, channels).shifted(kind, severity, random_state)


def shift_profile(
    estimator,
    X,
    y,
    *,
    kinds=None,
    severities=(1, 2, 3),
    scoring=None,
    image_shape=None,
    channels="auto",
    random_state=0,
):
    """Score fitted estimators on shifted copies of ``(X, y)``.

    Parameters
    ----------
    estimator : fitted estimator, or dict of name -> fitted estimator
        Anything with ``predict`` that takes ``X`` as given (a skcnn network,
        a Pipeline of HOG + SVC, ...). A dict scores several models on the
        very same shifted images.
    X : array-like
        Test images, in the layout the estimators take.
    y : array-like of shape (n_samples,)
        Their targets.
    kinds : list of str or None, default=None
        Kinds of :data:`SHIFT_KINDS`; None means all eight.
    severities : sequence of float, default=(1, 2, 3)
        Severities in [0, 5]; each kind's unshifted score (severity 0) is
        always included.
    scoring : str, callable or None, default=None
        An sklearn scorer (e.g. "f1_macro"); None uses ``estimator.score``.
    image_shape : tuple or None, default=None
        Shape of one image when ``X`` is flattened.
    channels : {"auto", "last", "first"}, default="auto"
        Where the channel axis of 4-D ``X`` is.
    random_state : int, default=0
        Seeds the shifts.

    Returns
    -------
    profile : dict of lists
        A tidy table, one entry per (model, kind, severity): columns
        "model", "kind", "severity", "magnitude" (severity times the
        kind's step of :data:`SHIFT_KINDS`), "score". ``pandas.DataFrame(profile)``
        makes it a frame; :func:`write_profile_csv` writes it.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.svm import SVC
    >>> from skcnn.baselines import HOGTransformer
    >>> d = load_digits()
    >>> X = d.images / 16
    >>> clf = make_pipeline(HOGTransformer(), SVC()).fit(X[:1000], d.target[:1000])
    >>> p = shift_profile(clf, X[1000:], d.target[1000:], kinds=["rotation"])
    >>> [round(s, 2) for s in p["score"]]  # severity 0, 1, 2, 3
    [0.98, 0.94, 0.8, 0.51]
    """
    kinds = _check_kinds(kinds)
    severities = sorted({0.0, *_check_severities(severities)})
    models = estimator if isinstance(estimator, dict) else {None: estimator}
    if not models:
        raise ValueError(
            "shift_profile got an empty dict of estimators; expected a fitted "
            "estimator or a dict of name -> fitted estimator."
        )
    y = np.asarray(y)
    images = _Images(X, image_shape, channels)
    if len(y) != len(images.x):
        raise ValueError(
            f"X has {len(images.x)} samples but y has {len(y)}; expected the same number."
        )
    scorers = {
        name: check_scoring(est, scoring=scoring) for name, est in models.items()
    }
    clean = {name: scorers[name](est, X, y) for name, est in models.items()}
    table = {c: [] for c in PROFILE_COLUMNS}
    for kind, severity, magnitude, Xs in shifted_copies(
        images, kinds, severities, random_state
    ):
        for name, est in models.items():
            score = clean[name] if Xs is None else scorers[name](est, Xs, y)
            table["model"].append(name)
            table["kind"].append(kind)
            table["severity"].append(severity)
            table["magnitude"].append(magnitude)
            table["score"].append(float(score))
    if not isinstance(estimator, dict):
        del table["model"]
    return table


# The columns of a shift profile's table.
PROFILE_COLUMNS = ("model", "kind", "severity", "magnitude", "score")


def shifted_copies(images, kinds=None, severities=(1, 2, 3), random_state=0):
    """(kind, severity, magnitude, shifted images) of a shift profile, in its
    order: for each kind its unshifted images first (severity 0, images
    None: the caller's own), then each severity. ``images``: an ``_Images``
    or an array of images in a layout skcnn takes. The same seed gives the
    same images whoever asks (:func:`shift_profile` and the comparison)."""
    if not isinstance(images, _Images):
        images = _Images(images, None, "auto")
    kinds = _check_kinds(kinds)
    severities = sorted({0.0, *_check_severities(severities)})
    for kind in kinds:
        step, _ = SHIFT_KINDS[kind]
        for severity in severities:
            Xs = images.shifted(kind, severity, random_state) if severity else None
            yield kind, severity, severity * step, Xs


def write_profile_csv(profile, path):
    """Write a :func:`shift_profile` table as CSV.

    Parameters
    ----------
    profile : dict of lists
        A table returned by :func:`shift_profile`.
    path : str or Path
        The CSV file to write.
    """
    columns = list(profile)

    def write(f):
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows(zip(*(profile[c] for c in columns)))

    atomic_write(path, write, what="CSV file", mode="w")


def plot_shift_profile(profile, *, ylabel="score", title=None):
    """Score against severity: one panel per kind, one line per model.

    Parameters
    ----------
    profile : dict of lists
        A table returned by :func:`shift_profile`.
    ylabel : str, default="score"
        The y-axis label (e.g. "macro F1").
    title : str or None, default=None
        The figure's title.

    Returns
    -------
    fig : matplotlib Figure
        The figure: one panel per kind of shift.
    """
    import matplotlib.pyplot as plt

    kinds = list(dict.fromkeys(profile["kind"]))
    models = list(dict.fromkeys(profile.get("model", [None] * len(profile["kind"]))))
    ncols = min(4, len(kinds))
    nrows = math.ceil(len(kinds) / ncols)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(3.2 * ncols, 2.8 * nrows + 0.6),
        sharey=True,
        squeeze=False,
    )
    rows = list(zip(*(profile[c] for c in profile)))
    cols = list(profile)
    colours = plt.get_cmap("tab10" if len(models) <= 10 else "tab20")
    for ax, kind in zip(axes.flat, kinds):
        for m, model in enumerate(models):
            pts = [
                dict(zip(cols, r))
                for r in rows
                if r[cols.index("kind")] == kind
                and (model is None or r[cols.index("model")] == model)
            ]
            ax.plot(
                [p["severity"] for p in pts],
                [p["score"] for p in pts],
                marker="osD^v"[m % 5],
                markersize=4,
                linestyle=("-", "--")[m // 10 % 2],
                color=colours(m % colours.N),
                label=model,
            )
        ax.set_title(f"{kind}: {SHIFT_KINDS[kind][1]} per step", fontsize=8)
        ax.set_xlabel("severity")
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel)
    for ax in list(axes.flat)[len(kinds) :]:
        ax.set_visible(False)
    if models != [None]:
        handles, labels = axes.flat[0].get_legend_handles_labels()
        fig.legend(
            handles, labels, loc="lower center", ncols=min(6, len(models)), fontsize=8
        )
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.08 if models != [None] else 0, 1, 1))
    return fig
