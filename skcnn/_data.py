"""Turning the images users hold into the tensors networks need.

Every estimator and transformer in skcnn goes through :func:`to_channels_first`
(arrays) or :class:`ImagePaths` (files on disk); nothing else reshapes input.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "INPUT_ORDERS",
    "ImageLayout",
    "ImagePaths",
    "from_channels_first",
    "TensorData",
    "BatchIterator",
    "is_path_source",
    "prepare_images",
    "to_channels_first",
    "to_float_tensor",
]

_MAX_CHANNELS = 4

# How samples may be arranged (ImageLayout.order): the orders fit records,
# that model files may hold and that an ONNX graph may take.
INPUT_ORDERS = (
    "flat",
    "gray",
    "channels_last",
    "channels_first",
    "signal",
    "volume",
)
# Each order as the shape of X, for messages (volumes of 5-D X are also
# "channels_last" / "channels_first").
_ORDER_SHAPES = {
    "flat": "(n, features) with image_shape",
    "gray": "(n, H, W)",
    "channels_last": "(n, H, W, C)",
    "channels_first": "(n, C, H, W)",
    "signal": "(n, L)",
    "volume": "(n, D, H, W)",
}


@dataclass(frozen=True)
class ImageLayout:
    """What one sample looks like once it is in network layout.

    ``shape`` is ``(C, H, W)`` for images, ``(C, L)`` for 1-D signals and
    ``(C, D, H, W)`` for volumes.
    ``pixels`` says how values were read at fit: True for 0-255 pixel
    intensities (uint8, or integers in 0-255), scaled to [0, 1]; False for
    floats taken as they are; None for models from skcnn 0.1, which scaled
    by dtype alone. ``order`` is how the samples were arranged at fit
    ("flat", "gray", "channels_last", "channels_first", "signal" or
    "volume", the last for gray volumes ``(n, D, H, W)``; None
    for image files and older models), so that an exported graph takes
    what ``predict`` took. Layouts compare by shape only.
    """

    shape: tuple
    pixels: bool | None = field(default=None, compare=False)
    order: str | None = field(default=None, compare=False)

    @property
    def in_channels(self):
        return self.shape[0]

    @property
    def spatial(self):
        return tuple(self.shape[1:])

    @property
    def ndim(self):
        return len(self.shape) - 1

    def describe(self):
        if self.ndim == 1:
            return (
                f"1-D signals of length {self.shape[1]} with {self.shape[0]} channel(s)"
            )
        if self.ndim == 3:
            c, d, h, w = self.shape
            return f"{d}x{h}x{w} volumes with {c} channel(s)"
        c, h, w = self.shape
        return f"{h}x{w} images with {c} channel(s)"


def _image_shape_to_chw(image_shape, channels):
    """One sample's shape in network layout: ``(C, *spatial)``."""
    image_shape = tuple(int(s) for s in image_shape)
    if len(image_shape) == 1:
        return (1, image_shape[0])
    if len(image_shape) == 2:
        return (1, *image_shape)
    if len(image_shape) == 3 and channels == "none":  # a gray volume (D, H, W)
        return (1, *image_shape)
    if len(image_shape) in (3, 4):
        if channels == "first":
            return image_shape
        *spatial, c = image_shape
        return (c, *spatial)
    raise ValueError(
        "image_shape must be (H, W), (H, W, C), (L,), (D, H, W, C) or, with "
        f"channels='none', (D, H, W); got {image_shape!r}."
    )


def _channels_last_sample(image_shape, channels):
    """True when a flattened sample of ``image_shape`` holds its channels last."""
    return (
        image_shape is not None
        and len(image_shape) in (3, 4)
        and channels not in ("first", "none")
    )


