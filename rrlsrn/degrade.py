"""Low-resolution operators: the ONE place in the suite where an LR image is made.

Every method (learned or classical) gets its LR input from :func:`degrade`, and the
classical methods that enforce data consistency (NMU, LRTV) call the same operator, so
all rows of a table describe the same forward model.

Operators (selected by name from config):

* ``bicubic``       MATLAB-compatible antialiased bicubic ``imresize`` (Keys kernel,
                    a = -0.5), the operator of the SR literature (SRCNN, LapSRN) and of
                    the paper ("LR MRI is derived from the HR MRI via bicubic interpolation").
* ``kspace``        truncation of the centred k-space to the LR matrix (what a scanner
                    acquiring fewer phase/frequency encodes produces), optionally with a
                    Hamming window over the kept samples (``window="hamming"``).
* ``gaussian_block`` Gaussian blur followed by block averaging (a simple PSF + sampling model).
* ``gaussian_spline`` Pham et al. 2017's (SRCNN3D): Gaussian blur, sigma = 1 HR pixel, then
                    order-3 B-spline resampling on ``scipy.ndimage.zoom``'s corner-aligned
                    grid, in-plane here (their code blurs and zooms the 3D volume).

Rician noise (:func:`rician_noise`) is not an operator: :meth:`Degradation.observe` adds it
to the LR image when the operator is given an ``snr`` (the protocols of
:mod:`rrlsrn.protocols`), while ``__call__``, ``adjoint`` and ``project`` stay the linear
operator that data-consistency steps need.  SNR = 1 / sigma on the prepared slices' scale,
where 1 is each volume's normalisation reference (the 99.5th percentile of its nonzero
voxels, bright tissue): BrainWeb's "noise % of the brightest tissue" is 100 / SNR.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache, partial

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor


def cubic_kernel(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys' cubic convolution kernel (a = -0.5 is MATLAB's ``imresize`` 'cubic')."""
    ax = np.abs(x)
    ax2, ax3 = ax**2, ax**3
    near = (a + 2) * ax3 - (a + 3) * ax2 + 1
    far = a * ax3 - 5 * a * ax2 + 8 * a * ax - 4 * a
    return np.where(ax <= 1, near, np.where(ax < 2, far, 0.0))


@lru_cache(maxsize=64)
def resize_matrix(in_length: int, out_length: int, scale: float) -> np.ndarray:
    """Dense (out_length x in_length) matrix of MATLAB ``imresize`` along one axis.

    Follows MATLAB's ``contributions``: pixel-centre mapping
    ``u = i / scale + 0.5 * (1 - 1 / scale)`` (1-based), antialiasing by widening the
    kernel when ``scale < 1``, weights normalised to sum to one, and symmetric
    (mirror) boundary handling folded into the matrix.
    """
    kernel_width = 4.0
    antialias = scale < 1
    width = kernel_width / scale if antialias else kernel_width
    i = np.arange(1, out_length + 1, dtype=np.float64)
    u = i / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]  # 1-based source indices
    dist = u[:, None] - idx
    weights = scale * cubic_kernel(scale * dist) if antialias else cubic_kernel(dist)
    weights = weights / weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    src = mirror[(idx.astype(np.int64) - 1) % (2 * in_length)]
    mat = np.zeros((out_length, in_length), dtype=np.float64)
    np.add.at(mat, (np.repeat(np.arange(out_length), taps), src.ravel()), weights.ravel())
    return mat


def _check_image(x: ArrayLike, name: str = "x") -> None:
    if x.ndim < 2:
        raise ValueError(
            f"{name} must have at least 2 dimensions (..., H, W), got shape {tuple(x.shape)}"
        )


