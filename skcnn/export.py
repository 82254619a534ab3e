"""ONNX export with skcnn's preprocessing inside the graph.

The exported graph takes the images as the user passes them to ``predict``
(uint8 pixels or floats, in the layout seen at fit), and does everything
skcnn does on the way: the 0-255 scaling, the layout conversion, a
backbone's resizing and normalisation, and the softmax / sigmoid (or the
regression target scaling). Class labels and the task are in the model's
metadata. Needs ``pip install 'skcnn[onnx]'`` (onnx and onnxscript, which
``torch.onnx.export(..., dynamo=True)`` translates with; onnxruntime to run it).
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted
from torch import nn

from ._data import INPUT_ORDERS
from ._files import atomic_output, check_output_path

__all__ = ["INPUT_LAYOUTS", "OnnxExportMixin", "to_onnx"]

MIN_OPSET = 18  # the oldest opset torch.onnx's dynamo exporter writes

INPUT_LAYOUTS = ("auto", *INPUT_ORDERS)


class OnnxExportMixin:
    """``to_onnx`` for the fitted networks and the feature extractor."""

    def to_onnx(self, path, **kwargs):
        """Write the fitted model as ONNX, preprocessing and output included.

        See :func:`skcnn.export.to_onnx` for the options.

        Parameters
        ----------
        path : str or Path
            Where to write the ``.onnx`` file.
        **kwargs : dict
            ``input_layout``, ``input_dtype``, ``opset``.

        Returns
        -------
        path : Path
            The written file.
        """
        return to_onnx(self, path, **kwargs)


def _check_exportable(estimator):
    """A Pipeline (or another meta-estimator) is not one skcnn network: say
    which step is, and what exports the rest."""
    from sklearn.pipeline import Pipeline

    if not isinstance(estimator, Pipeline):
        return
    nets = [
        name
        for name, step in estimator.steps
        if hasattr(step, "layout_")
        or (hasattr(step, "to_onnx") and not isinstance(step, Pipeline))
    ]
    others = [type(s).__name__ for n, s in estimator.steps if n not in nets]
    if nets:
        raise TypeError(
            f"to_onnx exports one skcnn network; this Pipeline's network step is "
            f"{nets[0]!r}: export it with to_onnx(pipe.named_steps[{nets[0]!r}], path). "
            f"Its other steps ({', '.join(others)}) are scikit-learn's: convert them "
            "with skl2onnx, or save the whole Pipeline with skcnn.save(pipe, path)."
        )
    raise TypeError(
        f"to_onnx exports skcnn networks; this Pipeline ({', '.join(others)}) has none. "
        "Convert scikit-learn models with skl2onnx, or save it with skcnn.save."
    )


class _Graph(nn.Module):
    """User input -> skcnn's network input -> the estimator's output."""

    def __init__(
        self, module, shape, input_layout, scale, task, target=None, temperature=1.0
    ):
        super().__init__()
        self.module = module
        self.temperature = float(temperature)
        self.shape, self.input_layout, self.scale, self.task = (
            tuple(shape),
            input_layout,
            scale,
            task,
        )
        mean, std = target if target is not None else (None, None)
        self.register_buffer("target_mean", _buffer(mean))
        self.register_buffer("target_scale", _buffer(std))

    def forward(self, x):
        x = x.to(torch.float32)
        if self.scale:
            x = x / 255.0
        c = self.shape[0]
        if self.input_layout == "flat":
            x = x.reshape(-1, *self.shape)
        elif self.input_layout == "flat_last":
            x = x.reshape(-1, *self.shape[1:], c).movedim(-1, 1)
        elif self.input_layout in ("gray", "signal", "volume"):
            x = x.unsqueeze(1)
        elif self.input_layout == "channels_last":
            x = x.movedim(-1, 1)
        out = self.module(x)
        if (
            self.task in ("multiclass", "binary", "multilabel")
            and self.temperature != 1
        ):
            out = out / self.temperature
        if self.task == "multiclass":
            return torch.softmax(out, 1)
        if self.task == "binary":
            p = torch.sigmoid(out)
            return torch.cat([1 - p, p], 1)
        if self.task == "multilabel":
            return torch.sigmoid(out)
        if self.task == "regression":
            return out * self.target_scale + self.target_mean
        return out.to(torch.float32)  # features


def _buffer(values):
    return torch.tensor(
        np.asarray(values if values is not None else [0.0]), dtype=torch.float32
    )


def _input_layout(estimator, layout, requested):
    """How the user passes images, from the fit's parameters unless given."""
    if requested not in INPUT_LAYOUTS:
        raise ValueError(
            f"input_layout must be one of {list(INPUT_LAYOUTS)}; got {requested!r}."
        )
    image_shape = getattr(estimator, "image_shape", None)
    channels = getattr(estimator, "channels", "auto")
    order = getattr(estimator.layout_, "order", None)
    if requested == "auto" and order is not None:
        requested = order
    elif requested == "auto":
        if len(layout) == 2:
            requested = "signal"
        elif image_shape is not None:
            requested = "flat"
        elif layout[0] == 1:
            requested = "gray"
        else:
            requested = "channels_first" if channels == "first" else "channels_last"
    if requested == "signal" and (len(layout) != 2 or layout[0] != 1):
        raise ValueError(
            f"input_layout='signal' needs 1-channel 1-D signals; the model takes {layout}."
        )
    if requested == "gray" and (len(layout) != 3 or layout[0] != 1):
        raise ValueError(
            f"input_layout='gray' needs 1-channel 2-D images; the model takes {layout}."
        )
    if requested == "volume" and (len(layout) != 4 or layout[0] != 1):
        raise ValueError(
            f"input_layout='volume' needs 1-channel volumes (D, H, W); the model "
            f"takes {layout}."
        )
    if requested == "flat" and len(layout) >= 3 and layout[0] > 1:
        # flattened colour images are channels-last unless channels="first"
        if not (image_shape is not None and channels == "first"):
            return "flat_last"
    return requested


