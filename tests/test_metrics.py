"""Tests for rrlsrn.metrics: PSNR, SSIM, border shaving and per-slice evaluation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage import data as skdata
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from rrlsrn.metrics import evaluate_slices, psnr, shave_border, ssim


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


# ---------------------------------------------------------------- ssim


def sk_ssim(a: np.ndarray, b: np.ndarray, **kwargs):
    """skimage's SSIM with Wang et al.'s conventions (Gaussian 1.5, population covariance)."""
    return structural_similarity(
        np.asarray(a, np.float64),
        np.asarray(b, np.float64),
        data_range=1,
        gaussian_weights=True,
        sigma=kwargs.pop("sigma", 1.5),
        use_sample_covariance=False,
        **kwargs,
    )


def image_pair(kind: str, shape: tuple[int, int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(pred, target) in [0, 1]: white noise, or a real photograph and a blurred noisy copy."""
    rng = np.random.default_rng(seed)
    if kind == "random":
        target = rng.random(shape)
        pred = np.clip(target + 0.1 * rng.standard_normal(shape), 0, 1)
    else:  # smooth, real-like: a crop of the camera photograph, degraded like an SR output
        target = skdata.camera()[100 : 100 + shape[0], 150 : 150 + shape[1]] / 255.0
        pred = ndimage.gaussian_filter(target, 1.0) + 0.01 * rng.standard_normal(shape)
    return pred, target


def gauss2d(win_size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """The normalised win_size x win_size Gaussian window, written out in numpy."""
    x = np.arange(win_size) - win_size // 2
    w = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * sigma**2))
    return w / w.sum()


def ssim_map_by_hand(x: np.ndarray, y: np.ndarray, L: float = 1.0, k1=0.01, k2=0.03):
    """Eq. 13 of Wang et al. 2004 at every position where the 11 x 11 window fits."""
    w = gauss2d()
    c1, c2 = (k1 * L) ** 2, (k2 * L) ** 2
    out = np.empty((x.shape[0] - 10, x.shape[1] - 10))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            a, b = x[i : i + 11, j : j + 11], y[i : i + 11, j : j + 11]
            mx, my = (w * a).sum(), (w * b).sum()
            vx, vy = (w * (a - mx) ** 2).sum(), (w * (b - my) ** 2).sum()
            cxy = (w * (a - mx) * (b - my)).sum()
            out[i, j] = ((2 * mx * my + c1) * (2 * cxy + c2)) / (
                (mx**2 + my**2 + c1) * (vx + vy + c2)
            )
    return out


@pytest.mark.parametrize("kind", ["random", "smooth"])
@pytest.mark.parametrize("shape", [(11, 11), (11, 17), (16, 16), (23, 40), (64, 48)])
def test_ssim_agrees_with_skimage(kind, shape):
    pred, target = image_pair(kind, shape)
    ours = ssim(pred, target)
    assert isinstance(ours, torch.Tensor)
    assert ours.shape == () and ours.dtype == torch.float64
    assert ours.item() == pytest.approx(sk_ssim(pred, target), abs=1e-10)
    # symmetric in its arguments
    assert ssim(target, pred).item() == pytest.approx(ours.item(), abs=1e-12)


def test_ssim_batch_equals_per_slice_skimage():
    rng = np.random.default_rng(1)
    target = rng.random((2, 3, 20, 18))
    target[1] = ndimage.gaussian_filter(target[1], (0, 2, 2))  # smooth slices too
    pred = np.clip(target + 0.05 * rng.standard_normal(target.shape), 0, 1)
    ours = ssim(pred, target)
    assert ours.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            assert ours[i, j].item() == pytest.approx(sk_ssim(pred[i, j], target[i, j]), abs=1e-10)
    # torch float32 input gives the same (computed in float64 from the float32 values)
    p32, t32 = pred.astype(np.float32), target.astype(np.float32)
    ours32 = ssim(torch.from_numpy(p32), torch.from_numpy(t32))
    assert ours32.dtype == torch.float64
    np.testing.assert_allclose(
        ours32.numpy(),
        [[sk_ssim(p32[i, j], t32[i, j]) for j in range(3)] for i in range(2)],
        atol=1e-10,
    )