def _apply_separable(x: ArrayLike, mat_h: np.ndarray, mat_w: np.ndarray) -> ArrayLike:
    """Return ``mat_h @ x @ mat_w.T`` over the last two axes, for numpy or torch."""
    if isinstance(x, torch.Tensor):
        dtype = x.dtype if x.is_floating_point() else torch.float32
        mh = torch.as_tensor(mat_h, dtype=dtype, device=x.device)
        mw = torch.as_tensor(mat_w, dtype=dtype, device=x.device)
        return mh @ x.to(dtype) @ mw.T
    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
    return (mat_h.astype(dtype) @ x.astype(dtype) @ mat_w.T.astype(dtype)).astype(dtype)


def imresize(x: ArrayLike, scale: float) -> ArrayLike:
    """MATLAB-compatible bicubic ``imresize(x, scale)`` over the last two axes.

    Parameters
    ----------
    x : numpy array or torch tensor, shape (..., H, W), float.
    scale : resize factor (0.5 halves, 2 doubles). Output size is ``ceil(scale * size)``
        as in MATLAB. Downscaling is antialiased.

    Returns the same type as ``x`` (float; integer input is promoted).
    """
    _check_image(x)
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    h, w = x.shape[-2:]
    out_h, out_w = int(math.ceil(h * scale - 1e-9)), int(math.ceil(w * scale - 1e-9))
    return _apply_separable(x, resize_matrix(h, out_h, scale), resize_matrix(w, out_w, scale))


def modcrop(x: ArrayLike, scale: int) -> ArrayLike:
    """Crop the last two axes to a multiple of ``scale`` (bottom/right rows dropped)."""
    _check_image(x)
    h, w = x.shape[-2:]
    return x[..., : h - h % scale, : w - w % scale]


def _require_divisible(x: ArrayLike, scale: int) -> None:
    _check_image(x)
    h, w = x.shape[-2:]
    if h % scale or w % scale:
        raise ValueError(
            f"image size {h}x{w} is not divisible by the scale {scale}; apply modcrop first"
        )


def bicubic_down(x: ArrayLike, scale: int) -> ArrayLike:
    """LR = antialiased MATLAB bicubic downscaling by ``1 / scale``."""
    _require_divisible(x, scale)
    return imresize(x, 1.0 / scale)


KSPACE_WINDOWS = ("none", "hamming")


def hamming_window(length: int) -> np.ndarray:
    """Hamming taps over ``length`` centred k-space samples, DC (index ``length // 2``) = 1.

    The periodic ("DFT-even", Harris 1978) window ``0.54 - 0.46 cos(2 pi n / N)``,
    n = 0..N-1, whose peak n = N/2 is the DC sample of the fftshifted block; it is
    symmetric about DC (``w(k) = w(-k)``), so a real image stays real and its mean is
    kept.  The symmetric window ``cos(2 pi n / (N - 1))`` would peak between two samples.
    """
    k = np.arange(length) - length // 2  # frequency of each sample of the centred block
    return 0.54 + 0.46 * np.cos(2 * np.pi * k / length)


def kspace_down(x: ArrayLike, scale: int, window: str = "none") -> ArrayLike:
    """LR = inverse FFT of the central (H/scale x W/scale) block of the centred k-space.

    Intensities are divided by ``scale**2`` so that the image mean is kept.  With
    ``window="hamming"`` the kept block is tapered by :func:`hamming_window` along both
    axes first (less Gibbs ringing, a wider point spread; DC is untouched).
    """
    if window not in KSPACE_WINDOWS:
        raise ValueError(f"unknown k-space window {window!r}; choose one of {KSPACE_WINDOWS}")
    _require_divisible(x, scale)
    xt = torch.as_tensor(x)
    dtype = xt.dtype if xt.is_floating_point() else torch.float32
    h, w = xt.shape[-2:]
    lh, lw = h // scale, w // scale
    k = torch.fft.fftshift(torch.fft.fft2(xt.to(dtype)), dim=(-2, -1))
    top, left = h // 2 - lh // 2, w // 2 - lw // 2  # keeps DC at the LR centre
    k = k[..., top : top + lh, left : left + lw]
    if window == "hamming":
        taps = np.outer(hamming_window(lh), hamming_window(lw))
        k = k * torch.as_tensor(taps, dtype=dtype, device=k.device)
    lr = torch.fft.ifft2(torch.fft.ifftshift(k, dim=(-2, -1))).real / scale**2
    return lr if isinstance(x, torch.Tensor) else lr.numpy()


