"""Tests for rrlsrn.metrics: PSNR and border shaving."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio

from rrlsrn.metrics import psnr, shave_border


def test_constant_error_gives_hand_value():
    # error 0.1 everywhere -> MSE 0.01 -> 10 log10(1 / 0.01) = 20 dB
    target = np.zeros((8, 8))
    pred = target + 0.1
    assert psnr(pred, target).item() == pytest.approx(20.0, abs=1e-9)
    # MSE 0.0001 -> 40 dB; data_range 2 -> + 20 log10(2)
    assert psnr(target + 0.01, target).item() == pytest.approx(40.0, abs=1e-9)
    assert psnr(pred, target, data_range=2.0).item() == pytest.approx(
        20.0 + 20 * math.log10(2), abs=1e-9
    )


def test_mixed_errors_by_hand():
    # errors 0.1, 0.3, 0, 0 -> MSE (0.01 + 0.09) / 4 = 0.025 -> 10 log10(40) dB
    pred = torch.tensor([[0.1, 0.3], [0.0, 0.0]])
    target = torch.zeros(2, 2)
    assert psnr(pred, target).item() == pytest.approx(10 * math.log10(40), abs=1e-6)


def test_identical_images_give_inf():
    x = np.random.default_rng(0).random((5, 5))
    assert math.isinf(psnr(x, x).item())


def test_batched_shapes():
    target = torch.zeros(3, 6, 6)
    errors = torch.tensor([0.1, 0.01, 0.001])
    pred = target + errors[:, None, None]
    out = psnr(pred, target)
    assert isinstance(out, torch.Tensor)
    assert out.shape == (3,)
    np.testing.assert_allclose(out.numpy(), [20.0, 40.0, 60.0], atol=1e-6)
    out4 = psnr(pred.reshape(3, 1, 6, 6), target.reshape(3, 1, 6, 6))
    assert out4.shape == (3, 1)
    assert psnr(np.zeros((6, 6)), np.ones((6, 6))).shape == ()


def test_shave_border():
    x = torch.arange(2 * 6 * 7).reshape(2, 6, 7)
    y = shave_border(x, 2)
    assert y.shape == (2, 2, 3)
    assert torch.equal(y, x[:, 2:4, 2:5])
    assert shave_border(x, 0) is x
    with pytest.raises(ValueError, match="too small"):
        shave_border(x, 3)  # 6 <= 2 * 3


def test_shave_removes_border_error():
    target = np.zeros((10, 10))
    pred = target.copy()
    pred[0, :] = 1.0
    pred[:, -2] = 0.5  # second column from the right: inside a shave of 2
    assert math.isfinite(psnr(pred, target).item())
    assert math.isinf(psnr(pred, target, shave=2).item())
    # with shave 1 the column at -2 is kept: 8 of 64 pixels have error 0.5
    # -> MSE 8 * 0.25 / 64 = 1/32 -> 10 log10(32)
    assert psnr(pred, target, shave=1).item() == pytest.approx(10 * math.log10(32), abs=1e-9)


def test_mask_restricts_mse():
    target = np.zeros((4, 4))
    pred = np.zeros((4, 4))
    pred[0, 0] = 1.0  # large error outside the mask
    pred[2:, 2:] = 0.1  # error 0.1 inside the mask
    mask = np.zeros((4, 4), dtype=bool)
    mask[1:, 1:] = True
    # inside the 9-pixel mask: 4 pixels with error 0.1 -> MSE 0.04 / 9
    expected = 10 * math.log10(9 / 0.04)
    assert psnr(pred, target, mask=mask).item() == pytest.approx(expected, abs=1e-9)
    assert psnr(pred, target, mask=torch.from_numpy(mask)).item() == pytest.approx(expected)
    # mask combined with shave 1: the 2x2 centre, of which pixel (2, 2) has error 0.1
    assert psnr(pred, target, shave=1, mask=mask).item() == pytest.approx(
        10 * math.log10(4 / 0.01), abs=1e-9
    )


def test_empty_mask_raises():
    mask = np.zeros((2, 4, 4), dtype=bool)
    mask[0, 1, 1] = True
    with pytest.raises(ValueError, match="mask"):
        psnr(np.zeros((2, 4, 4)), np.ones((2, 4, 4)), mask=mask)


def test_batched_mask():
    target = torch.zeros(2, 3, 3)
    pred = torch.full((2, 3, 3), 0.1)
    pred[1, 0, 0] = 1.0
    mask = torch.ones(2, 3, 3, dtype=torch.bool)
    mask[1, 0, 0] = False
    np.testing.assert_allclose(psnr(pred, target, mask=mask).numpy(), [20.0, 20.0], atol=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_skimage(seed):
    rng = np.random.default_rng(seed)
    target = rng.random((2, 16, 12))
    pred = np.clip(target + 0.05 * rng.standard_normal(target.shape), 0, 1)
    ours = psnr(pred, target)
    for b in range(2):
        ref = peak_signal_noise_ratio(target[b], pred[b], data_range=1)
        assert ours[b].item() == pytest.approx(ref, abs=1e-9)
    ref_shaved = peak_signal_noise_ratio(target[0, 2:-2, 2:-2], pred[0, 2:-2, 2:-2], data_range=1)
    assert psnr(pred, target, shave=2)[0].item() == pytest.approx(ref_shaved, abs=1e-9)


def test_numpy_and_torch_inputs_agree():
    rng = np.random.default_rng(3)
    target = rng.random((8, 8)).astype(np.float32)
    pred = rng.random((8, 8)).astype(np.float32)
    ref = peak_signal_noise_ratio(target, pred, data_range=1)
    values = [
        psnr(pred, target),
        psnr(torch.from_numpy(pred), torch.from_numpy(target)),
        psnr(torch.from_numpy(pred), target),
    ]
    for v in values:
        assert isinstance(v, torch.Tensor)
        assert v.item() == pytest.approx(ref, abs=1e-4)
    # integer input is promoted (no integer overflow / truncation)
    assert psnr(np.full((4, 4), 3), np.zeros((4, 4), dtype=np.int64), data_range=255).item() == (
        pytest.approx(10 * math.log10(255**2 / 9), abs=1e-9)
    )


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="shape"):
        psnr(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="shape"):
        psnr(torch.zeros(2, 4, 4), torch.zeros(4, 4))
