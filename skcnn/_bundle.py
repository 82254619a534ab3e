"""Safe files for whole Pipelines and meta-estimators that hold skcnn models.

A bundle is a zip file: ``skcnn-bundle.json`` (format and count),
``objects.skops`` (the object tree, written by skops.io, with every fitted
skcnn network or extractor replaced by a :class:`SavedNetwork` placeholder)
and ``network-<i>.safetensors`` (each of those models as a skcnn safe file).
Loading checks skops' list of untrusted types first: skcnn's own types are
trusted, anything else must be named in ``trusted=``. Nothing in the file is
executed: skops builds objects without ``pickle``, and the networks are
rebuilt from JSON and tensors.
"""

from __future__ import annotations

import copy
import json
import tempfile
import zipfile
from pathlib import Path

__all__ = ["SavedNetwork", "load_any", "load_bundle", "save_any", "save_bundle"]

_FORMAT = "skcnn-bundle-1"
_MANIFEST = "skcnn-bundle.json"
_OBJECTS = "objects.skops"


class SavedNetwork:
    """Stands for the ``index``-th network of a bundle in its object tree."""

    def __init__(self, index):
        self.index = index


def _skops():
    try:
        import skops.io
    except ImportError:
        raise ImportError(
            "Saving or loading a Pipeline needs skops: pip install 'skcnn[skops]'."
        ) from None
    return skops.io


def _network_classes():
    """skcnn's estimator classes that have safe files."""
    from ._persistence import _CLASSES, _import_estimators

    _import_estimators()
    return tuple(_CLASSES.values())


def _walk(obj, classes, seen, found):
    """Every fitted skcnn model reachable from ``obj``, in a stable order."""
    if id(obj) in seen or obj is None or isinstance(obj, (str, bytes, int, float)):
        return
    seen.add(id(obj))
    if isinstance(obj, classes) and hasattr(obj, "layout_"):
        found.append(obj)
        return
    if isinstance(obj, dict):
        children = list(obj.values())
    elif isinstance(obj, (list, tuple, set, frozenset)):
        children = list(obj)
    elif hasattr(obj, "__dict__") and not isinstance(obj, type):
        children = list(vars(obj).values())
    else:
        return
    for child in children:
        _walk(child, classes, seen, found)


def save_bundle(obj, path):
    """Write ``obj`` (a Pipeline, a search, any estimator tree) to a bundle."""
    sio = _skops()
    found = []
    _walk(obj, _network_classes(), set(), found)
    memo = {id(net): SavedNetwork(i) for i, net in enumerate(found)}
    skeleton = copy.deepcopy(obj, memo)
    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(path, "w") as z:
        z.writestr(_MANIFEST, json.dumps({"format": _FORMAT, "networks": len(found)}))
        z.writestr(_OBJECTS, sio.dumps(skeleton))
        for i, net in enumerate(found):
            net_path = Path(tmp) / f"network-{i}.safetensors"
            net.save(net_path)
            z.write(net_path, net_path.name)
    return path


def save_any(obj, path):
    """Write a fitted skcnn estimator, or a Pipeline / meta-estimator holding
    skcnn estimators, to a safe file; :func:`load` reads both.

    Parameters
    ----------
    obj : fitted estimator
        A skcnn network or feature extractor (one ``.safetensors`` file), or
        any estimator tree: Pipelines, searches, stacking, with skcnn models
        and scikit-learn parts (a zip bundle; needs ``skops``).
    path : str or Path
        The file to write.

    Returns
    -------
    path : Path
        The file written.
    """
    if isinstance(obj, _network_classes()):
        return obj.save(path)
    return save_bundle(obj, path)


def load_any(path, device=None, trusted=None):
    """Rebuild an estimator saved with ``skcnn.save`` or ``estimator.save``.

    Parameters
    ----------
    path : str or Path
        The model file: a skcnn safe file or a Pipeline bundle.
    device : str or None, default=None
        Where to put the networks; None uses each saved ``device`` parameter,
        falling back to the CPU when it asks for CUDA and there is none.
    trusted : list of str or None, default=None
        For a bundle: types besides skcnn's own (and those skops trusts by
        default) that you have checked and allow, as skops names them
        (``skops.io.get_untrusted_types``).

    Returns
    -------
    estimator : fitted estimator
        The estimator (or Pipeline) as it was saved.
    """
    from ._persistence import load

    if Path(path).is_file() and zipfile.is_zipfile(path):
        return load_bundle(path, device=device, trusted=trusted)
    return load(path, device=device)


def _substitute(obj, networks, seen):
    """Put the loaded networks where their placeholders are, in place."""
    if isinstance(obj, SavedNetwork):
        return networks[obj.index]
    if id(obj) in seen or obj is None or isinstance(obj, (str, bytes, int, float)):
        return obj
    seen.add(id(obj))
    if isinstance(obj, list):
        obj[:] = [_substitute(v, networks, seen) for v in obj]
    elif isinstance(obj, dict):
        for k in list(obj):
            obj[k] = _substitute(obj[k], networks, seen)
    elif isinstance(obj, tuple):
        items = [_substitute(v, networks, seen) for v in obj]
        if any(new is not old for new, old in zip(items, obj)):
            return type(obj)(items)
    elif hasattr(obj, "__dict__") and not isinstance(obj, type):
        for k, v in list(vars(obj).items()):
            new = _substitute(v, networks, seen)
            if new is not v:
                setattr(obj, k, new)
    return obj


def load_bundle(path, device=None, trusted=None):
    """Rebuild what :func:`save_bundle` wrote (see :func:`skcnn.load`)."""
    from ._persistence import load

    sio = _skops()
    path = Path(path)
    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
        manifest = json.loads(z.read(_MANIFEST)) if _MANIFEST in names else {}
        if manifest.get("format") != _FORMAT or _OBJECTS not in names:
            raise ValueError(
                f"{str(path)!r} is a zip file but not an skcnn bundle (no {_MANIFEST} "
                f"of format {_FORMAT!r})."
            )
        data = z.read(_OBJECTS)
        untrusted = sio.get_untrusted_types(data=data)
        allowed = set(trusted or ())
        unknown = [
            t for t in untrusted if not t.startswith("skcnn.") and t not in allowed
        ]
        if unknown:
            raise ValueError(
                f"The bundle {str(path)!r} holds types that are not trusted: {unknown}. "
                "Check them, then pass them in trusted=[...] to load the file."
            )
        skeleton = sio.loads(data, trusted=list(untrusted))
        networks = []
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(int(manifest.get("networks", 0))):
                name = f"network-{i}.safetensors"
                if name not in names:
                    raise ValueError(f"The bundle {str(path)!r} lacks {name}.")
                networks.append(load(z.extract(name, tmp), device=device))
    return _substitute(skeleton, networks, set())
