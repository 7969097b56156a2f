"""Tests for NMU in 3D (``nmu(dims=3)``) and the authors' scheme (``nmu_reference``),
against voxel-loop transcriptions of the reference code's documented steps."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch

from baselines.nmu import (
    block_mean_correct,
    nmu,
    nmu_reference,
    nonlocal_means_step,
    reference_initial_estimate,
    reference_spline_matrix,
)
from baselines.nmu3d import filtering_strength_3d, forward_offsets_3d, nonlocal_means_step_3d
from rrlsrn import registry
from rrlsrn.degrade import make_degradation
from rrlsrn.infer import super_resolve
from rrlsrn.metrics import psnr


def mex_index(i: int, size: int) -> int:
    """The reference mex's border rule: -n reads n, size + n reads size - 1 - n."""
    if i < 0:
        i = -i
    if i >= size:
        i = 2 * size - i - 1
    return i


def naive_nlm_step_3d(x: np.ndarray, h: np.ndarray, truncate: bool, v: int = 3, f: int = 1):
    """One reference filter pass, voxel by voxel (tiny volumes only): for every voxel p
    with h(p) >= 1 and every partner q after it in memory order within the (2v+1)^3 cube,
    a pair whose 3x3x3 local means differ by at most 0.6 h(p) (integer part of the
    difference when ``truncate``) gets w = exp(-max(d / (2 h(p)^2) - 1, 0)), d the mean
    squared (2f+1)^3 patch difference, added to both voxels; centre weight 1."""
    shape = x.shape

    def neighbourhood(p: tuple[int, int, int], r: int) -> np.ndarray:
        axes = [
            [mex_index(c + o, s) for o in range(-r, r + 1)] for c, s in zip(p, shape, strict=True)
        ]
        return x[np.ix_(*axes)]

    voxels = list(np.ndindex(shape))
    patches = {p: neighbourhood(p, f) for p in voxels}
    local_mean = {p: neighbourhood(p, 1).mean() for p in voxels}
    num, den = x.copy(), np.ones_like(x)
    for p in voxels:
        if h[p] < 1:
            continue
        for dz in range(0, v + 1):
            for dy in range(-v, v + 1):
                for dx in range(-v, v + 1):
                    if dz == 0 and (dy < 0 or (dy == 0 and dx <= 0)):
                        continue
                    q = (p[0] + dz, p[1] + dy, p[2] + dx)
                    if not all(0 <= c < s for c, s in zip(q, shape, strict=True)):
                        continue
                    gap = local_mean[p] - local_mean[q]
                    gap = abs(int(gap)) if truncate else abs(gap)  # C: abs() of an int
                    if gap > 0.6 * h[p]:
                        continue
                    d = np.mean((patches[p] - patches[q]) ** 2)
                    w = np.exp(-max(d / (2 * h[p] ** 2) - 1, 0.0))
                    num[p] += w * x[q]
                    den[p] += w
                    num[q] += w * x[p]
                    den[q] += w
    return num / den


def naive_block_mean_correct(x: np.ndarray, y: np.ndarray, s: int) -> np.ndarray:
    """Each s x s block of every slice shifted so its mean is the LR pixel, block by block."""
    out = x.copy()
    for n in range(y.shape[0]):
        for i in range(y.shape[1]):
            for j in range(y.shape[2]):
                block = out[n, i * s : (i + 1) * s, j * s : (j + 1) * s]
                block += y[n, i, j] - block.mean()
    return out


def tiny_volume(shape=(5, 8, 8), seed: int = 7) -> np.ndarray:
    """Smooth structure plus noise on the reference's 0..256 scale."""
    rng = np.random.default_rng(seed)
    return ndi.gaussian_filter(rng.random(shape) * 256, 1.0) + rng.random(shape) * 12


def test_the_search_cube_holds_each_pair_once():
    offsets = forward_offsets_3d(3)
    assert len(offsets) == (7**3 - 1) // 2 == 171
    both = set(offsets) | {(-a, -b, -c) for a, b, c in offsets}
    assert len(both) == 342 and (0, 0, 0) not in both


@pytest.mark.parametrize("truncate", [False, True])
def test_filter_pass_matches_the_voxel_loop_reference(truncate):
    x = tiny_volume()
    h = np.random.default_rng(8).uniform(0.5, 20, size=x.shape)  # some below 1: no pairs
    got = nonlocal_means_step_3d(torch.from_numpy(x), torch.from_numpy(h), 3, 1, truncate)
    expected = naive_nlm_step_3d(x, h, truncate)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10, atol=1e-10)
    assert not np.allclose(expected, naive_nlm_step_3d(x, h, not truncate))  # the flag bites


