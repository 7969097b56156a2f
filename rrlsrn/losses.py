"""Training losses: Charbonnier (robust L1) and the gradient difference loss (GDL).

The paper's loss is ``Charbonnier + GDL`` (its equation 6) with weight 1 each; a GDL
weight of 0 is the Table 4 ablation.
"""

from __future__ import annotations

import torch


def _check_pair(pred: torch.Tensor, target: torch.Tensor, min_size: int = 1) -> None:
    """Refuse shape mismatches (broadcasting would silently compare the wrong pixels)."""
    if pred.shape != target.shape or pred.ndim < 2 or min(pred.shape[-2:]) < min_size:
        raise ValueError(
            f"pred and target must share a shape (..., H, W) with H, W >= "
            f"{min_size}, got {tuple(pred.shape)} and {tuple(target.shape)}"
        )


def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Mean of ``sqrt((pred - target)^2 + eps^2)`` (Lai et al. 2017, LapSRN eq. 4)."""
    _check_pair(pred, target)
    diff = pred - target
    return torch.sqrt(diff * diff + eps * eps).mean()


def gradient_difference(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """GDL of Mathieu et al. 2016 with alpha = 2, along H and W only.

    ``mean((|dy target| - |dy pred|)^2) + mean((|dx target| - |dx pred|)^2)`` where the
    finite differences are taken between neighbouring pixels of the last two axes (never
    across batch or channel), and it is the absolute gradients that are compared.
    """
    _check_pair(pred, target, min_size=2)
    dy_p = (pred[..., 1:, :] - pred[..., :-1, :]).abs()
    dy_t = (target[..., 1:, :] - target[..., :-1, :]).abs()
    dx_p = (pred[..., :, 1:] - pred[..., :, :-1]).abs()
    dx_t = (target[..., :, 1:] - target[..., :, :-1]).abs()
    return ((dy_t - dy_p) ** 2).mean() + ((dx_t - dx_p) ** 2).mean()


def combined_loss(
    pred: torch.Tensor, target: torch.Tensor, gdl_weight: float = 1.0, eps: float = 1e-3
) -> torch.Tensor:
    """The paper's loss: ``charbonnier + gdl_weight * gradient_difference``."""
    loss = charbonnier(pred, target, eps)
    if gdl_weight:
        loss = loss + gdl_weight * gradient_difference(pred, target)
    return loss
