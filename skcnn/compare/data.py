"""The data of a comparison: loading it, describing it, checking it."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from ..datasets import (
    OTHER_FONT_FILES,
    load_digits_external,
    load_digits_images,
    load_image_folder,
    load_lfw,
    make_shifted,
    render_font_digits,
)

# the selection set of digits: 300 digits drawn by 7 font faces that the
# printed digits (the external set) do not use
OTHER_FACES = "digits-other-faces"


def set_label(prefix, i):
    """The column label of the ``i``-th set of a kind: "ext", "ext2", ...
    (external test sets) or "sel", "sel2", ... (selection sets)."""
    return prefix if i == 0 else f"{prefix}{i + 1}"


def is_external(label):
    """Whether a set label is an external test set's ("ext", "ext2", ...)."""
    return label.startswith("ext")


def is_selection(label):
    """Whether a set label is a selection set's ("sel", "sel2", ...): a
    population the run may look at to choose, never reported as external."""
    return label.startswith("sel")


def describe_external(data, external):
    """What the external test set of a run is, in words (the report says it)."""
    if external == "digits-printed" or (external is None and data == "digits"):
        return (
            "500 printed digits (load_digits_external): another population, drawn by "
            "15 fonts instead of hands, reduced to 8x8 as the handwritten ones were"
        )
    if external is None or external == "shifted":
        return (
            "the validation split shifted by skcnn's own augmentation (rotations up to "
            "10 degrees, 10% translations, noise 0.05): an augmentation-family shift, "
            "not a new population; models trained with those transforms are flattered"
        )
    if _is_npz(external):
        return f"the images of the file {_short(external)!r}"
    return f"the images of the folder {_short(external)!r}"


def _short(path):
    """A path as the report shows it: its last part, never the absolute path."""
    return Path(str(path)).name or str(path)


def _is_npz(path):
    return isinstance(path, (str, Path)) and str(path).lower().endswith(".npz")


def describe_data(data):
    """What the data of a run is, in words."""
    if data == "digits":
        return "scikit-learn's 1,797 handwritten digits, 8x8 gray, 10 classes"
    if data in ("lfw", "lfw-subset"):
        return (
            "scikit-image's lfw_subset: 200 gray 25x25 images, 100 faces (from Labeled "
            "Faces in the Wild) and 100 non-faces; a face / non-face task, not face "
            "recognition"
        )
    if _is_npz(data):
        return f"the images of the file {_short(data)!r} (arrays X, y)"
    return f"the images of the folder {_short(data)!r}, one subfolder per class"


@dataclass
class ExternalSet:
    """One external test set of a run: its column label ("ext", "ext2", ...),
    what it is in words, and its images and labels."""

    label: str
    description: str
    X: np.ndarray
    y: np.ndarray
    name: str = ""  # how the verdict names it (a folder or file name)


def _load_images(source, image_size, what):
    """(X, y) of 'digits', 'lfw-subset', 'digits-printed', a folder or an .npz."""
    if source == "digits":
        return load_digits_images()
    if source in ("lfw", "lfw-subset"):
        return load_lfw()
    if source == "digits-printed":
        return load_digits_external()
    if source == OTHER_FACES:
        return render_font_digits(30, random_state=1, fonts=OTHER_FONT_FILES)
    if _is_npz(source):
        return load_npz(source, what=what)
    if Path(str(source)).is_dir():
        return load_image_folder(source, image_size=image_size or (32, 32))
    raise ValueError(
        f"{what} must be 'digits', 'lfw-subset' (alias 'lfw'), 'digits-printed', "
        f"{OTHER_FACES!r}, a folder of class subfolders or an .npz file of arrays X, y; "
        f"got {source!r}."
    )


