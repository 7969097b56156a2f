"""RFDN (Liu, Tang, Wu, "Residual Feature Distillation Network for Lightweight Image
Super-Resolution", ECCV workshops 2020, AIM 2020 efficient-SR winner), single channel.

The configuration of the released code (njulj/RFDN, ``RFDN.py``/``block.py``: 50
features, 4 blocks, ESA attention), which is the challenge entry:

* ``fea_conv``: 3x3 conv, 1 -> ``nf``;
* ``num_modules`` residual feature distillation blocks (RFDB, Sec. 3): three
  steps, each a 1x1 conv distilling ``dc = nf // 2`` channels (feature distillation
  connection) beside a shallow residual block (SRB: 3x3 conv + identity, then LReLU);
  a last 3x3 conv to ``dc``; the four distilled parts concatenated, fused by a 1x1 conv
  back to ``nf`` and gated by enhanced spatial attention (ESA, from RFANet, Liu et al.
  CVPR 2020).  Every activation is LeakyReLU(0.05), except ESA's ReLUs;
* ``c``: 1x1 conv + LReLU on the concatenated block outputs, ``lr_conv``: 3x3 conv,
  plus a global skip from ``fea_conv``;
* upsampler: one 3x3 conv to ``s**2`` channels + ``PixelShuffle(s)`` (also for x4).

ESA: 1x1 reduction to ``nf // 4``; 3x3 stride-2 conv (no padding); 7x7 max-pool,
stride 3; three 3x3 convs (ReLU after the first two); bilinear upsampling back to
exactly the input's (h, w); plus a 1x1 conv of the reduced features; 1x1 back to
``nf``; sigmoid; the input multiplied by that map.  The reference needs >= 15 pixels per
side (16x16 LR patches give a 7x7 map, pooled to 1x1).  Here smaller inputs still work:
a map under 3 pixels is edge-replicated to 3 before the strided conv, and the pooling
window is clipped to the map (a global max); for inputs of >= 15 pixels per side the
computation is the reference's.

Trainable parameters (single channel, nf = 50, dc = 25, ESA width 12), from the layers::

    RFDB: 3 * (50*25 + 25) + 3 * (50*50*9 + 50) + (50*25*9 + 25) + (100*50 + 50)
          + ESA (50*12 + 12) + (12*12 + 12) + 4 * (12*12*9 + 12) + (12*50 + 50)
        = 3,825 + 67,650 + 11,275 + 5,050 + 6,650 = 94,450
    fea_conv 1*50*9 + 50 = 500;  4 RFDBs 377,800;  c 200*50 + 50 = 10,050;
    lr_conv 50*50*9 + 50 = 22,550;  upsampler 50*s*s*9 + s*s.

    x2: 412,704    x3: 414,959    x4: 418,116

With RGB in and out (fea_conv 1,400, upsampler 50*3*s*s*9 + 3*s*s) the same network has
417,212 (x2) and 433,448 (x4) parameters: 4,508 / 15,332 more than the single-channel
one (1.1% / 3.7%).  The paper's tables give 534K (x2) / 550K (x4) for "RFDN", which is a
different configuration (48 features, 6 RFDBs, CCA attention instead of ESA, as the
authors answer in njulj/RFDN issues #5 and #13); this module reproduces the released
4-block, 50-feature, ESA network, not those counts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LEAKY_SLOPE = 0.05  # the reference's LeakyReLU negative slope


class ESA(nn.Module):
    """Enhanced spatial attention (RFANet, Liu et al. CVPR 2020): ``x * sigmoid(.)``."""

    def __init__(self, n_feats: int = 50) -> None:
        super().__init__()
        f = n_feats // 4
        self.conv1 = nn.Conv2d(n_feats, f, 1)
        self.conv_f = nn.Conv2d(f, f, 1)
        self.conv2 = nn.Conv2d(f, f, 3, stride=2, padding=0)
        self.conv_max = nn.Conv2d(f, f, 3, padding=1)
        self.conv3 = nn.Conv2d(f, f, 3, padding=1)
        self.conv3_ = nn.Conv2d(f, f, 3, padding=1)
        self.conv4 = nn.Conv2d(f, n_feats, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        c1_ = self.conv1(x)
        small = c1_
        if h < 3 or w < 3:  # the strided 3x3 conv has no padding: give it 3x3 at least
            small = F.pad(c1_, (0, max(0, 3 - w), 0, max(0, 3 - h)), mode="replicate")
        c1 = self.conv2(small)
        window = (min(7, c1.shape[-2]), min(7, c1.shape[-1]))  # (7, 7) once h, w >= 15
        v = F.max_pool2d(c1, window, stride=3)
        v = F.relu(self.conv_max(v))
        v = F.relu(self.conv3(v))
        v = self.conv3_(v)
        v = F.interpolate(v, size=(h, w), mode="bilinear", align_corners=False)
        return x * torch.sigmoid(self.conv4(v + self.conv_f(c1_)))


class SRB(nn.Module):
    """Shallow residual block (Sec. 3): ``lrelu(conv3x3(x) + x)``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.conv(x) + x, LEAKY_SLOPE)


class RFDB(nn.Module):
    """Residual feature distillation block: 3 x (1x1 distillation | SRB), 3x3, concat,
    1x1 fusion, ESA."""

    def __init__(self, nf: int = 50) -> None:
        super().__init__()
        dc = nf // 2
        self.distill = nn.ModuleList(nn.Conv2d(nf, dc, 1) for _ in range(3))
        self.srb = nn.ModuleList(SRB(nf) for _ in range(3))
        self.c4 = nn.Conv2d(nf, dc, 3, padding=1)
        self.c5 = nn.Conv2d(4 * dc, nf, 1)
        self.esa = ESA(nf)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = []
        for distill, srb in zip(self.distill, self.srb, strict=True):
            parts.append(F.leaky_relu(distill(x), LEAKY_SLOPE))
            x = srb(x)
        parts.append(F.leaky_relu(self.c4(x), LEAKY_SLOPE))
        return self.esa(self.c5(torch.cat(parts, dim=1)))


class RFDN(nn.Module):
    """RFDN as released (nf = 50, 4 RFDBs, ESA), LR (N, 1, h, w) -> (N, 1, h*s, w*s)."""

    def __init__(self, scale: int = 2, nf: int = 50, num_modules: int = 4) -> None:
        super().__init__()
        if scale < 1 or nf < 4 or num_modules < 1:
            raise ValueError(
                f"RFDN needs scale >= 1, nf >= 4, num_modules >= 1, got {scale}, {nf}, "
                f"{num_modules}"
            )
        self.scale = scale
        self.fea_conv = nn.Conv2d(1, nf, 3, padding=1)
        self.blocks = nn.ModuleList(RFDB(nf) for _ in range(num_modules))
        self.c = nn.Sequential(nn.Conv2d(nf * num_modules, nf, 1), nn.LeakyReLU(LEAKY_SLOPE))
        self.lr_conv = nn.Conv2d(nf, nf, 3, padding=1)
        self.upsampler = nn.Sequential(
            nn.Conv2d(nf, scale * scale, 3, padding=1), nn.PixelShuffle(scale)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fea = self.fea_conv(x)
        outs = []
        f = fea
        for block in self.blocks:
            f = block(f)
            outs.append(f)
        f = self.lr_conv(self.c(torch.cat(outs, dim=1))) + fea
        return self.upsampler(f)
