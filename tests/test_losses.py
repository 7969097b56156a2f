"""Tests for rrlsrn.losses: Charbonnier, gradient difference loss, and their sum."""

from __future__ import annotations

import math

import pytest
import torch

from rrlsrn.losses import charbonnier, combined_loss, gradient_difference


def t(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


# --------------------------------------------------------------------------------------
# Charbonnier
# --------------------------------------------------------------------------------------


def test_charbonnier_by_hand():
    pred = t([[0.0, 1.0], [2.0, 3.0]])
    target = torch.zeros(2, 2, dtype=torch.float64)
    # mean of sqrt(d^2 + eps^2) with eps = 1e-3, d = 0, 1, 2, 3
    expected = (
        math.sqrt(0 + 1e-6) + math.sqrt(1 + 1e-6) + math.sqrt(4 + 1e-6) + math.sqrt(9 + 1e-6)
    ) / 4
    assert expected == pytest.approx(1.500250, abs=1e-6)  # ~ (0.001 + 1 + 2 + 3) / 4
    assert charbonnier(pred, target, eps=1e-3).item() == pytest.approx(expected, rel=1e-12)
    # symmetric in its arguments, eps is the floor at zero error
    assert charbonnier(target, pred).item() == pytest.approx(expected, rel=1e-12)
    assert charbonnier(target, target, eps=0.5).item() == pytest.approx(0.5, rel=1e-12)


def test_charbonnier_eps_changes_value():
    pred, target = t([[3.0]]), t([[0.0]])
    assert charbonnier(pred, target, eps=4.0).item() == pytest.approx(5.0, rel=1e-12)


def test_charbonnier_shape_mismatch_raises():
    with pytest.raises(ValueError):
        charbonnier(torch.zeros(2, 1, 4, 4), torch.zeros(2, 4, 4))


# --------------------------------------------------------------------------------------
# Gradient difference loss
# --------------------------------------------------------------------------------------


def test_gdl_by_hand_2x3():
    # target = [[0, 1, 2],      pred = zeros(2, 3)
    #           [0, 0, 0]]
    # horizontal |dx target| = [[1, 1], [0, 0]], |dx pred| = 0 -> mean of squares = 2/4
    # vertical   |dy target| = [[0, 1, 2]],      |dy pred| = 0 -> mean of squares = 5/3
    # GDL = 1/2 + 5/3 = 13/6
    target = t([[0.0, 1.0, 2.0], [0.0, 0.0, 0.0]])
    pred = torch.zeros(2, 3, dtype=torch.float64)
    assert gradient_difference(pred, target).item() == pytest.approx(13 / 6, rel=1e-12)
    assert gradient_difference(target, pred).item() == pytest.approx(13 / 6, rel=1e-12)


def test_gdl_by_hand_3x3_nonzero_pred():
    # target = [[0, 2, 2],   pred = [[0, 1, 3],
    #           [1, 1, 1],           [0, 0, 0],
    #           [3, 0, 1]]           [0, 4, 0]]
    # |dx t| = [[2,0],[0,0],[3,1]]   |dx p| = [[1,2],[0,0],[4,4]]
    #   diffs  [[1,-2],[0,0],[-1,-3]] -> squares 1+4+0+0+1+9 = 15 -> mean 15/6
    # |dy t| = [[1,1,1],[2,1,0]]     |dy p| = [[0,1,3],[0,4,0]]
    #   diffs  [[1,0,-2],[2,-3,0]]   -> squares 1+0+4+4+9+0 = 18 -> mean 18/6
    # GDL = 15/6 + 18/6 = 5.5
    target = t([[0, 2, 2], [1, 1, 1], [3, 0, 1]])
    pred = t([[0, 1, 3], [0, 0, 0], [0, 4, 0]])
    assert gradient_difference(pred, target).item() == pytest.approx(5.5, rel=1e-12)


def test_gdl_compares_absolute_gradients_not_signed_ones():
    # target gradient +1 along x, pred gradient -1: |+1| - |-1| = 0, so GDL = 0, whereas a
    # |grad(target) - grad(pred)|^2 formula would give (1 - (-1))^2 = 4.
    target = t([[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]])
    pred = t([[2.0, 1.0, 0.0], [2.0, 1.0, 0.0]])
    assert gradient_difference(pred, target).item() == pytest.approx(0.0, abs=1e-15)
    # ... while the images themselves differ, so the Charbonnier part is not zero
    assert charbonnier(pred, target).item() > 1.0


def test_gdl_ignores_batch_and_channel_axes():
    # Batch items / channels that are constant images but differ from one another by a
    # constant: no spatial gradient anywhere, so no loss (a difference taken across the
    # batch or channel axis would give a positive value).
    target = torch.zeros(2, 2, 3, 3, dtype=torch.float64)
    pred = torch.zeros(2, 2, 3, 3, dtype=torch.float64)
    pred[1] += 7.0
    pred[:, 1] += 3.0
    assert gradient_difference(pred, target).item() == pytest.approx(0.0, abs=1e-15)


def test_gdl_batched_is_mean_of_per_image_values():
    a_t, a_p = t([[0.0, 1.0, 2.0], [0.0, 0.0, 0.0]]), torch.zeros(2, 3, dtype=torch.float64)
    b_t = t([[0.0, 2.0, 2.0], [1.0, 1.0, 1.0]])
    b_p = t([[0.0, 1.0, 3.0], [0.0, 0.0, 0.0]])
    # pair b by hand: |dx t| = [[2,0],[0,0]], |dx p| = [[1,2],[0,0]] -> (1 + 4) / 4
    #                 |dy t| = [[1,1,1]],     |dy p| = [[0,1,3]]     -> (1 + 0 + 4) / 3
    gdl_b = 5 / 4 + 5 / 3
    assert gradient_difference(b_p, b_t).item() == pytest.approx(gdl_b, rel=1e-12)
    pred = torch.stack([a_p, b_p])[:, None] + 10.0  # a constant offset changes nothing
    target = torch.stack([a_t, b_t])[:, None]
    value = gradient_difference(pred, target).item()
    assert value == pytest.approx((13 / 6 + gdl_b) / 2, rel=1e-12)


def test_gdl_shape_mismatch_raises():
    with pytest.raises(ValueError, match="shape"):
        gradient_difference(torch.zeros(1, 1, 4, 4), torch.zeros(1, 4, 4))
    with pytest.raises(ValueError):
        gradient_difference(torch.zeros(4), torch.zeros(4))


def test_gdl_single_row_image_is_refused():
    # A 1 x W image has no vertical gradient: refuse it instead of returning nan.
    with pytest.raises(ValueError, match="H, W >= 2"):
        gradient_difference(torch.zeros(1, 3), torch.tensor([[0.0, 1.0, 2.0]]))


def test_gdl_backpropagates():
    pred = torch.zeros(1, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    target = torch.arange(9, dtype=torch.float64).reshape(1, 1, 3, 3)
    loss = combined_loss(pred, target)
    loss.backward()
    assert pred.grad is not None
    assert torch.isfinite(pred.grad).all()
    assert pred.grad.abs().sum() > 0


# --------------------------------------------------------------------------------------
# Combined loss
# --------------------------------------------------------------------------------------


def test_combined_loss_with_zero_weight_is_charbonnier():
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(2, 1, 5, 6, generator=g, dtype=torch.float64)
    target = torch.rand(2, 1, 5, 6, generator=g, dtype=torch.float64)
    ch = charbonnier(pred, target).item()
    assert combined_loss(pred, target, gdl_weight=0.0).item() == pytest.approx(ch, rel=1e-12)
    assert combined_loss(pred, target, gdl_weight=0.0, eps=0.1).item() == pytest.approx(
        charbonnier(pred, target, eps=0.1).item(), rel=1e-12
    )


def test_combined_loss_by_hand():
    target = t([[0.0, 1.0, 2.0], [0.0, 0.0, 0.0]])
    pred = torch.zeros(2, 3, dtype=torch.float64)
    # Charbonnier: mean over 6 pixels of sqrt(d^2 + 1e-6) with d = 0, 1, 2, 0, 0, 0
    ch = (4 * 1e-3 + math.sqrt(1 + 1e-6) + math.sqrt(4 + 1e-6)) / 6
    gdl = 13 / 6  # see test_gdl_by_hand_2x3
    assert combined_loss(pred, target).item() == pytest.approx(ch + gdl, rel=1e-12)
    assert combined_loss(pred, target, gdl_weight=0.5).item() == pytest.approx(
        ch + 0.5 * gdl, rel=1e-12
    )


def test_combined_loss_shape_mismatch_raises():
    with pytest.raises(ValueError):
        combined_loss(torch.zeros(2, 1, 4, 4), torch.zeros(2, 4, 4))