def load_npz(path, what="data"):
    """Images ``X`` (n, H, W) or (n, H, W, C) and labels ``y`` from an ``.npz``
    file, read without pickle; pixels as uint8 0-255 (float pixels in [0, 1]
    are scaled by 255, as the estimators read them). Volumes: ``X`` of
    shape (n, D, H, W) (a last axis longer than 4: no channels) or
    (n, D, H, W, C), returned as (n, D, H, W, C), which every row reads as
    volumes."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"The {what} file {_short(path)!r} does not exist.")
    try:
        _check_npz_sizes(path, what)
        with np.load(path, allow_pickle=False) as f:
            keys = list(f.keys())
            if "X" not in keys or "y" not in keys:
                raise ValueError(
                    f"The {what} file {_short(path)!r} has the arrays {keys}; expected "
                    "X (images) and y (labels), as np.savez(path, X=X, y=y) writes."
                )
            X, y = f["X"], f["y"]
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(
            f"The {what} file {_short(path)!r} is not a readable .npz file: {exc}."
        ) from None
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise ValueError(
                f"The {what} file {_short(path)!r} holds Python objects, which are not "
                "read (no pickle); store X as numbers and y as numbers or strings."
            ) from None
        raise
    if X.ndim == 4 and X.shape[-1] > 4:
        X = X[..., None]  # gray volumes (n, D, H, W): one channel axis, last
    if X.ndim == 4 and X.shape[-1] == 1:
        X = X[..., 0]
    if X.ndim not in (3, 4, 5) or (X.ndim >= 4 and X.shape[-1] not in (1, 3, 4)):
        raise ValueError(
            f"X in {_short(path)!r} has shape {X.shape}; expected images (n, H, W) or "
            "(n, H, W, C) with C in 1, 3, 4, or volumes (n, D, H, W) or "
            "(n, D, H, W, C)."
        )
    if y.ndim != 1 or len(y) != len(X):
        raise ValueError(
            f"y in {_short(path)!r} has shape {y.shape}; expected one label per image "
            f"({len(X)},)."
        )
    if X.ndim >= 4 and X.shape[-1] == 4:
        X = X[..., :3]  # colour without alpha
    return _as_uint8(X, path), y


def _check_npz_sizes(path, what):
    """Each array's header against the bytes its member holds, before numpy
    allocates what the header claims (a damaged or forged header could ask
    for terabytes)."""
    fmt = np.lib.format
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            if not info.filename.endswith(".npy"):
                continue
            with z.open(info) as fh:
                try:
                    version = fmt.read_magic(fh)
                    read = (
                        fmt.read_array_header_1_0
                        if version == (1, 0)
                        else fmt.read_array_header_2_0
                    )
                    shape, _, dtype = read(fh)
                except ValueError:
                    continue  # np.load says what is wrong with it
            if dtype.hasobject:
                continue  # refused when read (no pickle)
            need = int(np.prod(shape, dtype=object)) * dtype.itemsize
            if need > info.file_size:
                raise ValueError(
                    f"The {what} file {_short(path)!r}: its array "
                    f"{info.filename[:-4]!r} claims shape {tuple(shape)} "
                    f"({need / 1e9:.3g} GB) but the file holds {info.file_size} "
                    "bytes of it; the file is damaged or was not written by np.savez."
                )


def _as_uint8(X, path):
    if X.dtype == np.uint8:
        return X
    if X.dtype.kind in "iu" and X.size and (X.min() >= 0 and X.max() <= 255):
        return X.astype(np.uint8)
    if X.dtype.kind == "f" and X.size and not np.isfinite(X).all():
        bad = int((~np.isfinite(X)).any(axis=tuple(range(1, X.ndim))).sum())
        raise ValueError(
            f"X in {_short(path)!r} has NaN or infinite pixels in {bad} of its "
            f"{len(X)} images; expected finite pixels (uint8 0-255 or floats in "
            "[0, 1]). Drop or repair those images."
        )
    if X.dtype.kind == "f" and X.size:
        lo, hi = float(X.min()), float(X.max())
        if lo >= 0 and hi <= 1:
            return np.round(X * 255).astype(np.uint8)
    raise ValueError(
        f"X in {_short(path)!r} has {X.dtype} pixels in "
        f"[{X.min() if X.size else ''}, {X.max() if X.size else ''}]; expected uint8 "
        "(or integers 0-255), or floats in [0, 1]."
    )


def is_volumes(X):
    """True for the comparison's volume arrays ``(n, D, H, W, C)``."""
    return np.ndim(X) == 5


def _resize(X, size):
    """uint8 images ``X`` resized to ``size`` (H, W), channels kept."""
    if X.shape[1:3] == tuple(size):
        return X
    if is_volumes(X):
        raise ValueError(
            "--image-size resizes 2-D images; volumes are compared at their own "
            f"size ({'x'.join(map(str, X.shape[1:4]))}): drop --image-size, or "
            "resize the volumes before saving the .npz file."
        )
    from skimage.transform import resize

    shape = tuple(size) + X.shape[3:]
    X = np.stack([resize(x, shape, preserve_range=True, anti_aliasing=True) for x in X])
    return np.clip(np.round(X), 0, 255).astype(np.uint8)