def test_a_single_slice_filters_as_the_2d_pass_away_from_the_border():
    """One slice: the 3x3x3 patch is its 3x3 patch three times, so the 3D pass is the 2D
    pass wherever the border rules (mex vs mirror) do not reach (4 pixels in)."""
    x = tiny_volume((1, 14, 15), seed=9)
    h = np.random.default_rng(10).uniform(0.5, 30, size=x.shape)
    x, h = torch.from_numpy(x), torch.from_numpy(h)
    got = nonlocal_means_step_3d(x, h)[0, 4:-4, 4:-4]
    torch.testing.assert_close(got, nonlocal_means_step(x, h)[0, 4:-4, 4:-4])


def test_filtering_strength_3d_is_half_the_smoothed_local_sample_std():
    x = np.random.default_rng(4).random((4, 7, 9)) * 100
    # scipy 'reflect' is MATLAB 'symmetric' (stdfilt, padarray): the edge sample repeated
    std = ndi.generic_filter(x, lambda v: np.std(v, ddof=1), size=3, mode="reflect")
    expected = ndi.uniform_filter(std, 3, mode="reflect") / 2
    got = filtering_strength_3d(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("scale", [2, 3])
def test_block_mean_correction_matches_the_block_loop(scale):
    rng = np.random.default_rng(scale)
    x, y = rng.random((2, 4 * scale, 3 * scale)), rng.random((2, 4, 3))
    got = block_mean_correct(torch.from_numpy(x), torch.from_numpy(y), scale).numpy()
    np.testing.assert_allclose(got, naive_block_mean_correct(x, y, scale), rtol=0, atol=1e-12)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_reference_interpolation_is_the_not_a_knot_spline_with_copied_edges(scale):
    """A not-a-knot cubic spline reproduces any cubic exactly; LR pixel k sits at HR
    coordinate (scale - 1) / 2 + k scale; the first and last scale // 2 HR pixels copy
    their inner neighbour (MATLAB interpn 'spline' then the reference's edge fix)."""
    n = 6
    knots = (scale - 1) / 2 + scale * np.arange(n)
    cubic = np.polynomial.Polynomial([0.3, -1.1, 0.25, 0.02])
    got = reference_spline_matrix(n, scale) @ cubic(knots)
    expected = cubic(np.arange(n * scale, dtype=float))
    edge = scale // 2
    expected[:edge], expected[n * scale - edge :] = expected[edge], expected[-edge - 1]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10)


def test_reference_interpolation_of_two_samples_is_a_line():
    """MATLAB's spline through two points is their straight line."""
    got = reference_spline_matrix(2, 2) @ np.array([1.0, 3.0])
    np.testing.assert_allclose(got, [1.5, 1.5, 2.5, 2.5])  # 1.0 + (x - 0.5), edges copied


def test_reference_initial_estimate_keeps_every_block_mean():
    y = torch.from_numpy(np.random.default_rng(5).random((3, 5, 6)))
    est = reference_initial_estimate(y, 2)
    torch.testing.assert_close(est.reshape(3, 5, 2, 6, 2).mean((2, 4)), y, rtol=0, atol=1e-12)


def test_one_reference_iteration_is_the_documented_pipeline():
    """nmu_reference with one iteration, composed by hand from the documented steps: the
    volume's peak to 256, spline estimate + block means, h, one 3D pass, block means."""
    lr = np.random.default_rng(6).random((4, 5, 5)) * 0.5
    lr[2] *= 2  # one slice holds the volume's peak: a per-slice peak would differ
    y = lr * 256 / lr.max()
    init = reference_initial_estimate(torch.from_numpy(y), 2)
    h = filtering_strength_3d(init).numpy()
    step = naive_nlm_step_3d(init.numpy(), h, truncate=True)
    expected = naive_block_mean_correct(step, y, 2) * lr.max() / 256
    got = nmu_reference(torch.from_numpy(lr), 2, max_iterations=1)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-9, atol=1e-12)


def smooth_volume(n: int = 4, size: int = 24) -> torch.Tensor:
    """A bright ellipsoid on a dark background, smoothed: consecutive slices resemble."""
    z, yy, xx = np.mgrid[0:n, 0:size, 0:size] / np.array([n, size, size])[:, None, None, None]
    blob = ((xx - 0.5) ** 2 + (yy - 0.45) ** 2 + 0.3 * (z - 0.5) ** 2 < 0.1).astype(float)
    return torch.from_numpy(ndi.gaussian_filter(0.1 + 0.8 * blob, (0.5, 1.0, 1.0)))


@pytest.mark.parametrize("operator", ["bicubic", "gaussian_block"])
def test_reference_output_keeps_the_lr_block_means_whatever_the_operator(operator):
    hr = smooth_volume()
    degradation = make_degradation(operator)
    lr = degradation(hr, 2)
    out = nmu_reference(lr, 2, degradation)
    assert out.shape == hr.shape
    torch.testing.assert_close(out.reshape(4, 12, 2, 12, 2).mean((2, 4)), lr, rtol=0, atol=1e-12)
    assert (out - reference_initial_estimate(lr, 2)).abs().max() > 1e-3  # it filtered


