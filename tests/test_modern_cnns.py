"""Tests for baselines.edsr (EDSR-baseline) and baselines.rfdn (RFDN): shapes, parameter
counts worked out from the layers, structural identities, training, CPU/CUDA agreement."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from baselines.edsr import EDSR, ResBlock
from baselines.rfdn import ESA, RFDN, SRB
from rrlsrn.degrade import imresize

SIZES = [(16, 16), (17, 23), (5, 9), (1, 2)]


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def conv(cin: int, cout: int, k: int) -> int:
    """Parameters of a k x k convolution with bias."""
    return cin * cout * k * k + cout


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("cls", [EDSR, RFDN])
def test_output_is_scale_times_the_input_size(cls, size, scale):
    torch.manual_seed(0)
    model = cls(scale=scale, **({"n_resblocks": 2} if cls is EDSR else {"num_modules": 1}))
    assert model.scale == scale
    with torch.inference_mode():
        y = model(torch.rand(2, 1, *size))
    assert y.shape == (2, 1, size[0] * scale, size[1] * scale)
    assert torch.isfinite(y).all()


def test_full_size_models_keep_the_size_of_16x16_and_17x23_patches():
    with torch.inference_mode():
        for model in (EDSR(scale=4), RFDN(scale=4)):
            assert model(torch.rand(1, 1, 16, 16)).shape == (1, 1, 64, 64)
            assert model(torch.rand(1, 1, 17, 23)).shape == (1, 1, 68, 92)


def test_edsr_parameters_follow_from_its_layers():
    f = 64
    head = 1 * f * 9 + f  # 3x3, 1 -> 64
    block = 2 * (f * f * 9 + f)  # conv3x3 - ReLU - conv3x3
    body_conv = f * f * 9 + f
    tail = f * 1 * 9 + 1  # 3x3, 64 -> 1
    up = {2: f * 4 * f * 9 + 4 * f, 3: f * 9 * f * 9 + 9 * f, 4: 2 * (f * 4 * f * 9 + 4 * f)}
    for scale, expected in [(2, 1_367_553), (3, 1_552_193), (4, 1_515_265)]:
        assert head + 16 * block + body_conv + up[scale] + tail == expected
        assert n_params(EDSR(scale=scale)) == expected
    # RGB in/out (the paper's 1.37M at x2): head and tail change only, 2,306 more
    assert (3 * f * 9 + f) + (f * 3 * 9 + 3) - head - tail == 2_306
    assert 1_367_553 + 2_306 == 1_369_859
    assert n_params(EDSR(scale=2, n_resblocks=3, n_feats=8)) == (
        conv(1, 8, 3) + 3 * 2 * conv(8, 8, 3) + conv(8, 8, 3) + conv(8, 32, 3) + conv(8, 1, 3)
    )


def test_rfdn_parameters_follow_from_its_layers():
    nf, dc, f = 50, 25, 12
    esa = conv(nf, f, 1) + conv(f, f, 1) + 4 * conv(f, f, 3) + conv(f, nf, 1)
    assert esa == 612 + 156 + 4 * 1_308 + 650 == 6_650
    rfdb = 3 * conv(nf, dc, 1) + 3 * conv(nf, nf, 3) + conv(nf, dc, 3) + conv(4 * dc, nf, 1) + esa
    assert rfdb == 3_825 + 67_650 + 11_275 + 5_050 + 6_650 == 94_450
    rest = conv(1, nf, 3) + conv(4 * nf, nf, 1) + conv(nf, nf, 3)  # fea_conv, c, lr_conv
    for scale, expected in [(2, 412_704), (3, 414_959), (4, 418_116)]:
        assert rest + 4 * rfdb + conv(nf, scale * scale, 3) == expected
        assert n_params(RFDN(scale=scale)) == expected
    # RGB in/out x4 (the released network's configuration): fea_conv and upsampler grow
    rgb_x4 = conv(3, nf, 3) + 4 * rfdb + conv(4 * nf, nf, 1) + conv(nf, nf, 3) + conv(nf, 48, 3)
    assert rgb_x4 == 433_448 == 418_116 + 15_332


def _zero_(module: nn.Module) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.zero_()


def test_edsr_resblock_is_the_identity_with_zero_convs_and_scales_its_residual():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 9, 7)
    block = ResBlock(8, res_scale=1.0)
    with torch.no_grad():
        residual = block(x) - x
        assert residual.abs().max() > 1e-3  # a random block is not the identity
        block.res_scale = 0.1
        torch.testing.assert_close(block(x) - x, 0.1 * residual, rtol=1e-5, atol=1e-6)
        block.conv2.weight.zero_()
        block.conv2.bias.zero_()
        assert torch.equal(block(x), x)
        # conv1 giving relu(-1) = 0 everywhere: the block adds conv2's bias, times res_scale
        block2 = ResBlock(8, res_scale=0.5)
        block2.conv1.weight.zero_()
        block2.conv1.bias.fill_(-1.0)
        torch.testing.assert_close(
            block2(x), x + 0.5 * block2.conv2.bias.view(1, 8, 1, 1), rtol=0, atol=1e-7
        )


def test_edsr_with_zero_tail_weights_outputs_exactly_the_tail_bias():
    torch.manual_seed(0)
    model = EDSR(scale=3, n_resblocks=2)
    with torch.no_grad():
        model.tail.weight.zero_()
        model.tail.bias.fill_(0.25)
        y = model(torch.rand(1, 1, 6, 5))
    assert torch.equal(y, torch.full((1, 1, 18, 15), 0.25))


def _delta_(conv_layer: nn.Conv2d, pairs: list[tuple[int, int]]) -> None:
    """Zero ``conv_layer``, then copy input channel ``i`` to output channel ``o`` per pair."""
    _zero_(conv_layer)
    k = conv_layer.kernel_size[0] // 2
    with torch.no_grad():
        for o, i in pairs:
            conv_layer.weight[o, i, k, k] = 1.0


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_edsr_set_to_copy_pixels_is_nearest_neighbour_upsampling(scale):
    """Head copies the image to channel 0, every block and the body conv are zero (so only
    the global skip carries it), each upsampling conv copies channel 0 to the r*r channels
    that PixelShuffle turns into channel 0's sub-pixels, the tail copies channel 0."""
    torch.manual_seed(0)
    model = EDSR(scale=scale, n_resblocks=3, n_feats=16)
    _delta_(model.head, [(0, 0)])
    _zero_(model.body)
    _zero_(model.body_conv)
    for layer in model.upsampler:
        if isinstance(layer, nn.Conv2d):
            r2 = layer.out_channels // 16
            _delta_(layer, [(j, 0) for j in range(r2)])
    _delta_(model.tail, [(0, 0)])
    x = torch.rand(2, 1, 5, 7)
    with torch.no_grad():
        y = model(x)
    nearest = x.repeat_interleave(scale, dim=-2).repeat_interleave(scale, dim=-1)
    torch.testing.assert_close(y, nearest, rtol=0, atol=1e-6)
    # the body (identity blocks) and its conv add a second copy on top of the skip
    _delta_(model.body_conv, [(0, 0)])
    with torch.no_grad():
        torch.testing.assert_close(model(x), 2 * nearest, rtol=0, atol=1e-6)


