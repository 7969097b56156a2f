"""Apply any method to HR test slices: make the LR input, super-resolve, time it.

The LR input always comes from :func:`rrlsrn.degrade.make_degradation`; classical
methods register a function ``f(lr_batch, scale) -> sr_batch`` in :data:`CLASSICAL`,
learned ones are loaded from checkpoints (or imported weights).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from rrlsrn.degrade import bicubic_up, make_degradation

ClassicalMethod = Callable[[torch.Tensor, int], torch.Tensor]
CLASSICAL: dict[str, ClassicalMethod] = {"bicubic": bicubic_up}


def register_classical(name: str, method: ClassicalMethod) -> None:
    """Make a non-learned method available to :func:`super_resolve` by name."""
    CLASSICAL[name] = method


def _group_by_shape(slices: Sequence[np.ndarray]) -> dict[tuple[int, int], list[int]]:
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, s in enumerate(slices):
        groups[tuple(s.shape)].append(i)
    return groups


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def run_model(
    model: nn.Module, lr: torch.Tensor, device: torch.device, batch_size: int | None = None
) -> torch.Tensor:
    """Apply a learned x2 model to an (N, H, W) LR stack in batches; returns float32 CPU."""
    model = model.to(device).to(memory_format=torch.channels_last).eval()
    outputs = []
    if batch_size is None:
        # Measured on 2 CPU cores: batches above 2 are slower per slice (cache pressure).
        batch_size = 32 if device.type == "cuda" else 1
    for start in range(0, len(lr), batch_size):
        x = lr[start : start + batch_size, None].to(device)
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(
            device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"
        ):
            y = model(x)
        outputs.append(y[:, 0].float().cpu())
    return torch.cat(outputs)


def super_resolve(
    hr_slices: Sequence[np.ndarray],
    method: str,
    scale: int = 2,
    degradation: dict[str, Any] | None = None,
    model: nn.Module | None = None,
    device: str | torch.device = "cpu",
    batch_size: int | None = None,
    progress: bool = True,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Degrade each HR slice, super-resolve it with ``method``; return SR slices and seconds.

    ``model`` is required for learned methods (any name not in :data:`CLASSICAL`).
    Slices of equal shape are processed together; the seconds per slice are the group's
    wall time divided evenly (the LR operator is not counted).  Outputs are clipped to
    [0, 1], the range of the normalised HR data.
    """
    degrade_fn = make_degradation(**(degradation or {"name": "bicubic"}))
    device = torch.device(device)
    if method not in CLASSICAL and model is None:
        raise ValueError(
            f"method {method!r} is not a classical method "
            f"({sorted(CLASSICAL)}) and no model was given"
        )
    sr: list[np.ndarray | None] = [None] * len(hr_slices)
    seconds = np.zeros(len(hr_slices))
    groups = _group_by_shape(hr_slices)
    bar = tqdm(
        total=len(hr_slices),
        desc=f"super-resolve {method}",
        unit="slice",
        disable=not progress,
        mininterval=1.0,
    )
    for indices in groups.values():
        hr = torch.from_numpy(np.stack([hr_slices[i] for i in indices]).astype(np.float32))
        lr = degrade_fn(hr, scale)
        _sync(device)
        start = time.perf_counter()
        if method in CLASSICAL:
            out = torch.as_tensor(CLASSICAL[method](lr, scale))
        else:
            out = run_model(model, lr, device, batch_size)
        _sync(device)
        elapsed = time.perf_counter() - start
        out = out.clamp(0, 1).numpy().astype(np.float32)
        for j, i in enumerate(indices):
            sr[i] = out[j]
            seconds[i] = elapsed / len(indices)
        bar.update(len(indices))
    bar.close()
    return [s for s in sr if s is not None], seconds
