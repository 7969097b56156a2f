"""Apply any method to HR test slices: make the LR input, super-resolve, time it.

The LR input always comes from :func:`rrlsrn.degrade.make_degradation`.  Classical
methods are functions ``f(lr_batch, scale, degradation, **params) -> sr_batch`` named by
:mod:`rrlsrn.registry` and receive the same operator that made their input, for data
consistency; learned ones are loaded from checkpoints (or imported weights) and built
for the run's scale.
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

from rrlsrn import registry
from rrlsrn.degrade import Degradation, make_degradation

ClassicalMethod = Callable[..., torch.Tensor]


def classical_method(name: str, factory: str | None = None) -> ClassicalMethod:
    """The function of the classical method ``name`` (or of the import path ``factory``)."""
    if factory is None:
        method = registry.resolve(name)
        if not method.classical:
            raise ValueError(f"method {name!r} is {method.kind}: it needs a model")
        factory = method.factory
    return registry.load(factory)


def check_hr_slices(hr_slices: Sequence[np.ndarray], scale: int) -> None:
    """Raise a ValueError naming the first slice that is not a finite 2D image of a size
    divisible by ``scale`` (the LR operator needs whole LR pixels)."""
    for i, s in enumerate(hr_slices):
        s = np.asarray(s)
        if s.ndim != 2:
            raise ValueError(f"slice {i}: expected a 2D image, got shape {s.shape}")
        if s.shape[0] % scale or s.shape[1] % scale:
            raise ValueError(
                f"slice {i}: size {s.shape[0]}x{s.shape[1]} is not divisible by the "
                f"scale {scale}; crop it with rrlsrn.degrade.modcrop first"
            )
        if not np.isfinite(s).all():
            raise ValueError(f"slice {i}: holds {int((~np.isfinite(s)).sum())} NaN/inf values")


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
    """Apply a network to an (N, h, w) LR stack in batches; returns float32 CPU.

    The network is built for the run's scale (:func:`rrlsrn.models.build_model`); a
    cascade network (RRLSRN at x4) runs its x2 passes in its own forward.
    """
    model = model.to(device).to(memory_format=torch.channels_last).eval()
    outputs = []
    if batch_size is None:
        # Measured on 2 CPU cores: batches above 2 are slower per slice (cache pressure).
        batch_size = 32 if device.type == "cuda" else 1
    if batch_size < 1:
        raise ValueError(f"batch size must be a positive integer, got {batch_size}")
    for start in range(0, len(lr), batch_size):
        x = lr[start : start + batch_size, None].to(device)
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(
            device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"
        ):
            y = model(x)
        outputs.append(y[:, 0].float().cpu())
    return torch.cat(outputs)


def run_classical(
    method: ClassicalMethod,
    lr: torch.Tensor,
    scale: int,
    degradation: Degradation,
    device: torch.device,
    batch_size: int | None = None,
    params: dict[str, Any] | None = None,
) -> torch.Tensor:
    """Apply a classical method to an (N, h, w) LR stack in batches; returns float32 CPU.

    A method run with ``dims: 3`` (NMU in 3D) treats the stack as one volume of
    consecutive slices: it gets the whole stack in one call.
    """
    if batch_size is None:
        batch_size = 64 if device.type == "cuda" else 16
    if (params or {}).get("dims") == 3:
        batch_size = len(lr)
    outputs = []
    with torch.no_grad():
        for start in range(0, len(lr), batch_size):
            x = lr[start : start + batch_size].to(device)
            outputs.append(
                torch.as_tensor(method(x, scale, degradation, **(params or {}))).float().cpu()
            )
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
    params: dict[str, Any] | None = None,
    factory: str | ClassicalMethod | None = None,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Degrade each HR slice, super-resolve it with ``method``; return SR slices and seconds.

    With ``model`` the network runs; without, ``method`` is a classical method of the
    registry (or the function ``factory``, or the one at that import path) and ``params`` are its
    keyword arguments (from the registry and config).  Slices of equal
    shape are processed together; the seconds per slice are the batch's wall time divided
    evenly (making the LR input is not counted).  Outputs are clipped to [0, 1], the range
    of the normalised HR data.
    """
    check_hr_slices(hr_slices, scale)
    model_scale = getattr(model, "scale", scale)  # a config's own class may not say
    if model_scale != scale:
        raise ValueError(
            f"{method}: the network makes x{model_scale}, the run is x{scale} "
            "(rrlsrn.models.at_scale moves a cascade network to another scale)"
        )
    degrade_fn = make_degradation(**(degradation or {"name": "bicubic"}))
    device = torch.device(device)
    classical = None
    if model is None:
        classical = factory if callable(factory) else classical_method(method, factory)
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
        lr = degrade_fn.observe(hr, scale)  # D x, with the operator's noise if it has any
        _sync(device)
        start = time.perf_counter()
        if classical is not None:
            out = run_classical(classical, lr, scale, degrade_fn, device, batch_size, params)
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