def test_rfdn_srb_is_leaky_relu_of_the_input_with_zero_conv():
    srb = SRB(4)
    _zero_(srb)
    x = torch.tensor([-1.0, -0.2, 0.0, 0.5]).reshape(1, 4, 1, 1).expand(1, 4, 3, 3)
    with torch.no_grad():
        y = srb(x)
    expected = torch.tensor([-0.05, -0.01, 0.0, 0.5]).reshape(1, 4, 1, 1).expand(1, 4, 3, 3)
    torch.testing.assert_close(y, expected, rtol=0, atol=1e-7)


@pytest.mark.parametrize("size", [(16, 16), (17, 23), (5, 9), (1, 1)])
def test_esa_with_zero_last_conv_halves_its_input(size):
    torch.manual_seed(0)
    esa = ESA(8)
    x = torch.randn(2, 8, *size)
    with torch.no_grad():
        gate = esa(x) / x
        assert ((gate > 0) & (gate < 1)).all()  # a sigmoid gate
        assert gate.std() > 1e-4  # that depends on the content
        esa.conv4.weight.zero_()
        esa.conv4.bias.zero_()
        assert torch.equal(esa(x), 0.5 * x)  # sigmoid(0) = 1/2 at every pixel


def test_esa_pools_the_whole_map_of_a_16x16_patch():
    """With identity 3x3 convs, positive reduced features and no conv_f, ESA's gate is
    sigmoid(conv4(max over the stride-2 samples)): 16x16 -> 7x7 (odd pixels 1..13) -> one
    7x7 max, so the gate is spatially constant; a 23x23 patch (11x11 -> 2x2 maxima) is not."""
    torch.manual_seed(0)
    esa = ESA(8)
    f = esa.conv1.out_channels
    with torch.no_grad():
        esa.conv1.weight.abs_()
        esa.conv1.bias.zero_()
        for layer in (esa.conv2, esa.conv_max, esa.conv3, esa.conv3_):
            _delta_(layer, [(c, c) for c in range(f)])
        _zero_(esa.conv_f)
        esa.conv4.weight.fill_(0.1)
        x = torch.rand(1, 8, 16, 16) + 0.5
        reduced = esa.conv1(x)
        v = reduced[0, :, 1:14:2, 1:14:2].amax(dim=(-2, -1))  # (f,) maxima
        expected = torch.sigmoid(0.1 * v.sum() + esa.conv4.bias).view(1, 8, 1, 1)
        torch.testing.assert_close(esa(x), x * expected, rtol=1e-5, atol=1e-6)
        x_big = torch.rand(1, 8, 23, 23) + 0.5
        gate_big = esa(x_big) / x_big
    assert gate_big.std(dim=(-2, -1)).min() > 1e-4


