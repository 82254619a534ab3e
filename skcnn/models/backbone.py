"""A backbone cut for feature extraction: adapter, network, cut point, pooling."""

from __future__ import annotations

import torch
from torch import fx, nn

__all__ = ["CutModule", "FeatureBackbone", "ForwardTo", "pool"]


class ForwardTo:
    """Runs a model up to one of its modules and returns that module's output.

    The part of ``model.forward`` up to the module is traced once with
    torch.fx: torchvision's ``create_feature_extractor`` (timm's, which knows
    its leaf modules, for timm models), in a train and an eval form, as
    torchvision does for its own models. Nothing after the module is computed,
    and the cut is an ordinary graph that ``torch.export`` (the ONNX export),
    ``torch.compile`` and scripting follow. The graph holds the model's own
    modules (no copy of a weight) and is not a submodule (the state dict is
    the model's); it is traced again after unpickling or copying, and
    re-linked when the model moves (:meth:`relink`).

    Parameters
    ----------
    model : nn.Module
        The network.
    name : str
        The module (``model.get_submodule(name)``) whose output is wanted.
    """

    def __init__(self, model, name):
        self.name = name
        self.model = model
        self._graphs = self._trace()

    def _trace(self):
        """{training: GraphModule}: the cut in train and eval form."""
        model, name = self.model, self.name
        model.get_submodule(name)  # a clear AttributeError for a wrong name
        if type(model).__module__.startswith("timm."):
            from timm.models import create_feature_extractor
        else:
            from torchvision.models.feature_extraction import create_feature_extractor
        training = model.training
        try:
            dual = create_feature_extractor(model, return_nodes={name: "out"})
        except Exception as exc:
            raise ValueError(
                f"Cutting {type(model).__name__} at {name!r} traces its forward with "
                f"torch.fx, which failed ({type(exc).__name__}: {exc}). Cut at a "
                "module torch.fx reaches (torchvision and timm models trace), use "
                "layer=None, or pass a module that ends at the layer you want."
            ) from exc
        finally:
            model.train(training)
        return self._link(dual.train_graph, dual.eval_graph)

    def _link(self, train_graph, eval_graph):
        # Each GraphModule holds the model's own leaf modules; which graph
        # runs follows the model's mode, and the modules keep their own
        # (a frozen batch norm stays in eval mode in a training model).
        return {
            True: fx.GraphModule(self.model, train_graph),
            False: fx.GraphModule(self.model, eval_graph),
        }

    def relink(self):
        """Point the graphs at the model's current tensors (after ``.to``,
        which replaces the buffers a graph may hold directly)."""
        self._graphs = self._link(self._graphs[True].graph, self._graphs[False].graph)

    def __call__(self, model, x):
        return self._graphs[model.training](x)["out"]

    def __getstate__(self):
        return {"name": self.name, "model": self.model}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._graphs = self._trace()


class CutModule(nn.Module):
    """A module that may run its network through a :class:`ForwardTo`
    (``self._forward_to``, None for none): the cut is re-linked whenever the
    module's tensors move or change type (``.to``, ``.cpu``, ``.half``, ...)."""

    _forward_to = None

    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)
        if self._forward_to is not None:
            self._forward_to.relink()
        return out


def pool(out, pooling):
    """A feature map as one vector per sample: ``"avg"`` or ``"max"`` over
    its positions, None flattens it; vectors pass through."""
    if out.ndim <= 2:
        return out
    if pooling == "avg":
        return out.flatten(2).mean(2)
    if pooling == "max":
        return out.flatten(2).amax(2)
    return out.flatten(1)


class FeatureBackbone(CutModule):
    """Adapter + backbone, truncated at its penultimate features or a hooked layer.

    Parameters
    ----------
    adapter : nn.Module
        Input adaptation (channels, size, normalisation) in front.
    model : nn.Module
        The backbone; with ``layer=None`` its classifier must already be cut
        (replaced by ``nn.Identity``).
    layer : str or None
        Module whose output is the feature map (:class:`ForwardTo`): nothing
        after it is computed.
    pooling : {"avg", "max", None}
        How a feature map becomes a vector; None flattens it.
    channels_last : bool, default=False
        Channels-last memory format for the backbone's convolutions.
    """

    def __init__(self, adapter, model, layer, pooling, channels_last=False):
        super().__init__()
        self.channels_last = channels_last
        self.adapter = adapter
        self.model = model
        self.layer = layer
        self.pooling = pooling
        self._forward_to = None if layer is None else ForwardTo(model, layer)

    def forward(self, x):
        x = self.adapter(x)
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.layer is None:
            return pool(self.model(x), self.pooling)
        return pool(self._forward_to(self.model, x), self.pooling)
