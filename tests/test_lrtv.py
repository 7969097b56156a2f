"""Tests for baselines.lrtv: SVT, the curvature term, objective descent, data consistency."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines.interpolation import cubic_spline
from baselines.lrtv import (
    LRTVTrace,
    _data_term,
    _tv_descent,
    lrtv,
    lrtv_objective,
    singular_value_threshold,
)
from rrlsrn.degrade import make_degradation
from rrlsrn.metrics import psnr


def test_singular_value_threshold_matches_a_direct_svd():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((3, 12, 9))
    taus = np.array([0.0, 1.5, 100.0])
    got = singular_value_threshold(torch.from_numpy(z), torch.from_numpy(taus)).numpy()
    for k in range(3):
        u, s, vt = np.linalg.svd(z[k], full_matrices=False)
        expected = u @ np.diag(np.maximum(s - taus[k], 0)) @ vt
        np.testing.assert_allclose(got[k], expected, atol=1e-10)
    np.testing.assert_allclose(got[0], z[0], atol=1e-10)  # tau 0 keeps the matrix
    np.testing.assert_allclose(got[2], 0, atol=1e-12)  # tau above every singular value


def test_curvature_of_a_paraboloid_is_the_analytic_value():
    # u = x^2 + y^2: central differences are exact for quadratics, so away from the border
    # (uxx (uy^2 + e) - 2 uxy ux uy + uyy (ux^2 + e)) / (ux^2 + uy^2 + e)^1.5
    # = 2 (4 r^2 + 2 e) / (4 r^2 + e)^1.5 with ux = 2x, uy = 2y, uxx = uyy = 2, uxy = 0.
    n, eps = 21, 1e-4
    coords = np.arange(n, dtype=np.float64) - 10
    xx, yy = np.meshgrid(coords, coords, indexing="ij")
    u = torch.from_numpy(xx**2 + yy**2)[None]
    curvature, _ = _tv_descent(u, eps)
    r2 = xx**2 + yy**2
    expected = 2 * (4 * r2 + 2 * eps) / (4 * r2 + eps) ** 1.5
    np.testing.assert_allclose(curvature[0, 1:-1, 1:-1].numpy(), expected[1:-1, 1:-1], rtol=1e-12)


def test_data_gradient_is_scale_squared_times_the_adjoint_of_the_residual():
    degradation = make_degradation("bicubic")
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.random((2, 16, 12)))
    y = torch.from_numpy(rng.random((2, 8, 6)))
    grad, value = _data_term(x, y, 2, degradation)
    residual = degradation(x, 2) - y
    torch.testing.assert_close(grad, 4 * degradation.adjoint(residual, 2))
    torch.testing.assert_close(value, 2 * (residual**2).sum((-2, -1)))


@pytest.fixture(scope="module")
def crop_run(real_slices):
    hr = torch.from_numpy(real_slices[:1, 80:176, 80:176].astype(np.float64))
    degradation = make_degradation("bicubic")
    lr = degradation(hr, 2)
    trace = LRTVTrace()
    out = lrtv(lr, 2, degradation, trace=trace)
    return hr, lr, degradation, trace, out


def test_objective_decreases_over_the_outer_iterations(crop_run):
    hr, lr, degradation, trace, _ = crop_run
    start = lrtv_objective(cubic_spline(lr, 2, degradation), lr, 2, degradation)
    objective = torch.stack(trace.objective)[:, 0].numpy()
    # The toolkit starts the low-rank copies at M = 0, so the first x-update is pulled
    # towards zero and overshoots; from then on every outer iteration lowers the objective,
    # and the result ends below the initial interpolation.
    assert np.all(np.diff(objective) <= 1e-9 * objective[:-1])
    assert objective[-1] < start.item() < objective[0]


def test_data_consistency_improves_on_the_initial_interpolation(crop_run):
    hr, lr, degradation, trace, out = crop_run
    _, start_data = _data_term(cubic_spline(lr, 2, degradation), lr, 2, degradation)
    _, end_data = _data_term(out, lr, 2, degradation)
    assert end_data.item() < 0.5 * start_data.item()
    assert trace.inner_steps[0] <= 200 and len(trace.objective) <= 20


def test_beats_nearest_neighbour_and_the_spline_on_a_real_slice(real_slices):
    hr = torch.from_numpy(real_slices[1:2])
    degradation = make_degradation("bicubic")
    lr = degradation(hr, 2)
    nearest = lr.repeat_interleave(2, -2).repeat_interleave(2, -1)
    spline = cubic_spline(lr, 2, degradation)
    out = lrtv(lr, 2, degradation).clamp(0, 1)

    def score(img: torch.Tensor) -> float:
        return psnr(img[0].clamp(0, 1).numpy(), hr[0].numpy(), shave=2)

    assert score(out) > score(nearest) + 2.0
    assert score(out) > score(spline)


def test_bad_input_is_refused_with_a_clear_error():
    with pytest.raises(ValueError, match="lrtv: .*NaN"):
        lrtv(torch.full((1, 4, 4), float("inf")), 2)
    with pytest.raises(ValueError, match="lrtv: expected LR slices"):
        lrtv(torch.zeros(2, 2, 4, 4), 2)


def test_each_slice_of_a_batch_stops_on_its_own_as_if_run_alone(real_slices):
    # A flat slice settles at once while a real crop keeps descending; the batch must give
    # each the result it gets alone (finished slices leave the batch instead of idling).
    crop = torch.from_numpy(real_slices[:1, 80:144, 80:144].astype(np.float64))
    flat = torch.full_like(crop, 0.3)
    degradation = make_degradation("bicubic")
    lr = degradation(torch.cat([flat, crop, crop.flip(-1)]), 2)
    for warm_start in (False, True):
        batch = lrtv(lr, 2, degradation, outer_iterations=6, warm_start=warm_start)
        alone = torch.cat(
            [
                lrtv(lr[i : i + 1], 2, degradation, outer_iterations=6, warm_start=warm_start)
                for i in range(3)
            ]
        )
        torch.testing.assert_close(batch, alone, atol=1e-7, rtol=0)