def test_rfdn_with_zero_lr_conv_upsamples_the_shallow_features():
    torch.manual_seed(0)
    model = RFDN(scale=2, num_modules=2)
    _zero_(model.lr_conv)
    x = torch.rand(1, 1, 9, 11)
    with torch.no_grad():
        expected = F.pixel_shuffle(model.upsampler[0](model.fea_conv(x)), 2)
        torch.testing.assert_close(model(x), expected, rtol=0, atol=0)
        model.upsampler[0].weight.zero_()
        model.upsampler[0].bias.copy_(torch.tensor([1.0, 2.0, 3.0, 4.0]))
        y = model(x)
    # PixelShuffle order: channel i*2 + j is sub-pixel (i, j)
    assert torch.equal(y[0, 0, :2, :2], torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    assert torch.equal(y[0, 0, 4:6, 8:10], torch.tensor([[1.0, 2.0], [3.0, 4.0]]))


def test_rfdn_forward_is_the_reference_composition_of_its_layers():
    """Eq. by eq. from the released code: distil from each step's input, SRB = lrelu(conv +
    identity), 3x3 to dc, concat, 1x1, ESA; network: fea_conv, blocks in sequence, 1x1 +
    lrelu on all block outputs, 3x3, + fea_conv, upsampler."""
    torch.manual_seed(0)
    model = RFDN(scale=3, num_modules=2)
    x = torch.rand(1, 1, 16, 17)

    def lrelu(t: torch.Tensor) -> torch.Tensor:
        return torch.where(t >= 0, t, 0.05 * t)

    def rfdb(block, t: torch.Tensor) -> torch.Tensor:
        d1 = lrelu(block.distill[0](t))
        r1 = lrelu(block.srb[0].conv(t) + t)
        d2 = lrelu(block.distill[1](r1))
        r2 = lrelu(block.srb[1].conv(r1) + r1)
        d3 = lrelu(block.distill[2](r2))
        r3 = lrelu(block.srb[2].conv(r2) + r2)
        d4 = lrelu(block.c4(r3))
        return block.esa(block.c5(torch.cat([d1, d2, d3, d4], dim=1)))

    with torch.no_grad():
        fea = model.fea_conv(x)
        b1 = rfdb(model.blocks[0], fea)
        b2 = rfdb(model.blocks[1], b1)
        fused = lrelu(model.c[0](torch.cat([b1, b2], dim=1)))
        expected = F.pixel_shuffle(model.upsampler[0](model.lr_conv(fused) + fea), 3)
        torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "make", [lambda: EDSR(scale=2, n_resblocks=4, n_feats=32), lambda: RFDN(scale=2)]
)
def test_a_few_adam_steps_reduce_the_l1_loss(make):
    torch.manual_seed(0)
    model = make()
    hr = torch.rand(2, 1, 16, 16)
    lr = imresize(hr, 0.5)
    assert lr.shape == (2, 1, 8, 8)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(6):
        opt.zero_grad()
        loss = F.l1_loss(model(lr), hr)
        loss.backward()
        assert all(p.grad is not None for p in model.parameters())
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():
        final = F.l1_loss(model(lr), hr).item()
    assert final < 0.9 * losses[0], losses + [final]


def test_constructors_refuse_what_they_cannot_build():
    with pytest.raises(ValueError, match="scale=1"):
        EDSR(scale=1)
    with pytest.raises(ValueError, match="num_modules"):
        RFDN(num_modules=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: CPU/GPU agreement")
@pytest.mark.parametrize("cls", [EDSR, RFDN])
def test_cuda_output_matches_cpu(cls):
    torch.manual_seed(0)
    model = cls(scale=2).eval()
    x = torch.rand(2, 1, 17, 23)
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False  # TF32 convolutions round to 10-bit mantissas
    try:
        with torch.inference_mode():
            cpu = model(x)
            gpu = model.cuda()(x.cuda()).cpu()
    finally:
        torch.backends.cudnn.allow_tf32 = tf32
    torch.testing.assert_close(gpu, cpu, rtol=0, atol=1e-4)
