"""DenseNet-121 feature extraction: PretrainedFeatureExtractor vs a hand-written loop.

Images/s at 32, 64 and 224 px input size (uint8 8x8 digits resized on the
device, as a user would feed them), for skcnn and for a hand-written
torchvision inference loop doing the same work (scale, resize, normalise,
densenet121 features, global average pool) with the same batch size.
Weights are randomly initialised (speed does not depend on their values).

    python benchmarks/bench_features.py [--repeats 3] [--device auto] [--bf16]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from _common import sync, write_results
from torchvision.models import densenet121

from skcnn import PretrainedFeatureExtractor
from skcnn.datasets import load_digits_images

SIZES = {32: 512, 64: 256, 224: 64}  # input size -> number of images (CPU)
BATCH = 64


def hand_loop(model, X, size, device, dtype):
    mean = torch.tensor([0.485, 0.456, 0.406], device=device).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], device=device).view(1, 3, 1, 1)
    out = []
    with (
        torch.inference_mode(),
        torch.autocast(
            device.split(":")[0],
            dtype=dtype or torch.float32,
            enabled=dtype is not None,
        ),
    ):
        for i in range(0, len(X), BATCH):
            x = torch.from_numpy(X[i : i + BATCH]).to(device)[:, None].float().div_(255)
            x = F.interpolate(
                x.expand(-1, 3, -1, -1),
                size=(size, size),
                mode="bilinear",
                align_corners=False,
            )
            x = ((x - mean) / std).contiguous(memory_format=torch.channels_last)
            f = F.relu(model.features(x))
            out.append(F.adaptive_avg_pool2d(f, 1).flatten(1).float().cpu())
    return torch.cat(out).numpy()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--bf16", action="store_true", help="also measure precision='bf16'"
    )
    parser.add_argument(
        "--scale",
        type=int,
        default=1,
        help="multiply the image counts (use 16 on a GPU)",
    )
    args = parser.parse_args()
    device = (
        ("cuda" if torch.cuda.is_available() else "cpu")
        if args.device == "auto"
        else args.device
    )
    X_all, _ = load_digits_images()
    torch.manual_seed(0)
    state = densenet121().state_dict()
    model = densenet121()
    model.load_state_dict(state)
    model = model.eval().to(device).to(memory_format=torch.channels_last)
    precisions = [("32", None)] + ([("bf16", torch.bfloat16)] if args.bf16 else [])
    rows = []
    for size, n in SIZES.items():
        n *= args.scale
        X = np.resize(X_all, (n, 8, 8))
        for pname, dtype in precisions:
            fe = PretrainedFeatureExtractor(
                weights=state,
                input_size=size,
                batch_size=BATCH,
                device=device,
                precision=pname,
            ).fit(X[:2])
            fe.transform(X[:BATCH])
            hand_loop(model, X[:BATCH], size, device, dtype)  # warm-up both
            ours, theirs = [], []
            for _ in range(args.repeats):
                t = time.perf_counter()
                a = fe.transform(X)
                sync(device)
                ours.append(n / (time.perf_counter() - t))
                t = time.perf_counter()
                b = hand_loop(model, X, size, device, dtype)
                sync(device)
                theirs.append(n / (time.perf_counter() - t))
            tol = 1e-3 if dtype is None else 0.1
            assert np.allclose(a, b, atol=tol * max(1.0, float(np.abs(b).max()))), (
                "different features"
            )
            row = {
                "input_px": size,
                "precision": pname,
                "images": n,
                "skcnn_img_s": statistics.median(ours),
                "hand_loop_img_s": statistics.median(theirs),
            }
            row["ratio"] = row["skcnn_img_s"] / row["hand_loop_img_s"]
            rows.append(row)
            print(row, flush=True)
    write_results(
        f"bench_features_{device.split(':')[0]}",
        rows,
        f"DenseNet-121 features (1024-d), batch {BATCH}, device {device}, median of {args.repeats} repeats; "
        "the hand-written loop does the same scaling, resizing, normalisation and pooling.",
    )


if __name__ == "__main__":
    main()
