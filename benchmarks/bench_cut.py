"""A backbone cut at a stage (issue 24, step 8): the torch.fx graph that
``skcnn.models.backbone.ForwardTo`` runs now against the forward hook that
raised at the layer (skcnn 0.2), on the same model, weights and images.

Interleaved repeats of a forward pass (eval mode, no grad) and of a training
step (forward + backward) through ``ForwardTo``, per backbone and cut; prints
the median times and the ratio fx / hook, and checks the outputs are equal.

    python benchmarks/bench_cut.py --repeats 7

Results: ``results/bench_cut.{csv,md}``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _common import write_results

from skcnn.backbones import build_backbone
from skcnn.models.backbone import ForwardTo


class _Stop(Exception):
    def __init__(self, output):
        super().__init__()
        self.output = output


class HookCut:
    """skcnn 0.2's cut: a forward hook that raises with the layer's output."""

    def __init__(self, model, name):
        model.get_submodule(name).register_forward_hook(self._stop)

    @staticmethod
    def _stop(module, inputs, output):
        raise _Stop(output)

    def __call__(self, model, x):
        try:
            model(x)
        except _Stop as stop:
            return stop.output
        raise RuntimeError("not reached")


def _time(fn, x, train):
    start = time.perf_counter()
    if train:
        fn(x).mean().backward()
    else:
        with torch.no_grad():
            fn(x)
    return time.perf_counter() - start


def run(arch, layer, size, batch, repeats):
    torch.manual_seed(0)
    backbone = build_backbone(arch)
    name = backbone.stage(layer).end
    model = backbone.model
    fx_cut = ForwardTo(model, name)  # traced before the hook is on the model
    hook_cut = HookCut(model, name)
    x = torch.randn(batch, 3, size, size)
    rows = []
    for train in (False, True):
        model.train(train)
        if not train:
            with torch.no_grad():
                same = torch.equal(fx_cut(model, x), hook_cut(model, x))
        times = {"fx": [], "hook": []}
        for _ in range(repeats):  # interleaved, after one warm-up each
            for kind, cut in (("fx", fx_cut), ("hook", hook_cut)):
                _time(lambda t, c=cut: c(model, t), x, train)
                times[kind].append(_time(lambda t, c=cut: c(model, t), x, train))
        fx, hook = np.median(times["fx"]), np.median(times["hook"])
        rows.append(
            {
                "backbone": arch,
                "layer": layer,
                "pass": "train step" if train else "forward",
                "images": f"{batch}x{size}px",
                "fx_ms": round(1000 * fx, 1),
                "hook_ms": round(1000 * hook, 1),
                "fx/hook": round(fx / hook, 3),
                "equal_outputs": same,
            }
        )
        print(rows[-1], flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    rows = []
    for arch, layer, size in [
        ("resnet18", -2, 64),
        ("densenet121", -2, 64),
        ("efficientnet_lite0", -4, 64),
    ]:
        rows += run(arch, layer, size, 32, args.repeats)
    write_results(
        "bench_cut",
        rows,
        "Medians of interleaved repeats; random weights (the cut does not "
        "depend on them). equal_outputs: the forward outputs of the two cuts "
        "are bit-identical.",
    )


if __name__ == "__main__":
    main()
