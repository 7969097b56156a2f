"""Intensity augmentation of HR training patches: the contrasts the training data lacks.

The shipped weights are trained on adult T1w scans only, yet users bring T2w, PD, FLAIR
and fetal HASTE stacks (issue 17).  Each augmentation changes the *intensities* of an HR
patch before the LR operator sees it, so input and target stay consistent: the network
learns the degradation's inverse on images whose tissue contrast, brightness ramp and
noise differ from T1w.  Geometry (flips, 90-degree turns) is the patch sampler's job.

Applied in this order, each to a random share of the patches (per-patch draws):

1. ``augment_invert`` (probability): tissue-contrast inversion, ``(1 - x)`` inside the
   head with the background kept dark, T1w-like to T2w-like (CSF bright, white matter
   dark), the way an inversion of contrast looks on a real scan (background is dark in
   every MRI contrast);
2. ``augment_remap`` (probability): a random monotone piecewise-linear remap of [0, 1]
   with ``REMAP_KNOTS`` segments, fixing 0 and 1 (other relative tissue brightness);
3. ``augment_gamma`` (the largest ``|ln gamma|``): ``x ** gamma`` with ``ln gamma``
   uniform in ``[-g, g]``, on every patch;
4. ``augment_bias`` (the largest log-amplitude): a smooth multiplicative field (a random
   2x2 grid of log-gains, bilinear over the patch: a receive-coil shading ramp), then
   divided by the patch's maximum when it passes 1, so nothing saturates;
5. ``augment_noise`` (the largest sigma): Rician magnitude noise
   ``sqrt((x + s n1)^2 + (s n2)^2)`` with ``s`` uniform in ``[0, sigma]``, as in any
   magnitude image (the HR target carries it too: real HR references are noisy).

A value of 0 switches that augmentation off and draws no random numbers for it, so a
preset without augmentation samples exactly as before.  All randomness comes from the
trainer's checkpointed generator: a resumed run draws the same augmentations.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

AUGMENT_FIELDS = (
    "augment_invert",
    "augment_remap",
    "augment_gamma",
    "augment_bias",
    "augment_noise",
)
REMAP_KNOTS = 8
# The inversion keeps the background dark: its weight rises from 0 at INVERT_FLOOR to 1 at
# INVERT_FULL (normalised intensity), so air and its noise stay near 0.
INVERT_FLOOR, INVERT_FULL = 0.03, 0.15


def augmentation_enabled(settings: Any) -> bool:
    """Whether any intensity augmentation of ``settings`` (a TrainSettings) is on."""
    return any(getattr(settings, name, 0) for name in AUGMENT_FIELDS)


def _chosen(batch: int, probability: float, gen: torch.Generator) -> torch.Tensor:
    """(batch, 1, 1, 1) float mask: 1 for patches drawn with ``probability``."""
    return (torch.rand(batch, generator=gen) < probability).float().view(batch, 1, 1, 1)


def invert_tissue(x: torch.Tensor) -> torch.Tensor:
    """``(1 - x)`` weighted by a smooth head mask of ``x`` (background stays dark)."""
    weight = ((x - INVERT_FLOOR) / (INVERT_FULL - INVERT_FLOOR)).clamp(0, 1)
    weight = weight * weight * (3 - 2 * weight)  # smoothstep: no edge at the threshold
    return (1 - x) * weight


def monotone_remap(x: torch.Tensor, knots: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear map of each patch of ``x`` (B, 1, P, P), values in [0, 1], through
    its own knot values ``knots`` (B, K + 1) at positions ``0, 1/K, ..., 1``."""
    batch, segments = x.shape[0], knots.shape[1] - 1
    flat = x.reshape(batch, -1).clamp(0, 1) * segments
    index = flat.floor().clamp(max=segments - 1)
    frac = flat - index
    index = index.long()
    low, high = knots.gather(1, index), knots.gather(1, index + 1)
    return (low + (high - low) * frac).reshape(x.shape)


def random_knots(batch: int, gen: torch.Generator) -> torch.Tensor:
    """(batch, REMAP_KNOTS + 1) increasing knot values from 0 to 1 (random positive steps)."""
    steps = torch.rand(batch, REMAP_KNOTS, generator=gen) + 0.1
    knots = torch.cat([torch.zeros(batch, 1), steps.cumsum(1)], dim=1)
    return knots / knots[:, -1:]


def bias_field(batch: int, size: int, amplitude: float, gen: torch.Generator) -> torch.Tensor:
    """(batch, 1, size, size) smooth gains ``exp(a * u)``, ``u`` bilinear from a random
    2x2 grid in [-1, 1] (so the gain ranges within ``exp(-a)`` to ``exp(a)``)."""
    grid = torch.rand(batch, 1, 2, 2, generator=gen) * 2 - 1
    smooth = F.interpolate(grid, size=(size, size), mode="bilinear", align_corners=True)
    return torch.exp(amplitude * smooth)


def augment_intensity(hr: torch.Tensor, settings: Any, gen: torch.Generator) -> torch.Tensor:
    """HR patches ``hr`` (B, 1, P, P) in [0, 1] with the intensity augmentations of
    ``settings`` (module docstring); returned in [0, 1], the input left unchanged."""
    if not augmentation_enabled(settings):
        return hr
    x, batch = hr.clamp(0, 1), hr.shape[0]
    if settings.augment_invert:
        chosen = _chosen(batch, settings.augment_invert, gen)
        x = chosen * invert_tissue(x) + (1 - chosen) * x
    if settings.augment_remap:
        chosen = _chosen(batch, settings.augment_remap, gen)
        x = chosen * monotone_remap(x, random_knots(batch, gen)) + (1 - chosen) * x
    if settings.augment_gamma:
        log_gamma = (torch.rand(batch, generator=gen) * 2 - 1) * settings.augment_gamma
        x = x.clamp_min(0) ** torch.exp(log_gamma).view(batch, 1, 1, 1)
    if settings.augment_bias:
        x = x * bias_field(batch, x.shape[-1], settings.augment_bias, gen)
        peak = x.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1.0)
        x = x / peak
    if settings.augment_noise:
        sigma = (torch.rand(batch, generator=gen) * settings.augment_noise).view(batch, 1, 1, 1)
        real = x + sigma * torch.randn(x.shape, generator=gen)
        imaginary = sigma * torch.randn(x.shape, generator=gen)
        x = torch.sqrt(real * real + imaginary * imaginary)
    return x.clamp(0, 1).contiguous()
