"""Tests for baselines.nmu against a pixel-loop transcription of the reference scheme."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch

from baselines.interpolation import cubic_spline
from baselines.nmu import filtering_strength, nmu, nonlocal_means_step
from rrlsrn.degrade import make_degradation
from rrlsrn.metrics import psnr

OPERATORS = ["bicubic", "kspace", "gaussian_block"]


def naive_nlm_step(x: np.ndarray, h: np.ndarray, v: int = 3, f: int = 1) -> np.ndarray:
    """The reference filter pass, pixel by pixel (tiny images only)."""
    height, width = x.shape
    padded = np.pad(x, v + f, mode="reflect")
    local_mean = ndi.uniform_filter(x, 3, mode="mirror")
    num, den = x.copy(), np.ones_like(x)

    def patch(i: int, j: int) -> np.ndarray:
        return padded[i + v : i + v + 2 * f + 1, j + v : j + v + 2 * f + 1]

    for i in range(height):
        for j in range(width):
            if h[i, j] < 1:
                continue
            for di in range(0, v + 1):
                for dj in range(-v, v + 1):
                    if di == 0 and dj <= 0:
                        continue
                    ni, nj = i + di, j + dj
                    if not (0 <= ni < height and 0 <= nj < width):
                        continue
                    if abs(local_mean[i, j] - local_mean[ni, nj]) > 0.6 * h[i, j]:
                        continue
                    d = np.mean((patch(i, j) - patch(ni, nj)) ** 2)
                    w = np.exp(-max(d / (2 * h[i, j] ** 2) - 1, 0.0))
                    num[i, j] += w * x[ni, nj]
                    den[i, j] += w
                    num[ni, nj] += w * x[i, j]
                    den[ni, nj] += w
    return num / den


def test_filter_pass_matches_the_pixel_loop_reference():
    rng = np.random.default_rng(3)
    x = ndi.gaussian_filter(rng.random((11, 9)) * 256, 1.0) + rng.random((11, 9)) * 20
    h = rng.uniform(0.5, 25, size=x.shape)  # some pixels below 1: they own no pairs
    got = nonlocal_means_step(torch.from_numpy(x)[None], torch.from_numpy(h)[None])[0]
    np.testing.assert_allclose(got.numpy(), naive_nlm_step(x, h), rtol=1e-10, atol=1e-10)


def test_filtering_strength_is_half_the_smoothed_local_sample_std():
    x = np.random.default_rng(4).random((10, 12)) * 100
    std = ndi.generic_filter(x, lambda v: np.std(v, ddof=1), size=3, mode="mirror")
    expected = ndi.uniform_filter(std, 3, mode="mirror") / 2
    got = filtering_strength(torch.from_numpy(x)[None])[0].numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9)


def smooth_image(n: int = 64) -> np.ndarray:
    """A bright disc on a dark background, Gaussian-smoothed (sigma 1 HR pixel)."""
    yy, xx = np.mgrid[0:n, 0:n] / n
    disc = ((xx - 0.5) ** 2 + (yy - 0.45) ** 2 < 0.1).astype(np.float64)
    return ndi.gaussian_filter(0.1 + 0.8 * disc, 1.0)


@pytest.mark.parametrize("operator", OPERATORS)
def test_result_is_at_least_as_close_to_hr_as_the_initial_estimate(operator):
    hr = torch.from_numpy(smooth_image())[None]
    degradation = make_degradation(operator)
    lr = degradation(hr, 2)
    initial = degradation.project(cubic_spline(lr, 2, degradation), lr, 2)
    out = nmu(lr, 2, degradation)
    assert psnr(out[0].numpy(), hr[0].numpy()) >= psnr(initial[0].numpy(), hr[0].numpy()) - 1e-6


@pytest.mark.parametrize("operator", OPERATORS)
def test_output_is_consistent_with_the_lr_input_through_the_configured_operator(operator):
    hr = torch.from_numpy(smooth_image(48))[None].repeat(2, 1, 1)
    hr[1] = hr[1].flip(-1) * 0.5
    degradation = make_degradation(operator)
    lr = degradation(hr, 2)
    out = nmu(lr, 2, degradation)
    assert out.shape == hr.shape
    torch.testing.assert_close(degradation(out, 2), lr, atol=1e-6, rtol=0)


def test_a_constant_image_stays_constant():
    out = nmu(torch.full((1, 16, 12), 0.37, dtype=torch.float64), 2)
    torch.testing.assert_close(out, torch.full((1, 32, 24), 0.37, dtype=torch.float64))


def test_beats_nearest_neighbour_on_a_real_slice(real_slices):
    hr = torch.from_numpy(real_slices[:1])
    degradation = make_degradation("bicubic")
    lr = degradation(hr, 2)
    nearest = lr.repeat_interleave(2, -2).repeat_interleave(2, -1)
    out = nmu(lr, 2, degradation).clamp(0, 1)
    gain = psnr(out[0].numpy(), hr[0].numpy(), shave=2) - psnr(
        nearest[0].numpy(), hr[0].numpy(), shave=2
    )
    assert gain > 2.0


def test_bad_input_is_refused_with_a_clear_error():
    with pytest.raises(ValueError, match="nmu: .*NaN"):
        nmu(torch.tensor([[[0.0, float("nan")], [0.0, 0.0]]]), 2)
    with pytest.raises(ValueError, match=r"nmu: expected LR slices shaped \(N, h, w\)"):
        nmu(torch.zeros(8), 2)
