"""Intensity augmentation of the trainer's HR patches (rrlsrn.augment), against hand values,
numpy's interpolation and the moments of Rician noise."""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pytest
import torch
from test_train import TINY, smooth_slices, tiny_settings

from rrlsrn.augment import (
    AUGMENT_FIELDS,
    augment_intensity,
    bias_field,
    invert_tissue,
    monotone_remap,
    random_knots,
)
from rrlsrn.checkpoint import load_checkpoint
from rrlsrn.settings import TrainSettings, make_settings
from rrlsrn.train import run_fingerprint, train


def settings(**values) -> TrainSettings:
    return make_settings("smoke", values)


def test_no_augmentation_returns_the_patches_and_draws_nothing():
    hr = torch.rand(3, 1, 8, 8)
    gen = torch.Generator().manual_seed(5)
    state = gen.get_state()
    assert augment_intensity(hr, settings(), gen) is hr
    assert torch.equal(gen.get_state(), state)


def test_inversion_by_hand():
    # weight = smoothstep((x - 0.03) / 0.12): 0 below 0.03, 1 from 0.15 up
    x = torch.tensor([0.0, 0.02, 0.09, 0.15, 0.5, 1.0])
    # x = 0.09: t = 0.5, smoothstep 0.5, (1 - 0.09) * 0.5 = 0.455
    expected = torch.tensor([0.0, 0.0, 0.455, 0.85, 0.5, 0.0])
    assert torch.allclose(invert_tissue(x), expected, atol=1e-6)


def test_monotone_remap_matches_numpy_interp():
    knots = torch.tensor([[0.0, 0.5, 0.6, 1.0], [0.0, 0.1, 0.2, 1.0]])
    x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    x[0, 0, 0, :3] = torch.tensor([0.0, 1.0 / 6.0, 1.0])
    out = monotone_remap(x, knots)
    for b in range(2):
        ref = np.interp(x[b].numpy(), np.linspace(0, 1, 4), knots[b].numpy())
        assert np.allclose(out[b].numpy(), ref, atol=1e-6)
    assert torch.allclose(out[0, 0, 0, :3], torch.tensor([0.0, 0.25, 1.0]))


def test_random_knots_rise_from_zero_to_one():
    knots = random_knots(50, torch.Generator().manual_seed(1))
    assert torch.all(knots[:, 0] == 0) and torch.allclose(knots[:, -1], torch.ones(50))
    assert torch.all(knots.diff(dim=1) > 0)


def test_bias_field_is_bilinear_between_corner_gains():
    gen = torch.Generator().manual_seed(3)
    field = bias_field(4, 9, 0.5, gen)
    grid = torch.rand(4, 1, 2, 2, generator=torch.Generator().manual_seed(3)) * 2 - 1
    log_field = field.log() / 0.5
    assert torch.allclose(log_field[:, :, 0, 0], grid[:, :, 0, 0], atol=1e-5)
    assert torch.allclose(log_field[:, :, -1, -1], grid[:, :, 1, 1], atol=1e-5)
    # the centre of a bilinear 2x2 field is the mean of the four corners
    assert torch.allclose(log_field[:, :, 4, 4], grid.mean(dim=(2, 3)), atol=1e-5)
    assert field.min() >= math.exp(-0.5) - 1e-6 and field.max() <= math.exp(0.5) + 1e-6


def test_gamma_follows_the_generator_draw():
    hr = torch.linspace(0, 1, 64).reshape(1, 1, 8, 8).repeat(3, 1, 1, 1)
    out = augment_intensity(hr, settings(augment_gamma=0.4), torch.Generator().manual_seed(7))
    log_gamma = (torch.rand(3, generator=torch.Generator().manual_seed(7)) * 2 - 1) * 0.4
    expected = hr ** torch.exp(log_gamma).view(3, 1, 1, 1)
    assert torch.allclose(out, expected, atol=1e-6)


def test_rician_noise_has_the_second_moment_of_its_sigma():
    # E[M^2] = A^2 + 2 sigma^2 for Rician magnitude M of signal A
    hr = torch.full((4, 1, 256, 256), 0.5)
    gen = torch.Generator().manual_seed(11)
    out = augment_intensity(hr, settings(augment_noise=0.1), gen)
    sigma = torch.rand(4, generator=torch.Generator().manual_seed(11)) * 0.1
    second = (out**2).mean(dim=(1, 2, 3))
    assert torch.allclose(second, 0.25 + 2 * sigma**2, atol=2e-3)


