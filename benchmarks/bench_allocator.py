"""glibc malloc kept or not (``skcnn._device.keep_freed_memory``, issue 37):
the work of a comparison's lane, one torch thread, in a fresh process each
time, the two settings interleaved.

- ``features``: EfficientNet-Lite0 stage -4 features of 4,800 digits at
  64 px (the shift profile's images of one lite0 row), the extractor's
  default batch of 256;
- ``predict``: the same 4,800 images through a fine-tuned Lite0
  (``PretrainedClassifier``, one epoch on 300 digits), 24 calls of 200 (the
  profile's calls);
- ``train``: a CNN with the "drawing" preset, 10 epochs on 1,200 digits.

Each line: the median of ``--rounds`` processes of wall seconds of the timed
part, and the process's user and system CPU seconds and peak memory.

    python benchmarks/bench_allocator.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

from _common import write_results

CHILD = r"""
import json, resource, sys, time
import numpy as np, torch
torch.set_num_threads(1)
kind, keep = sys.argv[1], sys.argv[2] == "1"
from skcnn._device import keep_freed_memory
took = keep_freed_memory() if keep else False
from sklearn.datasets import load_digits
d = load_digits()
X = np.round(d.images * (255 / 16)).astype(np.uint8)
y = d.target
X48 = np.concatenate([X] * 3)[:4800]
if kind == "features":
    from skcnn import PretrainedFeatureExtractor
    fe = PretrainedFeatureExtractor(
        "efficientnet_lite0", layer=-4, pooling=None, input_size=64
    ).fit(X[:100])
    t = time.perf_counter()
    fe.transform(X48)
elif kind == "predict":
    from skcnn import PretrainedClassifier
    clf = PretrainedClassifier(
        "efficientnet_lite0", max_epochs=1, random_state=0, num_threads=1
    ).fit(X[:300], y[:300])
    t = time.perf_counter()
    for i in range(0, 4800, 200):
        clf.predict_proba(X48[i : i + 200])
else:
    from skcnn import CNNClassifier
    t = time.perf_counter()
    CNNClassifier(
        max_epochs=10, augment="drawing", random_state=0, num_threads=1,
        validation_fraction=0, early_stopping=False,
    ).fit(X[:1200], y[:1200])
seconds = time.perf_counter() - t
r = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps(dict(seconds=seconds, user=r.ru_utime, sys=r.ru_stime,
                      peak_mb=r.ru_maxrss / 1024, took=took)))
"""


def run(kind, keep):
    out = subprocess.run(
        [sys.executable, "-c", CHILD, kind, "1" if keep else "0"],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--kinds", nargs="+", default=["features", "predict", "train"])
    args = parser.parse_args()
    runs = {}
    for r in range(args.rounds):
        for kind in args.kinds:
            order = (False, True) if r % 2 == 0 else (True, False)
            for keep in order:
                res = run(kind, keep)
                runs.setdefault((kind, keep), []).append(res)
                print(kind, "kept" if keep else "default", res, flush=True)
    rows = []
    for kind in args.kinds:
        base = statistics.median(x["seconds"] for x in runs[(kind, False)])
        for keep in (False, True):
            got = runs[(kind, keep)]
            med = statistics.median(x["seconds"] for x in got)
            rows.append(
                {
                    "work": kind,
                    "malloc": "kept (keep_freed_memory)" if keep else "glibc default",
                    "seconds": round(med, 2),
                    "ratio": round(med / base, 3),
                    "user_s": round(statistics.median(x["user"] for x in got), 1),
                    "sys_s": round(statistics.median(x["sys"] for x in got), 1),
                    "peak_mb": round(statistics.median(x["peak_mb"] for x in got)),
                    "took": all(x["took"] for x in got) if keep else "",
                }
            )
    write_results(
        "bench_allocator",
        rows,
        notes=f"Medians of {args.rounds} fresh processes per line, interleaved; "
        "one torch thread. user_s / sys_s / peak_mb: the whole process.",
    )


if __name__ == "__main__":
    main()
