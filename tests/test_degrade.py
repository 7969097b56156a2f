"""Tests for rrlsrn.degrade: MATLAB-compatible bicubic imresize and the LR operators."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
from scipy import special

from rrlsrn.degrade import (
    bicubic_down,
    degrade,
    gaussian_block_down,
    gaussian_spline_down,
    hamming_window,
    imresize,
    make_degradation,
    modcrop,
    resize_matrix,
    rician_noise,
)

OPERATORS = ["bicubic", "kspace", "gaussian_block", "gaussian_spline"]


def keys_cubic(x: float, a: float = -0.5) -> float:
    """Keys' cubic convolution kernel, written out independently of the library."""
    x = abs(x)
    if x <= 1:
        return (a + 2) * x**3 - (a + 3) * x**2 + 1
    if x < 2:
        return a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a
    return 0.0


# Hand values of the Keys kernel with a = -0.5:
#   cubic(0.25) = 1.5*0.015625 - 2.5*0.0625 + 1                  =  0.8671875
#   cubic(0.75) = 1.5*0.421875 - 2.5*0.5625 + 1                  =  0.2265625
#   cubic(1.25) = -0.5*1.953125 + 2.5*1.5625 - 4*1.25 + 2        = -0.0703125
#   cubic(1.75) = -0.5*5.359375 + 2.5*3.0625 - 4*1.75 + 2        = -0.0234375
# (the four sum to 1, the partition of unity of the kernel at offset 1/4).
C025, C075, C125, C175 = 0.8671875, 0.2265625, -0.0703125, -0.0234375


def test_hand_values_of_keys_kernel():
    assert [keys_cubic(v) for v in (0.25, 0.75, 1.25, 1.75)] == [C025, C075, C125, C175]
    assert C025 + C075 + C125 + C175 == 1.0