def _sample_shape(layout, input_layout):
    c, *spatial = layout
    return {
        "flat": (int(np.prod(layout)),),
        "flat_last": (int(np.prod(layout)),),
        "gray": tuple(spatial),
        "signal": tuple(spatial),
        "volume": tuple(spatial),
        "channels_last": (*spatial, c),
        "channels_first": tuple(layout),
    }[input_layout]


def to_onnx(estimator, path, *, input_layout="auto", input_dtype="auto", opset=18):
    """Write a fitted skcnn network or feature extractor as an ONNX model.

    Parameters
    ----------
    estimator : fitted CNNClassifier, CNNRegressor, DenseNetClassifier, \
PretrainedClassifier or PretrainedFeatureExtractor
        The model to export.
    path : str or Path
        Where to write the ``.onnx`` file.
    input_layout : {"auto", "flat", "gray", "channels_last", "channels_first", \
"signal", "volume"}, default="auto"
        How the graph's input holds the images: "auto" takes the layout the
        model was fitted on (flattened with ``image_shape``; ``(n, H, W)``
        for gray images; ``(n, H, W, C)`` or ``(n, C, H, W)`` for colour, as
        given to ``fit``; ``(n, L)`` for 1-D signals; volumes ``(n, D, H, W)``,
        ``(n, D, H, W, C)`` or ``(n, C, D, H, W)``); for models fitted on
        image files, ``(n, H, W, C)`` (``(n, H, W)`` for gray ones).
    input_dtype : {"auto", "uint8", "float32"}, default="auto"
        "auto" is uint8 for a model fitted on 0-255 pixels (scaled to [0, 1]
        in the graph), float32 otherwise. A pixel model exported with
        "float32" takes floats already scaled to [0, 1].
    opset : int, default=18
        ONNX opset: 18 or later (what the exporter writes; onnxruntime 1.14
        and later run it).

    Returns
    -------
    path : Path
        The written file. Its input is "images" (any batch size); its output
        is "probabilities" (classifiers), "predictions" (regressors) or
        "features". The metadata holds "classes" (JSON), "task",
        "input_layout", "tta_in_graph" and "skcnn_version".

    Notes
    -----
    Test-time augmentation (``tta > 0``) is not in the graph: its views are
    random transforms seeded per image, which ONNX cannot replay. The graph
    computes the plain prediction (as ``tta=0`` does), and the export warns;
    ``est.set_params(tta=0)`` gives the predictions the graph matches.
    """
    try:
        import onnx
        import onnxscript  # noqa: F401  (torch.onnx's exporter translates with it)
    except ImportError:
        raise ImportError(
            "ONNX export needs onnx and onnxscript: pip install 'skcnn[onnx]'."
        ) from None
    from . import __version__

    if _torch_version() < (2, 6):
        raise ImportError(
            f"ONNX export needs torch 2.6 or later (its torch.export-based exporter); "
            f"this is torch {torch.__version__}."
        )
    _check_exportable(estimator)
    check_is_fitted(estimator, "layout_")
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)):
        raise TypeError(f"opset must be an int; got {opset!r}.")
    if opset < MIN_OPSET:
        raise ValueError(
            f"opset={opset}: the exporter (torch.onnx, dynamo) writes opset "
            f"{MIN_OPSET} or later; pass opset>={MIN_OPSET}."
        )
    opset = int(opset)
    if opset > onnx.defs.onnx_opset_version():
        raise ValueError(
            f"opset={opset}: the installed onnx {onnx.__version__} knows opsets up to "
            f"{onnx.defs.onnx_opset_version()}; pass opset between {MIN_OPSET} and that."
        )
    check_output_path(path, "ONNX file")
    tta = getattr(estimator, "tta", 0) or 0
    if tta:
        warnings.warn(
            f"{type(estimator).__name__} predicts with test-time augmentation "
            f"(tta={tta!r}), which the ONNX graph cannot replay (random views seeded "
            "per image): the graph gives the plain prediction, as set_params(tta=0) "
            "does, and may differ from predict on some images.",
            UserWarning,
            stacklevel=2,
        )
    layout = tuple(estimator.layout_.shape)
    in_layout = _input_layout(estimator, layout, input_layout)
    pixels = bool(estimator.layout_.pixels)
    if input_dtype == "auto":
        input_dtype = "uint8" if pixels else "float32"
    if input_dtype not in ("uint8", "float32"):
        raise ValueError(
            f"input_dtype must be 'auto', 'uint8' or 'float32'; got {input_dtype!r}."
        )
    if input_dtype == "uint8" and not pixels:
        raise ValueError(
            "input_dtype='uint8' needs a model fitted on 0-255 pixels; this one was "
            "fitted on floats, read as they are."
        )
    task = getattr(estimator, "task_", "features")
    target = None
    if task == "regression":
        target = (estimator.target_mean_, estimator.target_scale_)
    module = estimator.module_
    # Traced on the CPU; the estimator's network goes back where it was.
    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    graph = _Graph(
        module,
        layout,
        in_layout,
        input_dtype == "uint8",
        task,
        target,
        getattr(estimator, "temperature_", 1.0),
    )
    graph = graph.to("cpu").eval()
    dtype = torch.uint8 if input_dtype == "uint8" else torch.float32
    example = torch.zeros((2, *_sample_shape(layout, in_layout)), dtype=dtype)
    output = {"features": "features", "regression": "predictions"}.get(
        task, "probabilities"
    )
    classes = getattr(estimator, "classes_", None)
    meta = {
        "task": task,
        "input_layout": in_layout,
        "input_dtype": input_dtype,
        "skcnn_version": __version__,
        "estimator": type(estimator).__name__,
        "tta_in_graph": "false" if tta else "none used",
    }
    if classes is not None:
        meta["classes"] = json.dumps(_plain(classes))
    with atomic_output(path, "ONNX file") as tmp:
        try:
            # torch.export (non-strict: the stage cut of a backbone is Python
            # that runs while tracing), then the ONNX translation; the batch
            # dimension stays free, every other size is the model's own.
            with torch.no_grad(), warnings.catch_warnings(), _export_errors():
                warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning))
                torch.onnx.export(
                    graph,
                    (example,),
                    str(tmp),
                    input_names=["images"],
                    output_names=[output],
                    dynamic_shapes=({0: torch.export.Dim("batch")},),
                    opset_version=opset,
                    dynamo=True,
                    external_data=False,
                    verbose=False,
                )
        finally:
            graph.module = None
            module.to(device)
        model = onnx.load(str(tmp))
        written = next(
            (o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None
        )
        if written != opset:
            # the exporter falls back to the opset it can write, silently
            raise ValueError(
                f"opset={opset}: torch.onnx {torch.__version__} wrote opset {written} "
                f"instead; pass opset={written} (or another opset it writes)."
            )
        for key, value in meta.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, str(value)
        onnx.save(model, str(tmp))
    return Path(path)


@contextlib.contextmanager
def _export_errors():
    """torch.onnx's failures (a network torch.export cannot trace) as one
    plain ValueError, without the exporter's colour codes and report."""
    try:
        yield
    except OSError:
        raise
    except Exception as exc:  # noqa: BLE001 - the exporter's many error types
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()
        first = next((line for line in text.splitlines() if line.strip()), "")
        raise ValueError(
            f"to_onnx: torch.onnx could not export the network ({type(exc).__name__}: "
            f"{first[:300]}). A module of your own must be traceable by torch.export: "
            "no Python control flow that depends on the data in forward (use "
            "torch.where / torch.cond), no calls outside torch."
        ) from None


def _torch_version():
    return tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2])


def _plain(classes):
    out = []
    for c in np.asarray(classes).tolist():
        if isinstance(c, float) and math.isnan(c):
            raise ValueError("Class labels with NaN cannot be exported.")
        out.append(c)
    return out
