"""Turn a 3D volume into the per-subject slice file every method reads.

A volume is cut into 2D slices along one axis (``auto``: :func:`choose_slice_axis`, the
thickest axis, i.e. the through-plane of thick-slice stacks), normalised
per volume to [0, 1] with a robust percentile clip, cropped to a multiple of the scale,
given a brain / head mask, stripped of (nearly) empty slices and, optionally, thinned to
every n-th slice (adjacent 1 mm slices add little but run time).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from rrlsrn.degrade import modcrop
from rrlsrn.io import VolumeError, load_volume, sha256sum


@dataclass(frozen=True)
class SliceOptions:
    """How a volume becomes slices (recorded with every prepared file)."""

    axis: str | int = "auto"
    scale: int = 2
    upper_percentile: float = 99.5
    min_mask_fraction: float = 0.02
    slice_step: int = 1  # keep every n-th of the non-empty slices


SPACING_TIE = 0.01  # spacings within 1 % of the thickest count as equally thick


def choose_slice_axis(shape: tuple[int, ...], zooms: tuple[float, ...]) -> int:
    """The slice axis of a 3D volume: the one rule of the workflow, upscale and evaluate.

    1. an axis of size 1 is the slice axis (a single slice);
    2. otherwise the axis with the thickest spacing (a thick-slice stack's through-plane);
    3. on ties (spacings within 1 % of the thickest), the axis with the fewest voxels
       (on 1 mm isotropic data, the acquisition's slice direction), then the lowest index.
    """
    if len(shape) < 3 or len(zooms) < 3:
        raise ValueError(f"need a 3D shape and voxel size, got {shape} and {zooms}")
    singletons = [a for a in range(3) if shape[a] == 1]
    if singletons:
        return singletons[0]
    thickest = max(zooms[:3])
    tied = [a for a in range(3) if zooms[a] >= thickest * (1 - SPACING_TIE)]
    return min(tied, key=lambda a: (shape[a], a))


def describe_slicing(shape: tuple[int, ...], axis: int) -> str:
    """``"slicing along axis 2: 10 slices of 255×255"`` (printed when ``auto`` chose it)."""
    plane = "×".join(str(shape[a]) for a in range(3) if a != axis)
    return f"slicing along axis {axis}: {shape[axis]} slices of {plane}"


def intensity_range(
    volume: np.ndarray, upper_percentile: float = 99.5, source: str | os.PathLike = "volume"
) -> tuple[float, float]:
    """(0, p_upper of the positive voxels): the range every method sees as [0, 1]."""
    positive = volume[volume > 0]
    if positive.size == 0:
        raise VolumeError(f"{source}: the volume is all zero (or negative)")
    low = 0.0
    high = float(np.percentile(positive, upper_percentile))
    if high <= low:
        raise VolumeError(
            f"{source}: the {upper_percentile}th intensity percentile is {high}, cannot normalise"
        )
    return low, high


def resolve_slice_axis(
    axis: str | int,
    shape: tuple[int, ...],
    zooms: tuple[float, ...],
    source: str | os.PathLike = "volume",
) -> int:
    """``axis`` as 0, 1 or 2; ``"auto"`` picks :func:`choose_slice_axis`.

    The slices must be images: both in-plane axes need at least 2 voxels.
    """
    if axis == "auto":
        resolved = choose_slice_axis(shape, zooms)
    elif str(axis) in ("0", "1", "2"):
        resolved = int(axis)
    else:
        raise ValueError(f"{source}: slice axis must be auto, 0, 1 or 2, got {axis!r}")
    small = [a for a in range(3) if a != resolved and shape[a] < 2]
    if small:
        raise ValueError(
            f"{source}: slicing along axis {resolved} leaves slices of "
            f"{'x'.join(str(shape[a]) for a in range(3) if a != resolved)} voxels; "
            f"each in-plane axis needs at least 2"
        )
    return resolved


def normalise_intensities(
    volume: np.ndarray, upper_percentile: float, source: str | os.PathLike = "volume"
) -> tuple[np.ndarray, float, float]:
    """Map [0, p_upper of nonzero voxels] to [0, 1] and clip; return (image, low, high)."""
    low, high = intensity_range(volume, upper_percentile, source)
    return np.clip((volume - low) / (high - low), 0.0, 1.0).astype(np.float32), low, high


def foreground_mask(volume: np.ndarray) -> np.ndarray:
    """Head / brain mask from an HR volume: Otsu threshold, largest component, holes filled."""
    from skimage.filters import threshold_otsu

    positive = volume[volume > 0]
    threshold = threshold_otsu(positive) * 0.5 if positive.size else 0.0
    mask = volume > threshold
    labels, count = ndimage.label(mask)
    if count > 1:
        sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, count + 1))
        mask = labels == (1 + int(np.argmax(sizes)))
    # Pad before closing: outside the volume is not background, so objects touching the
    # border must not be eroded away.
    closed = ndimage.binary_closing(np.pad(mask, 2), iterations=2)[2:-2, 2:-2, 2:-2]
    return ndimage.binary_fill_holes(closed)


def prepare_volume(
    path: str | os.PathLike,
    options: SliceOptions = SliceOptions(),
    mask_path: str | os.PathLike | None = None,
) -> dict[str, np.ndarray]:
    """Slices, masks and provenance of one volume, ready for ``save_npz_atomic``.

    Keys: ``hr`` (N, H, W) float32 in [0, 1]; ``mask`` (N, H, W) bool; ``slice_index``
    (N,) position of each kept slice along ``axis``; ``axis``; ``spacing`` (in-plane mm);
    ``intensity_low`` / ``intensity_high`` (the clip); ``source`` and ``source_sha256``.
    """
    path = Path(path)
    volume, _, zooms = load_volume(path)
    axis = resolve_slice_axis(options.axis, volume.shape, zooms, path)
    image, low, high = normalise_intensities(volume, options.upper_percentile, path)
    if mask_path is not None:
        mask, _, _ = load_volume(mask_path)
        if mask.shape != volume.shape:
            raise VolumeError(
                f"{mask_path}: mask shape {mask.shape} does not match the "
                f"volume {path} shape {volume.shape}"
            )
        mask = mask > 0.5
    else:
        mask = foreground_mask(image)
    slices = modcrop(np.moveaxis(image, axis, 0), options.scale)
    masks = modcrop(np.moveaxis(mask, axis, 0), options.scale)
    fraction = masks.reshape(len(masks), -1).mean(axis=1)
    keep = np.flatnonzero(fraction >= options.min_mask_fraction)
    if keep.size == 0:
        raise VolumeError(
            f"{path}: no slice has at least {options.min_mask_fraction:.0%} foreground"
        )
    if options.slice_step < 1:
        raise ValueError(f"{path}: slice_step must be at least 1, got {options.slice_step}")
    keep = keep[:: options.slice_step]
    in_plane = [zooms[i] for i in range(3) if i != axis]
    return {
        "hr": np.ascontiguousarray(slices[keep], dtype=np.float32),
        "mask": np.ascontiguousarray(masks[keep], dtype=bool),
        "slice_index": keep.astype(np.int32),
        "axis": np.int32(axis),
        "spacing": np.asarray(in_plane, dtype=np.float32),
        "intensity_low": np.float32(low),
        "intensity_high": np.float32(high),
        "source": np.str_(str(path)),
        "source_sha256": np.str_(sha256sum(path)),
        "mask_source": np.str_(f"supplied:{mask_path}" if mask_path is not None else "computed"),
        "options": np.str_(json.dumps(dataclasses.asdict(options))),
    }
