"""Super-resolve a user's own NIfTI stack in-plane with any method (``rrlsrn upscale``).

Every 2D slice across the slice axis goes through the same :func:`rrlsrn.infer.run_model`
(networks) or :func:`rrlsrn.infer.run_classical` (the other methods of
:mod:`rrlsrn.registry`) the workflow uses.  A network is built for the asked scale, as in
the workflow: RRLSRN and LapSRN reach x4, x8, ... by cascading their x2 weights
(:class:`rrlsrn.models.RRLSRN`, the paper's "x4 by cascade"), any other network needs
weights trained at that scale; a classical method makes any integer scale in one pass,
with the named degradation operator as its forward model (model-based methods) or
sample grid (cubic spline).

Grid: the output covers the input's field of view exactly, as the degradation operator
assumes (each input voxel becomes ``f x f`` output voxels).  Along an in-plane axis the
output voxel ``i`` sits at input voxel coordinate ``(i + 0.5) / f - 0.5``, so the new
affine is ``A @ T`` with ``T`` scaling those axes by ``1 / f`` and shifting them by
``(1 / f - 1) / 2``; qform and sform are each mapped this way and keep their codes, so
the result overlays the input in any viewer.

Intensities: divided by the volume's ``[0, p99.5]`` range (the training normalisation,
not clipped), multiplied back afterwards, clamped at 0 when the input has no negative
voxels.  The output is float32 with no scaling (slope 1, intercept 0), in the input's
scaled units; the display range (cal_min / cal_max) is cleared.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from rrlsrn import registry
from rrlsrn.checkpoint import checkpoint_scale, load_checkpoint, load_model, model_from_state
from rrlsrn.data.prepare import describe_slicing, intensity_range, resolve_slice_axis
from rrlsrn.degrade import Degradation, make_degradation
from rrlsrn.infer import ClassicalMethod, run_classical, run_model
from rrlsrn.io import atomic_path, load_nifti, nifti_suffix, same_file
from rrlsrn.models import at_scale
from rrlsrn.steps import device_name
from rrlsrn.train import pick_device
from rrlsrn.weights import shipped_weights_path

DEFAULT_METHOD = "rrlsrn"


class UpscaleError(ValueError):
    """An input, mask, output path or scale ``rrlsrn upscale`` cannot use (names the file)."""


@dataclass(frozen=True)
class Upscaler:
    """What runs, and what it is called (for messages and the output header): a network
    built for x``model_scale``, or a classical method (any scale; ``model_scale`` None)."""

    name: str
    model_scale: int | None
    model: nn.Module | None = None
    method: ClassicalMethod | None = None
    degradation: Degradation | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def at(self, scale: int) -> Upscaler:
        """This upscaler making x``scale``: a network moved there by
        :func:`rrlsrn.models.at_scale` (a cascade network: the same x2 weights); raises
        :class:`UpscaleError` (one line) for a scale it cannot make."""
        if scale < 2:
            raise UpscaleError(f"the scale must be at least 2, got {scale}")
        if self.model is None or self.model_scale == scale:
            return self
        try:
            network = at_scale(self.model, scale)
        except ValueError as error:
            raise UpscaleError(
                f"{self.name}: {error}; pass --scale {self.model_scale}, or weights trained "
                f"at x{scale}"
            ) from None
        return dataclasses.replace(self, model_scale=scale, model=network)


@dataclass(frozen=True)
class UpscaleReport:
    """What one volume went through."""

    input: Path
    output: Path
    shape_in: tuple[int, ...]
    shape_out: tuple[int, ...]
    zooms_out: tuple[float, ...]
    axis: int
    slices: int
    seconds: float
    device: str


def load_upscaler(
    method: str | None = None,
    weights: str | os.PathLike | None = None,
    model: str | None = None,
    degradation: str = "bicubic",
    scale: int | None = None,
) -> Upscaler:
    """A registered method by name (default ``rrlsrn``, its shipped weights), shipped
    weights by name (``model``), or any checkpoint the trainer wrote (``weights``), ready
    to make x``scale`` (default: a checkpoint's own scale, else 2; :meth:`Upscaler.at`
    moves it to another).

    Classical methods get the ``degradation`` operator (a name of
    :func:`rrlsrn.degrade.make_degradation`) and their registered parameters.  A scale
    the method cannot make raises :class:`UpscaleError` (one line) before any work.
    """
    if sum(x is not None for x in (method, weights, model)) > 1:
        raise UpscaleError("give one of --method, --model or --weights")
    operator = make_degradation(degradation)  # a bad name fails before any work
    if weights is not None or model is not None:
        path = Path(weights) if weights is not None else shipped_weights_path(model)
        state = load_checkpoint(path)
        network = model_from_state(state, path)
        name = str(path) if weights is not None else model
        trained = checkpoint_scale(state)
        return Upscaler(name, trained, model=network).at(scale or trained)
    record = registry.resolve(method or DEFAULT_METHOD)
    scale = scale or 2
    problem = registry.scale_problem(record, scale)
    if problem is not None:
        raise UpscaleError(problem)
    if record.classical:
        return Upscaler(
            f"{record.name}, {degradation} operator",
            None,
            method=registry.load(record.factory),
            degradation=operator,
            params=record.params,
        )
    if record.kind == "imported":
        loader = registry.load(record.loader)
        return Upscaler(record.name, scale, model=loader(None, scale=scale, **record.model_args))
    name = registry.weights_at(record, scale)
    if name is None:
        shipped = ", ".join(f"x{s}" for s in sorted(record.weights)) or "none"
        raise UpscaleError(
            f"method {record.name!r} ships no x{scale} weights (shipped: {shipped}); train "
            f"it at x{scale} and pass --weights best.pt"
        )
    path = shipped_weights_path(name)
    return Upscaler(record.name, scale, model=load_model(path, scale=scale))


def upscaled_affine(affine: np.ndarray, axes: Sequence[int], factor: int) -> np.ndarray:
    """Voxel-to-world affine of the grid that splits each voxel ``factor`` times on ``axes``."""
    to_input = np.eye(4)
    for axis in axes:
        to_input[axis, axis] = 1.0 / factor
        to_input[axis, 3] = (1.0 / factor - 1.0) / 2
    return np.asarray(affine, dtype=np.float64) @ to_input


def upscaled_image(
    img: nib.Nifti1Image, data: np.ndarray, axes: Sequence[int], factor: int, description: str
) -> nib.Nifti1Image:
    """``data`` on the upscaled grid of ``img``, with the input's header carried over."""
    header = img.header.copy()
    out = type(img)(data.astype(np.float32), upscaled_affine(img.affine, axes, factor), header)
    _, qcode = img.get_qform(coded=True)
    _, scode = img.get_sform(coded=True)
    out.set_qform(upscaled_affine(img.get_qform(), axes, factor), code=int(qcode))
    out.set_sform(upscaled_affine(img.get_sform(), axes, factor), code=int(scode))
    zooms = list(img.header.get_zooms()[:3])
    for axis in axes:
        zooms[axis] /= factor
    out.header.set_zooms(zooms)
    out.set_data_dtype(np.float32)
    out.header.set_slope_inter(1.0, 0.0)
    out.header["cal_min"] = out.header["cal_max"] = 0
    out.header["descrip"] = description[:79].encode()
    return out