def test_ssim_identical_images_is_exactly_one():
    x = np.random.default_rng(2).random((3, 15, 13))
    np.testing.assert_array_equal(ssim(x, x).numpy(), [1.0, 1.0, 1.0])


def test_ssim_constant_images_by_hand():
    # sigma_x = sigma_y = sigma_xy = 0 in every window
    # -> SSIM = (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1) everywhere
    # with C1 = (0.01 * 1)^2 = 1e-4: (2 * 0.2 * 0.6 + 1e-4) / (0.04 + 0.36 + 1e-4)
    x, y = np.full((13, 12), 0.2), np.full((13, 12), 0.6)
    assert ssim(x, y).item() == pytest.approx(0.2401 / 0.4001, abs=1e-12)
    # data_range 2 -> C1 = (0.01 * 2)^2 = 4e-4
    assert ssim(x, y, data_range=2.0).item() == pytest.approx(0.2404 / 0.4004, abs=1e-12)


def test_ssim_single_window_by_hand():
    # an 11 x 11 image: the map has exactly one value, the window-weighted eq. 13
    rng = np.random.default_rng(4)
    x, y = rng.random((11, 11)), rng.random((11, 11))
    w = gauss2d()
    assert w[5, 5] == w.max() and w.sum() == pytest.approx(1.0)
    mx, my = (w * x).sum(), (w * y).sum()
    vx, vy = (w * x * x).sum() - mx**2, (w * y * y).sum() - my**2
    cxy = (w * x * y).sum() - mx * my
    c1, c2 = 0.01**2, 0.03**2
    expected = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    assert ssim(x, y).item() == pytest.approx(expected, abs=1e-12)
    # population, not sample, covariance: the N / (N - 1) = 121 / 120 version differs
    f = 121 / 120
    sample = ((2 * mx * my + c1) * (2 * f * cxy + c2)) / (
        (mx**2 + my**2 + c1) * (f * (vx + vy) + c2)
    )
    assert abs(sample - expected) > 1e-6
    # other constants
    c1, c2 = (0.05 * 2) ** 2, (0.1 * 2) ** 2
    expected2 = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    assert ssim(x, y, data_range=2.0, k1=0.05, k2=0.1).item() == pytest.approx(expected2, abs=1e-12)


def test_ssim_affine_transform_closed_form():
    # y = a x + b: mu_y = a mu_x + b, sigma_y^2 = a^2 sigma_x^2, sigma_xy = a sigma_x^2 per window
    rng = np.random.default_rng(5)
    x = rng.random((14, 13))
    a, b = 0.5, 0.3
    y = a * x + b
    w = gauss2d()
    c1, c2 = 0.01**2, 0.03**2
    values = []
    for i in range(14 - 10):
        for j in range(13 - 10):
            win = x[i : i + 11, j : j + 11]
            mx = (w * win).sum()
            vx = (w * (win - mx) ** 2).sum()
            my = a * mx + b
            values.append(
                (2 * mx * my + c1)
                * (2 * a * vx + c2)
                / ((mx**2 + my**2 + c1) * ((1 + a * a) * vx + c2))
            )
    assert len(values) == 12
    assert ssim(y, x).item() == pytest.approx(np.mean(values), abs=1e-12)
    # and the explicit per-window map gives the same mean
    assert np.mean(ssim_map_by_hand(x, y)) == pytest.approx(np.mean(values), abs=1e-12)


def test_ssim_other_window_matches_skimage():
    # skimage's window radius is int(3.5 sigma + 0.5): sigma 1 -> 9 taps
    pred, target = image_pair("smooth", (30, 25), seed=6)
    ours = ssim(pred, target, sigma=1.0, win_size=9)
    assert ours.item() == pytest.approx(sk_ssim(pred, target, sigma=1.0), abs=1e-10)
    # invariant to a common intensity scale when data_range scales with it
    assert ssim(255 * pred, 255 * target, data_range=255.0).item() == pytest.approx(
        ssim(pred, target).item(), abs=1e-12
    )


@pytest.mark.parametrize("shave", [1, 2, 4])
def test_ssim_shave_equals_skimage_on_cropped(shave):
    pred, target = image_pair("smooth", (30, 26), seed=shave)
    crop = (slice(shave, -shave), slice(shave, -shave))
    ref = sk_ssim(pred[crop], target[crop])
    assert ssim(pred, target, shave=shave).item() == pytest.approx(ref, abs=1e-10)
    assert ssim(pred, target, shave=0).item() != pytest.approx(ref, abs=1e-6)


