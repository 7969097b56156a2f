"""Interpolation baselines: cubic B-spline on the operator's sample grid, and plain bicubic.

The cubic B-spline (scipy.ndimage, order 3, with its prefilter) is linear and separable,
so it is applied as one (out x in) matrix per axis, computed once by interpolating the
columns of an identity matrix with scipy itself; the batched matrix product then runs
in torch on CPU or CUDA.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.ndimage as ndi
import torch

from baselines.common import check_lr_batch
from rrlsrn.degrade import Degradation, bicubic_up, make_degradation


@lru_cache(maxsize=64)
def spline_matrix(length: int, scale: int, grid: str = "centre") -> np.ndarray:
    """(length*scale x length) matrix of cubic B-spline upsampling along one axis.

    ``grid="centre"``: HR pixel j reads LR coordinate (j + 0.5) / scale - 0.5 with
    half-sample symmetric borders (LR pixels cover HR blocks: imresize, block mean).
    ``grid="origin"``: HR pixel j reads LR coordinate j / scale with periodic borders
    (k-space truncation samples a periodic signal from sample 0).
    ``grid="corner"``: HR pixel j reads LR coordinate j (length - 1) / (length * scale - 1)
    with mirror borders: ``scipy.ndimage.zoom(lr, scale, order=3)``, the interpolation of
    Pham et al. 2017 on the grid of their degradation (``gaussian_spline``).
    """
    out = np.arange(length * scale, dtype=np.float64)
    if grid == "centre":
        coords, mode = (out + 0.5) / scale - 0.5, "reflect"
    elif grid == "origin":
        coords, mode = out / scale, "grid-wrap"
    elif grid == "corner":
        coords, mode = out * (length - 1) / max(length * scale - 1, 1), "mirror"
    else:
        raise ValueError(f"unknown sample grid {grid!r}; use 'centre', 'origin' or 'corner'")
    eye = np.eye(length)
    rows = np.stack([coords, np.zeros_like(coords)])
    # column k of the matrix is the spline interpolant of the k-th unit impulse
    columns = [
        ndi.map_coordinates(eye[:, k : k + 1], rows, order=3, mode=mode) for k in range(length)
    ]
    return np.stack(columns, axis=1)


def cubic_spline(
    lr: torch.Tensor, scale: int, degradation: Degradation | None = None
) -> torch.Tensor:
    """Cubic B-spline upsampling of an (N, h, w) LR batch by ``scale``."""
    lr = check_lr_batch(lr, "cubic_spline")
    grid = (degradation or make_degradation()).sample_grid
    h, w = lr.shape[-2:]
    mat_h = torch.as_tensor(spline_matrix(h, scale, grid), dtype=lr.dtype, device=lr.device)
    mat_w = torch.as_tensor(spline_matrix(w, scale, grid), dtype=lr.dtype, device=lr.device)
    return mat_h @ lr @ mat_w.T


def bicubic(lr: torch.Tensor, scale: int, degradation: Degradation | None = None) -> torch.Tensor:
    """Plain MATLAB-compatible bicubic upsampling (the same grid whatever the operator)."""
    return bicubic_up(check_lr_batch(lr, "bicubic"), scale)
