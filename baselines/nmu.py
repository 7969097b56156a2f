"""NMU: non-local MRI upsampling (Manjon et al. 2010), vectorised in torch.

The scheme of the authors' reference code, in 2D (``../shared/notes/methods.md``):

1. intensities scaled to [0, 256] by the slice maximum;
2. initial estimate: cubic B-spline upsampling made consistent with the LR input;
3. filtering strength per pixel: h = (3x3 local standard deviation, 3x3 box-smoothed) / 2;
4. iterate non-local means over the current estimate (search 7x7, patch 3x3), with the
   local-mean pre-selection and the symmetric pair weighting of the reference code,
   then re-impose consistency with the LR input;
5. the reference's stopping rule on D = mean |F_old - F_new| (halve h when D stops
   falling by the factor ``tol``; stop when that happens twice in a row or D <= 1e-3).

Consistency is the exact projection through the configured operator
(:meth:`rrlsrn.degrade.Degradation.project`): for block averaging it is the reference's
block-mean correction, for a bicubic or k-space operator it is the back-projection that
correction stands for.  Pixels are never looped over: each of the 24 unique search
offsets is one shifted-image operation on the whole batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from baselines.common import check_lr_batch, flush_denormals
from baselines.interpolation import cubic_spline
from rrlsrn.degrade import Degradation, make_degradation

INTENSITY_RANGE = 256.0


def _valid_box_mean(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over each full (2r+1)^2 window of an (N, H, W) batch: (N, H - 2r, W - 2r).

    Separable shifted sums: on CPU several times faster than ``avg_pool2d``.
    """
    k = 2 * radius + 1
    rows = sum(x[:, i : x.shape[1] - k + 1 + i] for i in range(k))
    return sum(rows[:, :, j : x.shape[2] - k + 1 + j] for j in range(k)) / (k * k)


def _box_mean(x: torch.Tensor, radius: int = 1) -> torch.Tensor:
    """Mean over the (2r+1)^2 neighbourhood with mirrored borders; x is (N, H, W)."""
    padded = F.pad(x[:, None], (radius,) * 4, mode="reflect")[:, 0]
    return _valid_box_mean(padded, radius)


def filtering_strength(x: torch.Tensor) -> torch.Tensor:
    """h per pixel: 3x3 sample standard deviation, box-smoothed over 3x3, halved."""
    mean = _box_mean(x)
    mean_sq = _box_mean(x * x)
    var = (mean_sq - mean * mean).clamp_min(0) * (9.0 / 8.0)  # sample (n - 1) variance
    return _box_mean(var.sqrt()) / 2


def _forward_offsets(radius: int) -> list[tuple[int, int]]:
    """One offset of each +/- pair in the search window (the pair is weighted once)."""
    return [
        (dy, dx)
        for dy in range(0, radius + 1)
        for dx in range(-radius, radius + 1)
        if dy > 0 or dx > 0
    ]


def nonlocal_means_step(
    x: torch.Tensor, h: torch.Tensor, search_radius: int = 3, patch_radius: int = 1
) -> torch.Tensor:
    """One pass of the reference NMU filter over an (N, H, W) batch.

    For each pixel pair (p, q) in the search window, p "owns" the pair when q follows it
    in raster order: if h(p) >= 1 and the 3x3 local means differ by at most 0.6 h(p),
    the weight exp(-max(d / (2 h(p)^2) - 1, 0)) (d = mean squared 3x3 patch difference)
    is added to both pixels' averages.  Every pixel keeps itself with weight 1.
    """
    n, height, width = x.shape
    pad = search_radius + patch_radius
    padded = F.pad(x[:, None], (pad,) * 4, mode="reflect")[:, 0]
    local_mean = _box_mean(x, patch_radius)
    owner = h >= 1
    inv_two_h2 = 1.0 / (2 * h.clamp_min(1e-12) ** 2)
    numerator = x.clone()
    weights = torch.ones_like(x)
    f = patch_radius
    centre = padded[:, pad - f : pad + height + f, pad - f : pad + width + f]
    for dy, dx in _forward_offsets(search_radius):
        if abs(dy) >= height or abs(dx) >= width:
            continue
        shifted = padded[
            :, pad - f + dy : pad + height + f + dy, pad - f + dx : pad + width + f + dx
        ]
        dist = _valid_box_mean((centre - shifted) ** 2, f)
        # p ranges over pixels whose partner q = p + (dy, dx) lies inside the image
        py = slice(0, height - dy)
        px = slice(max(0, -dx), width - max(0, dx))
        qy = slice(dy, height)
        qx = slice(max(0, dx), width + min(0, dx))
        h_p = h[:, py, px]
        keep = owner[:, py, px] & (
            (local_mean[:, py, px] - local_mean[:, qy, qx]).abs() <= 0.6 * h_p
        )
        w = torch.exp(-(dist[:, py, px] * inv_two_h2[:, py, px] - 1).clamp_min(0))
        w = torch.where(keep, w, torch.zeros_like(w))
        numerator[:, py, px] += w * x[:, qy, qx]
        weights[:, py, px] += w
        numerator[:, qy, qx] += w * x[:, py, px]
        weights[:, qy, qx] += w
    return numerator / weights


@flush_denormals()
def nmu(
    lr: torch.Tensor,
    scale: int,
    degradation: Degradation | None = None,
    search_radius: int = 3,
    patch_radius: int = 1,
    tol: float = 1.2,
    min_change: float = 1e-3,
    max_iterations: int = 50,
) -> torch.Tensor:
    """Non-local MRI upsampling of an (N, h, w) LR batch by ``scale``.

    Each slice follows the reference stopping rule on its own; finished slices leave
    the batch so the rest do not pay for them.
    """
    lr = check_lr_batch(lr, "nmu")
    degradation = degradation or make_degradation()
    peak = lr.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]
    y = lr * (INTENSITY_RANGE / peak)
    estimate = degradation.project(cubic_spline(y, scale, degradation), y, scale)
    h = filtering_strength(estimate)
    n = len(y)
    prev_change = torch.full((n,), float("nan"), dtype=y.dtype, device=y.device)
    prev_stage_change = torch.full((n,), float("nan"), dtype=y.dtype, device=y.device)
    halved_last = torch.zeros(n, dtype=torch.bool, device=y.device)
    last_stage = estimate.clone()
    active = torch.arange(n, device=y.device)
    for iteration in range(max_iterations):
        if len(active) == 0:
            break
        current = estimate[active]
        update = nonlocal_means_step(current, h[active], search_radius, patch_radius)
        update = degradation.project(update, y[active], scale)
        change = (current - update).abs().flatten(1).mean(1)
        done = change <= min_change
        if iteration > 0:
            stalled = (prev_change[active] / change < tol) & ~halved_last[active]
            stage_change = (last_stage[active] - update).abs().flatten(1).mean(1)
            done |= stalled & (prev_stage_change[active] / stage_change < tol)
            h[active] = torch.where(stalled[:, None, None], h[active] / 2, h[active])
            last_stage[active] = torch.where(stalled[:, None, None], update, last_stage[active])
            prev_stage_change[active] = torch.where(
                stalled, stage_change, prev_stage_change[active]
            )
            halved_last[active] = stalled
        estimate[active] = update
        prev_change[active] = change
        active = active[~done]
    return estimate * (peak / INTENSITY_RANGE)
