"""Seconds per 256x256 slice for every method of the tables, side by side, in one run.

    python benchmarks/bench_methods.py [--threads 2] [--device cpu|cuda] [--out FILE.json]

Input: 256x256 crops of real axial slices of an embedded held-out subject
(ds002748-sub-01), per-volume normalised as in the workflow, degraded by the default
bicubic operator.  Each method runs through ``rrlsrn.infer.super_resolve`` (the
workflow's path, making the LR input not counted):

* ``single_s``: one slice per call (latency), median over ``--single`` different slices;
* ``batched_s``: ``--batch`` slices in one call (the workflow's throughput), per slice.

The methods are those of :mod:`rrlsrn.registry` that run without a training run: the
classical ones and the learned ones with shipped weights, less the ablation variants.
Learned models use their shipped weights; classical ones the registry's params (those
the workflow runs, e.g. LRTV's warm start).
PSNR (shave 2) over the batched slices is reported as a sanity check, not as a result
(the tables are the results).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from rrlsrn import registry
from rrlsrn.checkpoint import load_model
from rrlsrn.data.embedded import embedded_volume
from rrlsrn.data.prepare import normalise_intensities
from rrlsrn.infer import super_resolve
from rrlsrn.metrics import psnr
from rrlsrn.weights import shipped_weights_path

METHODS = [
    m.name
    for m in registry.BUILT_IN
    if not m.ablation and (m.classical or (m.kind == "learned" and 2 in m.weights))
]


def real_slices(count: int) -> list[np.ndarray]:
    """``count`` 256x256 axial crops from the middle of ds002748-sub-01."""
    volume = np.asarray(nib.load(str(embedded_volume("ds002748-sub-01"))).dataobj, np.float32)
    image, _, _ = normalise_intensities(volume, 99.5)
    axial = np.linspace(60, 120, count).round().astype(int)
    return [np.ascontiguousarray(image[16:272, 16:272, k]) for k in axial]


def bench(method: str, slices: list[np.ndarray], device: str, singles: int) -> dict:
    record = registry.METHODS[method]
    model = None if record.classical else load_model(shipped_weights_path(record.weights[2]))
    run = dict(method=method, model=model, device=device, progress=False, params=record.params)
    super_resolve(slices[:1], **run)  # warm-up (allocations, matrices, weights)
    single = [super_resolve([s], **run)[1][0] for s in slices[:singles]]
    sr, seconds = super_resolve(slices, **run)
    quality = [psnr(a, b, shave=2) for a, b in zip(sr, slices, strict=True)]
    return {
        "method": method,
        "single_s": statistics.median(single),
        "batched_s": float(np.mean(seconds)),
        "psnr_db": float(np.mean(quality)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--single", type=int, default=3)
    parser.add_argument("--methods", nargs="+", default=METHODS)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    slices = real_slices(args.batch)
    rows = []
    for method in args.methods:
        rows.append(bench(method, slices, args.device, args.single))
        r = rows[-1]
        print(
            f"{method:13s} single {r['single_s']:7.3f} s  batched {r['batched_s']:7.3f} s/slice"
            f"  PSNR {r['psnr_db']:.2f} dB",
            flush=True,
        )
    result = {
        "machine": platform.processor() or platform.machine(),
        "threads": args.threads,
        "device": args.device,
        "cuda": torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
        "torch": torch.__version__,
        "slice": "256x256 output, real T1w (ds002748-sub-01)",
        "methods": rows,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
