"""NMU: non-local MRI upsampling (Manjon et al. 2010), vectorised in torch.

The scheme of the authors' reference code (``../shared/notes/methods.md``):

1. intensities scaled to [0, 256] by the maximum (of the volume; here of each slice in 2D);
2. initial estimate: cubic spline upsampling made consistent with the LR input;
3. filtering strength per pixel: h = (3x3(x3) local standard deviation, box-smoothed) / 2;
4. iterate non-local means over the current estimate (search 7x7(x7), patch 3x3(x3)), with
   the local-mean pre-selection and the symmetric pair weighting of the reference code,
   then re-impose consistency with the LR input;
5. the reference's stopping rule on D = mean |F_old - F_new| (halve h when D stops
   falling by the factor ``tol``; stop when that happens twice in a row or D <= 1e-3).

Two schemes, each in 2D (slice by slice) or 3D (the stack of consecutive slices as one
volume, upsampled in-plane only, as the reference runs with ``lf = [2, 2, 1]``; the 3D
filter is :mod:`baselines.nmu3d`):

* :func:`nmu`, operator-aware: the initial estimate is the cubic B-spline on the operator's
  grid, and consistency is the exact projection through the configured operator
  (:meth:`rrlsrn.degrade.Degradation.project`): for block averaging it is the reference's
  block-mean correction, for a bicubic or k-space operator the back-projection that
  correction stands for;
* :func:`nmu_reference`, the authors' scheme as published: their spline initial estimate
  and their block-mean forward model whatever operator made the LR input.

Pixels are never looped over: each unique search offset (24 in 2D, 171 in 3D) is one
shifted-image operation on the whole batch.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from scipy.interpolate import CubicSpline

from baselines.common import check_lr_batch, flush_denormals
from baselines.interpolation import cubic_spline
from baselines.nmu3d import filtering_strength_3d, nonlocal_means_step_3d
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


def block_mean_correct(x: torch.Tensor, y: torch.Tensor, scale: int) -> torch.Tensor:
    """Shift each in-plane ``scale`` x ``scale`` block of ``x`` so its mean equals the LR
    pixel of ``y`` (the reference's forward model and consistency step); any leading axes."""
    *lead, height, width = x.shape
    blocks = x.reshape(*lead, height // scale, scale, width // scale, scale)
    offset = y - blocks.mean((-3, -1))
    return (blocks + offset[..., :, None, :, None]).reshape(x.shape)


@lru_cache(maxsize=64)
def reference_spline_matrix(length: int, scale: int) -> np.ndarray:
    """(length*scale x length) matrix of the reference's initial interpolation on one axis.

    MATLAB ``interpn(..., 'spline')``: the not-a-knot cubic spline through the LR samples,
    LR pixel k sitting at HR coordinate (scale - 1) / 2 + k scale; then the first and last
    floor(scale / 2) HR pixels copy their nearest pixel inside the LR grid (the
    reference's "extreme slices").
    """
    knots = (scale - 1) / 2 + scale * np.arange(length, dtype=np.float64)
    hr = np.arange(length * scale, dtype=np.float64)
    matrix = CubicSpline(knots, np.eye(length), bc_type="not-a-knot", axis=0)(hr)
    edge = scale // 2
    matrix[:edge] = matrix[edge]
    matrix[len(hr) - edge :] = matrix[len(hr) - 1 - edge]
    return matrix


def reference_initial_estimate(y: torch.Tensor, scale: int) -> torch.Tensor:
    """The reference's initial estimate of (..., h, w) LR slices: its spline interpolation
    in-plane (:func:`reference_spline_matrix`), then the block-mean correction."""
    h, w = y.shape[-2:]
    mat_h = torch.as_tensor(reference_spline_matrix(h, scale), dtype=y.dtype, device=y.device)
    mat_w = torch.as_tensor(reference_spline_matrix(w, scale), dtype=y.dtype, device=y.device)
    return block_mean_correct(mat_h @ y @ mat_w.T, y, scale)


def _check_dims(dims: int, method: str) -> None:
    if dims not in (2, 3):
        raise ValueError(
            f"{method}: dims must be 2 (slice by slice) or 3 (the stack), got {dims!r}"
        )


def _normalise(lr: torch.Tensor, dims: int) -> tuple[torch.Tensor, torch.Tensor]:
    """LR intensities scaled to [0, 256] by the peak of each slice (dims 2) or of the whole
    stack (dims 3, one volume), and that peak."""
    peak = lr.amax((-2, -1), keepdim=True) if dims == 2 else lr.amax().reshape(1, 1, 1)
    peak = peak.clamp_min(1e-12)
    return lr * (INTENSITY_RANGE / peak), peak


def _smoother(
    dims: int, search_radius: int, patch_radius: int, truncate: bool = False
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The filter pass over a batch of items: slices (dims 2) or (N, H, W) volumes."""
    if dims == 2:
        return lambda x, h: nonlocal_means_step(x, h, search_radius, patch_radius)
    return lambda x, h: torch.stack(
        [
            nonlocal_means_step_3d(v, hv, search_radius, patch_radius, truncate)
            for v, hv in zip(x, h, strict=True)
        ]
    )


def _iterate(
    estimate: torch.Tensor,
    h: torch.Tensor,
    smooth: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    constrain: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    tol: float,
    min_change: float,
    max_iterations: int,
    check_first_change: bool,
) -> torch.Tensor:
    """The reference's iteration and stopping rule, each item (axis 0) on its own.

    D = mean |F_old - F_new| over the item; when D_prev / D < ``tol`` (and h was not halved
    the iteration before) h is halved, and the run stops when the change since the previous
    halving did not fall by ``tol`` either; it also stops when D <= ``min_change`` (the
    reference checks this from its second iteration on, ``check_first_change=False``).
    ``constrain(x, active)`` re-imposes consistency with the LR items ``active``.  Finished
    items leave the batch so the rest do not pay for them.
    """
    n = len(estimate)

    def per_item(v: torch.Tensor) -> torch.Tensor:
        return v.view(-1, *[1] * (estimate.ndim - 1))

    prev_change = torch.full((n,), float("nan"), dtype=h.dtype, device=h.device)
    prev_stage_change = torch.full((n,), float("nan"), dtype=h.dtype, device=h.device)
    halved_last = torch.zeros(n, dtype=torch.bool, device=h.device)
    last_stage = estimate.clone()
    active = torch.arange(n, device=h.device)
    for iteration in range(max_iterations):
        if len(active) == 0:
            break
        current = estimate[active]
        update = constrain(smooth(current, h[active]), active)
        change = (current - update).abs().flatten(1).mean(1)
        done = change <= min_change
        if iteration == 0 and not check_first_change:
            done = torch.zeros_like(done)
        if iteration > 0:
            stalled = (prev_change[active] / change < tol) & ~halved_last[active]
            stage_change = (last_stage[active] - update).abs().flatten(1).mean(1)
            done |= stalled & (prev_stage_change[active] / stage_change < tol)
            h[active] = torch.where(per_item(stalled), h[active] / 2, h[active])
            last_stage[active] = torch.where(per_item(stalled), update, last_stage[active])
            prev_stage_change[active] = torch.where(
                stalled, stage_change, prev_stage_change[active]
            )
            halved_last[active] = stalled
        estimate[active] = update
        prev_change[active] = change
        active = active[~done]
    return estimate


@flush_denormals()
def nmu(
    lr: torch.Tensor,
    scale: int,
    degradation: Degradation | None = None,
    dims: int = 2,
    search_radius: int = 3,
    patch_radius: int = 1,
    tol: float = 1.2,
    min_change: float = 1e-3,
    max_iterations: int = 50,
) -> torch.Tensor:
    """Non-local MRI upsampling of an (N, h, w) LR batch by ``scale``, operator-aware.

    ``dims=2``: each slice on its own (search 7x7, patches 3x3, its own peak and stopping
    rule).  ``dims=3``: the batch is one volume of N consecutive slices, filtered as the
    reference does (search 7x7x7, patches 3x3x3, :mod:`baselines.nmu3d`), upsampled
    in-plane only.  Either way the initial estimate and the consistency step use the
    configured operator: cubic spline on its grid, :meth:`Degradation.project`.
    """
    lr = check_lr_batch(lr, "nmu")
    _check_dims(dims, "nmu")
    degradation = degradation or make_degradation()
    y, peak = _normalise(lr, dims)
    estimate = degradation.project(cubic_spline(y, scale, degradation), y, scale)
    return _upsample(
        estimate,
        y,
        peak,
        dims,
        _smoother(dims, search_radius, patch_radius),
        lambda x, target: degradation.project(x, target, scale),
        (tol, min_change, max_iterations),
        check_first_change=True,
    )


@flush_denormals()
def nmu_reference(
    lr: torch.Tensor,
    scale: int,
    degradation: Degradation | None = None,
    dims: int = 3,
    search_radius: int = 3,
    patch_radius: int = 1,
    tol: float = 1.2,
    min_change: float = 1e-3,
    max_iterations: int = 100,
    truncate_mean_difference: bool = True,
) -> torch.Tensor:
    """NMU as the authors' code runs it (``NLMUpsample2``, ``lf = [scale, scale, 1]``).

    Their own initial estimate (:func:`reference_initial_estimate`) and forward model: after
    every filter pass each ``scale`` x ``scale`` HR block's mean is reset to its LR pixel
    (:func:`block_mean_correct`), whatever operator made the LR input (``degradation`` is
    accepted for the common interface and not used).  ``dims=3`` (the reference): the
    (N, h, w) batch is one volume of consecutive slices, one peak, one stopping rule;
    ``dims=2``: slice by slice with the 2D filter.  ``truncate_mean_difference``: the
    compiled reference's integer local-mean test (3D only).  The reference iterates
    until its stopping rule fires; ``max_iterations`` is only a safeguard.
    """
    lr = check_lr_batch(lr, "nmu_reference")
    _check_dims(dims, "nmu_reference")
    y, peak = _normalise(lr, dims)
    return _upsample(
        reference_initial_estimate(y, scale),
        y,
        peak,
        dims,
        _smoother(dims, search_radius, patch_radius, truncate_mean_difference),
        lambda x, target: block_mean_correct(x, target, scale),
        (tol, min_change, max_iterations),
        check_first_change=False,
    )


def _upsample(
    estimate: torch.Tensor,
    y: torch.Tensor,
    peak: torch.Tensor,
    dims: int,
    smoother: Callable,
    consistent: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    stopping: tuple[float, float, int],
    check_first_change: bool,
) -> torch.Tensor:
    """The iteration both NMU variants share, from their initial ``estimate`` of the
    normalised LR ``y``: h from the estimate, filter passes each made consistent with
    ``y`` by ``consistent(x, target)``, then back to the input's intensity ``peak``.
    ``dims=3`` iterates the batch as one volume (one item), ``dims=2`` slice by slice."""
    h = filtering_strength(estimate) if dims == 2 else filtering_strength_3d(estimate)
    items = (lambda t: t) if dims == 2 else (lambda t: t[None])
    target = items(y)
    out = _iterate(
        items(estimate),
        items(h),
        smoother,
        lambda x, active: consistent(x, target[active]),
        *stopping,
        check_first_change=check_first_change,
    )
    return out.reshape(estimate.shape) * (peak / INTENSITY_RANGE)