@pytest.mark.parametrize("operator", ["bicubic", "kspace"])
def test_3d_output_is_consistent_with_the_lr_input_through_the_configured_operator(operator):
    hr = smooth_volume()
    degradation = make_degradation(operator)
    lr = degradation(hr, 2)
    out = nmu(lr, 2, degradation, dims=3)
    torch.testing.assert_close(degradation(out, 2), lr, atol=1e-6, rtol=0)


def test_3d_filters_across_slices_and_2d_does_not():
    """Changing one slice changes the others' results in 3D (patches, peak, h and stopping
    rule are the volume's), never in 2D; scaling the whole stack scales the output."""
    hr = smooth_volume()
    lr = make_degradation("bicubic")(hr, 2)
    changed = lr.clone()
    changed[0] = changed[0].flip(-1) * 3
    base = nmu(lr, 2, dims=3, max_iterations=3)
    assert not torch.allclose(base[1:], nmu(changed, 2, dims=3, max_iterations=3)[1:])
    torch.testing.assert_close(nmu(lr, 2)[1:], nmu(changed, 2)[1:])
    torch.testing.assert_close(nmu(lr * 0.5, 2, dims=3, max_iterations=3), base * 0.5)


def real_block() -> torch.Tensor:
    """Five consecutive real 48x48 HR slices (ds002748-sub-01, a held-out test subject),
    normalised per volume as the workflow does."""
    import nibabel as nib

    from rrlsrn.data.embedded import embedded_volume
    from rrlsrn.data.prepare import normalise_intensities

    volume = np.asarray(nib.load(str(embedded_volume("ds002748-sub-01"))).dataobj, np.float32)
    image, _, _ = normalise_intensities(volume, 99.5)
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(image[96:144, 112:160, 88:93], -1, 0)))


def test_3d_beats_2d_on_consecutive_real_slices():
    """The neighbouring slices hold the same anatomy: patches across them help (measured:
    +0.5 dB on this block)."""
    hr = real_block()
    degradation = make_degradation("bicubic")
    lr = degradation(hr, 2)
    gain = (
        psnr(nmu(lr, 2, degradation, dims=3), hr, shave=2).mean()
        - psnr(nmu(lr, 2, degradation), hr, shave=2).mean()
    )
    assert gain > 0.2


def test_2d_is_the_scheme_of_before_the_3d_option():
    """Values of ``nmu`` at commit 42cda36 (2D only) on a fixed image, float64."""
    yy, xx = np.mgrid[0:24, 0:20] / 24
    hr = torch.from_numpy(0.2 + 0.6 * np.sin(6 * xx) ** 2 * np.cos(4 * yy) ** 2)[None]
    lr = make_degradation("bicubic")(hr, 2)
    out = nmu(lr, 2, dims=2)
    torch.testing.assert_close(out, nmu(lr, 2))
    got = [float(out.sum()), float(out[0, 5, 7]), float(out[0, 17, 3])]
    np.testing.assert_allclose(got, GOLDEN_2D, rtol=1e-12)


GOLDEN_2D = [179.14135881604034, 0.466447621470222, 0.4726982869886523]


def test_a_3d_method_gets_the_whole_stack_in_slice_order():
    """infer batches classical methods by 16 slices; dims 3 hands over the subject's stack."""
    calls = []

    def method(lr, scale, degradation, dims):
        calls.append(lr[:, 0, 0].clone())
        return lr.repeat_interleave(scale, -2).repeat_interleave(scale, -1)

    slices = [np.full((8, 8), i / 40, np.float32) for i in range(20)]
    super_resolve(slices, "mine", params={"dims": 3}, factory=method, progress=False)
    assert len(calls) == 1
    np.testing.assert_allclose(calls[0].numpy(), np.arange(20) / 40, rtol=1e-6)
    super_resolve(slices, "mine", params={"dims": 2}, factory=method, progress=False)
    assert [len(c) for c in calls[1:]] == [16, 4]


@pytest.mark.parametrize("name", ["nmu_3d", "nmu_reference"])
def test_the_3d_records_run_their_function_in_3d(name):
    method = registry.resolve(name)
    assert method.params["dims"] == 3 and method.classical
    out = registry.factory(method)(torch.rand(3, 6, 6), 2, None, **method.params)
    assert out.shape == (3, 12, 12)


def test_bad_dims_are_refused_with_a_clear_error():
    with pytest.raises(ValueError, match="nmu: dims must be 2 .* or 3 .*, got 4"):
        nmu(torch.rand(2, 4, 4), 2, dims=4)
    with pytest.raises(ValueError, match="nmu_reference: expected LR slices shaped"):
        nmu_reference(torch.zeros(8), 2)
