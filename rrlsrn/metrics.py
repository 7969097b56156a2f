"""Image quality metrics with the conventions that make SR numbers comparable.

PSNR uses ``data_range = 1`` on per-volume normalised intensities and shaves ``shave``
pixels at each border (the SR literature shaves ``scale``).  SSIM is Wang et al. (2004)
with its published constants and window, on the same shaved images.  Batched over slices.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# Wang et al. 2004's SSIM constants: the defaults of ssim() and what evaluate_slices uses.
SSIM_WIN_SIZE, SSIM_SIGMA, SSIM_K1, SSIM_K2 = 11, 1.5, 0.01, 0.03


def _as_tensor(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(x)
    return t if t.is_floating_point() else t.float()


def shave_border(x: torch.Tensor, shave: int) -> torch.Tensor:
    """Drop ``shave`` pixels at every border of the last two axes."""
    if shave <= 0:
        return x
    if min(x.shape[-2:]) <= 2 * shave:
        raise ValueError(
            f"image of size {tuple(x.shape[-2:])} is too small to shave {shave} pixels per border"
        )
    return x[..., shave:-shave, shave:-shave]


def psnr(
    pred: np.ndarray | torch.Tensor,
    target: np.ndarray | torch.Tensor,
    shave: int = 0,
    data_range: float = 1.0,
    mask: np.ndarray | torch.Tensor | None = None,
) -> torch.Tensor:
    """PSNR in dB per image over the last two axes, after shaving the border.

    ``pred`` and ``target`` have shape (..., H, W); the result has shape (...).  With a
    ``mask`` (same shape, boolean) the mean squared error is taken inside it only.
    Identical images give ``inf``.
    """
    p, t = _as_tensor(pred).double(), _as_tensor(target).double()
    if p.shape != t.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(p.shape)} vs {tuple(t.shape)}")
    sq = shave_border((p - t) ** 2, shave)
    if mask is None:
        mse = sq.mean(dim=(-2, -1))
    else:
        m = shave_border(torch.as_tensor(mask, device=sq.device).to(sq.dtype), shave)
        count = m.sum(dim=(-2, -1))
        if (count == 0).any():
            raise ValueError("mask is empty inside the shaved border for at least one image")
        mse = (sq * m).sum(dim=(-2, -1)) / count
    return 10 * torch.log10(data_range**2 / mse)


def gaussian_window(win_size: int = SSIM_WIN_SIZE, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """Normalised 1-D Gaussian of ``win_size`` taps (float64); its outer product is the
    2-D window of Wang et al. (MATLAB ``fspecial('gaussian', win_size, sigma)``)."""
    x = torch.arange(win_size, dtype=torch.float64) - (win_size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _valid_filter(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' filtering of every (H, W) plane of ``x`` with the 1-D window ``g``.

    The planes go in as the channels of one depthwise convolution (batch 1, ``groups`` =
    number of planes): on CPU in float64 this is about 3 times faster than a batch of
    single-channel planes.
    """
    h, w, k = *x.shape[-2:], len(g)
    planes = x.reshape(1, -1, h, w)
    c = planes.shape[1]
    planes = F.conv2d(planes, g.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)
    planes = F.conv2d(planes, g.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)
    return planes.reshape(*x.shape[:-2], h - k + 1, w - k + 1)


def _ssim_map(
    p: torch.Tensor,
    t: torch.Tensor,
    shave: int,
    data_range: float,
    sigma: float,
    win_size: int,
    k1: float,
    k2: float,
) -> torch.Tensor:
    """SSIM map (..., H - 2 shave - win_size + 1, W - ...) of two same-shape images."""
    if p.shape != t.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(p.shape)} vs {tuple(t.shape)}")
    if win_size < 1 or win_size % 2 != 1:
        raise ValueError(f"win_size must be a positive odd integer, got {win_size}")
    device = p.device
    p = shave_border(p.double(), shave)
    t = shave_border(t.to(device=device, dtype=torch.float64), shave)
    h, w = p.shape[-2:]
    if h < win_size or w < win_size:
        raise ValueError(
            f"image of size {(h, w)} after shaving {shave} pixels per border is smaller "
            f"than the {win_size}x{win_size} SSIM window"
        )
    # the five local moments E_w[x], E_w[y], E_w[x^2], E_w[y^2], E_w[xy]: (5, ..., H', W')
    planes = torch.empty((5, *p.shape), dtype=torch.float64, device=device)
    planes[0], planes[1] = p, t
    torch.mul(p, p, out=planes[2])
    torch.mul(t, t, out=planes[3])
    torch.mul(p, t, out=planes[4])
    mu_x, mu_y, e_xx, e_yy, e_xy = _valid_filter(
        planes, gaussian_window(win_size, sigma).to(device)
    ).unbind(0)
    del planes
    # eq. 13, in place on the moment planes (these maps are large: avoid temporaries)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    mu_xy = mu_x * mu_y
    mu_x.square_()
    mu_y.square_()
    var_x, var_y = e_xx.sub_(mu_x), e_yy.sub_(mu_y)  # sigma_x^2, sigma_y^2 (population)
    cov = e_xy.sub_(mu_xy)  # sigma_xy
    den = mu_x.add_(mu_y).add_(c1).mul_(var_x.add_(var_y).add_(c2))
    return mu_xy.mul_(2).add_(c1).mul_(cov.mul_(2).add_(c2)).div_(den)