def _detect_channels_last(shape, channels, name="X"):
    """Decide whether a 4-D (images) or 5-D (volumes) array is channels-last;
    ``channels`` overrides."""
    if channels == "last":
        return True
    if channels == "first":
        return False
    if channels == "none":
        raise ValueError(
            f"channels='none' means {name} has no channel axis: gray volumes "
            f"(n, D, H, W) or images (n, H, W); got {name} of shape {tuple(shape)}. "
            f"Drop its channel axis ({name}[..., 0] or {name}[:, 0]), or fit with "
            "channels='last' / 'first'."
        )
    if channels != "auto":
        raise ValueError(
            f"channels must be 'auto', 'last', 'first' or 'none'; got {channels!r}."
        )
    if len(shape) == 5:
        kind, last, first = "volumes", "(n, D, H, W, C)", "(n, C, D, H, W)"
    else:
        kind, last, first = "images", "(n, H, W, C)", "(n, C, H, W)"
    last_small = shape[-1] <= _MAX_CHANNELS
    first_small = shape[1] <= _MAX_CHANNELS
    if last_small != first_small:
        return last_small
    if last_small:
        # Tiny images: both axes could be channels. Users hold images
        # channels-last (PIL, skimage, Keras); say what was assumed.
        warnings.warn(
            f"{name} of shape {shape}: axis 1 and the last axis could both be "
            f"channels; reading it as channels-last {kind} {last}. Pass channels= to "
            "say which"
            + (
                ", or channels='none' for gray volumes (n, D, H, W)."
                if kind == "images"
                else "."
            ),
            UserWarning,
            stacklevel=5,
        )
        return True
    raise ValueError(
        f"{name} of shape {shape} has no clear channel axis: axis 1 ({shape[1]}) and "
        f"the last axis ({shape[-1]}) could both be channels. Pass channels='last' "
        f"for {last} or channels='first' for {first}"
        + (
            ", or channels='none' for gray volumes (n, D, H, W) (3-D convolutions)."
            if kind == "images"
            else "."
        )
    )


def _read_values(X, layout, name):
    """How the values of ``X`` are read, so that the same pixels give the same
    result in any dtype; returns ``(X, pixels)``.

    At fit (``layout is None``): uint8, and integers within 0-255, are pixels
    (kept as uint8, scaled to [0, 1] per batch on the device); other values
    are floats taken as they are. At predict the fit's reading is applied:
    for a model fitted on pixels, integers in 0-255 become uint8 and floats
    reaching above 2 are read as 0-255 intensities (floats up to 2 as
    already scaled to [0, 1]); for a model fitted on floats, every dtype is
    read as plain numbers, uint8 included.
    """
    fitted = None if layout is None else layout.pixels
    if X.dtype == np.bool_:
        X = X.astype(np.float32)
    in_byte_range = X.dtype.kind in "iu" and (
        X.dtype == np.uint8 or (X.size and X.min() >= 0 and X.max() <= 255)
    )
    if layout is None:
        return (X.astype(np.uint8), True) if in_byte_range else (X, False)
    if fitted is None:  # skcnn 0.1 models: uint8 is scaled, nothing else
        return X, None
    if not fitted:
        return (X.astype(np.float32) if X.dtype == np.uint8 else X), False
    if in_byte_range:
        return X.astype(np.uint8, copy=False), True
    if X.dtype.kind in "iu":
        raise ValueError(
            f"{name} holds integers in [{X.min()}, {X.max()}], but the estimator was "
            "fitted on 0-255 pixels; pass pixels in 0-255 (or floats in [0, 1])."
        )
    X = X.astype(np.float32, copy=False)
    if not X.size:
        return X, True
    low, high = np.nanmin(X), np.nanmax(X)
    # Small excursions (noise added to [0, 1] images) are still pixels.
    if low < -1 or high > 255:
        raise ValueError(
            f"{name} holds floats in [{low:g}, {high:g}], but the estimator was "
            "fitted on 0-255 pixels; pass values in 0-255 or in [0, 1]."
        )
    # Above 2 the values are 0-255 intensities; up to 2, already-scaled [0, 1]
    # images (with noise): an image with no pixel brighter than 2/255 is black.
    if high > 2:
        X = X / np.float32(255)
    return X, True


def _warn_far_from_unit_range(X, name):
    if X.dtype == np.uint8 or not X.size:
        return
    low, high = float(X.min()), float(X.max())
    if max(abs(low), abs(high)) > 5:
        warnings.warn(
            f"{name} holds floats in [{low:g}, {high:g}], far outside [0, 1]: skcnn "
            "reads float images as they are (networks train best on about unit scale; "
            "colour histograms expect [0, 1]). Divide by the maximum, or pass uint8 "
            "pixels (scaled to [0, 1] automatically).",
            UserWarning,
            stacklevel=5,
        )


