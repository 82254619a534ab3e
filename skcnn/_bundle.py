"""Safe files for whole Pipelines and meta-estimators that hold skcnn models.

A bundle is a zip file: ``skcnn-bundle.json`` (format and count),
``objects.skops`` (the object tree, written by skops.io, with every fitted
skcnn network or extractor replaced by a :class:`SavedNetwork` placeholder)
and ``network-<i>.safetensors`` (each of those models as a skcnn safe file).

Loading reads the object tree's schema before skops builds anything. skcnn
objects are trusted by exact type (:func:`bundle_types`), only as plain
objects (never as functions, methods or constructor calls, whatever
``trusted=`` says), and skcnn's networks only unfitted: a fitted network is
rebuilt from its own safetensors member, never from state in the tree.
Anything else must be trusted by skops or named in ``trusted=``. Nothing in
the file is executed: skops builds objects without ``pickle``, and the
networks are rebuilt from JSON and tensors.
"""

from __future__ import annotations

import copy
import io
import json
import tempfile
import zipfile
import zlib
from pathlib import Path

from ._files import atomic_output, check_output_path

__all__ = [
    "SavedNetwork",
    "bundle_types",
    "load_any",
    "load_bundle",
    "save_any",
    "save_bundle",
]

_FORMAT = "skcnn-bundle-1"
_MANIFEST = "skcnn-bundle.json"
_OBJECTS = "objects.skops"
_SCHEMA = "schema.json"

# What a bundle's members may inflate to, checked from the zip directories
# before any member is read (zipfile reads no more than the directory
# says). By kind: the manifest is a line of JSON; the object tree holds
# scikit-learn's fitted arrays; a network member holds its weights. A large
# member must also not be compressed more than _MAX_RATIO times: weights and
# arrays compress 1-5x (skcnn.save stores them uncompressed), a zip bomb
# about 1000x. ``skcnn.load(..., max_size=)`` replaces all of them by one
# limit for a file you trust.
_LIMITS = {"manifest": 1 << 20, "objects": 4 << 30, "network": 8 << 30}
_MAX_TOTAL = 16 << 30
_MAX_RATIO, _RATIO_FROM = 100, 16 << 20


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


def network_classes():
    """skcnn's estimator classes that have safe files (importing their
    modules registers them with ``_persistence``)."""
    from . import (  # noqa: F401 - imported to register their classes
        _cnn,
        _densenet,
        _feature_extraction,
        _pretrained_classifier,
    )
    from ._persistence import _CLASSES

    return tuple(_CLASSES.values())


def bundle_types():
    """The skcnn types a bundle may hold, by their full name: the network
    placeholder, the layout value, ``Augment``, the baselines, the searches
    and the network estimators (these unfitted: see :func:`load_bundle`)."""
    from . import baselines, model_selection
    from ._data import ImageLayout
    from .augmentation import Augment

    classes = [
        SavedNetwork,
        ImageLayout,
        Augment,
        *(getattr(baselines, name) for name in baselines.__all__),
        *(getattr(model_selection, name) for name in model_selection.__all__),
        *network_classes(),
    ]
    return {f"{c.__module__}.{c.__qualname__}": c for c in classes}


def _is_skcnn(module):
    return module == "skcnn" or str(module).startswith("skcnn.")


def _schema_nodes(node):
    """Every node of a skops schema (dicts naming a module and a loader)."""
    if isinstance(node, dict):
        if "__module__" in node and "__loader__" in node:
            yield node
        for value in node.values():
            yield from _schema_nodes(value)
    elif isinstance(node, list):
        for value in node:
            yield from _schema_nodes(value)


