"""PSNR / SSIM of a user's SR volume against an HR volume, with the suite's conventions.

The same steps as the benchmark (``rrlsrn evaluate``): slices along the slice axis (auto:
as :func:`rrlsrn.data.prepare.choose_slice_axis`, the one rule), both volumes divided by the HR
volume's ``[0, p99.5]`` range and clipped to [0, 1] (peak 1), a border of ``shave``
pixels left out, slices whose mask covers less than ``min_mask_fraction`` dropped, the
metrics of :func:`rrlsrn.metrics.evaluate_slices` per slice, then their mean and SD.
The mask is the given one, or the head mask the benchmark computes from HR.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rrlsrn.data.prepare import foreground_mask, intensity_range, resolve_slice_axis
from rrlsrn.io import VolumeError, load_nifti
from rrlsrn.metrics import evaluate_slices


@dataclass(frozen=True)
class VolumeComparison:
    """Per-slice metrics and how they were computed."""

    per_slice: pd.DataFrame  # slice, psnr, ssim, psnr_mask, ssim_mask
    axis: int
    mask_source: str
    affine_differs: bool

    def summary(self) -> pd.DataFrame:
        """metric, mean, sd (ddof 1), n over the kept slices (NaN slices left out)."""
        rows = []
        for metric in ("psnr", "ssim", "psnr_mask", "ssim_mask"):
            values = self.per_slice[metric].dropna()
            rows.append(
                {
                    "metric": metric,
                    "mean": values.mean(),
                    "sd": values.std(ddof=1) if len(values) > 1 else np.nan,
                    "n": len(values),
                }
            )
        return pd.DataFrame(rows)


def compare_volumes(
    hr_path: str | os.PathLike,
    sr_path: str | os.PathLike,
    mask_path: str | os.PathLike | None = None,
    axis: str | int = "auto",
    shave: int = 2,
    min_mask_fraction: float = 0.02,
) -> VolumeComparison:
    """Per-slice PSNR / SSIM of ``sr_path`` against ``hr_path`` (same grid required)."""
    hr_path, sr_path = Path(hr_path), Path(sr_path)
    if shave < 0:
        raise ValueError(f"shave must be 0 or more pixels, got {shave}")
    if not 0 <= min_mask_fraction <= 1:
        raise ValueError(f"min_mask_fraction must be in [0, 1], got {min_mask_fraction}")
    hr_img, hr = load_nifti(hr_path)
    sr_img, sr = load_nifti(sr_path)
    if sr.shape != hr.shape:
        raise VolumeError(
            f"{sr_path}: shape {sr.shape} differs from {hr_path} {hr.shape}; "
            "resample the SR volume onto the HR grid first"
        )
    zooms = tuple(float(z) for z in hr_img.header.get_zooms()[:3])
    slice_axis = resolve_slice_axis(axis, hr.shape, zooms, hr_path)
    low, high = intensity_range(hr, source=hr_path)
    hr01 = np.clip((hr - low) / (high - low), 0, 1)
    sr01 = np.clip((sr - low) / (high - low), 0, 1)
    if mask_path is not None:
        _, mask_data = load_nifti(mask_path)
        if mask_data.shape != hr.shape:
            raise VolumeError(
                f"{mask_path}: mask shape {mask_data.shape} does not match {hr_path} {hr.shape}"
            )
        mask, mask_source = mask_data > 0.5, str(mask_path)
    else:
        mask, mask_source = foreground_mask(hr01), "head mask computed from HR"
    hr_s, sr_s, mask_s = (np.moveaxis(v, slice_axis, 0) for v in (hr01, sr01, mask))
    keep = np.flatnonzero(mask_s.mean(axis=(1, 2)) >= min_mask_fraction)
    if keep.size == 0:
        raise VolumeError(
            f"{mask_source}: no slice along axis {slice_axis} has at least "
            f"{min_mask_fraction:.0%} of its pixels in the mask"
        )
    values = evaluate_slices(sr_s[keep], hr_s[keep], mask_s[keep], shave=shave)
    per_slice = pd.DataFrame({"slice": keep, **{k: np.asarray(v) for k, v in values.items()}})
    return VolumeComparison(
        per_slice=per_slice,
        axis=slice_axis,
        mask_source=mask_source,
        affine_differs=not np.allclose(hr_img.affine, sr_img.affine, atol=1e-3),
    )
