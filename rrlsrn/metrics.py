"""Image quality metrics with the conventions that make SR numbers comparable.

PSNR uses ``data_range = 1`` on per-volume normalised intensities and shaves ``shave``
pixels at each border (the SR literature shaves ``scale``).  Batched over slices.
"""

from __future__ import annotations

import numpy as np
import torch


def _as_tensor(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(x)
    return t if t.is_floating_point() else t.float()


def shave_border(x: torch.Tensor, shave: int) -> torch.Tensor:
    """Drop ``shave`` pixels at every border of the last two axes."""
    if shave <= 0:
        return x
    if min(x.shape[-2:]) <= 2 * shave:
        raise ValueError(
            f"image of size {tuple(x.shape[-2:])} is too small to shave {shave} pixels per border"
        )
    return x[..., shave:-shave, shave:-shave]


def psnr(
    pred: np.ndarray | torch.Tensor,
    target: np.ndarray | torch.Tensor,
    shave: int = 0,
    data_range: float = 1.0,
    mask: np.ndarray | torch.Tensor | None = None,
) -> torch.Tensor:
    """PSNR in dB per image over the last two axes, after shaving the border.

    ``pred`` and ``target`` have shape (..., H, W); the result has shape (...).  With a
    ``mask`` (same shape, boolean) the mean squared error is taken inside it only.
    Identical images give ``inf``.
    """
    p, t = _as_tensor(pred).double(), _as_tensor(target).double()
    if p.shape != t.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(p.shape)} vs {tuple(t.shape)}")
    sq = shave_border((p - t) ** 2, shave)
    if mask is None:
        mse = sq.mean(dim=(-2, -1))
    else:
        m = shave_border(torch.as_tensor(mask, device=sq.device).to(sq.dtype), shave)
        count = m.sum(dim=(-2, -1))
        if (count == 0).any():
            raise ValueError("mask is empty inside the shaved border for at least one image")
        mse = (sq * m).sum(dim=(-2, -1)) / count
    return 10 * torch.log10(data_range**2 / mse)


def evaluate_slices(
    sr: np.ndarray, hr: np.ndarray, mask: np.ndarray | None = None, shave: int = 2
) -> dict[str, np.ndarray]:
    """Per-slice PSNR of an (N, H, W) SR stack against HR: whole slice and inside ``mask``.

    Slices whose mask is empty inside the shaved border get NaN for the masked PSNR.
    """
    sr_t, hr_t = torch.as_tensor(sr), torch.as_tensor(hr)
    out = {"psnr": psnr(sr_t, hr_t, shave=shave).numpy()}
    if mask is not None:
        m = torch.as_tensor(mask, dtype=torch.bool)
        inside = shave_border(m, shave).flatten(-2).any(-1)
        masked = torch.full((len(sr_t),), float("nan"), dtype=torch.float64)
        if inside.any():
            masked[inside] = psnr(sr_t[inside], hr_t[inside], shave=shave, mask=m[inside])
        out["psnr_mask"] = masked.numpy()
    return out
