"""PretrainedFeatureExtractor: a pretrained backbone's activations as features."""

from __future__ import annotations

import hashlib
import io
import os

import joblib
import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted
from torch import nn
from tqdm.auto import tqdm

from ._base import ImageTransformerMixin
from ._data import BatchIterator, TensorData, prepare_images
from ._training import gpu_missing, resolve_device, resolve_precision
from .models.adapter import InputAdapter
from .pretrained import load_into, resolve_weights

__all__ = ["PretrainedFeatureExtractor"]


def _last_linear(model):
    name = None
    for n, m in model.named_modules():
        if isinstance(m, nn.Linear):
            name = n
    return name


def _set_submodule(model, name, new):
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


class _Backbone(nn.Module):
    """Adapter + backbone truncated at the penultimate features or a hooked layer."""

    def __init__(self, adapter, model, layer, pooling, channels_last=False):
        super().__init__()
        self.channels_last = channels_last
        self.adapter = adapter
        self.model = model
        self.layer = layer
        self.pooling = pooling
        self._captured = None
        if layer is not None:
            model.get_submodule(layer).register_forward_hook(self._capture)

    def _capture(self, module, inputs, output):
        self._captured = output
        raise _StopForward

    def forward(self, x):
        x = self.adapter(x)
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.layer is None:
            out = self.model(x)
        else:
            try:
                self.model(x)
                raise RuntimeError(
                    f"Layer {self.layer!r} was not reached in the forward pass."
                )
            except _StopForward:
                out = self._captured
                self._captured = None
        if out.ndim > 2:
            if self.pooling == "avg":
                out = out.flatten(2).mean(2)
            elif self.pooling == "max":
                out = out.flatten(2).amax(2)
            else:
                out = out.flatten(1)
        return out


class _StopForward(Exception):
    """Raised by the layer hook: nothing after the requested layer is computed."""


def _extract(extractor, fingerprint, X):
    return extractor._transform_uncached(X)


