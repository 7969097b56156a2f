"""Speed of RRLSRN: inference per 256x256 slice and training patches per second.

    python benchmarks/bench_rrlsrn.py [--threads 2] [--out benchmarks/results/NAME.json]

Inference: one 256x256 SR output (128x128 LR input), batch 1, median of repeated runs;
on CUDA also batched bf16 slices/s.  Training: batches of 16 HR patches of 64x64 through
the suite's own trainer (``rrlsrn.train.train``, patch sampling and on-the-fly bicubic LR
included), next to a bare PyTorch loop on pre-made tensors, to show the trainer's overhead.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from rrlsrn.infer import run_model
from rrlsrn.losses import combined_loss
from rrlsrn.models import build_model
from rrlsrn.registry import METHODS
from rrlsrn.settings import make_settings
from rrlsrn.train import pick_device, train


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def rrlsrn() -> torch.nn.Module:
    """The registry's RRLSRN (architecture and default arguments), untrained."""
    method = METHODS["rrlsrn"]
    return build_model(method.factory, **method.model_args)


def time_inference(device: torch.device, batch: int, repeats: int) -> float:
    """Seconds per slice for 256x256 outputs with ``run_model`` (the workflow's path)."""
    model = rrlsrn()
    lr = torch.rand(batch, 128, 128)
    run_model(model, lr, device, batch)  # warm-up
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        run_model(model, lr, device, batch)
        sync(device)
        times.append((time.perf_counter() - start) / batch)
    return statistics.median(times)


def bare_training_rate(device: torch.device, steps: int, batch: int = 16) -> float:
    """Patches/s of a minimal loop: same model, loss and optimiser, tensors made up front."""
    model = rrlsrn().to(device).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), 5e-4)
    hr = torch.rand(batch, 1, 64, 64, device=device).contiguous(memory_format=torch.channels_last)
    lr = torch.rand(batch, 1, 32, 32, device=device).contiguous(memory_format=torch.channels_last)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            pred = model(lr)
        loss = combined_loss(pred.float(), hr)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return steps * batch / (time.perf_counter() - start)


def trainer_rate(device: torch.device, steps: int) -> float:
    """Patches/s reported by the real trainer (validation excluded) on brain-like slices."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:256, 0:256] / 256
    disk = (((yy - 0.5) ** 2 + (xx - 0.5) ** 2) < 0.16).astype(np.float32)
    slices = [
        np.clip(disk * (0.5 + 0.2 * rng.standard_normal((256, 256))), 0, 1).astype(np.float32)
        for _ in range(8)
    ]
    settings = make_settings(
        "pretrain", {"max_steps": steps + 5, "steps_per_epoch": 5, "val_slices": 1}
    )
    with tempfile.TemporaryDirectory() as tmp:
        method = METHODS["rrlsrn"]
        train(
            method.factory,
            slices,
            slices[:1],
            tmp,
            settings,
            model_kwargs=method.model_args,
            device=str(device),
            progress=False,
        )
        rows = Path(tmp, "train_log.csv").read_text().splitlines()[1:]
    rates = [float(r.split(",")[-1]) for r in rows][1:]  # drop the warm-up epoch
    return float(statistics.median(rates))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--train-steps", type=int, default=40)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {args.threads} threads"
        + (f", {torch.cuda.get_device_name()}" if device.type == "cuda" else ""),
        "device": str(device),
        "torch": torch.__version__,
        "inference_s_per_256_slice_batch1": time_inference(device, 1, 10),
        "train_patches_per_s_trainer": trainer_rate(device, args.train_steps),
        "train_patches_per_s_bare_loop": bare_training_rate(device, args.train_steps),
    }
    if device.type == "cuda":
        result["inference_slices_per_s_batch64_bf16"] = 1 / time_inference(device, 64, 10)
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