def _match_images(X, like):
    """``X`` at the data's image size, and gray / colour as the data is."""
    if is_volumes(X) or is_volumes(like):
        if X.shape[1:] != like.shape[1:]:
            raise ValueError(
                f"The external set holds {_shape_words(X)}; the data, "
                f"{_shape_words(like)}: volumes are not resized, save them at the "
                "data's size."
            )
        return X
    X = _resize(X, like.shape[1:3])
    if X.ndim != like.ndim:
        X = (
            X.mean(-1).astype(np.uint8)
            if like.ndim == 3
            else np.repeat(X[..., None], 3, -1)
        )
    return X


def load_run_data(data="digits", externals=None, image_size=None, random_state=0):
    """Train / validation splits of ``data`` and the run's external sets.

    ``externals``: a list of folders, ``.npz`` files, ``"shifted"`` (the
    validation split through skcnn's augmentation) or ``"digits-printed"``;
    None or empty: printed digits for digits, the shifted copy otherwise.
    Returns ``(X_train, y_train, X_val, y_val, [ExternalSet, ...])``.
    """
    X, y = _load_images(data, image_size, "data")
    if _is_npz(data) and image_size:
        X = _resize(X, (image_size, image_size))
    _check_classes(data, y)
    X_train, X_val, y_train, y_val = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=random_state
    )
    if isinstance(externals, (str, Path)):
        externals = [externals]
    externals = list(externals or [None])
    sets = []
    for i, source in enumerate(externals):
        label = set_label("ext", i)
        if source is None and data != "digits":
            source = "shifted"
        if source is None or source == "digits-printed":
            X_ext, y_ext = load_digits_external()
            name = "printed digits"
            if is_volumes(X):
                X_ext = _match_images(X_ext, X)  # says why it cannot be
        elif source == "shifted":
            X_ext = make_shifted(X_val, random_state=random_state)
            y_ext, name = y_val, "shifted validation"
        else:
            X_ext, y_ext = _load_images(source, X.shape[1:3], "external set")
            X_ext, name = _match_images(X_ext, X), _short(source)
        sets.append(
            ExternalSet(label, describe_external(data, source), X_ext, y_ext, name)
        )
    if any(s.y.dtype.kind in "US" for s in sets) or y.dtype.kind in "US":
        # Folder names are strings: compare labels as strings on every side.
        y_train, y_val = y_train.astype(str), y_val.astype(str)
        for s in sets:
            s.y = s.y.astype(str)
    for s in sets:
        _check_set_classes(s, y_train, "external set")
    return X_train, y_train, X_val, y_val, sets


def _check_set_classes(s, y_train, what):
    unknown = sorted(str(c) for c in set(s.y) - set(y_train))
    if unknown:
        raise ValueError(
            f"The {what} {s.name!r} has classes {unknown} that the data does not have."
        )


def describe_selection(source):
    """What a selection set is, in words."""
    if source == OTHER_FACES:
        return (
            "300 digits drawn by 7 font faces the printed digits do not use (bold, "
            "italic and mono faces of DejaVu, STIX and Computer Modern), reduced to 8x8 "
            "as the handwritten ones were: another population the run may look at to "
            "choose. It is drawn by fonts, as the printed digits are: the printed "
            "column is not independent of a choice made on it"
        )
    return describe_external("", source).replace(
        "the images of", "the selection images of"
    )


def load_selection_sets(data, selections, X_like, y_train):
    """The run's selection sets: populations the run may look at to choose a
    model (the recommendation, the vote's members), never used for training
    nor reported as external. ``selections``: a list of folders, ``.npz``
    files or "digits-other-faces"; None: "digits-other-faces" for digits,
    none otherwise; "none" or []: none. Labels "sel", "sel2", ..."""
    if selections is None:
        selections = [OTHER_FACES] if data == "digits" else []
    if isinstance(selections, (str, Path)):
        selections = [selections]
    selections = [s for s in selections if s != "none"]
    sets = []
    for i, source in enumerate(selections):
        label = set_label("sel", i)
        X, y = _load_images(source, X_like.shape[1:3], "selection set")
        X = _match_images(X, X_like)
        name = "other faces" if source == OTHER_FACES else _short(source)
        if y_train.dtype.kind in "US":
            y = y.astype(str)
        sets.append(ExternalSet(label, describe_selection(source), X, y, name))
        _check_set_classes(sets[-1], y_train, "selection set")
    return sets


