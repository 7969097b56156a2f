"""EDSR-baseline (Lim et al., "Enhanced Deep Residual Networks for Single Image
Super-Resolution", CVPR workshops 2017), single channel.

The "baseline" single-scale configuration of the paper's Sec. 3.2 / Fig. 3, as released
in sanghyun-son/EDSR-PyTorch (``r16f64``):

* head: 3x3 conv, 1 -> ``n_feats`` (64);
* body: ``n_resblocks`` (16) residual blocks conv3x3-ReLU-conv3x3, no batch norm
  (Sec. 3.1, Fig. 2(c)), the residual multiplied by ``res_scale`` before it is added
  (Sec. 3.2: 0.1 only for the big 32-block/256-feature EDSR; 1.0, no scaling, in the
  baseline);
  then one 3x3 conv, and a global skip from the head's output;
* upsampler (sub-pixel convolution, Shi et al. 2016): x2 and x3 one 3x3 conv to
  ``n_feats * s**2`` channels + ``PixelShuffle(s)``; x4 two such x2 stages (x8 three);
  any other integer scale one stage, as x3 (the reference code stops at powers of 2
  and 3);
* tail: 3x3 conv, ``n_feats`` -> 1.

No ``MeanShift``: the RGB model subtracts the DIV2K mean colour before the head and adds
it back after the tail (two frozen 1x1 convs, no trainable parameters).  MRI slices here
are single-channel intensities in [0, 1] with no dataset mean fixed in advance, and the
head conv's bias can absorb a constant offset, so the network sees the LR slice as it is.
The input is the LR slice (N, 1, h, w); the output is (N, 1, h*s, w*s).  Convolutions
are zero-padded ("same"), PyTorch's default initialisation, as in the reference code.

Trainable parameters (single channel), from the layers::

    head 1*64*9 + 64 = 640;  16 blocks * 2 * (64*64*9 + 64) = 1,181,696;
    body conv 64*64*9 + 64 = 36,928;  tail 64*1*9 + 1 = 577;
    upsampler x2: 64*256*9 + 256 = 147,712;  x3: 64*576*9 + 576 = 332,352;
              x4: 2 * 147,712 = 295,424.

    x2: 1,367,553    x3: 1,552,193    x4: 1,515,265

The RGB model (the paper's 1.37M for x2, 1.5M for x3/x4) has 1,369,859 / 1,554,499 /
1,517,571: 2,306 more (head 3*64*9 + 64 = 1,792 instead of 640, tail 64*3*9 + 3 = 1,731
instead of 577), 0.17% of the x2 network.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, padding=1)


class ResBlock(nn.Module):
    """EDSR residual block (Fig. 2(c)): ``x + res_scale * conv(relu(conv(x)))``, no BN."""

    def __init__(self, n_feats: int = 64, res_scale: float = 1.0) -> None:
        super().__init__()
        self.conv1 = _conv3x3(n_feats, n_feats)
        self.conv2 = _conv3x3(n_feats, n_feats)
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.conv2(F.relu(self.conv1(x)))


def upsampler(scale: int, n_feats: int) -> nn.Sequential:
    """Sub-pixel upsampler: per x2 stage (or the one stage of another scale, as x3) a 3x3
    conv to ``n_feats * r**2`` channels then ``PixelShuffle(r)``; no activation between
    stages (reference code)."""
    if scale < 2:
        raise ValueError(f"EDSR upsamples by an integer scale of at least 2, got scale={scale}")
    # a power of two: log2(scale) x2 stages; x3 (the reference) and any other: one stage
    factors = [2] * (scale.bit_length() - 1) if scale & (scale - 1) == 0 else [scale]
    layers: list[nn.Module] = []
    for r in factors:
        layers += [_conv3x3(n_feats, n_feats * r * r), nn.PixelShuffle(r)]
    return nn.Sequential(*layers)


class EDSR(nn.Module):
    """EDSR (baseline by default: 16 blocks, 64 features, no residual scaling), 1 channel."""

    def __init__(
        self, scale: int = 2, n_resblocks: int = 16, n_feats: int = 64, res_scale: float = 1.0
    ) -> None:
        super().__init__()
        if n_resblocks < 0 or n_feats < 1:
            raise ValueError(
                f"EDSR needs n_resblocks >= 0 and n_feats >= 1, got {n_resblocks}, {n_feats}"
            )
        self.scale = scale
        self.head = _conv3x3(1, n_feats)
        self.body = nn.Sequential(*(ResBlock(n_feats, res_scale) for _ in range(n_resblocks)))
        self.body_conv = _conv3x3(n_feats, n_feats)
        self.upsampler = upsampler(scale, n_feats)
        self.tail = _conv3x3(n_feats, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.head(x)
        f = f + self.body_conv(self.body(f))  # global residual over the whole body
        return self.tail(self.upsampler(f))
