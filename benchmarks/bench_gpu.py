"""GPU training and inference throughput: skcnn vs a hand-written bf16 + channels-last loop.

Two networks, both measured on the same GPU:
- CNNClassifier's default ConvNet on 60,000 28x28 uint8 images (MNIST-sized),
- DenseNet-121 (torchvision) at 224 px on 4,096 uint8 RGB images.
Training images/s are taken over epochs 2..N (the first epoch includes cudnn
autotuning and allocation); inference images/s over a full predict pass.
The hand-written loop keeps uint8 data on the GPU, slices shuffled batches,
scales to [0, 1] per batch, uses bf16 autocast, channels-last and Adam, as
an expert would. Needs a CUDA GPU; exits with a message otherwise.
``--device cpu --scale 0.01 --px 32`` runs the same code on a CPU in seconds, as a
check of the script itself (its figures mean nothing).

    python benchmarks/bench_gpu.py [--epochs 4]
    python benchmarks/bench_gpu.py --device cpu --scale 0.01 --px 32   # smoke
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch
from _common import sync, write_results

from skcnn import CNNClassifier, DenseNetClassifier
from skcnn.backbones import build_backbone
from skcnn.models import ConvNet
from skcnn.models.finetune import PretrainedNet


def hand_loop(module, X, y, epochs, batch, device):
    device_type = device.split(":")[0]
    module = module.to(device).to(memory_format=torch.channels_last)
    Xd = torch.as_tensor(X).to(device)
    if Xd.ndim == 3:
        Xd = Xd[:, None]
    else:
        Xd = Xd.permute(0, 3, 1, 2)
    yd = torch.as_tensor(y).to(device)
    opt = torch.optim.Adam(module.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    times = []
    for _ in range(epochs):
        sync(device)
        t = time.perf_counter()
        module.train()
        order = torch.randperm(len(Xd), device=device)
        for i in range(0, len(Xd), batch):
            idx = order[i : i + batch]
            xb = Xd[idx].float().div_(255).contiguous(memory_format=torch.channels_last)
            with torch.autocast(device_type, dtype=torch.bfloat16):
                out = module(xb)
            loss = loss_fn(out.float(), yd[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sync(device)
        times.append(time.perf_counter() - t)
    train_ips = len(X) / np.median(times[1:])
    module.eval()
    sync(device)
    t = time.perf_counter()
    outputs = []
    with torch.inference_mode(), torch.autocast(device_type, dtype=torch.bfloat16):
        for i in range(0, len(Xd), 1024):
            xb = Xd[i : i + 1024].float().div_(255)
            outputs.append(module(xb.contiguous(memory_format=torch.channels_last)))
        torch.cat(outputs).float().cpu()
    sync(device)
    return train_ips, len(X) / (time.perf_counter() - t)


def skcnn_run(estimator, X, y, device):
    estimator.fit(X, y)
    durs = [h["dur"] for h in estimator.history_]
    train_ips = len(X) / np.median(durs[1:])
    sync(device)
    t = time.perf_counter()
    estimator.predict_proba(X)
    sync(device)
    return train_ips, len(X) / (time.perf_counter() - t)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--device", default="cuda")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="fraction of the image counts"
    )
    parser.add_argument("--px", type=int, default=224, help="DenseNet image size")
    args = parser.parse_args()
    device = args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("bench_gpu.py needs a CUDA GPU; none is available here.")
    rng = np.random.RandomState(0)
    rows = []
    common = dict(
        max_epochs=args.epochs,
        validation_fraction=0,
        early_stopping=False,
        device=device,
        precision="bf16",
        random_state=0,
    )

    cases = [
        (
            "ConvNet 28x28",
            (60_000, 28, 28),
            128,
            lambda: ConvNet(1, (28, 28), 10, dropout=0.25),
            lambda: CNNClassifier(batch_size=128, **common),
        ),
        (
            f"DenseNet-121 {args.px}px",
            (4096, args.px, args.px, 3),
            64,
            lambda: PretrainedNet(build_backbone("densenet121"), 10),
            lambda: DenseNetClassifier(arch="densenet121", batch_size=64, **common),
        ),
    ]
    for name, shape, batch, make_module, make_estimator in cases:
        shape = (max(2 * batch, int(shape[0] * args.scale)), *shape[1:])
        X = rng.randint(0, 256, shape, dtype=np.uint8)
        y = rng.randint(0, 10, shape[0])
        torch.manual_seed(0)
        loop = hand_loop(make_module(), X, y, args.epochs, batch, device)
        ours = skcnn_run(make_estimator(), X, y, device)
        rows.append(
            {
                "network": f"{name} ({len(X):,} images)",
                "skcnn_train_img_s": ours[0],
                "loop_train_img_s": loop[0],
                "train_ratio": ours[0] / loop[0],
                "skcnn_infer_img_s": ours[1],
                "loop_infer_img_s": loop[1],
            }
        )
        print(rows[-1], flush=True)
    write_results(
        "bench_gpu" if device.startswith("cuda") else "bench_gpu_smoke_cpu",
        rows,
        f"bf16 autocast + channels-last on both sides; {args.epochs} epochs, median of epochs 2..N.",
    )


if __name__ == "__main__":
    main()
