"""LRTV: low-rank and total-variation regularised super-resolution (Shi et al. 2015).

The ADMM scheme of the authors' MATLAB toolkit, in torch and batched over slices::

    min_x  (s^2 / 2) ||D x - y||^2 + lambda_tv TV(x) + lambda_rank sum_i alpha_i ||X_(i)||_*

``D`` is the configured LR operator (the toolkit's Gaussian blur + downsampling is
replaced by it, as every method here must share one forward model); the factor ``s^2``
makes ``s^2 D^T`` an upsampler of unit gain, the role the toolkit's ``upsample`` plays in
its data gradient.  Each outer iteration:

* x-update: explicit gradient steps (``dt``) on the data term, the curvature form of TV
  (eps 1e-4) and the coupling ``rho * sum_i (x - M_i + Y_i)``, clamped at x >= 0, from the
  initial interpolation, stopping early when the augmented objective falls by less than
  a relative 1e-5 (the toolkit's 2D rule);
* ``M_i`` = singular-value soft thresholding of ``x + Y_i`` at ``lambda_rank alpha_i / rho``;
* ``Y_i += x - M_i``; ``rho *= 1.05``; stop when ``||dx|| / ||y|| < tol``.

In 2D both unfoldings of the image are the image itself (or its transpose, which has the
same singular values), and Y_1 = Y_2 = 0 at the start, so M_1 = M_2 and Y_1 = Y_2 at every
iteration: one thresholding per iteration serves both terms, exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from baselines.common import check_lr_batch, flush_denormals
from baselines.interpolation import cubic_spline
from rrlsrn.degrade import Degradation, make_degradation

TV_EPS = 1e-4
ALPHA = (0.5, 0.5)


def singular_value_threshold(z: torch.Tensor, tau: torch.Tensor | float) -> torch.Tensor:
    """``U diag(max(s - tau, 0)) V^T`` for each matrix of an (N, H, W) batch.

    ``tau`` is a scalar or one threshold per matrix (shape (N,)).
    """
    u, s, vh = torch.linalg.svd(z, full_matrices=False)
    tau = torch.as_tensor(tau, dtype=z.dtype, device=z.device).reshape(-1, 1)
    return (u * (s - tau).clamp_min(0)[..., None, :]) @ vh


def _derivatives(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Central first derivatives and second derivatives with Neumann (replicate) borders."""
    p = F.pad(x[:, None], (1, 1, 1, 1), mode="replicate")[:, 0]
    c = p[:, 1:-1, 1:-1]
    ux = (p[:, 2:, 1:-1] - p[:, :-2, 1:-1]) / 2
    uy = (p[:, 1:-1, 2:] - p[:, 1:-1, :-2]) / 2
    uxx = p[:, 2:, 1:-1] - 2 * c + p[:, :-2, 1:-1]
    uyy = p[:, 1:-1, 2:] - 2 * c + p[:, 1:-1, :-2]
    uxy = (p[:, 2:, 2:] - p[:, 2:, :-2] - p[:, :-2, 2:] + p[:, :-2, :-2]) / 4
    return ux, uy, uxx, uyy, uxy


def total_variation(x: torch.Tensor, eps: float = TV_EPS) -> torch.Tensor:
    """Smoothed TV, sum of sqrt(ux^2 + uy^2 + eps), per slice of an (N, H, W) batch."""
    ux, uy, *_ = _derivatives(x)
    return (ux * ux + uy * uy + eps).sqrt().flatten(1).sum(1)