def gaussian_kernel1d(sigma: float, radius: int | None = None) -> np.ndarray:
    """Normalised 1D Gaussian sampled on integers, radius ceil(3 sigma) unless given."""
    radius = max(1, int(math.ceil(3 * sigma))) if radius is None else radius
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-0.5 * (t / sigma) ** 2)
    return g / g.sum()


def _filter_matrix(length: int, taps: np.ndarray) -> np.ndarray:
    """(length x length) matrix of a centred odd-length filter, half-sample symmetric
    (mirror) borders: MATLAB's 'symmetric', scipy.ndimage's 'reflect'."""
    radius = len(taps) // 2
    blur = np.zeros((length, length))
    mirror = np.concatenate([np.arange(length), np.arange(length - 1, -1, -1)])
    rows = np.repeat(np.arange(length), len(taps))
    cols = mirror[(np.arange(length)[:, None] + np.arange(-radius, radius + 1)) % (2 * length)]
    np.add.at(blur, (rows, cols.ravel()), np.tile(taps, length))
    return blur


@lru_cache(maxsize=64)
def _blur_block_matrix(
    length: int, scale: int, sigma: float, radius: int | None = None
) -> np.ndarray:
    """(length/scale x length) matrix: Gaussian blur (mirror borders; ``radius`` taps each
    side, default ceil(3 sigma)) then block mean."""
    blur = _filter_matrix(length, gaussian_kernel1d(sigma, radius))
    block = np.kron(np.eye(length // scale), np.full((1, scale), 1.0 / scale))
    return block @ blur


def _default_sigma(scale: int, sigma: float | None) -> float:
    """Gaussian sigma whose FWHM is ``scale`` HR pixels, unless one is given."""
    return float(scale / (2 * math.sqrt(2 * math.log(2))) if sigma is None else sigma)


def gaussian_block_down(
    x: ArrayLike, scale: int, sigma: float | None = None, radius: int | None = None
) -> ArrayLike:
    """LR = Gaussian blur (default FWHM = scale HR pixels; kernel radius default
    ceil(3 sigma)) then ``scale x scale`` block mean."""
    _require_divisible(x, scale)
    sigma = _default_sigma(scale, sigma)
    h, w = x.shape[-2:]
    return _apply_separable(
        x, _blur_block_matrix(h, scale, sigma, radius), _blur_block_matrix(w, scale, sigma, radius)
    )


def bspline3(t: np.ndarray) -> np.ndarray:
    """The cubic B-spline beta^3(t): 2/3 - t^2 + |t|^3 / 2 on |t| < 1, (2 - |t|)^3 / 6 on
    1 <= |t| < 2, else 0."""
    a = np.abs(t)
    return np.where(a < 1, 2 / 3 - a**2 + a**3 / 2, np.where(a < 2, (2 - a) ** 3 / 6, 0.0))


def _whole_sample_mirror(index: np.ndarray, length: int) -> np.ndarray:
    """Fold integer indices into [0, length) with whole-sample symmetry (x[-k] = x[k]),
    scipy.ndimage's 'mirror'."""
    period = max(2 * length - 2, 1)
    index = np.mod(index, period)
    return np.where(index > length - 1, period - index, index)


@lru_cache(maxsize=64)
def spline_resample_matrix(in_length: int, out_length: int) -> np.ndarray:
    """(out x in) matrix of order-3 B-spline resampling on the corner-aligned grid.

    ``scipy.ndimage.zoom(x, out / in, order=3)`` along one axis, written out: the spline
    coefficients ``c`` solve ``P c = x`` (P: beta^3 at integer offsets, 1/6 2/3 1/6, with
    mirror borders, scipy's prefilter), and output sample i evaluates the spline at
    input coordinate ``t_i = i (in - 1) / (out - 1)``, so first and last samples fall on
    the first and last input samples (zoom's ``grid_mode=False``; its default 'constant'
    mode equals 'mirror' at these in-range coordinates).
    """
    j = np.arange(in_length)
    prefilter = np.zeros((in_length, in_length))
    for offset in (-1, 0, 1):
        np.add.at(prefilter, (j, _whole_sample_mirror(j + offset, in_length)), bspline3(offset))
    step = (in_length - 1) / (out_length - 1) if out_length > 1 else 0.0
    t = np.arange(out_length) * step
    k = np.floor(t)[:, None].astype(np.int64) + np.arange(-1, 3)[None, :]
    evaluate = np.zeros((out_length, in_length))
    rows = np.repeat(np.arange(out_length), 4)
    cols = _whole_sample_mirror(k, in_length).ravel()
    np.add.at(evaluate, (rows, cols), bspline3(t[:, None] - k).ravel())
    return np.linalg.solve(prefilter.T, evaluate.T).T  # evaluate @ prefilter^-1


@lru_cache(maxsize=64)
def _gaussian_spline_matrix(length: int, scale: int, sigma: float) -> np.ndarray:
    """(length/scale x length) matrix: Gaussian blur as ``scipy.ndimage.gaussian_filter``
    (radius ``int(4 sigma + 0.5)``, 'reflect' borders), then the spline resampling."""
    blur = _filter_matrix(length, gaussian_kernel1d(sigma, int(4.0 * sigma + 0.5)))
    return spline_resample_matrix(length, length // scale) @ blur


def gaussian_spline_down(x: ArrayLike, scale: int, sigma: float = 1.0) -> ArrayLike:
    """LR as Pham et al. 2017 (SRCNN3D) make it, in-plane: Gaussian blur (sigma in HR
    pixels, 1 in their code) then order-3 spline resampling by ``1 / scale`` on the
    corner-aligned grid (``scipy.ndimage.zoom``'s default)."""
    _require_divisible(x, scale)
    h, w = x.shape[-2:]
    sigma = float(sigma)
    return _apply_separable(
        x, _gaussian_spline_matrix(h, scale, sigma), _gaussian_spline_matrix(w, scale, sigma)
    )


DEGRADATIONS: dict[str, Callable[..., ArrayLike]] = {
    "bicubic": bicubic_down,
    "kspace": kspace_down,
    "gaussian_block": gaussian_block_down,
    "gaussian_spline": gaussian_spline_down,
}


# Operators that are one (LR x HR) matrix per axis: ``f(hr_length, scale, **params)``.
SEPARABLE_MATRICES: dict[str, Callable[..., np.ndarray]] = {
    "bicubic": lambda length, scale: resize_matrix(
        length, int(math.ceil(length / scale - 1e-9)), 1.0 / scale
    ),
    "gaussian_block": lambda length, scale, sigma=None, radius=None: _blur_block_matrix(
        length, scale, _default_sigma(scale, sigma), radius
    ),
    "gaussian_spline": lambda length, scale, sigma=1.0: _gaussian_spline_matrix(
        length, scale, float(sigma)
    ),
}

# Operators whose D D^T is diagonal in the LR grid's DFT (a filter): exact FFT projection.
DFT_DIAGONAL_GRAMS = {"kspace"}

# Where LR sample i sits on the HR pixel grid: "centre" = HR coordinate (i + 0.5) s - 0.5
# (an LR pixel covers a block of HR pixels: imresize, block mean); "origin" = i s (the
# DFT grids of k-space truncation start at sample 0 and are periodic); "corner" = i (H - 1)
# / (h - 1) (scipy.ndimage.zoom's grid: first and last samples on the first and last pixels).
SAMPLE_GRIDS: dict[str, str] = {
    "bicubic": "centre",
    "kspace": "origin",
    "gaussian_block": "centre",
    "gaussian_spline": "corner",
}


class Degradation:
    """A configured linear LR operator ``D``: ``D(x, scale)``, its adjoint, its projection.

    Classical methods that enforce data consistency (NMU, LRTV) use :meth:`adjoint` and
    :meth:`project` of the operator the config selects, so they never assume a model
    (such as block averaging) different from the one that made their input.  With an
    ``snr`` the LR input a method is given (:meth:`observe`) also carries Rician noise,
    drawn from a generator seeded with ``seed`` when the operator is made: two operators
    made alike give the same noise, so every method sees the same noisy LR image.
    """

    def __init__(
        self,
        name: str = "bicubic",
        *,
        snr: float | None = None,
        seed: int = 0,
        **params: float | str,
    ) -> None:
        if name not in DEGRADATIONS:
            raise ValueError(f"unknown degradation {name!r}; choose one of {sorted(DEGRADATIONS)}")
        if snr is not None and not snr > 0:
            raise ValueError(f"snr must be positive, got {snr}")
        self.name = name
        self.params = dict(params)
        self.snr = None if snr is None else float(snr)
        self._noise = torch.Generator().manual_seed(int(seed)) if snr is not None else None
        self._forward = partial(DEGRADATIONS[name], **params)
        self._matrices: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
        self._grams: dict[tuple, torch.Tensor] = {}

    def _axis_matrices(
        self, height: int, width: int, scale: int, like: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The operator's per-axis matrices as tensors, made once per HR size and device."""
        key = (height, width, scale, like.dtype, like.device)
        if key not in self._matrices:
            make = SEPARABLE_MATRICES[self.name]
            self._matrices[key] = tuple(
                torch.as_tensor(make(n, scale, **self.params), dtype=like.dtype, device=like.device)
                for n in (height, width)
            )
        return self._matrices[key]

    def _is_fast(self, x: ArrayLike) -> bool:
        return (
            self.name in SEPARABLE_MATRICES
            and isinstance(x, torch.Tensor)
            and x.is_floating_point()
        )

    def __repr__(self) -> str:
        args = "".join(f", {k}={v!r}" for k, v in self.params.items())
        noise = f", snr={self.snr!r}" if self.snr is not None else ""
        return f"Degradation({self.name!r}{args}{noise})"

    def __call__(self, x: ArrayLike, scale: int) -> ArrayLike:
        if self._is_fast(x):  # same matrices as the functions, converted once
            _require_divisible(x, scale)
            mat_h, mat_w = self._axis_matrices(*x.shape[-2:], scale, x)
            return mat_h @ x @ mat_w.T
        return self._forward(x, scale)

    def observe(self, x: ArrayLike, scale: int) -> ArrayLike:
        """The LR image a method is given: ``D x``, with Rician noise of sigma ``1 / snr``
        when the operator has an ``snr`` (the next draws of its seeded generator)."""
        lr = self(x, scale)
        if self._noise is None:
            return lr
        return rician_noise(lr, 1.0 / self.snr, self._noise)

    @property
    def sample_grid(self) -> str:
        """``"centre"``, ``"origin"`` or ``"corner"``: where LR samples sit on the HR grid
        (see above)."""
        return SAMPLE_GRIDS[self.name]

    def adjoint(self, y: torch.Tensor, scale: int) -> torch.Tensor:
        """``D^T y`` for an LR batch ``y`` (..., h, w), exact for any of the linear operators.

        Separable operators use their transposed matrices; any other is differentiated
        (the vector-Jacobian product of the forward operator), so a new operator needs no
        hand-written adjoint.
        """
        shape = (*y.shape[:-2], y.shape[-2] * scale, y.shape[-1] * scale)
        if self._is_fast(y):
            mat_h, mat_w = self._axis_matrices(shape[-2], shape[-1], scale, y)
            return mat_h.T @ y @ mat_w
        x = torch.zeros(shape, dtype=y.dtype, device=y.device, requires_grad=True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(self(x, scale), x, grad_outputs=y)
        return grad

    def _gram_spectrum(
        self, shape: tuple[int, int], scale: int, device: torch.device
    ) -> torch.Tensor:
        """Eigenvalues of ``D D^T`` on the LR DFT grid (float64), from its impulse response;
        made once per LR size and device."""
        key = (shape, scale, device)
        if key not in self._grams:
            delta = torch.zeros((1, *shape), dtype=torch.float64)
            delta[0, 0, 0] = 1.0
            response = self(self.adjoint(delta, scale), scale)[0]
            self._grams[key] = torch.fft.fft2(response).real.to(device)
        return self._grams[key]

    def project(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        scale: int,
        iterations: int = 50,
        rtol: float = 1e-6,
    ) -> torch.Tensor:
        """Closest image to ``x`` (per slice, least squares) with ``D(result) = y``.

        ``x + D^T z`` with ``(D D^T) z = y - D x`` solved by conjugate gradients, batched
        over the leading axes.  For block averaging this is the classical "add the block's
        mean error to every pixel of the block"; for the other operators it is the exact
        back-projection that step stands for.  For k-space truncation ``D D^T`` is a
        filter on the LR grid (diagonal in its DFT: the squared window), so ``z`` is one
        exact FFT division instead (a Hamming window spreads its eigenvalues over four
        decades, too many for a few dozen CG steps).
        """
        dims = (-2, -1)
        residual = y - self(x, scale)
        if self.name in DFT_DIAGONAL_GRAMS:
            spectrum = torch.fft.fft2(residual.to(torch.float64)) / self._gram_spectrum(
                tuple(y.shape[-2:]), scale, y.device
            )
            z = torch.fft.ifft2(spectrum).real.to(residual.dtype)
            return x + self.adjoint(z, scale)
        z = torch.zeros_like(y)
        r = residual.clone()
        p = r.clone()
        rr = (r * r).sum(dims, keepdim=True)
        stop = (rtol * residual.norm(dim=dims, keepdim=True)) ** 2
        for _ in range(iterations):
            if bool((rr <= stop).all()):
                break
            ap = self(self.adjoint(p, scale), scale)
            alpha = rr / (p * ap).sum(dims, keepdim=True).clamp_min(1e-30)
            alpha = torch.where(rr <= stop, torch.zeros_like(alpha), alpha)
            z = z + alpha * p
            r = r - alpha * ap
            rr_new = (r * r).sum(dims, keepdim=True)
            p = r + (rr_new / rr.clamp_min(1e-30)) * p
            rr = rr_new
        return x + self.adjoint(z, scale)


def rician_noise(x: ArrayLike, sigma: float, generator: torch.Generator) -> ArrayLike:
    """``|x + sigma (n1 + i n2)|`` with n1, n2 independent standard normals: the magnitude
    of a complex signal with Gaussian noise on both channels (Gudbjartsson & Patz 1995).

    A constant ``x = nu`` gives Rice(nu, sigma) values, mean
    ``sigma sqrt(pi / 2) L_1/2(-nu^2 / (2 sigma^2))``.  Draws come from ``generator``
    (CPU), n1 for every element first, then n2.
    """
    xt = torch.as_tensor(x)
    dtype = xt.dtype if xt.is_floating_point() else torch.float32
    n = torch.randn((2, *xt.shape), generator=generator, dtype=torch.float64)
    n = (sigma * n).to(dtype=dtype, device=xt.device)
    out = torch.sqrt((xt.to(dtype) + n[0]) ** 2 + n[1] ** 2)
    return out if isinstance(x, torch.Tensor) else out.numpy()


def degrade(x: ArrayLike, scale: int, name: str = "bicubic", **params: float) -> ArrayLike:
    """Make the LR image of ``x`` (already modcropped) with the operator called ``name``."""
    return make_degradation(name, **params)(x, scale)


def make_degradation(name: str = "bicubic", **params: float | str) -> Degradation:
    """The named operator with its config parameters bound, callable as ``f(x, scale)``
    (``snr`` and ``seed`` set its Rician noise, :meth:`Degradation.observe`)."""
    return Degradation(name, **params)


def bicubic_up(x: ArrayLike, scale: int) -> ArrayLike:
    """Plain MATLAB-compatible bicubic upscaling by ``scale`` (the bicubic baseline)."""
    return imresize(x, float(scale))