def _ssim_region(mask: torch.Tensor, shave: int, win_size: int) -> torch.Tensor:
    """The mask at the SSIM map's window centres: shaved, then cropped by win_size // 2."""
    r = win_size // 2
    m = shave_border(mask, shave)
    return m[..., r : m.shape[-2] - r, r : m.shape[-1] - r]


def ssim(
    pred: np.ndarray | torch.Tensor,
    target: np.ndarray | torch.Tensor,
    shave: int = 0,
    data_range: float = 1.0,
    mask: np.ndarray | torch.Tensor | None = None,
    sigma: float = SSIM_SIGMA,
    win_size: int = SSIM_WIN_SIZE,
    k1: float = SSIM_K1,
    k2: float = SSIM_K2,
) -> torch.Tensor:
    """Mean SSIM per image over the last two axes, after shaving the border.

    Wang, Bovik, Sheikh & Simoncelli, "Image quality assessment: from error visibility to
    structural similarity", IEEE TIP 13(4):600-612, 2004, eq. 13 with C1 = (k1 L)^2,
    C2 = (k2 L)^2, L = ``data_range``; local statistics under a normalised ``win_size`` x
    ``win_size`` Gaussian window of std ``sigma`` (paper: 11, 1.5, 0.01, 0.03), applied
    separably.  Conventions, as the paper and its reference MATLAB ``ssim.m``:

    * weighted *population* moments (sigma_xy = E_w[xy] - mu_x mu_y, no N/(N-1)), so with
      the defaults this equals ``skimage.metrics.structural_similarity(..., data_range=1,
      gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``;
    * the map is kept only where the whole window fits ("valid"), so no padding convention
      enters the value: an (H, W) image gives an (H - win_size + 1, W - win_size + 1) map
      (skimage filters with padding and then crops the same border before the mean).

    ``pred`` and ``target`` have shape (..., H, W) (numpy or torch); the result has shape
    (...), float64 on the input's device.  ``shave`` pixels per border are dropped from both
    images first.  With a boolean ``mask`` (same shape) the SSIM map is averaged over the
    mask pixels at the window centres (the mask shaved, then cropped by ``win_size // 2``).
    Raises ValueError if an image is smaller than the window after shaving, or if a mask is
    empty inside the map region.
    """
    p, t = _as_tensor(pred), _as_tensor(target)
    smap = _ssim_map(p, t.to(p.device), shave, data_range, sigma, win_size, k1, k2)
    if mask is None:
        return smap.mean(dim=(-2, -1))
    m = torch.as_tensor(mask, device=p.device)
    if m.shape != p.shape:
        raise ValueError(
            f"mask shape {tuple(m.shape)} differs from the images' shape {tuple(p.shape)}"
        )
    m = _ssim_region(m.bool(), shave, win_size).to(torch.float64)
    count = m.sum(dim=(-2, -1))
    if (count == 0).any():
        raise ValueError(
            "mask is empty inside the SSIM map region (shaved border plus half a window) "
            "for at least one image"
        )
    return (smap * m).sum(dim=(-2, -1)) / count


def _mean_or_nan(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of (N, h, w) ``values`` over each slice's ``mask``; NaN where it is empty."""
    m = mask.to(values.dtype)
    count = m.sum(dim=(-2, -1))
    return (values * m).sum(dim=(-2, -1)) / count  # 0 / 0 -> NaN


def evaluate_slices(
    sr: np.ndarray | torch.Tensor,
    hr: np.ndarray | torch.Tensor,
    mask: np.ndarray | torch.Tensor | None = None,
    shave: int = 2,
) -> dict[str, np.ndarray]:
    """Per-slice PSNR and SSIM of an (N, H, W) SR stack against HR, whole slice and in ``mask``.

    Keys, in order: ``psnr``, ``ssim`` and, with a mask, ``psnr_mask``, ``ssim_mask`` (each
    an (N,) float64 array).  The values equal ``psnr(..., shave=shave)`` and
    ``ssim(..., shave=shave)`` per slice.  A slice whose mask is empty inside the region a
    metric uses (PSNR: the shaved slice; SSIM: that cropped by half a window, 5 pixels)
    gets NaN for that masked metric.
    """
    sr_t, hr_t = _as_tensor(sr).double(), _as_tensor(hr).double()
    if sr_t.shape != hr_t.shape:
        raise ValueError(f"SR and HR shapes differ: {tuple(sr_t.shape)} vs {tuple(hr_t.shape)}")
    sq = shave_border((sr_t - hr_t) ** 2, shave)
    smap = _ssim_map(sr_t, hr_t, shave, 1.0, SSIM_SIGMA, SSIM_WIN_SIZE, SSIM_K1, SSIM_K2)
    out = {
        "psnr": 10 * torch.log10(1.0 / sq.mean(dim=(-2, -1))),
        "ssim": smap.mean(dim=(-2, -1)),
    }
    if mask is not None:
        m = torch.as_tensor(mask, device=sr_t.device).bool()
        if m.shape != sr_t.shape:
            raise ValueError(
                f"mask shape {tuple(m.shape)} differs from the slices' shape {tuple(sr_t.shape)}"
            )
        out["psnr_mask"] = 10 * torch.log10(1.0 / _mean_or_nan(sq, shave_border(m, shave)))
        out["ssim_mask"] = _mean_or_nan(smap, _ssim_region(m, shave, SSIM_WIN_SIZE))
    return {k: v.cpu().numpy() for k, v in out.items()}