def to_channels_first(X, *, image_shape=None, channels="auto", layout=None, name="X"):
    """Convert an array of samples to network layout, keeping uint8 as uint8.

    Parameters
    ----------
    X : array-like
        ``(n, H, W)`` grayscale, ``(n, H, W, C)`` channels-last,
        ``(n, C, H, W)`` channels-first, ``(n, H*W*C)`` with ``image_shape``,
        or ``(n, L)`` without it (1-D signals); volumes as ``(n, D, H, W, C)``
        or ``(n, C, D, H, W)``, ``(n, D, H, W)`` with ``channels="none"``, or
        flattened with ``image_shape``.
    image_shape : tuple or None, default=None
        Shape of one image when ``X`` is flattened: ``(H, W)``, ``(H, W, C)``
        or ``(D, H, W, C)`` (channels first when ``channels="first"``;
        ``(D, H, W)`` with ``channels="none"``).
    channels : {"auto", "last", "first", "none"}, default="auto"
        Where the channel axis of a 4-D or 5-D array is; "none": there is
        none (a 4-D array is gray volumes).
    layout : ImageLayout or None, default=None
        The layout recorded at fit; a mismatch raises ``ValueError``.

    Returns
    -------
    X : ndarray of shape (n, C, H, W), (n, C, L) or (n, C, D, H, W)
        uint8 stays uint8 (scaled to [0, 1] on the device, per batch);
        every other dtype becomes float32.
    layout : ImageLayout
    """
    X = np.asarray(X)
    if X.dtype.kind in "OUSV":
        raise TypeError(f"{name} must be numeric; got an array of dtype {X.dtype}.")
    X, pixels = _read_values(X, layout, name)
    if X.dtype.kind == "c":
        raise ValueError("Complex data not supported; expected real-valued images.")
    if X.ndim < 2:
        raise ValueError(
            f"Expected a 2-D to 5-D array of samples; got {X.ndim}-D {name} "
            f"of shape {X.shape}. Reshape single samples with X.reshape(1, ...)."
        )
    if X.shape[0] == 0:
        raise ValueError(
            f"Found array with 0 sample(s) (shape={X.shape}); expected at least 1."
        )
    n = X.shape[0]
    if image_shape is not None and X.ndim > 2:
        expected = tuple(int(s) for s in image_shape)
        if expected not in (X.shape[1:], X.shape[1:3]):
            raise ValueError(
                f"image_shape={expected} describes flattened 2-D input, but {name} is "
                f"{X.ndim}-D with samples of shape {X.shape[1:]}; drop image_shape or "
                "pass flattened images."
            )
    order = {2: "flat" if image_shape is not None else "signal", 3: "gray"}.get(X.ndim)
    if X.ndim == 2:
        if image_shape is None:
            X = X[:, None, :]
        else:
            chw = _image_shape_to_chw(image_shape, channels)
            if int(np.prod(chw)) != X.shape[1]:
                raise ValueError(
                    f"image_shape={tuple(image_shape)} holds {int(np.prod(chw))} values "
                    f"but {name} has {X.shape[1]} features per sample."
                )
            if _channels_last_sample(image_shape, channels):
                X = np.moveaxis(X.reshape(n, *image_shape), -1, 1)
            else:
                X = X.reshape(n, *chw)
    elif X.ndim == 3:
        X = X[:, None, :, :]
    elif X.ndim == 4 and channels == "none":  # gray volumes (n, D, H, W)
        X = X[:, None]
        order = "volume"
    elif X.ndim in (4, 5):
        order = "channels_first"
        if _detect_channels_last(X.shape, channels, name):
            X = np.moveaxis(X, -1, 1)
            order = "channels_last"
    else:
        raise ValueError(
            f"Expected at most 5 dimensions (n, D, H, W, C); got {name} of shape "
            f"{X.shape}."
        )
    if X.dtype != np.uint8:
        X = X.astype(np.float32, copy=False)
        if not np.isfinite(X).all():
            raise ValueError(
                f"Input {name} contains NaN or infinity; expected finite values."
            )
    X = np.ascontiguousarray(X)
    if (
        not X.flags.writeable
    ):  # read-only input (memmaps, broadcasts): torch needs a copy
        X = X.copy()
    if 0 in X.shape[1:]:
        raise ValueError(
            f"{name} has an empty dimension (shape {X.shape} in channels-first layout); "
            "expected images with at least 1 pixel per side."
        )
    found = ImageLayout(tuple(X.shape[1:]), pixels=pixels, order=order)
    if layout is None and not pixels and found.ndim >= 2:
        _warn_far_from_unit_range(X, name)
    if layout is not None and found != layout:
        raise ValueError(
            f"{name} holds {found.describe()} (shape {found.shape} in channels-first "
            f"layout), but the estimator was fitted on {layout.describe()} "
            f"(shape {layout.shape})."
        )
    return X, found