def test_every_augmentation_keeps_range_and_input_and_is_seeded():
    hr = torch.from_numpy(np.stack(smooth_slices(6, 32)))[:, None]
    kept = hr.clone()
    on = settings(
        augment_invert=0.5, augment_remap=0.5, augment_gamma=0.5, augment_bias=0.5,
        augment_noise=0.05,
    )  # fmt: skip
    a = augment_intensity(hr, on, torch.Generator().manual_seed(2))
    b = augment_intensity(hr, on, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and torch.equal(hr, kept)
    assert a.min() >= 0 and a.max() <= 1 and not torch.allclose(a, hr, atol=1e-3)
    assert a.shape == hr.shape and a.is_contiguous()


def test_always_inverted_patches_become_their_inversion():
    hr = torch.from_numpy(np.stack(smooth_slices(2, 32)))[:, None]
    out = augment_intensity(hr, settings(augment_invert=1.0), torch.Generator())
    assert torch.allclose(out, invert_tissue(hr).clamp(0, 1))


@pytest.mark.parametrize("key", AUGMENT_FIELDS)
def test_bad_augmentation_values_are_named(key):
    with pytest.raises(ValueError, match=rf"{key}: -0.1 is less than the minimum of 0"):
        make_settings("pretrain", {key: -0.1})
    with pytest.raises(ValueError, match=rf"{key}: 'a lot' is not of type 'number'"):
        make_settings("pretrain", {key: "a lot"})


def test_fingerprint_names_augmentation_only_when_on():
    rest = (2, {"name": "bicubic"}, "scratch", None, [], [])
    off = run_fingerprint("rrlsrn", {}, settings(), *rest)
    on = run_fingerprint("rrlsrn", {}, settings(augment_gamma=0.3), *rest)
    assert not set(AUGMENT_FIELDS) & set(off)
    assert on["augment_gamma"] == 0.3 and "augment_noise" not in on


def test_augmented_training_resumes_bit_for_bit(tmp_path):
    slices = smooth_slices(6)
    augmented = tiny_settings(augment_invert=0.5, augment_gamma=0.3, augment_noise=0.02)
    run = partial(
        train, "rrlsrn", slices[:4], slices[4:], settings=augmented, model_kwargs=TINY,
        progress=False,
    )  # fmt: skip
    run(tmp_path / "a")
    run(tmp_path / "b", stop_at_step=4)
    run(tmp_path / "b")
    a, b = (load_checkpoint(tmp_path / d / "last.pt") for d in "ab")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    plain = run(tmp_path / "c", settings=tiny_settings())
    c = load_checkpoint(tmp_path / "c" / "last.pt")
    assert plain["finished"]
    assert not all(torch.equal(a["model"][k], c["model"][k]) for k in a["model"])


def test_augmentation_figure_shows_each_augmentation_as_the_trainer_applies_it():
    from rrlsrn.figures import augmentation_figure

    hr = np.stack(smooth_slices(1, 32))[0]
    on = settings(augment_invert=0.25, augment_gamma=0.3)
    fig = augmentation_figure(hr, on, seed=4)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["HR slice (T1w)", "invert (p = 1)", "gamma 0.3", "all of them"]
    inverted = fig.axes[1].images[0].get_array()
    assert np.allclose(inverted, invert_tissue(torch.from_numpy(hr)).numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="switch every intensity augmentation off"):
        augmentation_figure(hr, settings())


def test_augmentation_figure_command_writes_png_and_pdf_and_names_bad_input(tmp_path, capsys):
    from rrlsrn.cli import main
    from rrlsrn.io import save_npz_atomic

    data = tmp_path / "s.npz"
    save_npz_atomic(data, hr=np.stack(smooth_slices(3, 32)))
    argv = ["augmentation-figure", str(data), str(tmp_path / "aug")]
    assert main([*argv, "--set", "augment_bias=0.2", "--slice", "1"]) == 0
    assert (tmp_path / "aug.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "aug.pdf").stat().st_size > 0
    assert main([*argv[:2], str(tmp_path / "off")]) == 1
    far = [*argv[:2], str(tmp_path / "far"), "--set", "augment_bias=0.2", "--slice", "3"]
    assert main(far) == 1
    err = capsys.readouterr().err
    assert "switches every intensity augmentation off: turn some on" in err
    assert "--slice 3: " in err and "has slices 0 to 2" in err
    assert not list(tmp_path.glob("off*")) and not list(tmp_path.glob("far*"))
