"""Tests for baselines.srcnn: SRCNN and FSRCNN as learned models of the one trainer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rrlsrn.checkpoint import load_model
from rrlsrn.degrade import bicubic_up, make_degradation
from rrlsrn.infer import run_model
from rrlsrn.metrics import psnr
from rrlsrn.models import build_model, count_parameters
from rrlsrn.settings import make_settings
from rrlsrn.train import train


def test_srcnn_915_has_8129_parameters_and_955_has_57281():
    # 9x9x1x64 + 64, 1x1x64x32 + 32, 5x5x32x1 + 1
    assert count_parameters(build_model("srcnn")) == 81 * 64 + 64 + 64 * 32 + 32 + 25 * 32 + 1
    assert count_parameters(build_model("srcnn")) == 8_129
    # 9x9x1x64 + 64, 5x5x64x32 + 32, 5x5x32x1 + 1
    assert count_parameters(build_model("srcnn", kernels=[9, 5, 5])) == 57_281


def test_fsrcnn_parameters_follow_from_its_layers():
    d, s, m = 56, 12, 4
    expected = (
        (25 * d + d)
        + d  # 5x5 feature extraction + PReLU
        + (d * s + s)
        + s  # 1x1 shrinking + PReLU
        + m * ((9 * s * s + s) + s)  # m 3x3 mapping layers + PReLU
        + (s * d + d)
        + d  # 1x1 expanding + PReLU
        + (81 * d + 1)  # 9x9 transposed convolution
    )
    assert count_parameters(build_model("fsrcnn", d=d, s=s, m=m)) == expected == 12_809


@pytest.mark.parametrize("name", ["srcnn", "fsrcnn"])
def test_output_is_exactly_twice_the_input_size(name):
    out = build_model(name)(torch.rand(2, 1, 17, 13))
    assert out.shape == (2, 1, 34, 26)


def test_srcnn_input_is_the_bicubic_upsampled_lr():
    # With the first and last layers passing channel 0 through (positive input survives
    # the ReLUs), SRCNN must return exactly its input: the bicubic upsampling of the LR.
    model = build_model("srcnn", kernels=[9, 1, 5])
    with torch.no_grad():
        for conv in model.body[::2]:
            conv.weight.zero_()
            conv.bias.zero_()
        model.body[0].weight[0, 0, 4, 4] = 1
        model.body[2].weight[0, 0, 0, 0] = 1
        model.body[4].weight[0, 0, 2, 2] = 1
    lr = torch.rand(1, 1, 10, 12) * 0.5 + 0.25  # bicubic of it stays positive
    torch.testing.assert_close(model(lr), bicubic_up(lr, 2))


def test_even_kernel_sizes_are_refused():
    with pytest.raises(ValueError, match="odd"):
        build_model("srcnn", kernels=[9, 2, 5])


@pytest.mark.parametrize("name", ["srcnn", "fsrcnn"])
def test_short_fine_tuning_from_shipped_weights_beats_bicubic(name, real_slices, tmp_path):
    hr = real_slices[1:2]
    train_slices, val_slices = [real_slices[0]], [real_slices[0]]
    settings = make_settings("smoke", {"gdl_weight": 0.0})
    summary = train(
        name,
        train_slices,
        val_slices,
        tmp_path,
        settings,
        weights_name=name,
        progress=False,
        threads=2,
    )
    assert summary["finished"] and summary["init"].startswith("shipped:")
    model = load_model(tmp_path / "best.pt")
    lr = make_degradation("bicubic")(torch.from_numpy(hr), 2)
    sr = run_model(model, lr, torch.device("cpu")).clamp(0, 1).numpy()
    bicubic = np.clip(bicubic_up(lr.numpy(), 2), 0, 1)
    gain = psnr(sr[0], hr[0], shave=2) - psnr(bicubic[0], hr[0], shave=2)
    assert gain > 0.5
