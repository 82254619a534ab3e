"""Resolving and loading pretrained weights, safely.

One place for every estimator: ``weights`` may be

- ``None``: no pretrained weights;
- a torchvision weights name (``"DEFAULT"``, ``"IMAGENET1K_V1"``): the file is
  taken from the torch hub cache (``$TORCH_HOME/hub/checkpoints``) or
  downloaded there, with the hash in its file name checked;
- a local ``.pth`` / ``.pt`` state dict (torchvision key format; legacy
  DenseNet key names are remapped) or a ``.safetensors`` file;
- an ``http(s)://`` URL, downloaded to the hub cache and hash checked.

Nothing is ever unpickled beyond tensors: ``.pth`` files are read with
``torch.load(weights_only=True)``, and a file that carries any other pickled
object is refused before it can run.
"""

from __future__ import annotations

import os
import pickle
import re
import socket
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import torch

__all__ = [
    "ResolvedWeights",
    "cached_densenet121",
    "UnsafeWeightsError",
    "check_finite",
    "is_weight_location",
    "read_safetensors",
    "resolve_weights",
    "load_state_dict",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_DOWNLOAD_TIMEOUT_S = 10


class UnsafeWeightsError(ValueError):
    """A weight file holds pickled objects other than tensors."""


@dataclass
class ResolvedWeights:
    """A state dict plus what comes with it (normalisation, source)."""

    state_dict: dict
    source: str
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    meta: dict = field(default_factory=dict)


def hub_checkpoint_dir():
    return Path(torch.hub.get_dir()) / "checkpoints"


def cache_path(url):
    """Where torch.hub keeps (or will keep) the file downloaded from ``url``."""
    return hub_checkpoint_dir() / os.path.basename(urlparse(url).path)


def _torchvision_weights(arch, name):
    from torchvision.models import get_model_weights

    try:
        enum = get_model_weights(arch)
    except (ValueError, KeyError) as exc:
        raise ValueError(f"torchvision has no model named {arch!r}.") from exc
    try:
        return enum[name] if name != "DEFAULT" else enum.DEFAULT
    except KeyError:
        raise ValueError(
            f"{arch} has no weights named {name!r}; available: "
            f"{['DEFAULT', *[w.name for w in enum]]}."
        ) from None


def cached_densenet121():
    """The torchvision DenseNet-121 ImageNet file in the torch hub cache, if present."""
    from torchvision.models import DenseNet121_Weights

    path = cache_path(DenseNet121_Weights.DEFAULT.url)
    return path if path.is_file() else None


def _download(url, what):
    """Fetch ``url`` into the hub cache with hash checking; fail fast offline."""
    cached = cache_path(url)
    folder, filename = cached.parent, cached.name
    if torch.hub.HASH_REGEX.search(filename) is None:
        warnings.warn(
            f"{url} has no sha256 prefix in its file name (name-<hash>.pth), so its "
            "content cannot be verified; it is still loaded with weights_only=True.",
            UserWarning,
            stacklevel=3,
        )
    if cached.is_file():
        # torch.hub checks the hash only when it downloads; check the cache too.
        _check_cached_hash(cached)
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(_DOWNLOAD_TIMEOUT_S)
    try:
        return torch.hub.load_state_dict_from_url(
            url,
            model_dir=str(folder),
            map_location="cpu",
            check_hash=True,
            weights_only=True,
            progress=False,
        )
    except pickle.UnpicklingError as exc:
        raise UnsafeWeightsError(
            f"Refused {url}: it holds pickled objects, not only tensors ({exc})."
        ) from None
    except (OSError, RuntimeError) as exc:
        raise RuntimeError(
            f"Could not download the {what} weights from {url} ({exc}). "
            f"They are not in the cache folder {folder}. To use them offline, download "
            f"the file on a machine with internet access and copy it to {cached} "
            f"(or set TORCH_HOME), or pass weights='/path/to/{filename}'."
        ) from None
    finally:
        socket.setdefaulttimeout(old)


def _check_cached_hash(path):
    """torch.hub checks the hash only when downloading; check cached files too."""
    import hashlib

    m = torch.hub.HASH_REGEX.search(path.name)
    if m is None:
        return
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    if not digest.hexdigest().startswith(m.group(1)):
        raise RuntimeError(
            f"The cached weight file {path} has an invalid hash value (expected a sha256 "
            f"starting with {m.group(1)}); delete it and download it again."
        )


def load_state_dict(path):
    """Read a state dict from a .pth/.pt (tensors only) or .safetensors file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Weight file {str(path)!r} does not exist.")
    if path.suffix == ".safetensors":
        return read_safetensors(path, f"The weight file {str(path)!r}")
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UnsafeWeightsError(
            f"Refused to load {str(path)!r}: it holds pickled Python objects, not only "
            f"tensors, and loading it could run code. Save a plain state_dict "
            f"(torch.save(model.state_dict(), path)) or a .safetensors file. ({str(exc).splitlines()[0]})"
        ) from None
    except (RuntimeError, EOFError, OSError) as exc:
        # a truncated or foreign file: torch's reader names neither
        raise ValueError(
            f"The weight file {str(path)!r} cannot be read as a PyTorch state dict "
            f"({str(exc).splitlines()[0][:200]}); it may be truncated. Expected a "
            "file written by torch.save(model.state_dict(), path), or .safetensors."
        ) from None
    if (
        isinstance(state, dict)
        and "state_dict" in state
        and isinstance(state["state_dict"], dict)
    ):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise ValueError(f"{str(path)!r} does not hold a state dict of tensors.")
    check_finite(state, f"The weight file {str(path)!r}")
    return state


def read_safetensors(path, what):
    """The tensors of a safetensors file, on the CPU and finite; errors say
    ``what`` the file is."""
    from safetensors.torch import load_file

    try:
        state = load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors raises its own error type
        raise ValueError(
            f"{what} cannot be read as safetensors ({exc}); it may be truncated."
        ) from None
    check_finite(state, what)
    return state


def check_finite(state, what):
    """Refuse a state dict with NaN or infinite floats where it is read (a
    fit from it would only report "diverged")."""
    bad = [
        k
        for k, v in state.items()
        if v.is_floating_point() and not bool(torch.isfinite(v).all())
    ]
    if bad:
        raise ValueError(
            f"{what} has NaN or infinite values in {len(bad)} tensor(s), e.g. "
            f"{bad[:3]}; expected finite weights."
        )


_LEGACY_DENSENET = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


def remap_legacy_keys(state):
    """Old torchvision DenseNet names (``norm.1``) to current ones (``norm1``)."""
    out = {}
    for key, value in state.items():
        m = _LEGACY_DENSENET.match(key)
        out[m.group(1) + m.group(2) if m else key] = value
    # Strip prefixes that wrappers add.
    for prefix in ("module.", "model."):
        if out and all(k.startswith(prefix) for k in out):
            out = {k[len(prefix) :]: v for k, v in out.items()}
    return out


def _is_url(text):
    return text.startswith(("http://", "https://"))


def _is_file_name(text):
    return (
        Path(text).suffix in (".pth", ".pt", ".safetensors", ".bin") or os.sep in text
    )


def is_weight_location(weights):
    """Whether ``weights`` names a place (a file or a URL) rather than a
    named weight set or tensors."""
    if not isinstance(weights, (str, os.PathLike)):
        return False
    text = os.fspath(weights)
    return _is_url(text) or _is_file_name(text) or isinstance(weights, os.PathLike)


def resolve_weights(arch, weights):
    """Turn the ``weights`` parameter into a :class:`ResolvedWeights` (or None)."""
    if weights is None:
        return None
    if isinstance(weights, dict):
        return ResolvedWeights(remap_legacy_keys(weights), source="state_dict")
    if not isinstance(weights, (str, os.PathLike)):
        raise TypeError(
            f"weights must be None, a name, a path or a URL; got {type(weights).__name__}."
        )
    text = os.fspath(weights)
    if _is_url(text):
        return ResolvedWeights(
            remap_legacy_keys(_download(text, arch or "model")), source=text
        )
    if _is_file_name(text) or isinstance(weights, os.PathLike):
        return ResolvedWeights(
            remap_legacy_keys(load_state_dict(text)), source=str(Path(text).resolve())
        )
    if not isinstance(arch, str):
        raise ValueError(
            f"weights={text!r} names torchvision weights, which need a named architecture."
        )
    tv = _torchvision_weights(arch, text)
    state = _download(tv.url, f"{arch} {tv.name}")
    transforms = tv.transforms()
    return ResolvedWeights(
        remap_legacy_keys(state),
        source=tv.url,
        mean=tuple(getattr(transforms, "mean", IMAGENET_MEAN)),
        std=tuple(getattr(transforms, "std", IMAGENET_STD)),
        meta={
            "name": f"{arch}.{tv.name}",
            "crop_size": getattr(transforms, "crop_size", None),
        },
    )


def load_into(module, state, *, skip_prefixes=("classifier.", "fc.")):
    """Load ``state`` into ``module``, skipping the old head; report mismatches clearly."""
    own = module.state_dict()
    kept = {k: v for k, v in state.items() if not k.startswith(skip_prefixes)}
    bad = [k for k, v in kept.items() if k in own and own[k].shape != v.shape]
    if bad:
        raise ValueError(
            f"The weights do not fit the architecture: shape mismatch for {bad[:5]} "
            f"(e.g. {tuple(kept[bad[0]].shape)} in the file vs {tuple(own[bad[0]].shape)})."
        )
    missing, unexpected = module.load_state_dict(kept, strict=False)
    # Old files have no batch-norm step counters; they are not weights.
    missing = [
        k
        for k in missing
        if not k.startswith(skip_prefixes) and not k.endswith("num_batches_tracked")
    ]
    if missing or unexpected:
        raise ValueError(
            f"The weights do not fit the architecture: missing {missing[:5]}, "
            f"unexpected {list(unexpected)[:5]}."
        )
    return module