def from_channels_first(out, like, *, image_shape=None, channels="auto"):
    """Put images in network layout ``(n, C, ...)`` back into the layout and
    dtype of ``like`` (the array :func:`to_channels_first` was given)."""
    like = np.asarray(like)
    n = out.shape[0]
    if like.ndim == 2:  # flattened, described by image_shape
        if _channels_last_sample(image_shape, channels):
            out = np.moveaxis(out, 1, -1)
        out = out.reshape(n, -1)
    elif like.ndim == 3 or (like.ndim == 4 and channels == "none"):
        out = out[:, 0]
    elif like.ndim in (4, 5) and _detect_channels_last(like.shape, channels):
        out = np.moveaxis(out, 1, -1)
    if like.dtype.kind in "iu":
        info = np.iinfo(like.dtype)
        out = np.clip(np.round(out), info.min, info.max)
    return np.ascontiguousarray(out).astype(like.dtype, copy=False)


def prepare_images(estimator, X, *, reset, y=None, y_numeric=False):
    """Validate ``X`` (and ``y``) for ``estimator``; return ``(data, layout, y)``.

    ``data`` is a :class:`TensorData` for arrays or an :class:`ImagePaths` for
    lists of files. Arrays go through sklearn's ``validate_data`` (which
    records ``n_features_in_``) and :func:`to_channels_first`. The estimator's
    ``image_shape`` and ``channels`` parameters are used; unless ``reset``, the
    layout recorded in ``estimator.layout_`` is checked. Volumes are refused
    unless the estimator says it takes them (``_takes_volumes``).
    """
    from sklearn.utils.validation import validate_data

    layout = None if reset else estimator.layout_
    image_shape = estimator.image_shape
    if is_path_source(X):
        size = tuple(image_shape)[:2] if image_shape is not None else None
        if layout is None:
            data = ImagePaths(X, image_size=size)
            # What validate_data records for the same images as an array (axis 1).
            estimator.n_features_in_ = int(data.layout.spatial[0])
        else:
            mode = "L" if layout.in_channels == 1 else "RGB"
            data = ImagePaths(X, image_size=size or layout.spatial, mode=mode)
            if data.layout != layout:
                raise ValueError(
                    f"The image files give {data.layout.describe()}, but the estimator "
                    f"was fitted on {layout.describe()}."
                )
        if y is not None:
            y = np.asarray(y)
            if len(y) != len(data):
                raise ValueError(
                    f"X has {len(data)} images but y has {len(y)} targets."
                )
        return data, data.layout, y
    X = _as_array_like(X)
    check = dict(reset=reset, allow_nd=True, dtype="numeric")
    try:
        if y is None:
            X = validate_data(estimator, X, **check)
        else:
            X, y = validate_data(
                estimator, X, y, multi_output=True, y_numeric=y_numeric, **check
            )
    except ValueError as exc:
        if layout is None or "features, but" not in str(exc):
            raise
        # scikit-learn counts axis 1 (its message stays: its checks read it);
        # say it in images too
        raise ValueError(
            f"{exc} In images: X of shape {np.shape(X)} does not hold the images "
            f"{type(estimator).__name__} was fitted on: {layout.describe()}"
            + (
                f", given as X of shape {_ORDER_SHAPES[layout.order]}"
                if layout.order
                else ""
            )
            + ". Pass them in the same arrangement as at fit."
        ) from None
    arr, found = to_channels_first(
        X,
        image_shape=image_shape,
        channels=estimator.channels,
        layout=layout,
    )
    if found.ndim == 3 and not getattr(estimator, "_takes_volumes", False):
        raise ValueError(
            f"{type(estimator).__name__} works on 2-D images (and 1-D signals); X "
            f"holds {found.describe()}. CNNClassifier and CNNRegressor (3-D "
            "convolutions), ImageFlattener and ColorHistogram take volumes."
        )
    return TensorData(arr), found, y