def _check_skcnn_nodes(schema, path, allowed):
    """Refuse what skops would otherwise build from skcnn names: a callable
    (function, method, constructor call), a type outside ``allowed``
    (:func:`bundle_types`), a network carrying fitted state."""
    networks = set(network_classes())
    for node in _schema_nodes(schema):
        module, name = node["__module__"], str(node.get("__class__"))
        if not _is_skcnn(module):
            continue
        full = f"{module}.{name}"
        if node["__loader__"] != "ObjectNode" or full not in allowed:
            raise ValueError(
                f"The bundle {str(path)!r} refers to {full!r} as a "
                f"{node['__loader__']}; a bundle holds skcnn objects only as plain "
                f"objects of these types: {sorted(allowed)}. The file was not "
                "written by skcnn.save and is not loaded."
            )
        cls = allowed[full]
        attrs = _object_attrs(node)
        if cls in networks:
            known = set(cls().get_params(deep=False)) | {"_sklearn_version"}
            extra = sorted(set(attrs) - known)
            if extra:
                raise ValueError(
                    f"The bundle {str(path)!r} holds a {cls.__name__} with state "
                    f"{extra[:5]} in its object tree; skcnn.save writes fitted networks "
                    "as their own safetensors members. The file is not loaded."
                )
        elif cls is SavedNetwork and set(attrs) != {"index"}:
            raise ValueError(
                f"The bundle {str(path)!r} has a network placeholder with state "
                f"{sorted(attrs)[:5]}; the file is damaged."
            )


def _object_attrs(node):
    """The attribute nodes of a skops ObjectNode, by name."""
    content = node.get("content")
    if content is None:
        return {}
    attrs = content.get("content") if isinstance(content, dict) else None
    if content.get("__loader__") != "DictNode" or not isinstance(attrs, dict):
        # skcnn objects are written from their __dict__: anything else is forged
        raise ValueError(
            f"A {node['__module__']}.{node['__class__']} object's state is a "
            f"{content.get('__loader__')!r}, not a dict; the file was not written by "
            "skcnn.save."
        )
    return attrs


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


