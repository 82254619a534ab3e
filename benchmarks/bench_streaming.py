"""Training from image files on disk: memory stays flat as the set grows.

Writes N generated 28x28 PNG files (one subfolder per class), then, each in a
fresh process, trains CNNClassifier for one epoch from the lazy file list
(``load_image_folder(lazy=True)``, decoded batch by batch by a DataLoader)
and, for comparison, from the same images loaded in memory. Reports peak RSS
(the process and its DataLoader workers) and training images/s.

    python benchmarks/bench_streaming.py [--sizes 5000 20000] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _common import write_results

DATA = Path(__file__).resolve().parent / "_stream_data"


def make_files(n):
    from PIL import Image

    root = DATA / str(n)
    if (root / "done").exists():
        return root
    rng = np.random.RandomState(0)
    for i in range(n):
        label = i % 10
        folder = root / f"c{label}"
        folder.mkdir(parents=True, exist_ok=True)
        img = (rng.rand(28, 28) * 64).astype(np.uint8)
        img[4 + 2 * label : 8 + 2 * label, 4:24] = 255  # a class-dependent bar
        Image.fromarray(img).save(folder / f"{i}.png")
    (root / "done").write_text("ok")
    return root


CHILD = r"""
import json, resource, sys, time
from skcnn import CNNClassifier
from skcnn.datasets import load_image_folder
root, mode, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
X, y = load_image_folder(root, lazy=(mode == "files"))
clf = CNNClassifier(max_epochs=1, batch_size=128, validation_fraction=0, early_stopping=False,
                    device="cpu", random_state=0, num_workers=workers if mode == "files" else 0)
t = time.perf_counter()
clf.fit(X, y)
elapsed = time.perf_counter() - t
own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps({"n": len(y), "seconds": elapsed, "peak_rss_mb": own, "worker_peak_rss_mb": kids}))
"""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    rows = []
    for n in args.sizes:
        t = time.perf_counter()
        root = make_files(n)
        print(f"{n} files ready in {time.perf_counter() - t:.0f}s", flush=True)
        for mode in ["files", "memory"]:
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(root), mode, str(args.workers)],
                capture_output=True,
                text=True,
                check=True,
            )
            r = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(
                {
                    "source": "image files (lazy)"
                    if mode == "files"
                    else "in-memory array",
                    "images": r["n"],
                    "peak_rss_mb": r["peak_rss_mb"],
                    "loader_worker_peak_rss_mb": r["worker_peak_rss_mb"]
                    if mode == "files"
                    else 0.0,
                    "train_img_s": r["n"] / r["seconds"],
                }
            )
            print(rows[-1], flush=True)
    write_results(
        "bench_streaming",
        rows,
        f"One epoch of CNNClassifier (default net, batch 128) on generated 28x28 PNGs; "
        f"{args.workers} DataLoader workers for the file source. Peak RSS per process "
        "(ru_maxrss); the in-memory rows include decoding every file into one array first.",
    )


if __name__ == "__main__":
    main()