def _as_array_like(X):
    """Tensors (also ones that require grad) as arrays; lists of images of
    different shapes named at the first mismatch instead of numpy's error."""
    if isinstance(X, torch.Tensor):
        return X.detach().cpu().numpy()
    if isinstance(X, (list, tuple)) and X and hasattr(X[0], "shape"):
        first = np.shape(X[0])
        for i, item in enumerate(X):
            if np.shape(item) != first:
                raise ValueError(
                    f"X is a list of images of different shapes: image 0 is {first}, "
                    f"image {i} is {np.shape(item)}. Resize them to one size first "
                    "(e.g. skcnn.baselines.ImageResizer, or input_size=)."
                )
    return X


def to_float_tensor(x):
    """Scale a uint8 batch to [0, 1]; cast anything else to float32."""
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)
    return x if x.dtype == torch.float32 else x.float()


def is_path_source(X):
    """True for a list/tuple/array of file paths, or an :class:`ImagePaths`."""
    if isinstance(X, ImagePaths):
        return True
    if isinstance(X, (str, os.PathLike)):
        return False
    if isinstance(X, (list, tuple)) and len(X) > 0:
        return all(isinstance(p, (str, os.PathLike)) for p in X)
    if isinstance(X, np.ndarray) and X.dtype.kind in "OU" and X.ndim == 1 and X.size:
        return all(isinstance(p, (str, os.PathLike)) for p in X)
    return False


_GRAY_MODES = ("L", "1", "I", "I;16", "I;16B", "I;16L", "F")


def _decode(path, size, mode):
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.mode.startswith("I"):
                # 16-bit gray: scale to 8 bits instead of clipping at 255.
                wide = np.asarray(im, dtype=np.float64) / 257.0
                im = Image.fromarray(np.clip(np.round(wide), 0, 255).astype(np.uint8))
            im = im.convert(mode)
            if size is not None and im.size != (size[1], size[0]):
                im = im.resize((size[1], size[0]), Image.BILINEAR)
            arr = np.array(im, dtype=np.uint8)  # writable: torch warns otherwise
    except (OSError, ValueError, SyntaxError) as exc:
        raise ValueError(f"Cannot read the image file {path!r}: {exc}") from None
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def _scan(paths, image_size, mode):
    """Check every file before any work and read what decoding needs: the
    colour mode (RGB as soon as one image has colour) and, without
    ``image_size``, the size (the first image's, said aloud when sizes differ)."""
    from PIL import Image

    modes, sizes = set(), {}
    for p in paths:
        if not Path(p).is_file():
            what = "is a folder" if Path(p).is_dir() else "does not exist"
            raise ValueError(f"Image file {p!r} {what}.")
        try:
            with Image.open(p) as im:
                modes.add(im.mode)
                sizes.setdefault((im.size[1], im.size[0]), p)
                im.verify()  # reads the file: truncated or corrupt data fails here
        except (OSError, ValueError, SyntaxError) as exc:
            raise ValueError(f"Cannot read the image file {p!r}: {exc}") from None
    if mode == "auto":
        mode = "L" if modes <= set(_GRAY_MODES) else "RGB"
    if image_size is None:
        image_size = next(iter(sizes))
        if len(sizes) > 1:
            warnings.warn(
                f"The {len(paths)} images have {len(sizes)} different sizes; all are "
                f"resized to {image_size[0]}x{image_size[1]} (the size of "
                f"{next(iter(sizes.values()))!r}). Pass image_shape=(H, W) (or "
                "image_size= to load_image_folder) to choose the size.",
                UserWarning,
                stacklevel=4,
            )
    return image_size, mode


