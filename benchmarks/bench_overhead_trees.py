"""The fit loop of several skcnn trees, interleaved: which commit made it
slower or faster (issue 37).

Each round runs one process per tree (``PYTHONPATH=<tree>``), in turn; each
process times ``CNNClassifier.fit`` on digits (20 epochs, batch 64, Adam 1e-3,
no validation split: the setting of ``bench_overhead.py``) against the same
hand-written loop in that process, with the default and the channels-last
layout, ``--pairs`` interleaved pairs, and prints the medians. The ratios
(skcnn / hand loop in the same process) cancel most of a shared host's drift.

    python benchmarks/bench_overhead_trees.py --tree old=/tmp/wt_f719536 \\
        --tree new=. --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

from _common import write_results

CHILD = r"""
import json, statistics, sys, time
import numpy as np, torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from skcnn import CNNClassifier
from skcnn.models import ConvNet

EPOCHS, BATCH, LR = 20, 64, 1e-3
d = load_digits()
X = np.round(d.images * (255 / 16)).astype(np.uint8)
Xtr, Xte, ytr, yte = train_test_split(X, d.target, test_size=0.25,
                                      stratify=d.target, random_state=0)

def skcnn_fit(seed):
    clf = CNNClassifier(max_epochs=EPOCHS, batch_size=BATCH, lr=LR,
                        validation_fraction=0, early_stopping=False,
                        random_state=seed, device="cpu")
    t = time.perf_counter(); clf.fit(Xtr, ytr)
    return time.perf_counter() - t, clf.score(Xte, yte)

def loop(seed, channels_last):
    t = time.perf_counter()
    torch.manual_seed(seed)
    net = ConvNet(1, (8, 8), 10, dropout=0.25)
    Xt = torch.as_tensor(Xtr[:, None]).float().div_(255)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        Xt = Xt.contiguous(memory_format=torch.channels_last)
    y = torch.as_tensor(ytr)
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    loss_fn = torch.nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(EPOCHS):
        order = torch.randperm(len(Xt), generator=g)
        for i in range(0, len(Xt), BATCH):
            idx = order[i:i + BATCH]
            opt.zero_grad()
            loss_fn(net(Xt[idx]), y[idx]).backward()
            opt.step()
    return time.perf_counter() - t

loop(0, False)  # warm-up
out = {"skcnn": [], "loop": [], "loop_cl": [], "acc": []}
for seed in range(int(sys.argv[1])):
    t, acc = skcnn_fit(seed)
    out["skcnn"].append(t); out["acc"].append(acc)
    out["loop"].append(loop(seed, False))
    out["loop_cl"].append(loop(seed, True))
print(json.dumps(out))
"""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tree", action="append", required=True, help="label=path")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--name", default="bench_overhead_trees")
    args = parser.parse_args()
    trees = dict(t.split("=", 1) for t in args.tree)
    runs = {label: [] for label in trees}
    for r in range(args.rounds):
        for label, path in trees.items():
            env = {**os.environ, "PYTHONPATH": os.path.abspath(path)}
            proc = subprocess.run(
                [sys.executable, "-c", CHILD, str(args.pairs)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            out = json.loads(proc.stdout.strip().splitlines()[-1])
            runs[label].append(out)
            pair = [s / h for s, h in zip(out["skcnn"], out["loop"])]
            print(
                f"round {r} {label}: skcnn {statistics.median(out['skcnn']):.3f}s, "
                f"skcnn/loop {statistics.median(pair):.3f}",
                flush=True,
            )
    rows = []
    for label, outs in runs.items():

        def ratios(key, outs=outs):
            return [s / h for o in outs for s, h in zip(o["skcnn"], o[key])]

        rows.append(
            {
                "tree": label,
                "path": trees[label],
                "median_skcnn_fit_s": round(
                    statistics.median(t for o in outs for t in o["skcnn"]), 3
                ),
                "skcnn/hand loop": round(statistics.median(ratios("loop")), 3),
                "skcnn/same-layout hand loop": round(
                    statistics.median(ratios("loop_cl")), 3
                ),
                "median_accuracy": round(
                    statistics.median(a for o in outs for a in o["acc"]), 4
                ),
                "fits": sum(len(o["skcnn"]) for o in outs),
            }
        )
    write_results(
        args.name,
        rows,
        notes=f"{args.rounds} rounds, trees interleaved within each round, "
        f"{args.pairs} interleaved (skcnn, loop, channels-last loop) runs per "
        "process; ratios are medians over every pair.",
    )


if __name__ == "__main__":
    main()