def _forget_places(root, path, say=True):
    """Reset, in place, every parameter of an object tree that names a place,
    a peer or machine resources (``_params.places``: the registry for
    skcnn's estimators, scikit-learn's ``memory`` and ``n_jobs`` for any
    estimator). With ``say``, one warning line names what was left out."""
    from sklearn.base import BaseEstimator

    from ._params import init_defaults, split_places

    left, seen, stack = [], set(), [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or obj is None or isinstance(obj, (str, bytes, int, float)):
            continue
        seen.add(id(obj))
        if isinstance(obj, BaseEstimator) and not isinstance(obj, type):
            cls = type(obj)
            _, dropped, news = split_places(cls, obj.get_params(deep=False))
            left += [f"{cls.__name__}.{k}={v!r}" for k, v in news.items()]
            if dropped:
                defaults = init_defaults(cls)
                for name in dropped:
                    setattr(obj, name, defaults.get(name))
        if isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        elif hasattr(obj, "__dict__") and not isinstance(obj, type):
            stack.extend(vars(obj).values())
    if left and say:
        import warnings

        warnings.warn(
            f"{str(path)!r}: not restored from the bundle (a model file names no "
            "folders, peers or machine settings; set them again if you need them): "
            f"{', '.join(left)}.",
            UserWarning,
            stacklevel=4,
        )


def save_bundle(obj, path):
    """Write ``obj`` (a Pipeline, a search, any estimator tree) to a bundle."""
    sio = _skops()
    check_output_path(path, "bundle")
    found = []
    _walk(obj, network_classes(), set(), found)
    memo = {id(net): SavedNetwork(i) for i, net in enumerate(found)}
    skeleton = copy.deepcopy(obj, memo)
    _forget_places(skeleton, path, say=False)  # a file carries no places
    objects = sio.dumps(skeleton)
    with (
        atomic_output(path, "bundle") as out,
        tempfile.TemporaryDirectory() as tmp,
        zipfile.ZipFile(out, "w") as z,
    ):
        z.writestr(_MANIFEST, json.dumps({"format": _FORMAT, "networks": len(found)}))
        z.writestr(_OBJECTS, objects)
        for i, net in enumerate(found):
            net_path = Path(tmp) / f"network-{i}.safetensors"
            net.save(net_path)
            z.write(net_path, net_path.name)
    return Path(path)


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
    if isinstance(obj, network_classes()):
        return obj.save(path)
    return save_bundle(obj, path)


def load_any(path, device=None, trusted=None, max_size=None):
    """Rebuild an estimator saved with ``skcnn.save`` or ``estimator.save``.

    Parameters
    ----------
    path : str or Path
        The model file: a skcnn safe file or a Pipeline bundle.
    device : str or None, default=None
        Where to put the networks; None: ``"auto"`` (CUDA when available,
        else the CPU). A file never chooses the device.
    trusted : list of str or None, default=None
        For a bundle: types besides skcnn's own (and those skops trusts by
        default) that you have checked and allow, as skops names them
        (``skops.io.get_untrusted_types``).
    max_size : int or None, default=None
        For a bundle: the most bytes its members (and any one member) may
        inflate to. None: limits by member kind (8 GiB a network, 4 GiB the
        object tree, 16 GiB in all) and no member compressed more than 100x.

    Notes
    -----
    Parameters that name a folder, a peer or this machine's resources
    (``memory``, ``checkpoint_dir``, ``device``, ``num_threads``, a weights
    file, ...) are never taken from a file: they load as their defaults,
    with a warning naming the values left out (see docs/security.rst).

    Returns
    -------
    estimator : fitted estimator
        The estimator (or Pipeline) as it was saved.
    """
    from ._persistence import load

    network_classes()
    if max_size is not None and (
        isinstance(max_size, bool) or not isinstance(max_size, int) or max_size <= 0
    ):
        raise ValueError(
            f"max_size must be a positive int (bytes) or None; got {max_size!r}."
        )
    if Path(path).is_file() and zipfile.is_zipfile(path):
        return load_bundle(path, device=device, trusted=trusted, max_size=max_size)
    return load(path, device=device)


def _substitute(obj, networks, seen, path):
    """Put the loaded networks where their placeholders are, in place."""
    if isinstance(obj, SavedNetwork):
        index = obj.index
        if isinstance(index, bool) or not isinstance(index, int):
            index = -1
        if not 0 <= index < len(networks):
            raise ValueError(
                f"The bundle {str(path)!r} has a placeholder for network {obj.index!r}, "
                f"but holds {len(networks)} network(s); the file is damaged."
            )
        return networks[index]
    if id(obj) in seen or obj is None or isinstance(obj, (str, bytes, int, float)):
        return obj
    seen.add(id(obj))
    if isinstance(obj, list):
        obj[:] = [_substitute(v, networks, seen, path) for v in obj]
    elif isinstance(obj, dict):
        for k in list(obj):
            obj[k] = _substitute(obj[k], networks, seen, path)
    elif isinstance(obj, tuple):
        items = [_substitute(v, networks, seen, path) for v in obj]
        if any(new is not old for new, old in zip(items, obj)):
            return type(obj)(items)
    elif hasattr(obj, "__dict__") and not isinstance(obj, type):
        for k, v in list(vars(obj).items()):
            new = _substitute(v, networks, seen, path)
            if new is not v:
                setattr(obj, k, new)
    return obj


def _read_manifest(z, names, path):
    manifest = None
    if _MANIFEST in names:
        try:
            manifest = json.loads(z.read(_MANIFEST))
        except (ValueError, UnicodeDecodeError, RecursionError):
            manifest = None
    if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT:
        if any(n.endswith("data.pkl") for n in names):
            raise ValueError(
                f"{str(path)!r} is a PyTorch checkpoint (.pth), not an skcnn model file "
                "or bundle. skcnn.load reads what skcnn.save wrote; give a .pth state "
                "dict to an estimator's weights= parameter instead."
            )
        raise ValueError(
            f"{str(path)!r} is a zip file but not an skcnn bundle (no {_MANIFEST} "
            f"of format {_FORMAT!r})."
        )
    count = manifest.get("networks", 0)
    if _OBJECTS not in names or not (
        isinstance(count, int) and not isinstance(count, bool) and 0 <= count < 10_000
    ):
        raise ValueError(
            f"The bundle {str(path)!r} has a damaged manifest: expected {_OBJECTS} and "
            f"a network count (an int >= 0); got networks={count!r}."
        )
    return count


def _kind(name):
    if name == _MANIFEST:
        return "manifest"
    if name == _OBJECTS:
        return "objects"
    return "network" if name.startswith("network-") else None


def _size(n):
    return f"{n / (1 << 30):.1f} GiB" if n >= 1 << 30 else f"{n / (1 << 20):.1f} MiB"


def check_sizes(infos, path, max_size, kind_of=_kind, where=""):
    """Refuse members (``ZipInfo``) that would inflate beyond their kind's
    limit, the total limit or the compression-ratio guard (a zip bomb),
    from the sizes the directory states; members of no kind are never read
    and not counted. ``max_size``: one limit for everything, no ratio guard."""
    total = 0
    for info in infos:
        kind = kind_of(info.filename)
        if kind is None:
            continue
        total += info.file_size
        limit = _LIMITS[kind] if max_size is None else max_size
        ratio = info.file_size / max(info.compress_size, 1)
        bomb = max_size is None and info.file_size > _RATIO_FROM and ratio > _MAX_RATIO
        if info.file_size > limit or bomb:
            why = (
                f"is compressed {ratio:.0f} times (more than {_MAX_RATIO}x: a zip bomb?)"
                if bomb
                else f"is more than the {_size(limit)} a {kind} member may hold"
            )
            raise ValueError(
                f"The bundle {str(path)!r}: member {where}{info.filename!r} inflates to "
                f"{_size(info.file_size)} and {why}; it is not read. If you trust the "
                "file, pass max_size=<bytes> to skcnn.load."
            )
    limit = _MAX_TOTAL if max_size is None else max_size
    if total > limit:
        raise ValueError(
            f"The bundle {str(path)!r} inflates to {_size(total)}, more than "
            f"{_size(limit)}; it is not read. If you trust the file, pass "
            "max_size=<bytes> to skcnn.load."
        )


def _read_schema(data, path, max_size):
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as objects:
            # skops reads every member of its own zip: bounded as well
            check_sizes(
                objects.infolist(),
                path,
                max_size,
                kind_of=lambda name: "objects",
                where=f"{_OBJECTS}/",
            )
            return json.loads(objects.read(_SCHEMA))
    except (
        zipfile.BadZipFile,
        KeyError,
        ValueError,
        UnicodeDecodeError,
        RecursionError,
    ):
        raise ValueError(
            f"The bundle {str(path)!r} has a damaged {_OBJECTS} member (expected a "
            f"skops file with {_SCHEMA})."
        ) from None


def load_bundle(path, device=None, trusted=None, max_size=None):
    """Rebuild what :func:`save_bundle` wrote (see :func:`skcnn.load`)."""
    from ._persistence import load

    sio = _skops()
    path = Path(path)
    if trusted is not None and (
        not isinstance(trusted, (list, tuple, set, frozenset))
        or not all(isinstance(t, str) for t in trusted)
    ):
        raise TypeError(f"trusted must be a list of type names (str); got {trusted!r}.")
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            check_sizes(z.infolist(), path, max_size)
            count = _read_manifest(z, names, path)
            data = z.read(_OBJECTS)
            skcnn_types = bundle_types()
            _check_skcnn_nodes(_read_schema(data, path, max_size), path, skcnn_types)
            untrusted = sio.get_untrusted_types(data=data)
            allowed = set(skcnn_types) | set(trusted or ())
            unknown = [t for t in untrusted if t not in allowed]
            if unknown:
                raise ValueError(
                    f"The bundle {str(path)!r} holds types that are not trusted: "
                    f"{unknown}. Check them, then pass them in trusted=[...] to load "
                    "the file."
                )
            skeleton = sio.loads(data, trusted=list(untrusted))
            _forget_places(skeleton, path)
            networks = []
            with tempfile.TemporaryDirectory() as tmp:
                for i in range(count):
                    name = f"network-{i}.safetensors"
                    if name not in names:
                        raise ValueError(f"The bundle {str(path)!r} lacks {name}.")
                    networks.append(
                        load(
                            z.extract(name, tmp),
                            device=device,
                            name=f"{path}, member {name}",
                        )
                    )
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise ValueError(
            f"The bundle {str(path)!r} is damaged or truncated ({exc}); save it again."
        ) from None
    return _substitute(skeleton, networks, set(), path)