class ImagePaths(torch.utils.data.Dataset):
    """Images on disk, decoded one at a time into uint8 ``(C, H, W)``.

    Parameters
    ----------
    paths : sequence of str or Path
    image_size : (H, W) or None
        Every image is resized to this; ``None`` takes the first image's size
        (with a warning when the images' sizes differ).
    mode : {"auto", "L", "RGB"}
        PIL mode; "auto" is "L" when every image is grayscale, else "RGB".
        16-bit gray images are scaled to 8 bits.

    Every file is checked when the object is made (missing files, folders,
    unreadable or truncated images are named then, not during training).
    """

    def __init__(
        self, paths, image_size=None, mode="auto", y=None, weights=None, _scanned=False
    ):
        self.paths = [
            str(p) for p in (paths.paths if isinstance(paths, ImagePaths) else paths)
        ]
        if not self.paths:
            raise ValueError("Found 0 image paths; expected at least 1.")
        if not _scanned:
            image_size, mode = _scan(self.paths, image_size, mode)
        self.image_size = tuple(int(s) for s in image_size[:2])
        self.mode = mode
        self.y = y
        self.weights = weights

    @property
    def layout(self):
        return ImageLayout(
            ((1 if self.mode == "L" else 3), *self.image_size), pixels=True
        )

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        x = torch.from_numpy(_decode(self.paths[i], self.image_size, self.mode))
        if self.y is None:
            return x
        return x, (self.y[i], _weight_at(self.weights, i))

    def fingerprint(self):
        """A hash of the files (path, size, modification time) and targets."""
        h = hashlib.sha256()
        for p in self.paths:
            st = os.stat(p)
            h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}".encode())
        for t in (self.y, self.weights):
            if t is not None:
                h.update(np.asarray(t).tobytes())
        return h.hexdigest()

    def numpy(self):
        """Decode every image into one uint8 array ``(n, C, H, W)``."""
        return np.stack([_decode(p, self.image_size, self.mode) for p in self.paths])

    def to(self, device):
        """Files stream from disk batch by batch: nothing to move."""
        return self

    def subset(self, idx):
        return ImagePaths(
            [self.paths[i] for i in idx],
            image_size=self.image_size,
            mode=self.mode,
            y=None if self.y is None else self.y[idx],
            weights=None if self.weights is None else self.weights[idx],
            _scanned=True,
        )

    def with_targets(self, y, weights=None):
        return ImagePaths(
            self.paths,
            image_size=self.image_size,
            mode=self.mode,
            y=y,
            weights=weights,
            _scanned=True,
        )


