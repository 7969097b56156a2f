"""RRLSRN (Song et al. 2022), and networks built by architecture name and scale.

RRLSRN is a LapSRN-style x2 network (Lai et al. 2017): a feature branch working at LR
resolution predicts a residual at HR resolution, which is added to an upsampled copy of
the input made by the image branch ("bottom").  It reaches x4, x8, ... by cascade, its
x2 weights applied log2(scale) times, as the paper proposes ("it can also be extended to
x4 or x8 times for SR reconstruction by cascading", Song et al. 2022, Discussion): the
one cascade, used alike by the trainer, the workflow and ``rrlsrn upscale``.

Checkpoints and the trainer name networks by their :data:`rrlsrn.registry.ARCHITECTURES`
name (``rrlsrn``, ``srcnn``, ``fsrcnn``, ...) and scale, so the one trainer trains them all.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rrlsrn import registry
from rrlsrn.degrade import imresize

LEAKY_SLOPE = 0.2
IMAGE_BRANCHES = ("transposed", "bicubic", "none")


def bilinear_kernel(size: int = 4) -> torch.Tensor:
    """The (size x size) bilinear upsampling kernel used to initialise transposed convs."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    og = torch.arange(size, dtype=torch.float64)
    filt = 1 - torch.abs(og - center) / factor
    return (filt[:, None] * filt[None, :]).float()


class BicubicUpsample(nn.Module):
    """Fixed MATLAB-compatible bicubic x``scale`` upsampling (the Table 5 ablation's bottom)."""

    def __init__(self, scale: int = 2) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return imresize(x, float(self.scale))


class RRLSRN(nn.Module):
    """Robust residual-learning SR network: x2, and x4, x8, ... by cascade.

    Parameters
    ----------
    scale : 2, or a power of 2 reached by cascade: the x2 network (its one set of
        weights) applied log2(scale) times in :meth:`forward`.  The weights do not
        depend on the scale, so a state dict of any scale loads into any other; x3 and
        other scales raise ValueError.
    depth : number of inner 3x3 width->width convs (11 gives the paper's 13 conv layers:
        input conv + 11 inner + residual conv).
    width : feature channels (64 in the paper).
    image_branch : ``"transposed"`` (paper: learnable 4x4 stride-2 transposed conv,
        bilinear-initialised, no bias), ``"bicubic"`` (fixed bicubic upsampling) or
        ``"none"`` (no image branch: the output is the feature branch alone, no global
        residual).  The last two are the two readings of Table 5's "without bottom
        transposed conv" ablation.
    """

    def __init__(
        self, scale: int = 2, depth: int = 11, width: int = 64, image_branch: str = "transposed"
    ) -> None:
        super().__init__()
        self.passes = registry.cascade_passes(scale, "RRLSRN")
        self.scale = scale
        if depth < 1 or width < 1:
            raise ValueError(f"depth and width must be >= 1, got depth={depth}, width={width}")
        if image_branch not in IMAGE_BRANCHES:
            raise ValueError(f"image_branch must be one of {IMAGE_BRANCHES}, got {image_branch!r}")
        self.depth, self.width, self.image_branch = depth, width, image_branch
        self.input_conv = nn.Conv2d(1, width, 3, padding=1)
        self.inner = nn.ModuleList(nn.Conv2d(width, width, 3, padding=1) for _ in range(depth))
        self.feature_up = nn.ConvTranspose2d(width, width, 4, stride=2, padding=1)
        self.residual_conv = nn.Conv2d(width, 1, 3, padding=1)
        self.image_up: nn.Module | None = None
        if image_branch == "transposed":
            self.image_up = nn.ConvTranspose2d(1, 1, 4, stride=2, padding=1, bias=False)
        elif image_branch == "bicubic":
            self.image_up = BicubicUpsample(2)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming init for the feature branch, bilinear for the image branch.

        The residual conv starts at zero, so an untrained model outputs exactly its
        image branch, and training only has to learn what interpolation misses.  Without
        an image branch the residual conv is Kaiming-initialised too: it makes the image.
        """
        for m in [self.input_conv, *self.inner, self.feature_up]:
            nn.init.kaiming_normal_(m.weight, a=LEAKY_SLOPE, nonlinearity="leaky_relu")
            nn.init.zeros_(m.bias)
        if self.image_up is None:
            nn.init.kaiming_normal_(self.residual_conv.weight, nonlinearity="linear")
        else:
            nn.init.zeros_(self.residual_conv.weight)
        nn.init.zeros_(self.residual_conv.bias)
        if isinstance(self.image_up, nn.ConvTranspose2d):
            with torch.no_grad():
                self.image_up.weight.copy_(bilinear_kernel(4)[None, None])

    def upsample_x2(self, x: torch.Tensor) -> torch.Tensor:
        """One pass of the x2 network: (N, 1, h, w) -> (N, 1, 2h, 2w)."""
        f = F.leaky_relu(self.input_conv(x), LEAKY_SLOPE)
        for conv in self.inner:
            f = F.leaky_relu(conv(f), LEAKY_SLOPE)
        f = F.leaky_relu(self.feature_up(f), LEAKY_SLOPE)
        residual = self.residual_conv(f)
        return residual if self.image_up is None else self.image_up(x) + residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x``scale``: the x2 pass applied log2(scale) times, each on the last output."""
        for _ in range(self.passes):
            x = self.upsample_x2(x)
        return x


def build_model(name: str, scale: int = 2, **model_args: Any) -> nn.Module:
    """The network of architecture ``name`` (:data:`rrlsrn.registry.ARCHITECTURES`, or a
    config's own ``"module:Class"``) built for x``scale`` with ``model_args``."""
    return registry.architecture(name)(scale=scale, **model_args)


def at_scale(model: nn.Module, scale: int) -> nn.Module:
    """``model`` working at x``scale``: itself at its own scale; a cascade network
    (:class:`RRLSRN`) rebuilt for ``scale`` with the same weights (a copy, same mode,
    device and dtype).  Any other network makes its own scale only: ValueError, one line."""
    own = getattr(model, "scale", None)
    if own == scale:
        return model
    if isinstance(model, RRLSRN):
        other = RRLSRN(scale, model.depth, model.width, model.image_branch)
        other.to(model.input_conv.weight).load_state_dict(model.state_dict())
        return other.train(model.training)
    makes = f"x{own}" if own else "its own scale"
    raise ValueError(
        f"{type(model).__name__} upsamples by its own layers: it makes {makes} only, not x{scale}"
    )


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))
