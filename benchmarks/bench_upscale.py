"""``rrlsrn upscale`` on the shipped fetal stacks: seconds per volume and a before / after figure.

    python benchmarks/bench_upscale.py [--device auto] [--threads 2] [--out benchmarks/results]

Runs the shipped RRLSRN weights at x2 (and x4 by cascade) over the six shipped fetal T2
stacks (320 x 320 x 22, 1.125 mm in-plane), through the same function the command uses,
and writes ``upscale-<device>.csv`` / ``.md`` with the wall time per volume: reading,
normalising, every slice through the network, writing the NIfTI.  The first volume is
also drawn before / after (``docs/figures/upscale_fetal.png``) on CPU runs.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import torch

from rrlsrn.data.embedded import EMBEDDED_ROOT
from rrlsrn.figures import before_after_figure, save_figure
from rrlsrn.train import pick_device
from rrlsrn.upscale import load_upscaler, upscale_volume

STACKS = sorted((EMBEDDED_ROOT / "mialsrtk-sub-01" / "sub-01" / "anat").glob("*_T2w.nii.gz"))
MASKS = EMBEDDED_ROOT / "mialsrtk-sub-01" / "derivatives" / "manual_masks" / "sub-01" / "anat"
FIGURE = Path("docs/figures/upscale_fetal")


def mask_of(stack: Path) -> Path:
    return MASKS / stack.name.replace("_T2w.nii.gz", "_T2w_desc-brain_mask.nii.gz")


def run(device: str, out_dir: Path, figure: bool) -> pd.DataFrame:
    upscaler = load_upscaler()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for scale in (2, 4):
            for stack in STACKS if scale == 2 else STACKS[:2]:
                out = Path(tmp) / f"x{scale}_{stack.name}"
                start = time.perf_counter()
                report = upscale_volume(
                    stack, out, upscaler, scale=scale, device=device, progress=False
                )
                total = time.perf_counter() - start
                rows.append(
                    {
                        "volume": stack.name,
                        "scale": scale,
                        "shape_in": "x".join(map(str, report.shape_in)),
                        "shape_out": "x".join(map(str, report.shape_out)),
                        "slices": report.slices,
                        "network_s": round(report.seconds, 2),
                        "total_s": round(total, 2),
                        "device": report.device,
                    }
                )
                print(rows[-1])
                if figure and scale == 2 and stack == STACKS[0]:
                    draw(stack, out)
    frame = pd.DataFrame(rows)
    name = (
        "cuda" if "cpu" not in frame["device"].iloc[0] else f"cpu-{torch.get_num_threads()}threads"
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out_dir / f"upscale-{name}.csv", index=False)
    write_summary(frame, out_dir / f"upscale-{name}.md")
    return frame


def write_summary(frame: pd.DataFrame, path: Path) -> None:
    """Seconds per volume, mean / min / max over the volumes, per scale, as Markdown."""
    summary = frame.groupby("scale")[["network_s", "total_s"]].agg(["mean", "min", "max"])
    summary.columns = [f"{what} {stat} (s)" for what, stat in summary.columns]
    summary.insert(0, "volumes", frame.groupby("scale").size())
    header = f"Machine: {platform.processor() or platform.machine()}, {frame['device'].iloc[0]}"
    path.write_text(f"{header}\n\n{summary.round(2).to_markdown()}\n")
    print(path.read_text())


def draw(stack: Path, output: Path) -> None:
    """Before / after of the stack's slice with the most brain, zoomed on the brain."""
    before = nib.load(str(stack)).get_fdata(dtype=np.float32)
    after = nib.load(str(output)).get_fdata(dtype=np.float32)
    mask = nib.load(str(mask_of(stack))).get_fdata() > 0.5
    k = int(mask.sum(axis=(0, 1)).argmax())
    # radiological display: rows = second voxel axis, as the viewers show axial stacks
    show = lambda v: np.rot90(v[..., k])  # noqa: E731
    big_mask = show(mask.repeat(2, 0).repeat(2, 1))
    zooms = nib.load(str(stack)).header.get_zooms()
    fig = before_after_figure(
        show(before),
        show(after),
        big_mask,
        ("input stack", "rrlsrn upscale (x2)"),
        (f"{zooms[0]:.3g} mm in-plane", f"{zooms[0] / 2:.3g} mm in-plane"),
        f"{stack.name}, slice {k}",
    )
    print(save_figure(fig, FIGURE))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    run(str(device), args.out, figure=device.type == "cpu")


if __name__ == "__main__":
    main()
