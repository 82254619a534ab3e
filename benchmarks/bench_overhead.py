"""skcnn vs a hand-written PyTorch loop vs plain skorch, on digits, CPU.

Same module (skcnn's default ConvNet, fresh init each run), same epochs,
batch size and optimizer (20 epochs, batch 64, Adam 1e-3), no internal
validation. Runs are interleaved (skcnn, loop, skorch, skcnn, ...) and the
medians of fit time are compared; accuracy is on the 25% test split.

    python benchmarks/bench_overhead.py [--repeats 7]

Besides the defaults, skcnn runs once more per repeat with each of its
skorch overrides switched off (skorch's own method back in place), so that
every kept override shows what it buys.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import numpy as np
import torch
from _common import write_results
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from skorch import NeuralNet, NeuralNetClassifier

from skcnn import CNNClassifier
from skcnn._engine.net import TensorBatchNet
from skcnn.models import ConvNet

EPOCHS, BATCH, LR = 20, 64, 1e-3


def data():
    d = load_digits()
    X = np.round(d.images * (255 / 16)).astype(np.uint8)
    return train_test_split(
        X, d.target, test_size=0.25, stratify=d.target, random_state=0
    )


def module(seed):
    torch.manual_seed(seed)
    return ConvNet(1, (8, 8), 10, dropout=0.25)


def run_skcnn(Xtr, ytr, Xte, yte, seed):
    clf = CNNClassifier(
        max_epochs=EPOCHS,
        batch_size=BATCH,
        lr=LR,
        validation_fraction=0,
        early_stopping=False,
        random_state=seed,
        device="cpu",
    )
    t = time.perf_counter()
    clf.fit(Xtr, ytr)
    return time.perf_counter() - t, clf.score(Xte, yte)


# Each override of skcnn's net, and the skorch method it replaces.
OVERRIDES = ("_set_training", "run_single_epoch")


@contextlib.contextmanager
def skorch_method(name):
    """skorch's own ``name`` in place of skcnn's override, for one run."""
    own = TensorBatchNet.__dict__[name]
    setattr(TensorBatchNet, name, getattr(NeuralNet, name))
    try:
        yield
    finally:
        setattr(TensorBatchNet, name, own)


def without(name):
    def run(Xtr, ytr, Xte, yte, seed):
        with skorch_method(name):
            return run_skcnn(Xtr, ytr, Xte, yte, seed)

    return run


def run_loop(Xtr, ytr, Xte, yte, seed, channels_last=False):
    t = time.perf_counter()
    net = module(seed)
    X = torch.as_tensor(Xtr[:, None]).float().div_(255)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        X = X.contiguous(memory_format=torch.channels_last)
    y = torch.as_tensor(ytr)
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    loss_fn = torch.nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(EPOCHS):
        order = torch.randperm(len(X), generator=g)
        for i in range(0, len(X), BATCH):
            idx = order[i : i + BATCH]
            opt.zero_grad()
            loss = loss_fn(net(X[idx]), y[idx])
            loss.backward()
            opt.step()
    elapsed = time.perf_counter() - t
    net.eval()
    with torch.inference_mode():
        pred = net(torch.as_tensor(Xte[:, None]).float() / 255).argmax(1).numpy()
    return elapsed, float((pred == yte).mean())


def run_loop_channels_last(Xtr, ytr, Xte, yte, seed):
    return run_loop(Xtr, ytr, Xte, yte, seed, channels_last=True)


def run_skorch(Xtr, ytr, Xte, yte, seed):
    t = time.perf_counter()
    net = NeuralNetClassifier(
        module(seed),
        max_epochs=EPOCHS,
        batch_size=BATCH,
        lr=LR,
        optimizer=torch.optim.Adam,
        criterion=torch.nn.CrossEntropyLoss,
        train_split=None,
        iterator_train__shuffle=True,
        verbose=0,
        device="cpu",
    )
    net.fit((Xtr[:, None] / 255).astype(np.float32), ytr.astype(np.int64))
    elapsed = time.perf_counter() - t
    return elapsed, float(
        (net.predict((Xte[:, None] / 255).astype(np.float32)) == yte).mean()
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    Xtr, Xte, ytr, yte = data()
    runners = {
        "skcnn": run_skcnn,
        "hand-written loop": run_loop,
        "hand-written loop, channels-last": run_loop_channels_last,
        "skorch defaults": run_skorch,
        **{f"skcnn with skorch's {name}": without(name) for name in OVERRIDES},
    }
    times = {k: [] for k in runners}
    accs = {k: [] for k in runners}
    ratio_loop, ratio_loop_cl, ratio_skorch = [], [], []
    gains = {name: [] for name in OVERRIDES}
    run_loop(Xtr, ytr, Xte, yte, 0)  # warm-up (allocator, kernels)
    for r in range(args.repeats):
        this = {}
        for name, fn in runners.items():
            t, a = fn(Xtr, ytr, Xte, yte, r)
            times[name].append(t)
            accs[name].append(a)
            this[name] = t
        ratio_loop.append(this["skcnn"] / this["hand-written loop"])
        ratio_loop_cl.append(this["skcnn"] / this["hand-written loop, channels-last"])
        ratio_skorch.append(this["skcnn"] / this["skorch defaults"])
        for name in OVERRIDES:
            gains[name].append(this[f"skcnn with skorch's {name}"] / this["skcnn"])
        print(
            f"repeat {r}: " + ", ".join(f"{k} {v:.2f}s" for k, v in this.items()),
            flush=True,
        )
    rows = [
        {
            "method": name,
            "median_fit_s": statistics.median(times[name]),
            "median_accuracy": statistics.median(accs[name]),
            "repeats": args.repeats,
        }
        for name in runners
    ]
    notes = (
        f"skcnn / hand-written loop (median of interleaved pairs): {statistics.median(ratio_loop):.3f}\n\n"
        "skcnn / hand-written loop with the same channels-last layout skcnn uses "
        f"(the overhead alone): {statistics.median(ratio_loop_cl):.3f}\n\n"
        f"skcnn / skorch defaults (median of interleaved pairs): {statistics.median(ratio_skorch):.3f}\n\n"
        "Each override switched off (time with skorch's method / time with skcnn's, "
        "median of interleaved pairs; > 1 means the override saves time): "
        + ", ".join(f"{n} {statistics.median(g):.3f}" for n, g in gains.items())
        + "\n\n"
        f"Setting: digits 1,347 train / 450 test, 8x8 uint8, {EPOCHS} epochs, batch {BATCH}, Adam {LR}, "
        "no internal validation, skcnn default ConvNet (conv 32-64, dense 128, dropout 0.25, batch norm). "
        "skorch gets shuffling (iterator_train__shuffle=True) so that all three do the same work."
    )
    write_results("bench_overhead", rows, notes)


if __name__ == "__main__":
    main()
