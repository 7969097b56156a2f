"""Tests for rrlsrn.models: RRLSRN architecture, initialisation and the model registry."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rrlsrn.degrade import imresize
from rrlsrn.models import RRLSRN, bilinear_kernel, build_model, count_parameters


def n_modules(model: nn.Module, kind: type) -> int:
    return sum(type(m) is kind for m in model.modules())


def expected_params(depth: int, width: int, transposed: bool = True) -> int:
    input_conv = 1 * width * 9 + width  # 1 -> width, 3x3, bias
    inner = depth * (width * width * 9 + width)  # width -> width, 3x3, bias
    feature_up = width * width * 16 + width  # transposed conv width -> width, 4x4, bias
    residual = width * 9 + 1  # width -> 1, 3x3, bias
    image_up = 16 if transposed else 0  # transposed conv 1 -> 1, 4x4, no bias
    return input_conv + inner + feature_up + residual + image_up


@pytest.fixture(scope="module")
def default_model() -> RRLSRN:
    torch.manual_seed(0)
    return RRLSRN().eval()


def test_default_architecture_layer_counts(default_model):
    assert n_modules(default_model, nn.Conv2d) == 13  # input + 11 inner + residual
    assert n_modules(default_model, nn.ConvTranspose2d) == 2  # feature and image branch


def test_default_parameter_count(default_model):
    # input conv        1*64*9 + 64          =    640
    # 11 inner convs    11*(64*64*9 + 64)    = 11 * 36928 = 406208
    # feature up        64*64*16 + 64        =  65600
    # residual conv     64*9 + 1             =    577
    # image up (no bias) 1*1*4*4             =     16
    # total                                  = 473041
    assert 640 + 406208 + 65600 + 577 + 16 == 473041
    assert count_parameters(default_model) == 473041
    assert expected_params(11, 64) == 473041
    assert count_parameters(RRLSRN(image_branch="bicubic")) == 473041 - 16
    assert count_parameters(RRLSRN(image_branch="none")) == 473041 - 16


@pytest.mark.parametrize("shape", [(1, 1, 17, 23), (2, 1, 32, 32), (1, 1, 1, 1), (3, 1, 6, 5)])
def test_output_is_exactly_twice_the_input(default_model, shape):
    with torch.no_grad():
        y = default_model(torch.rand(shape))
    assert y.shape == (shape[0], 1, 2 * shape[2], 2 * shape[3])


def test_image_branch_is_bilinear_initialised():
    model = RRLSRN(depth=1, width=4)
    w = model.image_up.weight
    assert w.shape == (1, 1, 4, 4)
    filt = torch.tensor([0.25, 0.75, 0.75, 0.25])  # 1 - |i - 1.5| / 2, i = 0..3
    torch.testing.assert_close(w[0, 0], torch.outer(filt, filt))
    torch.testing.assert_close(bilinear_kernel(4), torch.outer(filt, filt))
    # odd size: factor 2, centre 1 -> [0.5, 1, 0.5]
    torch.testing.assert_close(bilinear_kernel(3)[1], torch.tensor([0.5, 1.0, 0.5]))


def test_untrained_transposed_model_is_bilinear_upsampling_in_the_interior(default_model):
    x = torch.rand(2, 1, 9, 12, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = default_model(x)
    ref = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    # interior only: the transposed conv zero-pads, interpolate clamps at the border
    torch.testing.assert_close(y[..., 1:-1, 1:-1], ref[..., 1:-1, 1:-1], atol=1e-6, rtol=0)
    # ... and the feature branch really is switched off by the zero residual conv
    assert torch.count_nonzero(default_model.residual_conv.weight) == 0


def test_untrained_transposed_model_border_of_constant_image():
    # With zero padding, a constant 1 image gives 1 inside, 0.75 on the edges (one tap of
    # weight 0.25 falls outside) and 0.75 * 0.75 in the corners.
    model = RRLSRN(depth=2, width=8).eval()
    with torch.no_grad():
        y = model(torch.ones(1, 1, 5, 5))[0, 0]
    torch.testing.assert_close(y[1:-1, 1:-1], torch.ones(8, 8))
    torch.testing.assert_close(y[0, 1:-1], torch.full((8,), 0.75))
    torch.testing.assert_close(y[1:-1, -1], torch.full((8,), 0.75))
    assert y[0, 0].item() == pytest.approx(0.5625, abs=1e-6)


def test_untrained_bicubic_model_is_imresize_x2():
    torch.manual_seed(0)
    model = RRLSRN(depth=2, width=8, image_branch="bicubic").eval()
    assert n_modules(model, nn.ConvTranspose2d) == 1  # only the feature branch
    x = torch.rand(2, 1, 7, 10, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        y = model(x)
    ref = imresize(x, 2)
    assert y.shape == (2, 1, 14, 20)
    torch.testing.assert_close(y, ref, atol=1e-6, rtol=0)


def test_no_bottom_model_is_the_feature_branch_alone():
    # Table 5 read as "no image branch": the output is the residual conv of the upsampled
    # features, written out here layer by layer, with no global residual.
    torch.manual_seed(0)
    model = RRLSRN(depth=2, width=8, image_branch="none").eval()
    assert model.image_up is None and n_modules(model, nn.ConvTranspose2d) == 1
    assert torch.count_nonzero(model.residual_conv.weight) > 0  # it makes the image
    x = torch.rand(2, 1, 7, 10, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        f = F.leaky_relu(
            F.conv2d(x, model.input_conv.weight, model.input_conv.bias, padding=1), 0.2
        )
        for conv in model.inner:
            f = F.leaky_relu(F.conv2d(f, conv.weight, conv.bias, padding=1), 0.2)
        up = model.feature_up
        f = F.leaky_relu(F.conv_transpose2d(f, up.weight, up.bias, stride=2, padding=1), 0.2)
        expected = F.conv2d(f, model.residual_conv.weight, model.residual_conv.bias, padding=1)
        torch.testing.assert_close(model(x), expected)
        # a constant added to the input is not carried to the output (no identity path)
        model.residual_conv.weight.zero_()
        torch.testing.assert_close(
            model(x + 1), torch.full((2, 1, 14, 20), model.residual_conv.bias.item())
        )


def test_trained_residual_changes_output():
    # Once the residual conv is non-zero the feature branch contributes.
    torch.manual_seed(0)
    model = RRLSRN(depth=1, width=4).eval()
    x = torch.rand(1, 1, 6, 6)
    with torch.no_grad():
        base = model(x)
        model.residual_conv.bias.fill_(0.5)
        shifted = model(x)
    torch.testing.assert_close(shifted - base, torch.full_like(base, 0.5))


@pytest.mark.parametrize("depth,width", [(1, 4), (3, 8), (5, 2)])
def test_depth_and_width_arguments(depth, width):
    model = RRLSRN(depth=depth, width=width)
    assert n_modules(model, nn.Conv2d) == depth + 2
    assert len(model.inner) == depth
    assert model.input_conv.out_channels == width
    assert all(c.in_channels == c.out_channels == width for c in model.inner)
    assert model.feature_up.out_channels == width
    assert model.residual_conv.in_channels == width
    assert count_parameters(model) == expected_params(depth, width)
    with torch.no_grad():
        assert model(torch.rand(1, 1, 5, 7)).shape == (1, 1, 10, 14)


def test_invalid_arguments_raise():
    with pytest.raises(ValueError, match="image_branch"):
        RRLSRN(image_branch="nearest")
    with pytest.raises(ValueError, match="depth"):
        RRLSRN(depth=0)
    with pytest.raises(ValueError, match="width"):
        RRLSRN(width=0)


def test_build_model():
    model = build_model("rrlsrn", depth=2, width=8, image_branch="bicubic")
    assert isinstance(model, RRLSRN)
    assert (model.depth, model.width, model.image_branch) == (2, 8, "bicubic")
    assert count_parameters(model) == expected_params(2, 8, transposed=False)
    with pytest.raises(KeyError, match="rrlsrn") as info:
        build_model("nope")
    assert "nope" in str(info.value)


def test_count_parameters_counts_trainable_only():
    model = RRLSRN(depth=1, width=4)
    total = expected_params(1, 4)
    assert count_parameters(model) == total
    model.image_up.weight.requires_grad_(False)
    assert count_parameters(model) == total - 16
    model.input_conv.requires_grad_(False)
    assert count_parameters(model) == total - 16 - (1 * 4 * 9 + 4)