def _tv_descent(x: torch.Tensor, eps: float = TV_EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Curvature div(grad x / |grad x|_eps) (minus the TV gradient) and the TV value."""
    ux, uy, uxx, uyy, uxy = _derivatives(x)
    ux2_eps, uy2_eps = ux * ux + eps, uy * uy + eps
    norm = (ux2_eps + uy2_eps - eps).sqrt_()
    numerator = uxx * uy2_eps + uyy * ux2_eps - 2 * uxy * ux * uy
    curvature = numerator.div_(norm * norm * norm)
    return curvature, norm.flatten(1).sum(1)


def _data_term(
    x: torch.Tensor, y: torch.Tensor, scale: int, degradation: Degradation
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient ``s^2 D^T (D x - y)`` and value ``(s^2 / 2) ||D x - y||^2`` per slice."""
    residual = degradation(x, scale) - y
    weight = float(scale**2)
    value = 0.5 * weight * (residual * residual).flatten(1).sum(1)
    return weight * degradation.adjoint(residual, scale), value


def lrtv_objective(
    x: torch.Tensor,
    y: torch.Tensor,
    scale: int,
    degradation: Degradation | None = None,
    lambda_tv: float = 0.01,
    lambda_rank: float = 0.01,
) -> torch.Tensor:
    """The LRTV objective of each slice of an (N, H, W) estimate (for checks and tests)."""
    degradation = degradation or make_degradation()
    _, data = _data_term(x, y, scale, degradation)
    nuclear = torch.linalg.svdvals(x).sum(-1)
    return data + lambda_tv * total_variation(x) + lambda_rank * sum(ALPHA) * nuclear


@dataclass
class LRTVTrace:
    """What each outer iteration did, per slice (filled when passed to :func:`lrtv`)."""

    objective: list[torch.Tensor] = field(default_factory=list)
    data: list[torch.Tensor] = field(default_factory=list)
    inner_steps: list[int] = field(default_factory=list)


@flush_denormals()
def lrtv(
    lr: torch.Tensor,
    scale: int,
    degradation: Degradation | None = None,
    lambda_tv: float = 0.01,
    lambda_rank: float = 0.01,
    rho: float = 0.1,
    rho_growth: float = 1.05,
    dt: float = 0.1,
    outer_iterations: int = 20,
    inner_iterations: int = 200,
    inner_rtol: float = 1e-5,
    tol: float = 1e-5,
    warm_start: bool = False,
    trace: LRTVTrace | None = None,
) -> torch.Tensor:
    """LRTV super-resolution of an (N, h, w) LR batch by ``scale``; returns (N, sh, sw)."""
    y = check_lr_batch(lr, "lrtv")
    degradation = degradation or make_degradation()
    start = cubic_spline(y, scale, degradation)
    x = start.clone()
    m = torch.zeros_like(x)  # M_1 = M_2 (see the module docstring)
    dual = torch.zeros_like(x)  # Y_1 = Y_2
    n_terms = len(ALPHA)
    y_norm = y.flatten(1).norm(dim=1).clamp_min(1e-12)
    running = torch.arange(len(y), device=y.device)  # slices not yet at the outer tol
    for _ in range(outer_iterations):
        previous = x[running]
        updated, steps = _x_update(
            previous if warm_start else start[running],
            y[running],
            scale,
            degradation,
            m[running],
            dual[running],
            lambda_tv,
            rho,
            dt,
            n_terms,
            inner_iterations,
            inner_rtol,
        )
        x = x.index_copy(0, running, updated)
        m_running = singular_value_threshold(updated + dual[running], lambda_rank * ALPHA[0] / rho)
        m = m.index_copy(0, running, m_running)
        dual = dual.index_copy(0, running, dual[running] + updated - m_running)
        rho *= rho_growth
        change = (updated - previous).flatten(1).norm(dim=1) / y_norm[running]
        if trace is not None:
            trace.objective.append(lrtv_objective(x, y, scale, degradation, lambda_tv, lambda_rank))
            trace.data.append(_data_term(x, y, scale, degradation)[1])
            trace.inner_steps.append(steps)
        running = running[change >= tol]
        if len(running) == 0:
            break
    return x


def _x_update(
    start: torch.Tensor,
    y: torch.Tensor,
    scale: int,
    degradation: Degradation,
    m: torch.Tensor,
    dual: torch.Tensor,
    lambda_tv: float,
    rho: float,
    dt: float,
    n_terms: int,
    iterations: int,
    rtol: float,
) -> tuple[torch.Tensor, int]:
    """Gradient descent on the augmented objective in x, from ``start``; steps taken.

    Each slice stops on its own rule; only the slices still descending are computed.
    """
    x = start.clone()
    target = m - dual  # coupling pulls x towards M_i - Y_i
    previous_value = torch.full((len(x),), float("inf"), dtype=x.dtype, device=x.device)
    active = torch.arange(len(x), device=x.device)
    steps = 0
    for steps in range(1, iterations + 1):  # noqa: B007 (the count is returned)
        xa = x[active]
        data_grad, data_value = _data_term(xa, y[active], scale, degradation)
        curvature, tv = _tv_descent(xa)
        coupling = xa - target[active]
        coupling_value = (coupling * coupling).flatten(1).sum(1)
        value = data_value + lambda_tv * tv + n_terms * rho / 2 * coupling_value
        last = previous_value[active]
        descending = ~((value < last) & ((last - value) < rtol * value.abs()))
        if not bool(descending.any()):
            break
        previous_value[active] = value
        update = (
            xa + dt * (-data_grad + lambda_tv * curvature - n_terms * rho * coupling)
        ).clamp_min(0)
        active = active[descending]
        x[active] = update[descending]
    return x, steps
