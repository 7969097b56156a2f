"""Tests for rrlsrn.infer: degrade -> super-resolve -> clip, grouping by shape, timing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rrlsrn import registry
from rrlsrn.degrade import imresize
from rrlsrn.infer import classical_method, run_model, super_resolve
from rrlsrn.models import RRLSRN


def mixed_slices() -> list[np.ndarray]:
    """Five HR slices of two shapes, interleaved so grouping must restore the order."""
    rng = np.random.default_rng(7)
    shapes = [(12, 10), (8, 16), (12, 10), (8, 16), (12, 10)]
    slices = [rng.random(shape).astype(np.float32) for shape in shapes]
    slices[0][:, :5], slices[0][:, 5:] = 0.0, 1.0  # a sharp edge: bicubic overshoots it
    return slices


def expected_bicubic(hr: np.ndarray) -> np.ndarray:
    """x0.5 antialiased bicubic, then x2 bicubic, clipped to [0, 1] (float64 reference)."""
    return np.clip(imresize(imresize(hr.astype(np.float64), 0.5), 2.0), 0.0, 1.0)


def test_bicubic_matches_imresize_round_trip_and_keeps_order():
    slices = mixed_slices()
    sr, seconds = super_resolve(slices, "bicubic", progress=False)
    assert len(sr) == len(slices)
    for hr, out in zip(slices, sr, strict=True):
        assert out.shape == hr.shape and out.dtype == np.float32
        np.testing.assert_allclose(out, expected_bicubic(hr), atol=1e-5)
    # the round trip really changes the images (so the comparison above is not trivial)
    assert not np.allclose(sr[0], slices[0], atol=1e-2)
    # and clipping happened: bicubic rings beyond [0, 1] at the edge of slice 0
    raw = imresize(imresize(slices[0].astype(np.float64), 0.5), 2.0)
    assert raw.min() < -0.01 and raw.max() > 1.01
    assert min(s.min() for s in sr) >= 0.0 and max(s.max() for s in sr) <= 1.0
    # one positive time per slice, equal within a shape group
    assert seconds.shape == (5,)
    assert (seconds > 0).all()
    assert seconds[0] == seconds[2] == seconds[4]
    assert seconds[1] == seconds[3]


def test_empty_input_gives_empty_output():
    sr, seconds = super_resolve([], "bicubic", progress=False)
    assert sr == [] and seconds.shape == (0,)


def test_other_degradation_is_used():
    # gaussian_block on a constant image gives the same constant; bicubic x2 keeps it
    hr = [np.full((8, 8), 0.4, np.float32)]
    sr, _ = super_resolve(hr, "bicubic", degradation={"name": "gaussian_block"}, progress=False)
    np.testing.assert_allclose(sr[0], 0.4, atol=1e-6)
    with pytest.raises(ValueError, match="unknown degradation"):
        super_resolve(hr, "bicubic", degradation={"name": "nope"}, progress=False)


def test_untrained_rrlsrn_with_bicubic_branch_equals_bicubic():
    torch.manual_seed(0)
    model = RRLSRN(image_branch="bicubic")  # residual conv starts at zero
    slices = mixed_slices()
    sr, seconds = super_resolve(slices, "rrlsrn", model=model, batch_size=2, progress=False)
    for hr, out in zip(slices, sr, strict=True):
        np.testing.assert_allclose(out, expected_bicubic(hr), atol=1e-5)
    assert (seconds > 0).all() and seconds.shape == (5,)


def test_learned_path_really_runs_the_model():
    torch.manual_seed(0)
    model = RRLSRN(image_branch="bicubic")
    with torch.no_grad():
        model.residual_conv.bias.fill_(0.25)  # output = bicubic + 0.25 everywhere
    slices = mixed_slices()[:2]
    sr, _ = super_resolve(slices, "shifted", model=model, progress=False)
    for hr, out in zip(slices, sr, strict=True):
        raw = imresize(imresize(hr.astype(np.float64), 0.5), 2.0)
        np.testing.assert_allclose(out, np.clip(raw + 0.25, 0, 1), atol=1e-5)


def test_unknown_method_without_model_raises():
    with pytest.raises(ValueError, match="'srcnn_typo'"):
        super_resolve([np.zeros((8, 8), np.float32)], "srcnn_typo", progress=False)


def nearest(lr: torch.Tensor, scale: int, degradation=None) -> torch.Tensor:
    return lr.repeat_interleave(scale, dim=-2).repeat_interleave(scale, dim=-1)


def nearest_plus_one(lr: torch.Tensor, scale: int, degradation=None) -> torch.Tensor:
    return nearest(lr, scale) + 1.0  # pushes everything above 1: clipping must bring it back


def test_a_classical_method_by_import_path_runs():
    with pytest.raises(ValueError, match="unknown method 'nearest'"):
        super_resolve([np.zeros((8, 8), np.float32)], "nearest", progress=False)
    slices = mixed_slices()
    sr, _ = super_resolve(slices, "nearest", factory=f"{__name__}:nearest", progress=False)
    for hr, out in zip(slices, sr, strict=True):
        lr = imresize(hr.astype(np.float64), 0.5)
        expected = np.kron(lr, np.ones((2, 2)))
        np.testing.assert_allclose(out, np.clip(expected, 0, 1), atol=1e-5)
    sr, _ = super_resolve(
        slices[1:2], "plus_one", factory=f"{__name__}:nearest_plus_one", progress=False
    )
    # the random slice's LR lies in (0, 1), so every output pixel is above 1 before clipping
    assert imresize(slices[1].astype(np.float64), 0.5).min() > 0
    np.testing.assert_array_equal(sr[0], np.ones_like(slices[1]))


def test_run_model_batches_give_the_same_result():
    torch.manual_seed(1)
    model = RRLSRN(depth=2, width=8)
    with torch.no_grad():
        model.residual_conv.weight.normal_(0, 0.1)  # a non-trivial residual
    lr = torch.rand(5, 6, 7)
    full = run_model(model, lr, torch.device("cpu"), batch_size=5)
    split = run_model(model, lr, torch.device("cpu"), batch_size=2)
    assert full.shape == (5, 12, 14) and full.dtype == torch.float32
    torch.testing.assert_close(full, split, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        direct = model(lr[:, None])[:, 0]
    torch.testing.assert_close(full, direct, atol=1e-5, rtol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
def test_run_model_on_cuda_matches_cpu():
    torch.manual_seed(2)
    model = RRLSRN()
    with torch.no_grad():
        model.residual_conv.weight.normal_(0, 0.01)
    lr = torch.rand(6, 24, 20)
    cpu = run_model(model, lr, torch.device("cpu"), batch_size=4)
    cuda = run_model(model, lr, torch.device("cuda"), batch_size=4)
    assert cuda.device.type == "cpu" and cuda.dtype == torch.float32
    assert cuda.shape == cpu.shape == (6, 48, 40)
    # bf16 autocast on the GPU: ~3 significant digits
    torch.testing.assert_close(cuda, cpu, atol=3e-2, rtol=3e-2)
    assert (cuda - cpu).abs().mean() < 5e-3


SEEN: dict = {}


def spy(lr, scale, degradation, offset=0.0):
    SEEN.update(name=degradation.name, params=degradation.params, offset=offset)
    return degradation.adjoint(lr, scale) * scale**2 + offset


def test_classical_methods_get_the_configured_operator_and_their_params():
    SEEN.clear()
    hr = [np.full((8, 6), 0.25, np.float32)]
    degradation = {"name": "gaussian_block", "sigma": 0.8}
    sr, _ = super_resolve(
        hr,
        "spy",
        2,
        degradation,
        params={"offset": 0.5},
        factory=f"{__name__}:spy",
        progress=False,
    )
    assert SEEN == {"name": "gaussian_block", "params": {"sigma": 0.8}, "offset": 0.5}
    # a constant image: block-mean adjoint * s^2 replicates the LR value, plus the offset
    np.testing.assert_allclose(sr[0], 0.75, atol=1e-6)


def test_every_classical_method_of_the_registry_is_found_by_name():
    for method in registry.METHODS.values():
        if method.classical:
            assert classical_method(method.name) is registry.load(method.factory)
    with pytest.raises(ValueError, match="'rrlsrn' is learned: it needs a model"):
        classical_method("rrlsrn")


@pytest.mark.parametrize(
    ("slices", "message"),
    [
        ([np.zeros((8, 8, 2), np.float32)], "slice 0: expected a 2D image"),
        ([np.zeros((8, 8)), np.zeros((9, 8))], "slice 1: size 9x8 is not divisible by the scale 2"),
        ([np.full((4, 4), np.nan)], "slice 0: holds 16 NaN/inf values"),
    ],
)
def test_bad_hr_slices_are_refused_before_any_work(slices, message):
    with pytest.raises(ValueError, match=message):
        super_resolve(slices, "bicubic", progress=False)
