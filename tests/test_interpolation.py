"""Tests for baselines.interpolation: the cubic B-spline grid and plain bicubic."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch

from baselines.interpolation import bicubic, cubic_spline, spline_matrix
from rrlsrn.degrade import imresize, make_degradation
from rrlsrn.metrics import psnr


def test_centre_grid_equals_scipy_zoom_on_the_pixel_centre_grid():
    lr = np.random.default_rng(0).random((3, 11, 14))
    out = cubic_spline(torch.from_numpy(lr), 2).numpy()
    for i in range(3):
        ref = ndi.zoom(lr[i], 2, order=3, mode="reflect", grid_mode=True)
        np.testing.assert_allclose(out[i], ref, atol=1e-10)


def test_centre_grid_reproduces_a_ramp_sampled_at_block_centres():
    # A linear ramp averaged over 2x2 blocks equals the ramp at the block centres, and a
    # cubic spline reproduces linear functions: away from the border (whose mirror effect
    # decays as 0.268^k over LR pixels) the HR ramp returns.
    hr = np.add.outer(np.arange(64.0), 0.5 * np.arange(48.0))
    lr = make_degradation("gaussian_block", sigma=0.01)(torch.from_numpy(hr), 2)
    out = cubic_spline(lr, 2).numpy()[0]
    np.testing.assert_allclose(out[20:-20, 20:-20], hr[20:-20, 20:-20], atol=1e-4)


def test_origin_grid_interpolates_the_kspace_samples_and_fits_a_band_limited_image():
    # k-space truncation samples HR pixel 2i: the spline must pass through those samples
    n = 64
    t = np.arange(n)
    hr = 0.5 + 0.2 * np.cos(2 * np.pi * 3 * t / n)[:, None] * np.sin(2 * np.pi * 2 * t / n)
    degradation = make_degradation("kspace")
    lr = degradation(torch.from_numpy(hr), 2)
    origin = cubic_spline(lr, 2, degradation).numpy()[0]
    np.testing.assert_allclose(origin[::2, ::2], lr.numpy(), atol=1e-12)
    centre = cubic_spline(lr, 2, make_degradation("bicubic")).numpy()[0]
    assert psnr(origin, hr) > psnr(centre, hr) + 10


def test_spline_matrix_rejects_an_unknown_grid():
    with pytest.raises(ValueError, match="'edge'"):
        spline_matrix(8, 2, "edge")


def test_bicubic_is_matlab_imresize():
    lr = np.random.default_rng(1).random((2, 9, 7))
    np.testing.assert_allclose(bicubic(torch.from_numpy(lr), 2).numpy(), imresize(lr, 2.0))


@pytest.mark.parametrize("method", [cubic_spline, bicubic])
def test_bad_input_is_refused_with_a_clear_error(method):
    with pytest.raises(ValueError, match="NaN"):
        method(torch.full((1, 4, 4), float("nan")), 2)
    with pytest.raises(ValueError, match=r"\(N, h, w\)"):
        method(torch.zeros(1, 1, 4, 4), 2)
