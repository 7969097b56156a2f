"""Every scale: the operators, the classical methods and the networks at x3 and x4.

Expected values come from independent computations: per-pixel transcriptions of the
operators (the Keys kernel of tests/test_degrade.py with MATLAB's antialiasing and mirror
borders, Gaussian blur and block means), exact sampling and polynomial-reproduction
identities, parameter counts worked out from the layers, and the x2 network applied
twice by hand for the cascade.
"""

from __future__ import annotations

import math

import nibabel as nib
import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
from conftest import two_step_settings
from test_degrade import keys_cubic  # Keys' kernel, written out independently there

from baselines.interpolation import bicubic, cubic_spline
from baselines.lrtv import LRTVTrace, _data_term, lrtv
from baselines.nmu import nmu
from rrlsrn import registry
from rrlsrn.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from rrlsrn.cli import main
from rrlsrn.degrade import make_degradation
from rrlsrn.infer import super_resolve
from rrlsrn.lapsrn import lapsrn_x2_model
from rrlsrn.models import RRLSRN, at_scale, build_model, count_parameters
from rrlsrn.train import hr_patch_size, initial_weights, train

OPERATORS = ["bicubic", "kspace", "gaussian_block"]


def smooth_image(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """A smooth positive test image in [0.2, 0.8] (sums of low-frequency cosines)."""
    rng = np.random.default_rng(seed)
    h, w = shape[-2:]
    y, x = np.meshgrid(np.arange(h) / h, np.arange(w) / w, indexing="ij")
    image = np.zeros((h, w))
    for _ in range(4):
        fy, fx, phase = rng.uniform(0.3, 1.5), rng.uniform(0.3, 1.5), rng.uniform(0, 6)
        image += np.cos(2 * np.pi * (fy * y + fx * x) + phase)
    image = (image - image.min()) / (image.max() - image.min())
    return np.broadcast_to(0.2 + 0.6 * image, shape).copy()


def textured_image(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Blurred noise in [0, 1] (sigma 1 pixel): detail that interpolation misses."""
    image = ndi.gaussian_filter(np.random.default_rng(seed).random(shape[-2:]), 1.0)
    image = (image - image.min()) / (image.max() - image.min())
    return np.broadcast_to(image, shape).copy()


# ------------------------------------------------------------- independent references


def mirror(index: int, n: int) -> int:
    """MATLAB's symmetric border: ... x1 x0 | x0 x1 ... x(n-1) | x(n-1) x(n-2) ..."""
    index %= 2 * n
    return index if index < n else 2 * n - 1 - index


def matlab_bicubic_1d(signal: np.ndarray, factor: float) -> np.ndarray:
    """MATLAB ``imresize(x, factor, 'bicubic')`` along one axis, one output at a time.

    Output pixel o (0-based) reads input coordinate ``(o + 0.5) / factor - 0.5``; when
    shrinking, the kernel is stretched by ``1 / factor`` and scaled by ``factor``
    (antialiasing); the weights are normalised to sum to 1.
    """
    n = len(signal)
    out_n = math.ceil(n * factor - 1e-9)
    stretch = 1 / factor if factor < 1 else 1.0
    out = np.empty(out_n)
    for o in range(out_n):
        u = (o + 0.5) / factor - 0.5
        taps = range(math.floor(u - 2 * stretch), math.ceil(u + 2 * stretch) + 1)
        weights = np.array([keys_cubic((u - j) / stretch) / stretch for j in taps])
        values = np.array([signal[mirror(j, n)] for j in taps])
        out[o] = (weights * values).sum() / weights.sum()
    return out


def matlab_bicubic(image: np.ndarray, factor: float) -> np.ndarray:
    rows = np.stack([matlab_bicubic_1d(r, factor) for r in image])
    return np.stack([matlab_bicubic_1d(c, factor) for c in rows.T]).T


def gaussian_block_by_hand(image: np.ndarray, scale: int) -> np.ndarray:
    """Blur with a Gaussian of FWHM ``scale`` (sampled on integers, radius ceil(3 sigma),
    normalised; mirrored borders), then the mean of each ``scale x scale`` block."""
    sigma = scale / (2 * math.sqrt(2 * math.log(2)))
    radius = math.ceil(3 * sigma)
    g = [math.exp(-0.5 * (t / sigma) ** 2) for t in range(-radius, radius + 1)]
    g = [v / sum(g) for v in g]
    h, w = image.shape
    blurred = np.zeros((h, w))
    for p in range(h):
        for q in range(w):
            blurred[p, q] = sum(
                g[a + radius] * g[b + radius] * image[mirror(p + a, h), mirror(q + b, w)]
                for a in range(-radius, radius + 1)
                for b in range(-radius, radius + 1)
            )
    lr = np.zeros((h // scale, w // scale))
    for i in range(h // scale):
        for j in range(w // scale):
            block = [
                blurred[i * scale + a, j * scale + b] for a in range(scale) for b in range(scale)
            ]
            lr[i, j] = sum(block) / scale**2
    return lr


# -------------------------------------------------------------------- the operators


def test_bicubic_operator_at_x3_is_matlab_imresize_by_hand():
    hr = np.random.default_rng(1).random((12, 15))
    got = make_degradation("bicubic")(torch.from_numpy(hr), 3).numpy()
    assert got.shape == (4, 5)
    np.testing.assert_allclose(got, matlab_bicubic(hr, 1 / 3), rtol=0, atol=1e-12)


def test_bicubic_method_at_x4_is_matlab_imresize_by_hand():
    lr = np.random.default_rng(2).random((5, 7))
    got = bicubic(torch.from_numpy(lr), 4).numpy()[0]
    assert got.shape == (20, 28)
    np.testing.assert_allclose(got, matlab_bicubic(lr, 4.0), rtol=0, atol=1e-12)


@pytest.mark.parametrize("scale", [3, 4])
def test_gaussian_block_operator_is_blur_then_block_mean_by_hand(scale):
    hr = np.random.default_rng(scale).random((4 * scale, 3 * scale))
    got = make_degradation("gaussian_block")(torch.from_numpy(hr), scale).numpy()
    np.testing.assert_allclose(got, gaussian_block_by_hand(hr, scale), rtol=0, atol=1e-12)
    # with a vanishing blur it is the plain mean of each block
    sharp = make_degradation("gaussian_block", sigma=1e-3)(torch.from_numpy(hr), scale).numpy()
    means = hr.reshape(4, scale, 3, scale).mean(axis=(1, 3))
    np.testing.assert_allclose(sharp, means, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("scale", "shape"), [(3, (27, 33)), (3, (36, 30)), (4, (32, 24))])
def test_kspace_operator_samples_a_band_limited_image_exactly(scale, shape):
    """An image whose frequencies all lie inside the LR band: truncating its k-space keeps
    it whole, so the LR image is its every ``scale``-th sample (odd LR sizes too)."""
    h, w = shape
    y, x = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    hr = 0.5 + 0.2 * np.cos(2 * np.pi * (2 * y / h + 1 * x / w) + 0.3)
    hr += 0.1 * np.sin(2 * np.pi * (1 * y / h - 2 * x / w))
    got = make_degradation("kspace")(torch.from_numpy(hr), scale).numpy()
    np.testing.assert_allclose(got, hr[::scale, ::scale], rtol=0, atol=1e-12)


@pytest.mark.parametrize("scale", [3, 4])
@pytest.mark.parametrize("name", OPERATORS)
def test_every_operator_keeps_constants_and_its_adjoint_is_exact(name, scale):
    operator = make_degradation(name)
    hr = torch.full((2, 4 * scale, 3 * scale), 0.3, dtype=torch.float64)
    torch.testing.assert_close(operator(hr, scale), torch.full((2, 4, 3), 0.3, dtype=hr.dtype))
    x = torch.from_numpy(np.random.default_rng(0).random((2, 4 * scale, 3 * scale)))
    y = torch.from_numpy(np.random.default_rng(1).random((2, 4, 3)))
    lhs = (operator(x, scale) * y).sum()
    rhs = (x * operator.adjoint(y, scale)).sum()
    assert lhs.item() == pytest.approx(rhs.item(), rel=1e-12)


# ------------------------------------------------------------- the classical methods


@pytest.mark.parametrize("scale", [3, 4])
def test_cubic_spline_reproduces_a_cubic_polynomial_in_the_interior(scale):
    """Cubic B-spline interpolation reproduces polynomials up to degree 3: LR pixel i holds
    p(i), HR pixel j reads LR coordinate (j + 0.5) / s - 0.5 and gets p there (away from
    the mirrored border, whose effect decays as 0.268^k)."""

    def p(t: np.ndarray) -> np.ndarray:
        return 0.5 + 0.01 * (t - 15) - 2e-4 * (t - 15) ** 2 + 3e-6 * (t - 15) ** 3

    n = 36
    t = np.arange(n, dtype=np.float64)
    lr = np.add.outer(p(t), 0.5 * p(t[:30]))  # separable: p(row) + p(col) / 2
    sr = cubic_spline(torch.from_numpy(lr), scale).numpy()[0]
    assert sr.shape == (n * scale, 30 * scale)
    u = (np.arange(n * scale) + 0.5) / scale - 0.5
    v = (np.arange(30 * scale) + 0.5) / scale - 0.5
    expected = np.add.outer(p(u), 0.5 * p(v))
    inside = (slice(14 * scale, 22 * scale), slice(12 * scale, 18 * scale))
    np.testing.assert_allclose(sr[inside], expected[inside], rtol=0, atol=1e-7)


@pytest.mark.parametrize("scale", [3, 4])
def test_cubic_spline_on_the_kspace_grid_passes_through_the_lr_samples(scale):
    lr = torch.from_numpy(np.random.default_rng(3).random((1, 7, 5)))
    sr = cubic_spline(lr, scale, make_degradation("kspace")).numpy()[0]
    np.testing.assert_allclose(sr[::scale, ::scale], lr[0].numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("scale", [3, 4])
@pytest.mark.parametrize("name", OPERATORS)
def test_nmu_output_degrades_back_to_its_input(name, scale):
    """NMU re-imposes D(x) = y (the exact projection through the operator) after every
    filter pass, so its result is consistent with the LR input to solver precision."""
    operator = make_degradation(name)
    hr = torch.from_numpy(textured_image((1, 6 * scale, 5 * scale)))
    lr = operator(hr, scale)
    sr = nmu(lr, scale, operator, max_iterations=3)
    assert sr.shape == (1, 6 * scale, 5 * scale)
    torch.testing.assert_close(operator(sr, scale), lr, rtol=0, atol=1e-7)
    assert (sr - cubic_spline(lr, scale, operator)).abs().max() > 1e-4  # it did filter


@pytest.mark.parametrize("scale", [3, 4])
@pytest.mark.parametrize("name", ["bicubic", "gaussian_block"])
def test_lrtv_descends_its_objective_and_fits_the_lr_input_better_than_its_start(name, scale):
    """LRTV penalises ||D x - y|| (it does not enforce it): on a textured image the data
    term ends well below that of its initial spline (measured: 16-19 % of it with the
    bicubic operator, 31-47 % with blur + block mean), x stays >= 0, and after the first
    outer iteration (which the toolkit's M = 0 start pulls towards zero) the objective
    never rises."""
    operator = make_degradation(name)
    hr = torch.from_numpy(textured_image((1, 8 * scale, 8 * scale)))
    lr = operator(hr, scale)
    trace = LRTVTrace()
    sr = lrtv(lr, scale, operator, outer_iterations=4, inner_iterations=30, trace=trace)
    assert sr.shape == (1, 8 * scale, 8 * scale) and sr.min() >= 0
    _, start = _data_term(cubic_spline(lr, scale, operator), lr, scale, operator)
    _, end = _data_term(sr, lr, scale, operator)
    assert end.item() < 0.6 * start.item()
    objective = torch.stack(trace.objective)[:, 0].numpy()
    assert np.all(np.diff(objective[1:]) <= 1e-9 * objective[1:-1])


def test_upscale_makes_x3_with_a_classical_method_and_refuses_x3_for_rrlsrn(tmp_path, capsys):
    data = (smooth_image((8, 6, 2)) * 1000).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.diag([2.0, 2.0, 4.0, 1.0])), str(tmp_path / "in.nii.gz"))
    args = ["upscale", str(tmp_path / "in.nii.gz"), "--quiet", "--axis", "2", "--scale", "3"]
    assert main([*args[:2], str(tmp_path / "x3.nii.gz"), *args[2:], "--method", "bicubic"]) == 0
    out = nib.load(str(tmp_path / "x3.nii.gz"))
    assert out.shape == (24, 18, 2)
    np.testing.assert_allclose(out.header.get_zooms(), (2 / 3, 2 / 3, 4.0), rtol=1e-6)
    high = float(np.percentile(data, 99.5))
    expected = matlab_bicubic(data[..., 1] / high, 3.0) * high
    np.testing.assert_allclose(out.get_fdata()[..., 1], expected, rtol=1e-4)
    assert main([*args[:2], str(tmp_path / "nmu.nii.gz"), *args[2:], "--method", "nmu"]) == 0
    assert nib.load(str(tmp_path / "nmu.nii.gz")).shape == (24, 18, 2)
    capsys.readouterr()
    assert main([*args[:2], str(tmp_path / "no.nii.gz"), *args[2:], "--method", "rrlsrn"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (
        "rrlsrn upscale: rrlsrn reaches x2, x4, x8, ... (powers of 2) by cascading its x2 "
        "network, not x3"
    )
    assert not (tmp_path / "no.nii.gz").exists()


# ---------------------------------------------------------------------- the networks


def conv(cin: int, cout: int, k: int) -> int:
    """Parameters of a k x k convolution (or transposed convolution) with bias."""
    return cin * cout * k * k + cout


@pytest.mark.parametrize("scale", [3, 4])
def test_srcnn_and_fsrcnn_at_x3_and_x4_shapes_and_parameters_by_hand(scale):
    # SRCNN 9-1-5 works on the bicubic-upsampled input: no weight depends on the scale
    srcnn = build_model("srcnn", scale, **registry.METHODS["srcnn"].model_args)
    assert count_parameters(srcnn) == conv(1, 64, 9) + conv(64, 32, 1) + conv(32, 1, 5) == 8_129
    # FSRCNN(56, 12, 4): 5x5 conv, 1x1 shrink, 4 3x3 maps, 1x1 expand (PReLU after each,
    # one slope per channel), 9x9 transposed conv of stride = scale
    fsrcnn = build_model("fsrcnn", scale, **registry.METHODS["fsrcnn"].model_args)
    layers = conv(1, 56, 5) + conv(56, 12, 1) + 4 * conv(12, 12, 3) + conv(12, 56, 1)
    prelu = 56 + 12 + 4 * 12 + 56
    assert count_parameters(fsrcnn) == layers + prelu + conv(56, 1, 9) == 12_809
    assert fsrcnn.deconv.stride == (scale, scale)
    with torch.inference_mode():
        for model in (srcnn, fsrcnn):
            assert model.scale == scale
            assert model(torch.rand(2, 1, 7, 5)).shape == (2, 1, 7 * scale, 5 * scale)


def test_srcnn_at_x3_runs_on_the_matlab_bicubic_x3_upsampling():
    """With 1x1 kernels, one channel, unit weights and zero biases every layer passes a
    positive image through: SRCNN's output is then its x3 bicubic input."""
    model = build_model("srcnn", 3, kernels=(1, 1, 1), channels=(1, 1)).double()
    with torch.no_grad():
        for layer in model.body:
            if isinstance(layer, torch.nn.Conv2d):
                layer.weight.fill_(1.0)
                layer.bias.zero_()
    lr = smooth_image((6, 5), seed=2)
    with torch.inference_mode():
        out = model(torch.from_numpy(lr)[None, None])[0, 0].numpy()
    np.testing.assert_allclose(out, matlab_bicubic(lr, 3.0), rtol=0, atol=1e-12)


# EDSR-baseline and RFDN: the counts of their docstrings, worked out there layer by layer
# (head, 16 residual blocks, body conv, sub-pixel upsampler, tail; fea_conv, 4 RFDBs, c,
# lr_conv, one-stage upsampler); x5 is EDSR's one-stage rule beyond x3.
EDSR_X5 = conv(1, 64, 3) + 16 * 2 * conv(64, 64, 3) + conv(64, 64, 3) + conv(64, 64 * 25, 3)
EDSR_X5 += conv(64, 1, 3)


@pytest.mark.parametrize(
    ("name", "scale", "expected"),
    [
        ("edsr", 3, 1_552_193),
        ("edsr", 4, 1_515_265),
        ("edsr", 5, EDSR_X5),
        ("rfdn", 3, 414_959),
        ("rfdn", 4, 418_116),
    ],
)
def test_modern_cnns_are_built_for_the_scale_through_build_model(name, scale, expected):
    model = build_model(name, scale, **registry.METHODS[name].model_args)
    assert model.scale == scale and count_parameters(model) == expected
    with torch.inference_mode():
        assert model(torch.rand(1, 1, 5, 6)).shape == (1, 1, 5 * scale, 6 * scale)


def test_rrlsrn_at_x4_is_the_x2_network_applied_twice():
    torch.manual_seed(0)
    x2 = RRLSRN(2, depth=2, width=8)
    with torch.no_grad():
        for p in x2.parameters():
            p.add_(0.05 * torch.randn_like(p))  # a "trained" network: the residual is on
    x4 = build_model("rrlsrn", 4, depth=2, width=8)
    x4.load_state_dict(x2.state_dict())  # the same keys: no prefix, nothing added
    assert list(x4.state_dict()) == list(x2.state_dict())
    assert count_parameters(x4) == count_parameters(x2)
    x = torch.rand(2, 1, 5, 7)
    with torch.inference_mode():
        twice = x2(x2(x))
        assert twice.shape == (2, 1, 20, 28)
        torch.testing.assert_close(x4(x), twice, rtol=0, atol=0)
        x8 = at_scale(x2, 8)  # three passes
        torch.testing.assert_close(x8(x), x2(twice), rtol=0, atol=0)


def test_untrained_bicubic_bottom_rrlsrn_at_x4_is_matlab_bicubic_x2_twice():
    model = RRLSRN(4, depth=1, width=4, image_branch="bicubic").double().eval()
    lr = smooth_image((5, 6), seed=3)
    with torch.inference_mode():
        out = model(torch.from_numpy(lr)[None, None])[0, 0].numpy()
    expected = matlab_bicubic(matlab_bicubic(lr, 2.0), 2.0)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("make", [lambda: RRLSRN(3), lambda: build_model("rrlsrn", 6)])
def test_rrlsrn_at_x3_is_refused_in_one_line_naming_the_network(make):
    with pytest.raises(ValueError, match=r"^RRLSRN reaches x2, x4, x8, \.\.\. \(powers of 2\)"):
        make()
    with pytest.raises(ValueError, match="LapSRN x2 reaches x2, x4.* not x3$"):
        lapsrn_x2_model(None, scale=3)


def test_at_scale_moves_a_cascade_network_and_refuses_the_others():
    x2 = RRLSRN(2, depth=1, width=4)
    x4 = at_scale(x2, 4)
    assert x4.scale == 4 and at_scale(x2, 2) is x2
    assert torch.equal(x4.residual_conv.weight, x2.residual_conv.weight)
    fsrcnn = build_model("fsrcnn", 2)
    with pytest.raises(ValueError, match="^FSRCNN upsamples by its own layers: it makes x2 only"):
        at_scale(fsrcnn, 4)


def test_checkpoints_of_either_scale_load_into_the_other(tmp_path):
    torch.manual_seed(0)
    x2 = RRLSRN(2, depth=1, width=4)
    args = {"model_name": "rrlsrn", "model_kwargs": {"depth": 1, "width": 4}}
    save_checkpoint({**args, "scale": 2, "model": x2.state_dict()}, tmp_path / "x2.pt")
    x = torch.rand(1, 1, 6, 5)
    cascade = load_model(tmp_path / "x2.pt", scale=4)
    with torch.inference_mode():
        torch.testing.assert_close(cascade(x), x2(x2(x)), rtol=0, atol=0)
    x4 = RRLSRN(4, depth=1, width=4)
    save_checkpoint({**args, "scale": 4, "model": x4.state_dict()}, tmp_path / "x4.pt")
    assert load_model(tmp_path / "x4.pt").scale == 4  # its own scale by default
    back = load_model(tmp_path / "x4.pt", scale=2)
    RRLSRN(2, depth=1, width=4).load_state_dict(load_checkpoint(tmp_path / "x4.pt")["model"])
    with torch.inference_mode():
        torch.testing.assert_close(back(x), x4.upsample_x2(x), rtol=0, atol=0)
    with pytest.raises(CheckpointError, match="x4.pt holds x4 weights: RRLSRN reaches .* not x3"):
        load_model(tmp_path / "x4.pt", scale=3)
    fsrcnn = build_model("fsrcnn", 3)
    save_checkpoint(
        {"model_name": "fsrcnn", "scale": 3, "model": fsrcnn.state_dict()}, tmp_path / "f.pt"
    )
    assert load_model(tmp_path / "f.pt").scale == 3
    with pytest.raises(CheckpointError, match="f.pt holds x3 weights: FSRCNN .* not x2"):
        load_model(tmp_path / "f.pt", scale=2)


def tiny_run(tmp_path, name: str, scale: int, **model_args) -> dict:
    rng = np.random.default_rng(0)
    slices = [smooth_image((24, 24), seed=i).astype(np.float32) for i in range(3)]
    slices = [s + rng.normal(0, 0.01, s.shape).astype(np.float32) for s in slices]
    settings = two_step_settings()
    return train(
        name,
        slices[:2],
        slices[2:],
        tmp_path / name,
        settings,
        model_kwargs=model_args,
        scale=scale,
        progress=False,
    )


def test_training_at_x4_trains_the_x2_weights_through_the_cascade(tmp_path):
    summary = tiny_run(tmp_path, "rrlsrn", 4, depth=1, width=4)
    assert summary["finished"] and math.isfinite(summary["best_val_psnr"])
    state = load_checkpoint(tmp_path / "rrlsrn" / "last.pt")
    assert state["scale"] == 4 and state["model_kwargs"] == {"depth": 1, "width": 4}
    x2 = RRLSRN(2, depth=1, width=4)
    x2.load_state_dict(state["model"])  # the x4 run's weights are an x2 network's
    torch.manual_seed(0)  # the trainer's seed: its initial weights
    start = RRLSRN(4, depth=1, width=4)
    assert not torch.equal(start.residual_conv.weight, x2.residual_conv.weight)
    # the loss at the x4 output reached the first pass too: the input conv has moved
    assert not torch.equal(start.input_conv.weight, x2.input_conv.weight)


def test_training_at_x3_crops_patches_to_whole_lr_pixels(tmp_path):
    assert [hr_patch_size(64, s) for s in (2, 3, 4)] == [64, 63, 64]
    summary = tiny_run(tmp_path, "fsrcnn", 3, d=8, s=4, m=1)
    assert summary["finished"]
    state = load_checkpoint(tmp_path / "fsrcnn" / "best.pt")
    assert state["scale"] == 3 and load_model(tmp_path / "fsrcnn" / "best.pt").scale == 3
    with pytest.raises(ValueError, match="^RRLSRN reaches x2, x4, x8, .* not x3$"):
        tiny_run(tmp_path, "rrlsrn", 3, depth=1, width=4)


def test_shipped_x2_weights_start_a_cascade_but_not_another_network_at_x4():
    state, origin = initial_weights("shipped", "rrlsrn", {}, scale=4)
    assert origin == "shipped:rrlsrn.pt"
    RRLSRN(4).load_state_dict(state)
    with pytest.raises(CheckpointError, match="init 'shipped': .*fsrcnn.pt holds x2 weights"):
        initial_weights("shipped", "fsrcnn", {}, scale=4)


def test_the_workflow_inference_runs_the_cascade_and_checks_the_scale():
    hr = [smooth_image((16, 12), seed=4).astype(np.float32)]
    x2 = RRLSRN(2, depth=1, width=4).eval()
    sr, _ = super_resolve(hr, "rrlsrn", 4, model=at_scale(x2, 4), progress=False)
    lr = make_degradation()(torch.from_numpy(hr[0])[None, None], 4)
    with torch.inference_mode():
        expected = x2(x2(lr)).clamp(0, 1)[0, 0].numpy()
    np.testing.assert_allclose(sr[0], expected, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="rrlsrn: the network makes x2, the run is x4"):
        super_resolve(hr, "rrlsrn", 4, model=x2, progress=False)


# ---------------------------------------------------------------------- the registry


@pytest.mark.parametrize(
    ("name", "scale", "problem", "weights"),
    [
        ("rrlsrn", 2, None, "rrlsrn"),
        ("rrlsrn", 4, None, "rrlsrn"),
        ("rrlsrn", 8, None, "rrlsrn"),
        ("rrlsrn_no_gdl", 4, None, "rrlsrn_no_gdl"),
        (
            "rrlsrn",
            3,
            "rrlsrn reaches x2, x4, x8, ... (powers of 2) by cascading its x2 network, not x3",
            None,
        ),
        (
            "lapsrn_x2",
            6,
            "lapsrn_x2 reaches x2, x4, x8, ... (powers of 2) by cascading its x2 network, not x6",
            None,
        ),
        ("lapsrn_x2", 4, None, None),
        ("fsrcnn", 3, None, None),
        ("fsrcnn", 2, None, "fsrcnn"),
        ("edsr", 4, None, "edsr_x4"),
        ("rfdn", 3, None, None),
        ("nmu", 3, None, None),
        ("bicubic", 5, None, None),
        ("nmu", 1, "nmu: the scale must be an integer of at least 2, got 1", None),
    ],
)
def test_scale_problem_and_weights_at(name, scale, problem, weights):
    method = registry.METHODS[name]
    assert registry.scale_problem(method, scale) == problem
    assert registry.weights_at(method, scale) == weights


def test_a_cascade_method_prefers_weights_given_for_the_scale_itself():
    mine = registry.resolve("rrlsrn", {"weights": "rrlsrn_no_gdl"}, scale=4)
    assert mine.weights == {2: "rrlsrn", 4: "rrlsrn_no_gdl"}
    assert registry.weights_at(mine, 4) == "rrlsrn_no_gdl"
    assert registry.weights_at(mine, 8) == "rrlsrn"
    own = registry.resolve("mine", {"kind": "python", "entrypoint": "m:f"})
    assert not own.cascade and registry.scale_problem(own, 7) is None


def test_the_methods_table_says_which_scales_each_method_makes():
    rows = {
        line.split("|")[1].strip(): line.split("|")[5].strip()
        for line in registry.methods_table().splitlines()[2:]
    }
    assert rows["bicubic"] == rows["nmu"] == "any"
    assert rows["rrlsrn"] == rows["lapsrn_x2"] == "x2, x4, ... (x2 cascade)"
    assert rows["fsrcnn"] == "any (trained); x2, x4 shipped"
    assert rows["edsr"] == rows["rfdn"] == "any (trained); x2, x4 shipped"
    cascades = [m.name for m in registry.BUILT_IN if m.cascade]
    assert cascades == [
        "lapsrn_x2",
        "rrlsrn",
        "rrlsrn_no_gdl",
        "rrlsrn_bicubic_bottom",
        "rrlsrn_no_bottom",
    ]