@pytest.mark.parametrize("shave", [0, 2])
def test_ssim_mask_is_mean_of_skimage_map_over_mask(shave):
    rng = np.random.default_rng(7)
    pred, target = image_pair("smooth", (32, 28), seed=7)
    mask = rng.random((32, 28)) < 0.3
    crop = (slice(shave, 32 - shave), slice(shave, 28 - shave))
    _, smap = structural_similarity(
        pred[crop],
        target[crop],
        data_range=1,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        full=True,
    )
    inner = (slice(5, -5), slice(5, -5))  # skimage's own mean drops these 5 pixels per border
    assert smap[inner].mean() == pytest.approx(sk_ssim(pred[crop], target[crop]), abs=1e-12)
    expected = smap[inner][mask[crop][inner]].mean()
    ours = ssim(pred, target, shave=shave, mask=mask)
    assert ours.item() == pytest.approx(expected, abs=1e-10)
    # a full mask gives the unmasked value; torch masks work too
    full = torch.ones(32, 28, dtype=torch.bool)
    assert ssim(pred, target, shave=shave, mask=full).item() == pytest.approx(
        ssim(pred, target, shave=shave).item(), abs=1e-12
    )


def test_ssim_batched_mask_by_hand_map():
    rng = np.random.default_rng(8)
    target = rng.random((2, 13, 14))
    pred = np.clip(target + 0.1 * rng.standard_normal(target.shape), 0, 1)
    mask = np.zeros((2, 13, 14), bool)
    mask[0, 5, 5] = True  # the map's top-left value only
    mask[1, 6:8, 5:9] = True  # map rows 1-2, columns 0-3
    ours = ssim(pred, target, mask=mask)
    assert ours.shape == (2,)
    assert ours[0].item() == pytest.approx(ssim_map_by_hand(pred[0], target[0])[0, 0], abs=1e-12)
    assert ours[1].item() == pytest.approx(
        ssim_map_by_hand(pred[1], target[1])[1:3, 0:4].mean(), abs=1e-12
    )


def test_ssim_empty_mask_raises():
    x = np.random.default_rng(9).random((2, 20, 20))
    mask = np.ones((2, 20, 20), bool)
    mask[1] = False
    mask[1, :, :5] = True  # only within the half-window border of the map
    with pytest.raises(ValueError, match="mask is empty"):
        ssim(x, 1 - x, mask=mask)
    mask[1, 7, 7] = True  # inside the map ...
    assert math.isfinite(ssim(x, 1 - x, mask=mask)[1].item())
    # ... but, padded to 30 x 30, outside the map region (rows 13-16) left by a shave of 8
    with pytest.raises(ValueError, match="mask is empty"):
        ssim(
            np.zeros((2, 30, 30)),
            np.ones((2, 30, 30)),
            shave=8,
            mask=np.pad(mask, ((0, 0), (5, 5), (5, 5))),
        )
    with pytest.raises(ValueError, match="mask shape"):
        ssim(x, x, mask=mask[0])


