"""The volumetric NMU filter (Manjon et al. 2010): 7x7x7 search, 3x3x3 patches.

The reference code (``NLMUpsample2`` + the ``cMRegularizarNLM3D`` mex) filters the whole
volume at once, so patches and search windows reach into the neighbouring slices
(``../shared/notes/methods.md``).  An (N, H, W) tensor is one volume here, N the
through-plane axis; the reference's pair order is the memory order, slowest axis first.

Borders, as the reference reads them:

* filtering strength (``stdfilt`` and ``padarray``): MATLAB ``'symmetric'``, the edge
  sample repeated (index -1 reads 0, index S reads S - 1);
* patches and local means (the mex): index -n reads n (mirror without the edge sample),
  index S + n reads S - 1 - n (mirror with it);
* search windows: only partners inside the volume.

Voxels are never looped over: each of the 171 unique offsets of the 7x7x7 window is one
shifted-volume operation.
"""

from __future__ import annotations

import torch

SYMMETRIC = "symmetric"  # MATLAB padarray / stdfilt
MEX = "mex"  # the reference mex: -n -> n low, S + n -> S - 1 - n high


def border_index(size: int, radius: int, rule: str) -> torch.Tensor:
    """Source index of each position -radius .. size + radius - 1 under a border rule.

    Positions a rule maps outside [0, size) (volumes thinner than the radius) are clamped.
    """
    if rule not in (SYMMETRIC, MEX):
        raise ValueError(f"unknown border rule {rule!r}; use {SYMMETRIC!r} or {MEX!r}")
    index = torch.arange(-radius, size + radius)
    index = torch.where(index < 0, -index - int(rule == SYMMETRIC), index)
    index = torch.where(index >= size, 2 * size - index - 1, index)
    return index.clamp(0, size - 1)


def pad_volume(x: torch.Tensor, radius: int, rule: str) -> torch.Tensor:
    """An (N, H, W) volume padded by ``radius`` on every side of its three axes."""
    for axis in range(3):
        index = border_index(x.shape[axis], radius, rule).to(x.device)
        x = x.index_select(axis, index)
    return x


def valid_box_sum(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Sum over each full (2r+1)^3 window of an (N, H, W) volume (separable shifted sums)."""
    k = 2 * radius + 1
    for axis in range(3):
        length = x.shape[axis] - k + 1
        x = sum(x.narrow(axis, i, length) for i in range(k))
    return x


def box_mean(x: torch.Tensor, radius: int, rule: str) -> torch.Tensor:
    """Mean over the (2r+1)^3 neighbourhood of each voxel, borders by ``rule``."""
    return valid_box_sum(pad_volume(x, radius, rule), radius) / (2 * radius + 1) ** 3


def filtering_strength_3d(x: torch.Tensor) -> torch.Tensor:
    """h per voxel: 3x3x3 sample standard deviation, box-smoothed over 3x3x3, halved
    (``stdfilt(ima, ones(3,3,3))``, ``convn`` of the ``'symmetric'``-padded result / 27)."""
    mean = box_mean(x, 1, SYMMETRIC)
    mean_sq = box_mean(x * x, 1, SYMMETRIC)
    var = (mean_sq - mean * mean).clamp_min(0) * (27.0 / 26.0)  # sample (n - 1) variance
    return box_mean(var.sqrt(), 1, SYMMETRIC) / 2


def forward_offsets_3d(radius: int) -> list[tuple[int, int, int]]:
    """One offset of each +/- pair of the search cube: the partner follows in memory order
    (slice, then row, then column), as the reference's loop ``kk >= 0`` visits them."""
    span = range(-radius, radius + 1)
    return [
        (dz, dy, dx)
        for dz in range(0, radius + 1)
        for dy in span
        for dx in span
        if dz > 0 or dy > 0 or (dy == 0 and dx > 0)
    ]


def _overlap(size: int, shift: int) -> tuple[int, int]:
    """Range [start, stop) of positions p along an axis whose partner p + shift is inside."""
    return max(0, -shift), size - max(0, shift)


def nonlocal_means_step_3d(
    x: torch.Tensor,
    h: torch.Tensor,
    search_radius: int = 3,
    patch_radius: int = 1,
    truncate_mean_difference: bool = False,
) -> torch.Tensor:
    """One pass of the reference NMU filter over an (N, H, W) volume.

    For each voxel pair (p, q) of the search cube, p "owns" the pair when q follows it in
    memory order: if h(p) >= 1 and the 3x3x3 local means differ by at most 0.6 h(p), the
    weight exp(-max(d / (2 h(p)^2) - 1, 0)) (d = mean squared (2f+1)^3 patch difference) is
    added to both voxels' averages.  Every voxel keeps itself with weight 1.

    ``truncate_mean_difference``: compare the integer part of the local-mean difference,
    as the compiled reference does (its C ``abs`` takes an ``int``).
    """
    if x.ndim != 3 or h.shape != x.shape:
        raise ValueError(f"expected an (N, H, W) volume and h alike, got {x.shape}, {h.shape}")
    f = patch_radius
    patch_size = (2 * f + 1) ** 3
    padded = pad_volume(x, f, MEX)
    local_mean = box_mean(x, 1, MEX)  # the mex's local mean is 3x3x3 whatever the patch
    difference_of = torch.trunc if truncate_mean_difference else (lambda t: t)
    owner = h >= 1
    limit = 0.6 * h
    inv_two_h2 = 1.0 / (2 * patch_size * h.clamp_min(1e-12) ** 2)  # folds in the patch mean
    numerator = x.clone()
    weights = torch.ones_like(x)
    for offset in forward_offsets_3d(search_radius):
        if any(abs(d) >= s for d, s in zip(offset, x.shape, strict=True)):
            continue
        ranges = [_overlap(s, d) for s, d in zip(x.shape, offset, strict=True)]
        p = tuple(slice(a, b) for a, b in ranges)
        q = tuple(slice(a + d, b + d) for (a, b), d in zip(ranges, offset, strict=True))
        # patches around p and q: the same ranges in the padded volume, widened by 2f
        p_wide = tuple(slice(s.start, s.stop + 2 * f) for s in p)
        q_wide = tuple(slice(s.start, s.stop + 2 * f) for s in q)
        dist = valid_box_sum((padded[p_wide] - padded[q_wide]).square_(), f)
        gap = difference_of((local_mean[p] - local_mean[q]).abs_())
        keep = owner[p] & (gap <= limit[p])
        w = dist.mul_(inv_two_h2[p]).sub_(1).clamp_min_(0).neg_().exp_().mul_(keep)
        numerator[p].addcmul_(w, x[q])
        weights[p].add_(w)
        numerator[q].addcmul_(w, x[p])
        weights[q].add_(w)
    return numerator / weights