# --------------------------------------------------------------------------------------
# (a) constants are preserved
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [0.5, 2.0])
def test_imresize_keeps_constant_image(scale):
    x = np.full((10, 12), 0.37)
    y = imresize(x, scale)
    assert y.shape == (int(10 * scale), int(12 * scale))
    np.testing.assert_allclose(y, 0.37, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", OPERATORS)
def test_degrade_keeps_constant_image(name):
    x = np.full((2, 12, 16), 0.8)
    y = degrade(x, 2, name)
    assert y.shape == (2, 6, 8)
    np.testing.assert_allclose(y, 0.8, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------------------
# (b) known kernel weights
# --------------------------------------------------------------------------------------


def test_downscale_half_interior_weights():
    # MATLAB x0.5 with antialiasing: the kernel is h(d) = 0.5 * cubic(0.5 * d), 8 taps wide.
    # Output pixel i (1-based) maps to u = i / 0.5 + 0.5 * (1 - 1 / 0.5) = 2i - 0.5, so the
    # source pixels 2i-4 ... 2i+3 sit at distances d = 3.5, 2.5, 1.5, 0.5, -0.5, ..., -3.5:
    #   0.5 * cubic(0.25) = 0.43359375   (|d| = 0.5)
    #   0.5 * cubic(0.75) = 0.11328125   (|d| = 1.5)
    #   0.5 * cubic(1.25) = -0.03515625  (|d| = 2.5)
    #   0.5 * cubic(1.75) = -0.01171875  (|d| = 3.5)
    # which already sum to 1 (so normalisation changes nothing).
    expected = np.array(
        [
            -0.01171875,
            -0.03515625,
            0.11328125,
            0.43359375,
            0.43359375,
            0.11328125,
            -0.03515625,
            -0.01171875,
        ]
    )
    assert expected.sum() == pytest.approx(1.0, abs=1e-15)
    n = 20
    mat = resize_matrix(n, n // 2, 0.5)
    assert mat.shape == (n // 2, n)
    for i in range(3, n // 2 - 2):  # 1-based output pixels whose taps stay inside [1, n]
        row = mat[i - 1]
        start = 2 * i - 4  # 1-based first source pixel
        np.testing.assert_allclose(row[start - 1 : start + 7], expected, rtol=0, atol=1e-14)
        assert np.count_nonzero(row) == 8

    # The same weights seen through imresize on unit impulses (columns of the operator).
    for j in range(6, 14):
        e = np.zeros((1, n))
        e[0, j] = 1.0
        out = imresize(e, 0.5)[0]
        np.testing.assert_allclose(out, mat[:, j], rtol=0, atol=1e-14)


def test_upscale_two_interior_weights():
    # MATLAB x2 (no antialiasing, plain cubic, 4 taps): u = i / 2 + 0.5 * (1 - 1/2) = i/2 + 0.25
    # (1-based).  For even output i = 2k: u = k + 0.25, sources k-1, k, k+1, k+2 at
    # distances 1.25, 0.25, -0.75, -1.75 -> [cubic(1.25), cubic(0.25), cubic(0.75), cubic(1.75)].
    # For odd output i = 2k+1: u = k + 0.75, sources k-1 ... k+2 at distances
    # 1.75, 0.75, -0.25, -1.25 -> [cubic(1.75), cubic(0.75), cubic(0.25), cubic(1.25)].
    n = 8
    mat = resize_matrix(n, 2 * n, 2.0)
    assert mat.shape == (2 * n, n)
    for k in range(2, n - 1):  # keep sources k-1 ... k+2 inside [1, n]
        even, odd = mat[2 * k - 1], mat[2 * k]  # rows of 1-based outputs 2k and 2k+1
        np.testing.assert_allclose(even[k - 2 : k + 2], [C125, C025, C075, C175], atol=1e-15)
        np.testing.assert_allclose(odd[k - 2 : k + 2], [C175, C075, C025, C125], atol=1e-15)
        assert np.count_nonzero(even) == 4
        assert np.count_nonzero(odd) == 4


# --------------------------------------------------------------------------------------
# (c) bicubic reproduces linear functions
# --------------------------------------------------------------------------------------


def test_down_then_up_reproduces_linear_ramp_in_interior():
    r, c = np.meshgrid(np.arange(32.0), np.arange(28.0), indexing="ij")
    ramp = 0.01 * r - 0.02 * c + 0.3
    lr = imresize(ramp, 0.5)
    # x0.5 of a linear f samples it at the pixel-centre map u = 2i - 0.5 (1-based), i.e.
    # at 0-based HR coordinate 2m + 0.5 for 0-based LR pixel m (away from the border).
    lr_expected = (
        0.01 * (2 * np.arange(16.0) + 0.5)[:, None]
        - 0.02 * (2 * np.arange(14.0) + 0.5)[None, :]
        + 0.3
    )
    np.testing.assert_allclose(lr[3:-3, 3:-3], lr_expected[3:-3, 3:-3], rtol=0, atol=1e-12)
    back = imresize(lr, 2)
    assert back.shape == ramp.shape
    b = 8  # taps of the down kernel (4) plus those of the up kernel (2 LR = 4 HR)
    err = np.abs(back - ramp)[b:-b, b:-b]
    assert err.max() < 1e-6
    # ... while mirror padding does NOT reproduce the ramp at the border (sanity check
    # that the interior comparison is meaningful).
    assert np.abs(back - ramp)[0, :].max() > 1e-4


# --------------------------------------------------------------------------------------
# (d) shapes and modcrop
# --------------------------------------------------------------------------------------


def test_odd_sizes_follow_matlab_ceil():
    x = np.random.default_rng(0).random((17, 15))
    assert imresize(x, 0.5).shape == (9, 8)  # ceil(8.5), ceil(7.5)
    assert imresize(x, 2).shape == (34, 30)
    assert imresize(x, 1 / 3).shape == (6, 5)  # ceil(5.67), ceil(5)
    assert imresize(np.zeros((3, 4, 17, 15)), 0.5).shape == (3, 4, 9, 8)


def test_modcrop():
    x = np.arange(17 * 15, dtype=float).reshape(17, 15)
    y = modcrop(x, 2)
    assert y.shape == (16, 14)
    np.testing.assert_array_equal(y, x[:16, :14])  # bottom/right dropped
    assert modcrop(x, 3).shape == (15, 15)
    xb = torch.arange(2 * 3 * 17 * 15, dtype=torch.float32).reshape(2, 3, 17, 15)
    yb = modcrop(xb, 4)
    assert isinstance(yb, torch.Tensor)
    assert yb.shape == (2, 3, 16, 12)
    assert torch.equal(yb, xb[..., :16, :12])
    assert modcrop(np.zeros((16, 14)), 2).shape == (16, 14)


# --------------------------------------------------------------------------------------
# (e) agreement with a direct loop over output pixels (MATLAB's contributions formula)
# --------------------------------------------------------------------------------------


def _mirror(j: int, n: int) -> int:
    """Symmetric padding (edge sample repeated) of a 1-based index into [1, n]."""
    while j < 1 or j > n:
        j = 1 - j if j < 1 else 2 * n + 1 - j
    return j


def _contributions(n_in: int, n_out: int, scale: float) -> list[list[tuple[int, float]]]:
    """Per output pixel: list of (0-based source, weight) following MATLAB's imresize."""
    antialias = scale < 1
    width = 4.0 / scale if antialias else 4.0
    out = []
    for i in range(1, n_out + 1):
        u = i / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        taps = []
        for j in range(left, left + math.ceil(width) + 2):
            d = u - j
            w = scale * keys_cubic(scale * d) if antialias else keys_cubic(d)
            taps.append((_mirror(j, n_in) - 1, w))
        total = sum(w for _, w in taps)
        out.append([(s, w / total) for s, w in taps])
    return out


def _reference_imresize(x: np.ndarray, scale: float) -> np.ndarray:
    h, w = x.shape
    oh, ow = math.ceil(scale * h), math.ceil(scale * w)
    ch, cw = _contributions(h, oh, scale), _contributions(w, ow, scale)
    y = np.zeros((oh, ow))
    for a in range(oh):
        for b in range(ow):
            acc = 0.0
            for sa, wa in ch[a]:
                for sb, wb in cw[b]:
                    acc += wa * wb * x[sa, sb]
            y[a, b] = acc
    return y


@pytest.mark.parametrize("scale", [0.5, 2.0])
def test_imresize_matches_direct_loop_reference(scale):
    x = np.random.default_rng(1).random((9, 11))
    ref = _reference_imresize(x, scale)

    y_np = imresize(x, scale)
    assert isinstance(y_np, np.ndarray)
    assert y_np.dtype == np.float64
    assert y_np.shape == ref.shape
    np.testing.assert_allclose(y_np, ref, rtol=0, atol=1e-12)

    xt = torch.from_numpy(x)
    y_t = imresize(xt, scale)
    assert isinstance(y_t, torch.Tensor)
    assert y_t.dtype == torch.float64
    np.testing.assert_allclose(y_t.numpy(), ref, rtol=0, atol=1e-12)

    y32 = imresize(xt.float(), scale)
    assert isinstance(y32, torch.Tensor)
    assert y32.dtype == torch.float32
    np.testing.assert_allclose(y32.numpy(), ref, rtol=0, atol=1e-5)

    # Batched input: each (H, W) slice is resized independently.
    xb = np.stack([x, 2 * x, -x])[None]
    yb = imresize(xb, scale)
    assert yb.shape == (1, 3, *ref.shape)
    np.testing.assert_allclose(yb[0], np.stack([ref, 2 * ref, -ref]), atol=1e-12)


def test_imresize_promotes_integer_input():
    x = np.arange(9 * 11).reshape(9, 11)
    y = imresize(x, 0.5)
    assert np.issubdtype(y.dtype, np.floating)
    np.testing.assert_allclose(y, _reference_imresize(x.astype(float), 0.5), atol=1e-9)
    yt = imresize(torch.from_numpy(x), 2)
    assert yt.is_floating_point()


def test_bicubic_degrade_is_imresize_half():
    x = np.random.default_rng(2).random((12, 10))
    np.testing.assert_allclose(degrade(x, 2, "bicubic"), _reference_imresize(x, 0.5), atol=1e-12)


# --------------------------------------------------------------------------------------
# (f) k-space truncation
# --------------------------------------------------------------------------------------


def test_kspace_matches_explicit_dft_of_kept_frequencies():
    x = np.random.default_rng(3).random((8, 8))
    y = degrade(x, 2, "kspace")
    assert isinstance(y, np.ndarray)
    assert y.shape == (4, 4)
    # Central 4x4 block of the centred 8x8 spectrum = frequencies k, l in {-2, -1, 0, 1}
    # (np.fft.fftshift puts frequency f at index f + 4; the block is indices 2..5).
    # Synthesise the 4x4 image from those coefficients with an explicit inverse DFT of
    # size 4 (normalised by 1/16), then divide by scale^2 = 4 to keep the mean.
    big = np.fft.fftshift(np.fft.fft2(x))
    freqs = [-2, -1, 0, 1]
    ref = np.zeros((4, 4), dtype=complex)
    for m in range(4):
        for n in range(4):
            for k in freqs:
                for ll in freqs:
                    coef = big[k + 4, ll + 4]
                    ref[m, n] += coef * np.exp(2j * np.pi * (k * m + ll * n) / 4)
    ref = ref.real / 16 / 4
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e-12)
    assert y.mean() == pytest.approx(x.mean(), abs=1e-12)


def test_kspace_torch_in_torch_out_and_batched():
    x = torch.from_numpy(np.random.default_rng(4).random((2, 3, 8, 12)))
    y = degrade(x, 2, "kspace")
    assert isinstance(y, torch.Tensor)
    assert y.shape == (2, 3, 4, 6)
    np.testing.assert_allclose(y.mean(dim=(-2, -1)), x.mean(dim=(-2, -1)), atol=1e-12)
    y0 = degrade(x[1, 2].numpy(), 2, "kspace")
    np.testing.assert_allclose(y[1, 2].numpy(), y0, atol=1e-12)


def test_kspace_reproduces_low_frequency_cosine_at_lr_samples():
    # Frequencies (+-1, +-3) cycles per 16 pixels lie inside the 8x8 LR band {-4, ..., 3},
    # so the truncation keeps the whole spectrum and the LR image is the cosine sampled
    # every second HR pixel (LR pixel m sits at HR pixel 2m in the DFT convention).
    m, n = np.meshgrid(np.arange(16), np.arange(16), indexing="ij")
    x = np.cos(2 * np.pi * (1 * m + 3 * n) / 16 + 0.3)
    y = degrade(x, 2, "kspace")
    np.testing.assert_allclose(y, x[::2, ::2], rtol=0, atol=1e-12)
    # A frequency outside the LR band (5 cycles per 16 pixels along rows) is removed.
    z = degrade(np.cos(2 * np.pi * 5 * m / 16), 2, "kspace")
    np.testing.assert_allclose(z, 0.0, atol=1e-12)


# --------------------------------------------------------------------------------------
# (g) Gaussian blur + block averaging
# --------------------------------------------------------------------------------------


def test_gaussian_block_with_tiny_sigma_is_block_mean():
    x = np.random.default_rng(5).random((2, 6, 8))
    y = degrade(x, 2, "gaussian_block", sigma=1e-3)
    block = x.reshape(2, 3, 2, 4, 2).mean(axis=(2, 4))
    np.testing.assert_allclose(y, block, rtol=0, atol=1e-12)
    yt = degrade(torch.from_numpy(x), 2, "gaussian_block", sigma=1e-3)
    assert isinstance(yt, torch.Tensor)
    np.testing.assert_allclose(yt.numpy(), block, atol=1e-12)


def test_gaussian_block_keeps_mean_of_interior_and_blurs():
    # With a real sigma the operator is a normalised blur then block mean: a single
    # impulse far from the border spreads over several LR pixels but keeps its mass / 4.
    x = np.zeros((16, 16))
    x[8, 8] = 1.0
    y = degrade(x, 2, "gaussian_block", sigma=1.0)
    assert y.sum() == pytest.approx(1.0 / 4, abs=1e-12)
    assert np.count_nonzero(y > 1e-6) > 1


# --------------------------------------------------------------------------------------
# (h) errors
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", OPERATORS)
def test_size_not_divisible_raises(name):
    with pytest.raises(ValueError, match="modcrop|17x15"):
        degrade(np.zeros((17, 15)), 2, name)


def test_unknown_operator_raises():
    with pytest.raises(ValueError, match="'nope'"):
        degrade(np.zeros((8, 8)), 2, "nope")


def test_one_dimensional_input_raises():
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        imresize(np.zeros(8), 0.5)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        modcrop(torch.zeros(8), 2)
    for name in OPERATORS:
        with pytest.raises(ValueError):
            degrade(np.zeros(8), 2, name)


def test_nonpositive_scale_raises():
    with pytest.raises(ValueError, match="scale"):
        imresize(np.zeros((4, 4)), 0)


@pytest.mark.parametrize("name", ["bicubic", "kspace", "gaussian_block"])
def test_adjoint_satisfies_the_inner_product_identity(name):
    # <D x, y> = <x, D^T y> for random x, y defines the adjoint
    degradation = make_degradation(name)
    rng = np.random.default_rng(5)
    x = torch.from_numpy(rng.standard_normal((2, 24, 18)))
    y = torch.from_numpy(rng.standard_normal((2, 12, 9)))
    lhs = (degradation(x, 2) * y).sum()
    rhs = (x * degradation.adjoint(y, 2)).sum()
    assert float(lhs) == pytest.approx(float(rhs), rel=1e-10)


@pytest.mark.parametrize("name", ["bicubic", "kspace", "gaussian_block"])
def test_project_gives_the_nearest_consistent_image(name):
    degradation = make_degradation(name)
    rng = np.random.default_rng(6)
    x = torch.from_numpy(rng.random((2, 24, 18)))
    y = torch.from_numpy(rng.random((2, 12, 9)))
    p = degradation.project(x, y, 2, iterations=500, rtol=1e-13)
    torch.testing.assert_close(degradation(p, 2), y, atol=1e-9, rtol=0)
    # least squares: the correction lies in the range of D^T, so it is orthogonal to the
    # null space of D (projecting any z onto D z = 0 gives a null-space vector)
    z = torch.from_numpy(rng.standard_normal((2, 24, 18)))
    null = degradation.project(z, torch.zeros_like(y), 2, iterations=500, rtol=1e-13)
    assert float(degradation(null, 2).abs().max()) < 1e-9
    assert float(((p - x) * null).sum().abs()) < 1e-8


def test_separable_fast_path_equals_the_functions():
    x = torch.rand(3, 20, 16, dtype=torch.float64)
    for name, fn in (("bicubic", bicubic_down), ("gaussian_block", gaussian_block_down)):
        torch.testing.assert_close(make_degradation(name)(x, 2), fn(x, 2), atol=0, rtol=0)


# --------------------------------------------------------------------------------------
# (i) the protocols' operators: Pham et al. 2017, Hamming-windowed k-space, Rician noise
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("scale", "shape"), [(2, (24, 36)), (3, (24, 36)), (4, (16, 36))])
def test_gaussian_spline_is_pham_et_al_blur_then_scipy_zoom(scale, shape):
    # Pham et al.'s SRCNN3D data: scipy.ndimage.gaussian_filter(hr, sigma=1), then
    # scipy.ndimage.zoom(blurred, 1 / scale, order=3), slice by slice here.
    x = np.random.default_rng(11).random((2, *shape))
    ref = np.stack([ndi.zoom(ndi.gaussian_filter(s, 1.0), 1 / scale, order=3) for s in x])
    np.testing.assert_allclose(degrade(x, scale, "gaussian_spline"), ref, rtol=0, atol=1e-12)
    fast = make_degradation("gaussian_spline")(torch.from_numpy(x), scale)
    np.testing.assert_allclose(fast.numpy(), ref, rtol=0, atol=1e-12)
    wide = np.stack([ndi.zoom(ndi.gaussian_filter(s, 2.5), 1 / scale, order=3) for s in x])
    np.testing.assert_allclose(gaussian_spline_down(x, scale, sigma=2.5), wide, atol=1e-12)


def test_gaussian_spline_samples_the_corners_of_the_hr_grid():
    # zoom's grid: LR sample i sits at HR coordinate i (H - 1) / (h - 1), so the corner LR
    # samples are the corner HR pixels (a spline passes through its samples); without
    # blur they are copied exactly, where a pixel-centre grid would average neighbours.
    x = np.random.default_rng(15).random((16, 12))
    lr = gaussian_spline_down(x, 2, sigma=1e-3)
    for r, c in ((0, 0), (0, -1), (-1, 0), (-1, -1)):
        assert lr[r, c] == pytest.approx(x[r, c], abs=1e-12)
    assert abs(lr[0, 1] - x[0, 2]) > 1e-3  # sample 1 is at 11/5 = 2.2, not at pixel 2


def test_hamming_taps_written_out():
    # 0.54 - 0.46 cos(2 pi n / 8), n = 0..7; the peak n = 4 is the DC sample of the
    # fftshifted 8-sample block: 0.54 - 0.46 cos(pi / 4) = 0.21473, 0.54 + 0.46 cos(pi / 4)
    # = 0.86527.
    expected = [0.08, 0.2147309, 0.54, 0.8652691, 1.0, 0.8652691, 0.54, 0.2147309]
    np.testing.assert_allclose(hamming_window(8), expected, rtol=0, atol=1e-7)
    # odd length: DC at index 2 of 5 is 1, and the taps are symmetric about it
    w5 = hamming_window(5)
    assert w5[2] == pytest.approx(1.0)
    assert w5[1] == pytest.approx(w5[3]) and w5[0] == pytest.approx(w5[4])
    assert w5[1] == pytest.approx(0.54 + 0.46 * math.cos(2 * math.pi / 5))


def test_hamming_kspace_is_the_windowed_dft_of_the_kept_frequencies():
    x = np.random.default_rng(12).random((8, 8))
    y = degrade(x, 2, "kspace", window="hamming")
    big = np.fft.fftshift(np.fft.fft2(x))
    freqs = [-2, -1, 0, 1]
    taps = {-2: 0.08, -1: 0.54, 0: 1.0, 1: 0.54}  # 0.54 + 0.46 cos(2 pi k / 4)
    ref = np.zeros((4, 4), dtype=complex)
    for m in range(4):
        for n in range(4):
            for k in freqs:
                for ll in freqs:
                    coef = big[k + 4, ll + 4] * taps[k] * taps[ll]
                    ref[m, n] += coef * np.exp(2j * np.pi * (k * m + ll * n) / 4)
    np.testing.assert_allclose(y, ref.real / 16 / 4, rtol=0, atol=1e-12)
    assert y.mean() == pytest.approx(x.mean(), abs=1e-12)  # DC tap 1: the mean is kept
    with pytest.raises(ValueError, match="unknown k-space window 'hann'"):
        degrade(x, 2, "kspace", window="hann")


def dense_matrix(degradation, shape, scale):
    """The operator as a dense matrix, one unit image per column."""
    eye = torch.eye(shape[0] * shape[1], dtype=torch.float64).reshape(-1, *shape)
    return degradation(eye, scale).reshape(len(eye), -1).T


@pytest.mark.parametrize(
    ("name", "params", "shape"),
    [
        ("gaussian_spline", {}, (12, 8)),
        ("gaussian_spline", {"sigma": 2.0}, (10, 14)),
        ("kspace", {"window": "hamming"}, (12, 8)),
        ("kspace", {"window": "hamming"}, (10, 14)),  # odd LR sizes: no Nyquist sample
        ("kspace", {}, (12, 8)),
    ],
)
def test_adjoint_and_projection_against_the_dense_matrix(name, params, shape):
    degradation = make_degradation(name, **params)
    scale = 2
    a = dense_matrix(degradation, shape, scale)  # (LR pixels x HR pixels)
    rng = np.random.default_rng(13)
    y = torch.from_numpy(rng.standard_normal((2, shape[0] // 2, shape[1] // 2)))
    adjoint = degradation.adjoint(y, scale).reshape(2, -1)
    torch.testing.assert_close(adjoint, (a.T @ y.reshape(2, -1).T).T, atol=1e-12, rtol=0)
    x = torch.from_numpy(rng.standard_normal((2, *shape)))
    # projection: x + A^T (A A^T)^-1 (y - A x), solved here by numpy (dense)
    a_np, xf, yf = a.numpy(), x.reshape(2, -1).numpy(), y.reshape(2, -1).numpy()
    z = np.linalg.solve(a_np @ a_np.T, (yf - xf @ a_np.T).T)
    expected = xf + (a_np.T @ z).T
    got = degradation.project(x, y, scale, iterations=500, rtol=1e-14).reshape(2, -1)
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-8)


def rice_mean(nu: float, sigma: float) -> float:
    """Mean of Rice(nu, sigma): sigma sqrt(pi/2) L_1/2(-nu^2 / (2 sigma^2)), with
    L_1/2(x) = e^(x/2) [(1 - x) I0(-x/2) - x I1(-x/2)] (exponentially scaled Bessels)."""
    x = -(nu**2) / (2 * sigma**2)
    laguerre = (1 - x) * special.i0e(-x / 2) - x * special.i1e(-x / 2)
    return sigma * math.sqrt(math.pi / 2) * laguerre


@pytest.mark.parametrize("nu", [0.0, 0.05, 0.2, 0.6])
def test_rician_noise_of_a_constant_has_the_rice_mean_and_power(nu):
    sigma, count = 0.05, 200_000
    generator = torch.Generator().manual_seed(5)
    out = rician_noise(torch.full((count,), nu, dtype=torch.float64), sigma, generator)
    # standard error of the mean <= sigma / sqrt(count) = 1.1e-4
    assert float(out.mean()) == pytest.approx(rice_mean(nu, sigma), abs=5e-4)
    # E[M^2] = nu^2 + 2 sigma^2 exactly (the power of the two noisy channels)
    assert float((out**2).mean()) == pytest.approx(nu**2 + 2 * sigma**2, rel=0.01)
    assert float(out.min()) >= 0


def test_rice_mean_formula_limits():
    # the formula itself, by its known limits: Rayleigh sigma sqrt(pi/2) at nu = 0, and
    # about sqrt(nu^2 + sigma^2) for nu >> sigma
    assert rice_mean(0.0, 0.05) == pytest.approx(0.05 * math.sqrt(math.pi / 2), rel=1e-12)
    assert rice_mean(1.0, 0.05) == pytest.approx(math.sqrt(1 + 0.05**2), rel=1e-5)


def test_observe_adds_seeded_noise_of_sigma_one_over_snr_and_the_operator_stays_linear():
    hr = torch.from_numpy(np.random.default_rng(14).random((3, 16, 16)))
    clean = make_degradation("bicubic")
    noisy = make_degradation("bicubic", snr=20, seed=7)
    torch.testing.assert_close(clean.observe(hr, 2), clean(hr, 2), atol=0, rtol=0)
    torch.testing.assert_close(noisy(hr, 2), clean(hr, 2), atol=0, rtol=0)  # D itself
    y = torch.ones(3, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(noisy.adjoint(y, 2), clean.adjoint(y, 2), atol=0, rtol=0)
    first = noisy.observe(hr, 2)
    again = make_degradation("bicubic", snr=20, seed=7).observe(hr, 2)
    torch.testing.assert_close(first, again, atol=0, rtol=0)  # every method sees this LR
    other = make_degradation("bicubic", snr=20, seed=8).observe(hr, 2)
    assert float((first - other).abs().max()) > 0.01
    # sigma = 1 / snr: on a black image the LR is Rayleigh noise, E[M^2] = 2 sigma^2
    # (16384 LR samples: relative standard error of the mean square 1/128)
    black = noisy.observe(torch.zeros(4, 128, 128, dtype=torch.float64), 2)
    assert float((black**2).mean()) == pytest.approx(2 / 20**2, rel=0.03)
    with pytest.raises(ValueError, match="snr must be positive"):
        make_degradation("bicubic", snr=0)
