"""SRCNN (Dong et al. 2014/2016) and FSRCNN (Dong et al. 2016), learned methods of the registry.

Both take the LR slice as input, like RRLSRN, so the one trainer (``rrlsrn.train``) and
the one inference path treat every CNN alike:

* SRCNN upsamples the LR input with the fixed MATLAB-compatible bicubic operator first
  (its paper's input), then applies 9x9 (64) -> k x k (32) -> 5x5 (1) convolutions with
  ReLU; k = 1 (9-1-5, 8,129 parameters) as in the paper the comparison cites, k = 5 for
  the popular 9-5-5 ports.
* FSRCNN works at LR resolution: 5x5 feature extraction (d), 1x1 shrinking (s), m 3x3
  mapping layers, 1x1 expanding (d), PReLU after each, and a 9x9 stride-``scale``
  transposed convolution to HR.

Convolutions are zero-padded to keep the image size (the originals trained on valid
crops), so every output pixel is predicted.
"""

from __future__ import annotations

import torch
from torch import nn

from rrlsrn.models import BicubicUpsample


class SRCNN(nn.Module):
    """SRCNN with configurable kernel sizes, input = bicubic-upsampled LR."""

    def __init__(
        self,
        scale: int = 2,
        kernels: tuple[int, int, int] = (9, 1, 5),
        channels: tuple[int, int] = (64, 32),
    ) -> None:
        super().__init__()
        for k in kernels:
            if k % 2 == 0:
                raise ValueError(f"SRCNN kernel sizes must be odd, got {kernels}")
        k1, k2, k3 = kernels
        c1, c2 = channels
        self.scale = scale
        self.upsample = BicubicUpsample(scale)
        self.body = nn.Sequential(
            nn.Conv2d(1, c1, k1, padding=k1 // 2),
            nn.ReLU(inplace=True),
            nn.Conv2d(c1, c2, k2, padding=k2 // 2),
            nn.ReLU(inplace=True),
            nn.Conv2d(c2, 1, k3, padding=k3 // 2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.upsample(x))


class FSRCNN(nn.Module):
    """FSRCNN(d, s, m): LR in, HR out through a final transposed convolution."""

    def __init__(self, scale: int = 2, d: int = 56, s: int = 12, m: int = 4) -> None:
        super().__init__()
        self.scale = scale
        layers: list[nn.Module] = [nn.Conv2d(1, d, 5, padding=2), nn.PReLU(d)]
        layers += [nn.Conv2d(d, s, 1), nn.PReLU(s)]
        for _ in range(m):
            layers += [nn.Conv2d(s, s, 3, padding=1), nn.PReLU(s)]
        layers += [nn.Conv2d(s, d, 1), nn.PReLU(d)]
        self.body = nn.Sequential(*layers)
        # output size = (h - 1) * scale - 2 * 4 + 9 + output_padding = h * scale
        self.deconv = nn.ConvTranspose2d(d, 1, 9, stride=scale, padding=4, output_padding=scale - 1)
        for module in self.body:
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, a=0.25, nonlinearity="leaky_relu")
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.deconv.weight, std=1e-3)  # the paper's deconvolution init
        nn.init.zeros_(self.deconv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.deconv(self.body(x))
