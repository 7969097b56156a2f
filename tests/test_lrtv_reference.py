"""Tests for LRTV "as published" (registry ``lrtv_reference``): the toolkit's own scheme.

Shi et al. 2015's toolkit starts from nearest-neighbour replication of the LR image, models
``y = D H x`` with a Gaussian blur of sigma 1 HR pixel and block mean, and restarts every
x-update from that estimate, stopped by its own rule.  Each piece is checked against a
per-pixel transcription written here from the paper's equations and the toolkit's
documented steps.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pytest
import torch

from baselines.lrtv import (
    LRTVTrace,
    _derivatives,
    lrtv,
    nearest_neighbour,
    toolkit_forward_model,
)
from rrlsrn import registry
from rrlsrn.degrade import make_degradation

SIGMA, RADIUS = 1.0, 12  # the toolkit's PSF; its whole-image kernel (zero beyond 12 sigma)


def mirror(i: int, n: int) -> int:
    """Half-sample symmetric border: ..., x1, x0 | x0, x1, ..., x(n-1) | x(n-1), ..."""
    while i < 0 or i >= n:
        i = -1 - i if i < 0 else 2 * n - 1 - i
    return i


def forward_by_pixels(x: np.ndarray, s: int) -> np.ndarray:
    """Gaussian blur (sigma 1, mirror borders), then the mean of each s x s block.

    exp(-(a^2 + b^2) / 2) = exp(-a^2 / 2) exp(-b^2 / 2): blurred along rows, then columns.
    """
    n0, n1 = x.shape
    taps = {a: math.exp(-(a * a) / (2 * SIGMA**2)) for a in range(-RADIUS, RADIUS + 1)}
    total = sum(taps.values())
    rows, blurred = np.zeros_like(x), np.zeros_like(x)
    for i in range(n0):
        for j in range(n1):
            for a, ga in taps.items():
                rows[i, j] += ga / total * x[mirror(i + a, n0), j]
    for i in range(n0):
        for j in range(n1):
            for b, gb in taps.items():
                blurred[i, j] += gb / total * rows[i, mirror(j + b, n1)]
    y = np.zeros((n0 // s, n1 // s))
    for p in range(n0 // s):
        for q in range(n1 // s):
            for i in range(p * s, p * s + s):
                for j in range(q * s, q * s + s):
                    y[p, q] += blurred[i, j] / (s * s)
    return y


@lru_cache
def dense_matrix(shape: tuple[int, int], s: int) -> np.ndarray:
    """The forward model as a (LR pixels x HR pixels) matrix, one HR impulse at a time."""
    columns = []
    for k in range(shape[0] * shape[1]):
        impulse = np.zeros(shape[0] * shape[1])
        impulse[k] = 1.0
        columns.append(forward_by_pixels(impulse.reshape(shape), s).ravel())
    return np.stack(columns, axis=1)


def test_the_initial_estimate_copies_each_lr_pixel_to_its_block():
    lr = np.random.default_rng(0).random((3, 4))
    got = nearest_neighbour(torch.from_numpy(lr)[None], 2)[0].numpy()
    expected = np.zeros((6, 8))
    for i in range(6):
        for j in range(8):
            expected[i, j] = lr[i // 2, j // 2]
    np.testing.assert_array_equal(got, expected)


def test_the_forward_model_and_its_adjoint_match_a_pixel_by_pixel_matrix():
    rng = np.random.default_rng(1)
    shape, s = (8, 8), 2
    matrix = dense_matrix(shape, s)
    operator = toolkit_forward_model()
    x, y = rng.random((2, *shape)), rng.random((2, 4, 4))
    got = operator(torch.from_numpy(x), s).numpy()
    adjoint = operator.adjoint(torch.from_numpy(y), s).numpy()
    for k in range(2):
        np.testing.assert_allclose(got[k].ravel(), matrix @ x[k].ravel(), atol=1e-14)
        np.testing.assert_allclose(adjoint[k].ravel(), matrix.T @ y[k].ravel(), atol=1e-14)
        # <A x, y> = <x, A^T y>
        assert np.vdot(got[k], y[k]) == pytest.approx(np.vdot(x[k], adjoint[k]), rel=1e-13)
    # block mean of a blur of unit gain: a constant image stays that constant
    np.testing.assert_allclose(operator(torch.full((1, 8, 6), 0.7), s), 0.7, atol=1e-6)


def test_the_forward_model_is_the_toolkits_fft_blur_and_block_mean_away_from_the_border():
    # The toolkit blurs by FFT with exp(-(X^2 + Y^2) / 2) over the whole periodic grid,
    # normalised to sum 1, then averages s x s blocks.  Away from the borders (periodic
    # there, mirrored here) the two agree to rounding.
    n, s = 48, 2
    x = np.random.default_rng(2).random((n, n))
    offsets = np.concatenate([np.arange(n // 2), np.arange(-n // 2, 0)])
    kernel = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / 2)
    kernel /= kernel.sum()
    blurred = np.real(np.fft.ifft2(np.fft.fft2(x) * np.fft.fft2(kernel)))
    toolkit = blurred.reshape(n // s, s, n // s, s).mean((1, 3))
    ours = toolkit_forward_model()(torch.from_numpy(x)[None], s)[0].numpy()
    inner = slice(5, n // s - 5)  # LR blocks 10+ HR pixels (10 sigma) from the border
    assert np.abs(ours[inner, inner] - toolkit[inner, inner]).max() < 1e-15
    assert np.abs(ours - toolkit).max() > 1e-2  # the borders differ: mirror vs periodic


def toolkit_derivatives(u: np.ndarray) -> tuple[np.ndarray, ...]:
    """ux, uy, uxx, uyy, uxy of the toolkit's gradSecondOrder, pixel by pixel: central
    first differences (one-sided at the borders), second differences of backward then
    forward differences (0 on the last row / column), uxy the x-difference of uy."""
    n0, n1 = u.shape

    def central(m, i, j, axis):
        n = m.shape[axis]
        k = i if axis == 0 else j
        at = (lambda t: m[t, j]) if axis == 0 else (lambda t: m[i, t])
        if k == 0:
            return at(1) - at(0)
        if k == n - 1:
            return at(n - 1) - at(n - 2)
        return (at(k + 1) - at(k - 1)) / 2

    def second(m, i, j, axis):
        n = m.shape[axis]
        k = i if axis == 0 else j
        at = (lambda t: m[t, j]) if axis == 0 else (lambda t: m[i, t])
        backward = [0.0] + [at(t) - at(t - 1) for t in range(1, n)]
        return (backward[k + 1] if k + 1 < n else backward[k]) - backward[k]

    out = [np.zeros_like(u) for _ in range(5)]
    for i in range(n0):
        for j in range(n1):
            out[0][i, j] = central(u, i, j, 0)
            out[1][i, j] = central(u, i, j, 1)
            out[2][i, j] = second(u, i, j, 0)
            out[3][i, j] = second(u, i, j, 1)
    for i in range(n0):
        for j in range(n1):
            out[4][i, j] = central(out[1], i, j, 0)
    return tuple(out)


def test_the_derivatives_have_the_toolkits_borders():
    u = np.random.default_rng(4).random((5, 6))
    got = _derivatives(torch.from_numpy(u)[None], toolkit=True)
    names = ["ux", "uy", "uxx", "uyy", "uxy"]
    for name, g, expected in zip(names, got, toolkit_derivatives(u), strict=True):
        np.testing.assert_allclose(g[0].numpy(), expected, atol=1e-15, err_msg=name)


def toolkit_outer_iterations(
    y: np.ndarray, s: int, iterations: int, inner_rtol: float
) -> tuple[np.ndarray, list[int]]:
    """The toolkit's ADMM (lambda_TV = lambda_rank = 0.01, rho 0.1 x 1.05, dt 0.1, eps 1e-4,
    alpha = (1/2, 1/2)), written per pixel from its steps, in its order: each x-update
    restarts from the nearest-neighbour estimate g and takes up to 200 steps
    x += dt (s^2 A^T (y - A x) + lambda_TV curvature - rho sum_i (x - M_i + Y_i)), x >= 0,
    then evaluates lambda_TV TV(x before the step) + ||y - A x||^2
    + rho / 2 sum_i ||x - M_i + Y_i||^2 (TV = sum sqrt(eps^2 + ux^2) + sqrt(eps^2 + uy^2))
    and stops once two values fell by a relative amount below ``inner_rtol``;
    M_i = SVT(x + Y_i, lambda_rank alpha_i / rho); Y_i += x - M_i; rho *= 1.05."""
    lam_tv, lam_rank, rho, dt, eps = 0.01, 0.01, 0.1, 0.1, 1e-4
    hr_shape = (y.shape[0] * s, y.shape[1] * s)
    matrix = dense_matrix(hr_shape, s)
    g = np.array([[y[i // s, j // s] for j in range(hr_shape[1])] for i in range(hr_shape[0])])
    ms, ys = [np.zeros(hr_shape)] * 2, [np.zeros(hr_shape)] * 2
    x, steps = g, []
    for _ in range(iterations):
        x, values = g.copy(), []
        for step in range(1, 201):
            ux, uy, uxx, uyy, uxy = toolkit_derivatives(x)
            residual = (y.ravel() - matrix @ x.ravel()).reshape(y.shape)
            data = (s * s * matrix.T @ residual.ravel()).reshape(hr_shape)
            new = np.zeros(hr_shape)
            tv = 0.0
            for i in range(hr_shape[0]):
                for j in range(hr_shape[1]):
                    curvature = (
                        uxx[i, j] * (uy[i, j] ** 2 + eps)
                        - 2 * uxy[i, j] * ux[i, j] * uy[i, j]
                        + uyy[i, j] * (ux[i, j] ** 2 + eps)
                    ) / (ux[i, j] ** 2 + uy[i, j] ** 2 + eps) ** 1.5
                    coupling = sum(x[i, j] - ms[k][i, j] + ys[k][i, j] for k in range(2))
                    value = x[i, j] + dt * (data[i, j] + lam_tv * curvature - rho * coupling)
                    new[i, j] = max(value, 0.0)
                    tv += math.sqrt(eps**2 + ux[i, j] ** 2) + math.sqrt(eps**2 + uy[i, j] ** 2)
            x = new
            residual = y - (matrix @ x.ravel()).reshape(y.shape)
            value = lam_tv * tv + (residual**2).sum()
            value += sum(rho / 2 * ((x - ms[k] + ys[k]) ** 2).sum() for k in range(2))
            values.append(value)
            decrease = (values[-2] - values[-1]) / values[-2] if step >= 2 else 0.0
            if 0 < decrease < inner_rtol:
                break
        steps.append(step)
        ms = [None, None]
        for k in range(2):
            u, sv, vt = np.linalg.svd(x + ys[k])
            ms[k] = u @ np.diag(np.maximum(sv - lam_rank * 0.5 / rho, 0)) @ vt
        ys = [ys[k] + x - ms[k] for k in range(2)]
        rho *= 1.05
    return x, steps


@pytest.mark.parametrize("inner_rtol", [1e-5, 2e-3])  # the toolkit's; one that stops early
def test_two_outer_iterations_follow_the_toolkits_steps(inner_rtol):
    rng = np.random.default_rng(3)
    hr = np.kron(rng.random((4, 4)), np.ones((2, 2))) + 0.1 * rng.random((8, 8))
    y = forward_by_pixels(hr, 2)
    expected, expected_steps = toolkit_outer_iterations(y, 2, 2, inner_rtol)
    trace = LRTVTrace()
    got = lrtv(
        torch.from_numpy(y)[None],
        2,
        make_degradation("kspace"),  # ignored: the toolkit's own model
        outer_iterations=2,
        inner_rtol=inner_rtol,
        tol=0.0,
        initial="nearest",
        forward_model="toolkit",
        x_update="toolkit",
        trace=trace,
    )
    assert trace.inner_steps == expected_steps
    if inner_rtol > 1e-4:
        assert max(expected_steps) < 200  # the stopping rule was exercised
    np.testing.assert_allclose(got[0].numpy(), expected, atol=1e-12)


def test_the_registry_record_is_the_toolkits_scheme():
    method = registry.METHODS["lrtv_reference"]
    assert registry.load(method.factory) is lrtv
    assert method.kind == "model-based"
    assert method.params == {
        "lambda_tv": 0.01,
        "lambda_rank": 0.01,
        "rho": 0.1,
        "dt": 0.1,
        "outer_iterations": 20,
        "inner_iterations": 200,
        "warm_start": False,
        "initial": "nearest",
        "forward_model": "toolkit",
        "x_update": "toolkit",
    }


def test_bad_scheme_choices_are_refused_with_a_clear_error():
    lr = torch.rand(1, 4, 4)
    with pytest.raises(ValueError, match="lrtv: initial must be one of .*got 'bicubic'"):
        lrtv(lr, 2, initial="bicubic")
    with pytest.raises(ValueError, match="lrtv: forward_model must be one of .*got 'psf'"):
        lrtv(lr, 2, forward_model="psf")
    with pytest.raises(ValueError, match="lrtv: x_update must be one of .*got 'never'"):
        lrtv(lr, 2, x_update="never")