def super_resolve_stack(
    stack: np.ndarray,
    upscaler: Upscaler,
    scale: int,
    device: torch.device,
    batch_size: int | None = None,
    keep: np.ndarray | None = None,
    progress: bool = True,
) -> np.ndarray:
    """(N, h, w) normalised slices -> (N, h s, w s); slices not in ``keep`` stay zero.

    A volumetric method (``dims: 3``, NMU in 3D) gets every kept slice as one volume.
    """
    upscaler = upscaler.at(scale)
    n, height, width = stack.shape
    out = np.zeros((n, height * scale, width * scale), np.float32)
    indices = np.flatnonzero(keep) if keep is not None else np.arange(n)
    networks = 32 if device.type == "cuda" else 1
    step = batch_size or (networks if upscaler.model is not None else 16)
    if upscaler.model is None and upscaler.params.get("dims") == 3:
        step = max(len(indices), 1)
    with tqdm(total=len(indices), desc="upscale", unit="slice", disable=not progress) as bar:
        for start in range(0, len(indices), step):
            chunk = indices[start : start + step]
            x = torch.from_numpy(np.ascontiguousarray(stack[chunk], dtype=np.float32))
            if upscaler.model is None:
                x = run_classical(
                    upscaler.method, x, scale, upscaler.degradation, device, step, upscaler.params
                )
            else:
                x = run_model(upscaler.model, x, device, batch_size)
            out[chunk] = x.numpy()
            bar.update(len(chunk))
    return out