def test_ssim_too_small_raises_naming_sizes():
    with pytest.raises(ValueError, match=r"\(10, 12\).*11x11"):
        ssim(np.zeros((10, 12)), np.zeros((10, 12)))
    with pytest.raises(ValueError, match=r"\(10, 10\) after shaving 3"):
        ssim(np.zeros((16, 16)), np.zeros((16, 16)), shave=3)
    with pytest.raises(ValueError, match="shape"):
        ssim(np.zeros((12, 12)), np.zeros((12, 13)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_ssim_cuda_equals_cpu():
    pred, target = image_pair("smooth", (40, 36), seed=10)
    pred = torch.from_numpy(np.stack([pred, target[::-1].copy()])).float()
    target = torch.from_numpy(np.stack([target, target])).float()
    mask = torch.zeros(2, 40, 36, dtype=torch.bool)
    mask[:, 10:30, 8:20] = True
    for kwargs in ({}, {"shave": 2}, {"shave": 2, "mask": mask}):
        cpu = ssim(pred, target, **kwargs)
        gpu_kwargs = {k: v.cuda() if torch.is_tensor(v) else v for k, v in kwargs.items()}
        gpu = ssim(pred.cuda(), target.cuda(), **gpu_kwargs)
        assert gpu.device.type == "cuda"
        np.testing.assert_allclose(gpu.cpu().numpy(), cpu.numpy(), atol=1e-6)


# ---------------------------------------------------------------- evaluate_slices


def test_evaluate_slices_psnr_ssim_and_masked():
    rng = np.random.default_rng(3)
    hr = rng.random((4, 24, 24))
    sr = hr + rng.normal(0, 0.05, hr.shape)
    mask = np.zeros((4, 24, 24), bool)
    mask[0, 6:12, 5:15] = True  # inside both regions
    mask[1, 0:2, :] = True  # only in the shaved border: both masked metrics NaN
    mask[2, 3:5, 3:21] = True  # in the PSNR region (rows 2-21), not the SSIM one (rows 7-16)
    # slice 3: no mask at all
    out = evaluate_slices(sr, hr, mask, shave=2)
    assert list(out) == ["psnr", "ssim", "psnr_mask", "ssim_mask"]
    for key in out:
        assert isinstance(out[key], np.ndarray)
        assert out[key].shape == (4,) and out[key].dtype == np.float64
    for i in range(4):
        # the library's per-slice functions ...
        assert out["psnr"][i] == pytest.approx(psnr(sr[i], hr[i], shave=2).item(), abs=1e-9)
        assert out["ssim"][i] == pytest.approx(ssim(sr[i], hr[i], shave=2).item(), abs=1e-12)
        # ... and independently: MSE over the 20 x 20 interior; skimage on it
        mse = np.mean((sr[i, 2:-2, 2:-2] - hr[i, 2:-2, 2:-2]) ** 2)
        assert out["psnr"][i] == pytest.approx(-10 * math.log10(mse), abs=1e-9)
        assert out["ssim"][i] == pytest.approx(
            sk_ssim(sr[i, 2:-2, 2:-2], hr[i, 2:-2, 2:-2]), abs=1e-10
        )
    # masked PSNR of slice 0: MSE over the 6 x 10 masked pixels only
    diff = (sr[0] - hr[0])[6:12, 5:15]
    assert out["psnr_mask"][0] == pytest.approx(-10 * math.log10(np.mean(diff**2)), abs=1e-9)
    assert out["ssim_mask"][0] == pytest.approx(
        ssim(sr[0], hr[0], shave=2, mask=mask[0]).item(), abs=1e-12
    )
    # slice 2: 2 x 18 mask pixels in the PSNR region, none where the SSIM window fits
    diff = (sr[2] - hr[2])[3:5, 3:21]
    assert out["psnr_mask"][2] == pytest.approx(-10 * math.log10(np.mean(diff**2)), abs=1e-9)
    assert math.isnan(out["ssim_mask"][2])
    for key in ("psnr_mask", "ssim_mask"):
        assert math.isnan(out[key][1]) and math.isnan(out[key][3])


def test_evaluate_slices_without_mask_has_no_masked_columns():
    hr = np.zeros((2, 16, 16), np.float32)
    sr = hr + np.float32(0.1)  # MSE 0.01 -> 20 dB
    out = evaluate_slices(sr, hr, shave=2)
    assert list(out) == ["psnr", "ssim"]
    np.testing.assert_allclose(out["psnr"], [20.0, 20.0], atol=1e-5)
    # constant 0.1 vs constant 0: (2 * 0.1 * 0 + C1) / (0.01 + 0 + C1) with C1 = 1e-4
    np.testing.assert_allclose(out["ssim"], [1e-4 / 0.0101] * 2, rtol=1e-6)


def test_evaluate_slices_identical_and_too_small():
    hr = np.random.default_rng(11).random((3, 16, 16))
    out = evaluate_slices(hr, hr, np.ones((3, 16, 16), bool), shave=2)
    assert np.all(np.isinf(out["psnr"])) and np.all(np.isinf(out["psnr_mask"]))
    np.testing.assert_array_equal(out["ssim"], [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(out["ssim_mask"], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="SSIM window"):
        evaluate_slices(hr[:, :14, :14], hr[:, :14, :14], shave=2)  # 10 x 10 after shaving