class TensorData(torch.utils.data.Dataset):
    """Whole data set held as tensors, so batches are slices, not collations."""

    def __init__(self, X, y=None, weights=None):
        self.X = torch.as_tensor(X)
        self.y = None if y is None else torch.as_tensor(y)
        # No weights (None) means all ones: the loss skips the multiplication.
        self.weights = (
            None if weights is None else torch.as_tensor(weights, dtype=torch.float32)
        )

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        if self.y is None:
            return self.X[i]
        return self.X[i], (self.y[i], _weight_at(self.weights, i))

    def fingerprint(self):
        """A hash of the samples, targets and weights (for checkpoint keys)."""
        h = hashlib.sha256()
        for t in (self.X, self.y, self.weights):
            if t is not None:
                h.update(str((t.dtype, tuple(t.shape))).encode())
                h.update(t.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    def numpy(self):
        """All samples as one array ``(n, C, ...)`` (uint8 kept)."""
        return self.X.cpu().numpy()

    def with_targets(self, y, weights=None):
        return TensorData(self.X, y, weights)

    def subset(self, idx):
        idx = torch.as_tensor(idx, dtype=torch.long)
        return TensorData(
            self.X[idx],
            None if self.y is None else self.y[idx],
            None if self.weights is None else self.weights[idx],
        )

    def to(self, device):
        """Move to ``device`` when it fits; pin host memory otherwise."""
        device = torch.device(device)
        if device.type != "cuda":
            return self
        free, _ = torch.cuda.mem_get_info(device)
        # Keep half the free memory for activations and the optimizer.
        fits = self.nbytes() < free // 2

        def move(t):
            if t is None:
                return None
            return t.to(device, non_blocking=True) if fits else t.pin_memory()

        out = TensorData.__new__(TensorData)
        out.X, out.y, out.weights = move(self.X), move(self.y), move(self.weights)
        return out

    def nbytes(self):
        tensors = [t for t in (self.X, self.y, self.weights) if t is not None]
        return sum(t.element_size() * t.nelement() for t in tensors)


def _take(t, idx):
    return None if t is None else t[idx]


def _take_pinned(t, idx):
    """Rows ``idx`` of a pinned tensor, in pinned memory.

    Plain indexing returns pageable memory, whose copy to the GPU blocks;
    from a pinned buffer the copy is asynchronous. torch's caching host
    allocator reuses the buffers once their copies are done.
    """
    if t is None or isinstance(idx, slice):
        return _take(t, idx)  # a slice of pinned memory is pinned
    out = torch.empty((len(idx), *t.shape[1:]), dtype=t.dtype, pin_memory=True)
    return torch.index_select(t, 0, idx, out=out)


def _weight_at(weights, i):
    return torch.tensor(1.0) if weights is None else weights[i]


class BatchIterator:
    """Shuffled batches sliced from preloaded tensors, or streamed from disk.

    Re-iterable: each ``iter()`` is one epoch with a fresh permutation drawn
    from ``generator``. ``transform`` (augmentation) runs on the device, on
    whole batches, for training batches only.
    """

    def __init__(
        self,
        data,
        batch_size,
        *,
        shuffle=False,
        device="cpu",
        generator=None,
        transform=None,
        drop_last_single=False,
        num_workers=0,
        channels_last=False,
    ):
        self.device = torch.device(device)
        self.data = data.to(self.device)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.generator = generator
        self.transform = transform
        self.drop_last_single = drop_last_single
        self.num_workers = num_workers
        self.channels_last = channels_last

    def __len__(self):
        return -(-len(self.data) // self.batch_size)

    def _finish(self, xb, rest):
        non_blocking = self.device.type == "cuda"
        xb = to_float_tensor(xb.to(self.device, non_blocking=non_blocking))
        if self.transform is not None:
            xb = self.transform(xb)
        if self.channels_last and xb.ndim == 4:
            xb = xb.contiguous(memory_format=torch.channels_last)
        if rest is None:
            return xb
        yb, wb = rest
        if wb is not None:
            wb = wb.to(self.device, non_blocking=non_blocking)
        return xb, (yb.to(self.device, non_blocking=non_blocking), wb)

    def __iter__(self):
        if isinstance(self.data, TensorData):
            yield from self._iter_tensors()
        else:
            yield from self._iter_loader()

    def _iter_tensors(self):
        data = self.data
        n = len(data)
        order = None
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator).to(data.X.device)
        # Too big for the GPU: the data sits in pinned host memory (see
        # TensorData.to), and shuffled rows are gathered into pinned buffers.
        take = _take_pinned if self.device.type != data.X.device.type else _take
        for start in range(0, n, self.batch_size):
            stop = min(start + self.batch_size, n)
            # A final batch of one sample cannot train batch norm; with
            # batch_size=1 every batch is a single sample and is kept.
            if self.drop_last_single and stop - start == 1 and self.batch_size > 1:
                break
            idx = slice(start, stop) if order is None else order[start:stop]
            if data.y is None:
                rest = None
            else:
                rest = (take(data.y, idx), take(data.weights, idx))
            yield self._finish(take(data.X, idx), rest)

    def _iter_loader(self):
        loader = torch.utils.data.DataLoader(
            self.data,
            batch_size=self.batch_size,
            shuffle=self.shuffle,
            generator=self.generator,
            num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda",
            drop_last=False,
        )
        for batch in loader:
            if isinstance(batch, (list, tuple)):
                xb, (yb, wb) = batch
                if self.drop_last_single and len(xb) == 1 and self.batch_size > 1:
                    break
                yield self._finish(xb, (yb, wb))
            else:
                yield self._finish(batch, None)