def _check_writable(output: Path) -> None:
    """Refuse an output whose folder cannot be made or written, before any compute."""
    if output.is_dir():
        raise UpscaleError(f"{output} is a folder; name an output .nii or .nii.gz file")
    ancestor = output.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UpscaleError(f"{output}: cannot write there, {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise UpscaleError(f"{output}: cannot write there, {ancestor} is not writable")


def _check_output(output: Path, overwrite: bool) -> None:
    if nifti_suffix(output) is None:
        raise UpscaleError(f"{output}: the output must be a .nii or .nii.gz file")
    _check_writable(output)
    if output.exists() and not overwrite:
        raise UpscaleError(
            f"{output} exists; pass --overwrite to replace it (or --skip-existing to keep it)"
        )


def _read_mask(mask: Path, img: nib.Nifti1Image, data: np.ndarray, source: Path) -> np.ndarray:
    mask_img, mask_data = load_nifti(mask)
    if mask_data.shape != data.shape:
        raise UpscaleError(
            f"{mask}: mask shape {mask_data.shape} does not match {source} {data.shape}"
        )
    if not np.allclose(mask_img.affine, img.affine, atol=1e-3):
        raise UpscaleError(f"{mask}: the mask's affine differs from {source}'s: not the same grid")
    return mask_data > 0.5


def upscale_volume(
    source: str | os.PathLike,
    output: str | os.PathLike,
    upscaler: Upscaler,
    scale: int = 2,
    axis: str | int = "auto",
    mask: str | os.PathLike | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> UpscaleReport:
    """Super-resolve every slice of one NIfTI volume in-plane and write the result.

    With a mask (same grid as the input), slices without mask voxels are skipped and
    voxels outside it are 0 in the output.  Nothing is written unless the whole volume
    succeeds; the output file appears in one rename.
    """
    source, output = Path(source), Path(output)
    _check_output(output, overwrite)
    upscaler = upscaler.at(scale)  # a scale the method cannot make fails before any work
    torch_device = pick_device(device)
    img, data = load_nifti(source)
    zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
    slice_axis = resolve_slice_axis(axis, data.shape, zooms, source)
    if axis == "auto" and progress:
        print(f"{source}: {describe_slicing(data.shape, slice_axis)}; --axis to change")
    in_plane = [a for a in range(3) if a != slice_axis]
    _, high = intensity_range(data, source=source)
    stack = np.moveaxis(data, slice_axis, 0) / high
    inside = None  # the mask, slices first
    if mask is not None:
        inside = np.moveaxis(_read_mask(Path(mask), img, data, source), slice_axis, 0)
    keep = inside.any(axis=(1, 2)) if inside is not None else None
    start = time.perf_counter()
    sr = super_resolve_stack(stack, upscaler, scale, torch_device, batch_size, keep, progress)
    seconds = time.perf_counter() - start
    sr *= high
    if data.min() >= 0:
        np.maximum(sr, 0, out=sr)
    if inside is not None:
        sr *= inside.repeat(scale, axis=1).repeat(scale, axis=2)
    result = upscaled_image(
        img,
        np.moveaxis(sr, 0, slice_axis),
        in_plane,
        scale,
        f"rrlsrn upscale x{scale} ({upscaler.name})",
    )
    with atomic_path(output, suffix=nifti_suffix(output) or "") as tmp:
        nib.save(result, str(tmp))
    return UpscaleReport(
        input=source,
        output=output,
        shape_in=tuple(data.shape),
        shape_out=tuple(result.shape),
        zooms_out=tuple(float(z) for z in result.header.get_zooms()[:3]),
        axis=slice_axis,
        slices=int(keep.sum()) if keep is not None else len(stack),
        seconds=seconds,
        device=device_name(torch_device),
    )


def upscale_jobs(source: str | os.PathLike, output: str | os.PathLike) -> list[tuple[Path, Path]]:
    """(input, output) pairs: one file, or every NIfTI in a folder into an output folder."""
    source, output = Path(source), Path(output)
    if not source.exists():
        raise UpscaleError(f"{source}: no such file or folder")
    if not source.is_dir():
        return [(source, output)]
    if (output.exists() and not output.is_dir()) or nifti_suffix(output):
        raise UpscaleError(
            f"{output}: the input {source} is a folder, so the output must be a folder, "
            "not a file name"
        )
    inputs = sorted(p for p in source.iterdir() if p.is_file() and nifti_suffix(p))
    if not inputs:
        raise UpscaleError(f"{source}: the folder holds no .nii / .nii.gz files")
    return [(p, output / p.name) for p in inputs]


@dataclass(frozen=True)
class UpscalePlan:
    """What a run will do, decided before any compute: the jobs, and the outputs kept."""

    jobs: list[tuple[Path, Path]]
    skipped: list[Path]
    folder: bool


def plan_upscale(
    source: str | os.PathLike,
    output: str | os.PathLike,
    mask: str | os.PathLike | None = None,
    overwrite: bool = False,
    skip_existing: bool = False,
) -> UpscalePlan:
    """Check every output path before any compute; raise :class:`UpscaleError` if one is bad.

    An output may never be an input (or the mask), through a link or a hard link either:
    ``--overwrite`` would destroy the scan.  Existing outputs are refused, replaced
    (``overwrite``) or kept and skipped (``skip_existing``, to resume a folder).
    """
    if overwrite and skip_existing:
        raise UpscaleError("give --overwrite or --skip-existing, not both")
    jobs = upscale_jobs(source, output)
    folder = Path(source).is_dir()
    if mask is not None and folder:
        raise UpscaleError(f"{source}: --mask applies to one volume, not a folder")
    protected = [src for src, _ in jobs] + ([Path(mask)] if mask is not None else [])
    todo, skipped = [], []
    for src, out in jobs:
        clash = next((p for p in protected if same_file(out, p)), None)
        if clash is not None:
            raise UpscaleError(
                f"{out}: the output is the input {clash}; writing it would destroy the "
                "input, so choose another output path"
            )
        if skip_existing and out.exists():
            skipped.append(out)
            continue
        _check_output(out, overwrite)
        todo.append((src, out))
    return UpscalePlan(todo, skipped, folder)


@dataclass(frozen=True)
class UpscaleFailure:
    """An input a folder run could not upscale, and why (the message names the file)."""

    input: Path
    reason: str


def upscale_paths(
    plan: UpscalePlan,
    upscaler: Upscaler,
    mask: str | os.PathLike | None = None,
    overwrite: bool = False,
    **options,
) -> tuple[list[UpscaleReport], list[UpscaleFailure]]:
    """Run a checked :func:`plan_upscale` plan: (reports, failures).

    One volume: a bad input raises.  A folder: a bad input is recorded and the others
    still run, so one broken file does not leave the folder half converted; the caller
    lists the failures.  An unusable device fails in the first volume, before its work.
    """
    reports, failures = [], []
    for src, out in plan.jobs:
        try:
            reports.append(
                upscale_volume(src, out, upscaler, mask=mask, overwrite=overwrite, **options)
            )
        except ValueError as error:  # UpscaleError, VolumeError: bad input, named
            if not plan.folder:
                raise
            failures.append(UpscaleFailure(src, str(error)))
    return reports, failures