def load_comparison_data(data="digits", external=None, image_size=None, random_state=0):
    """Return train / validation / external splits as uint8 image arrays.

    ``external``: a folder of class subfolders, an ``.npz`` file,
    ``"shifted"`` (the validation split through skcnn's augmentation) or
    None: for digits a truly external population
    (:func:`~skcnn.datasets.load_digits_external`), otherwise the shifted
    copy. :func:`describe_external` says which. :func:`load_run_data` takes
    several external sets.
    """
    X_train, y_train, X_val, y_val, sets = load_run_data(
        data, None if external is None else [external], image_size, random_state
    )
    return X_train, y_train, X_val, y_val, sets[0].X, sets[0].y


def _shape_words(X):
    """'DxHxW gray volumes' / 'HxW colour images' of an array of samples."""
    if is_volumes(X):
        colour = "gray" if X.shape[-1] == 1 else "colour"
        return f"{'x'.join(map(str, X.shape[1:4]))} {colour} volumes"
    colour = "colour" if X.ndim == 4 else "gray"
    return f"{X.shape[1]}x{X.shape[2]} {colour} images"


def summarize_images(X, y):
    """Count, size, colour and per-class counts of an image set, in words."""
    classes, counts = np.unique(y, return_counts=True)
    per = (
        ", ".join(f"{c}: {n}" for c, n in zip(classes, counts))
        if len(classes) <= 12
        else f"min {counts.min()}, median {int(np.median(counts))}, max {counts.max()}"
    )
    kind = "volumes" if is_volumes(X) else "images"
    return (
        f"{len(y):,} {kind}, {_shape_words(X).removesuffix(' ' + kind)}, "
        f"{len(classes)} classes (per class: {per})"
    )


def chance_f1(y):
    """The chance level of macro F1: guessing at random in the classes'
    proportions gives each class an F1 equal to its share, 1 / n_classes on
    average, whatever the balance."""
    return 1.0 / len(np.unique(y))


MAX_IMAGE_SIZE = 1024


def _check_classes(data, y):
    """At least two classes with two images each (a stratified split needs
    them), said in terms of the data's folders."""
    classes, counts = np.unique(y, return_counts=True)
    found = ", ".join(f"{str(c)!r}: {n} image(s)" for c, n in zip(classes, counts))
    if len(classes) >= 2 and counts.min() >= 2:
        return _check_split(data, y, classes)
    if len(classes) < 2:
        hint = ""
        if Path(str(data)).is_dir():
            inner = Path(str(data)) / str(classes[0])
            sub = sorted(p.name for p in inner.iterdir() if p.is_dir())
            if sub:
                hint = (
                    f" Its images are in subfolders of {str(inner)!r} ({sub[:5]}"
                    f"{', ...' if len(sub) > 5 else ''}): did you mean --data "
                    f"{str(inner)!r}?"
                )
        raise ValueError(
            f"The data ({describe_data(data)}) has {len(classes)} class ({found}); a "
            f"comparison needs at least 2 classes, one subfolder per class.{hint}"
        )
    few = [str(c) for c, n in zip(classes, counts) if n < 2]
    raise ValueError(
        f"The data ({describe_data(data)}): class(es) {few} have fewer than 2 images "
        f"({found}); each class needs images in both the training and the validation "
        "split."
    )


def _check_split(data, y, classes):
    """The 25% stratified validation split can hold every class (and so can
    the training split)."""
    n_val = int(np.ceil(0.25 * len(y)))
    if n_val < len(classes) or len(y) - n_val < len(classes):
        raise ValueError(
            f"The data ({describe_data(data)}) has {len(y)} images in {len(classes)} "
            f"classes: too few for a stratified validation split (25%, {n_val} "
            f"images) that holds every class; a comparison needs at least "
            f"{4 * len(classes)} images (4 per class; more for its CV folds)."
        )


def _check_folds(y_train, n_splits):
    """Each class needs an image in every CV fold of the training split."""
    classes, counts = np.unique(y_train, return_counts=True)
    few = {str(c): int(n) for c, n in zip(classes, counts) if n < n_splits}
    if few:
        raise ValueError(
            f"The training split has classes with fewer images than the "
            f"{n_splits} CV folds: {few}. Add images to those classes or pass a "
            f"smaller --cv (at least 2)."
        )