class PretrainedFeatureExtractor(
    ImageTransformerMixin, TransformerMixin, BaseEstimator
):
    """Activations of a pretrained torchvision backbone as a sklearn transformer.

    Parameters
    ----------
    backbone : str or nn.Module, default="densenet121"
        A torchvision classification model name (``densenet121/161/169/201``,
        ``resnet18``, ``resnet50``, ``vgg16``, ``efficientnet_b0``,
        ``mobilenet_v3_small``, ``mobilenet_v3_large``, ...) or a module.
    weights : None, str, path or URL, default="DEFAULT"
        Resolved as in :class:`~skcnn.DenseNetClassifier`.
    layer : str or None, default=None
        None: the penultimate features (the input of the last linear layer).
        Otherwise a module name (``model.named_modules()``), globally pooled.
    pooling : {"avg", "max", None}, default="avg"
        How a layer's feature map becomes a vector; None flattens it.
    input_size : int, (H, W) or None, default=None
        Resize images to this size on the device (small images are enlarged
        to at least 32 px so that the backbone's pooling keeps a map).
    batch_size : int, default=256
    device : str, default="auto"
    precision : {"auto", "32", "bf16", "fp16"}, default="auto"
        "bf16" is about 2x faster on CPUs with bf16 support.
    channels_last : bool, default=True
        Channels-last memory format for the convolutions.
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

    Attributes
    ----------
    n_features_out_ : int
    layout_ : ImageLayout
    module_ : nn.Module
    """

    def __init__(
        self,
        backbone="densenet121",
        weights="DEFAULT",
        layer=None,
        pooling="avg",
        input_size=None,
        batch_size=256,
        device="auto",
        precision="auto",
        channels_last=True,
        memory=None,
        image_shape=None,
        channels="auto",
        random_state=None,
        verbose=0,
    ):
        self.backbone = backbone
        self.weights = weights
        self.layer = layer
        self.pooling = pooling
        self.input_size = input_size
        self.batch_size = batch_size
        self.device = device
        self.precision = precision
        self.channels_last = channels_last
        self.memory = memory
        self.image_shape = image_shape
        self.channels = channels
        self.random_state = random_state
        self.verbose = verbose

    def _prepare(self, X, reset):
        data, layout, _ = prepare_images(self, X, reset=reset)
        return data, layout

    def _build(self, layout):
        if self.pooling not in ("avg", "max", None):
            raise ValueError(
                f"pooling must be 'avg', 'max' or None; got {self.pooling!r}."
            )
        if isinstance(self.backbone, nn.Module):
            import copy

            model = copy.deepcopy(self.backbone)
            arch = None
        elif isinstance(self.backbone, str):
            from torchvision.models import get_model, list_models

            if self.backbone not in list_models():
                raise ValueError(
                    f"backbone {self.backbone!r} is not a torchvision model name."
                )
            model = get_model(self.backbone, weights=None)
            arch = self.backbone
        else:
            raise TypeError(
                f"backbone must be a model name or an nn.Module; got {type(self.backbone).__name__}."
            )
        resolved = resolve_weights(arch, self.weights)
        if resolved is not None:
            load_into(model, resolved.state_dict, skip_prefixes=())
        if self.layer is None:
            head = _last_linear(model)
            if head is None:
                raise ValueError(
                    "The backbone has no linear layer to cut at; pass layer=<module name>."
                )
            _set_submodule(model, head, nn.Identity())
        else:
            names = dict(model.named_modules())
            if self.layer not in names:
                raise ValueError(
                    f"layer {self.layer!r} is not a module of the backbone; e.g. {list(names)[1:6]}."
                )
        first_conv = next(
            (m for m in model.modules() if isinstance(m, nn.Conv2d)), None
        )
        backbone_channels = (
            first_conv.in_channels if first_conv is not None else layout.in_channels
        )
        adapter = InputAdapter(
            layout.in_channels,
            backbone_channels=backbone_channels,
            input_size=self.input_size,
            min_size=32,
            mean=None if resolved is None else resolved.mean,
            std=None if resolved is None else resolved.std,
        )
        self._fingerprint = _fingerprint(self, model.state_dict())
        return _Backbone(
            adapter, model, self.layer, self.pooling, self.channels_last
        ).eval()

    def fit(self, X, y=None):
        """Load the backbone and record the input layout and feature count."""
        data, layout = self._prepare(X, reset=True)
        self.layout_ = layout
        self.device_ = resolve_device(self.device)
        seed = int(
            check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.module_ = self._build(layout).to(self.device_)
        if self.channels_last:
            # Faster convolutions on GPUs and on CPUs (oneDNN) alike.
            self.module_ = self.module_.to(memory_format=torch.channels_last)
        probe = TensorData(np.zeros((1, *layout.shape), dtype=np.float32))
        self.n_features_out_ = int(self._run(probe, strict=True).shape[1])
        return self

    def _run(self, data, strict=False):
        # strict at fit; an fp16 extractor unpickled without its GPU runs in float32
        amp = resolve_precision(self.precision, self.device_, strict=strict)
        device_type = "cuda" if self.device_.startswith("cuda") else "cpu"
        batches = BatchIterator(
            data,
            self.batch_size,
            device=self.device_,
            channels_last=self.channels_last,
        )
        chunks = []
        with (
            torch.inference_mode(),
            torch.autocast(
                device_type, dtype=amp or torch.float32, enabled=amp is not None
            ),
        ):
            for xb in tqdm(
                batches, disable=not self.verbose, desc="features", unit="batch"
            ):
                chunks.append(self.module_(xb).float().cpu().numpy())
        return np.concatenate(chunks)

    def _transform_uncached(self, X):
        data, _ = self._prepare(X, reset=False)
        return self._run(data)

    def __getstate__(self):
        state = self.__dict__.copy()
        module = state.pop("module_", None)
        if module is not None:
            # As skorch does for its nets: the network goes through torch.save,
            # so that unpickling can map GPU tensors to a machine without one.
            buffer = io.BytesIO()
            torch.save(module, buffer)
            state["_module_bytes"] = buffer.getvalue()
        return state

    def __setstate__(self, state):
        blob = state.pop("_module_bytes", None)
        if gpu_missing(state.get("device_")):
            state["device_"] = "cpu"
        self.__dict__.update(state)
        if blob is not None:
            # The pickle is already trusted code; this is the same object.
            self.module_ = torch.load(
                io.BytesIO(blob), map_location=self.device_, weights_only=False
            )

    def transform(self, X):
        """Features of ``X``: float32 array ``(n, n_features_out_)``."""
        check_is_fitted(self, "module_")
        memory = self.memory
        if memory is None:
            return self._transform_uncached(X)
        if not isinstance(memory, joblib.Memory):
            memory = joblib.Memory(os.fspath(memory), verbose=0)
        cached = memory.cache(_extract, ignore=["extractor"])
        return cached(self, self._fingerprint, X)


def _fingerprint(extractor, state):
    """What the features depend on besides X (parameters and weights), for the cache."""
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
    keys = sorted(state)
    for k in keys[:: max(1, len(keys) // 32)]:
        h.update(k.encode())
        h.update(state[k].detach().float().flatten()[:256].cpu().numpy().tobytes())
    return h.hexdigest()
