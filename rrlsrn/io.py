"""Reading volumes and writing result files safely.

Every reader checks what it got and raises an error naming the file; every writer writes
to a temporary file in the destination folder and renames it, so a crash never leaves a
half-written output behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

NIFTI_SUFFIXES = (".nii.gz", ".nii")  # longest first


def nifti_suffix(path: str | os.PathLike) -> str | None:
    """``.nii.gz`` or ``.nii`` when ``path`` names a NIfTI file, else None."""
    name = Path(path).name
    return next((s for s in NIFTI_SUFFIXES if name.endswith(s)), None)


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name one file: the same resolved path, a link, or a hard link
    (an output that is an input would destroy it)."""
    a, b = Path(a), Path(b)
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


class VolumeError(ValueError):
    """A volume file is missing, unreadable or not the 3D finite image expected."""


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    ``suffix`` keeps an extension that a writer insists on (e.g. ``.npz``, ``.nii.gz``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    tmp_path.chmod(0o666 & ~_current_umask())  # mkstemp makes 0600; give a normal file's mode
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def save_npz_atomic(path: str | os.PathLike, **arrays: Any) -> None:
    """``np.savez_compressed`` to ``path`` atomically."""
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, **arrays)


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load every array of an ``.npz`` file; a clear error names a bad file."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: file not found") from None
    except Exception as exc:
        raise ValueError(f"{path} is not a readable .npz file: {exc}") from exc


def load_slices(files: Sequence[str | os.PathLike]) -> list[np.ndarray]:
    """All HR slices of prepared per-subject files, in file order."""
    return [s for f in files for s in load_npz(f)["hr"]]


def sha256sum(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _read_nrrd(path: Path) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """NRRD (NAMIC's format) -> data, a 4x4 affine from 'space directions', voxel sizes."""
    import nrrd

    data, header = nrrd.read(str(path))
    affine = np.eye(4)
    directions = header.get("space directions")
    if directions is not None:
        rows = [np.asarray(d, dtype=float) for d in directions if d is not None]
        rows = [r for r in rows if np.all(np.isfinite(r))]
        if len(rows) == 3:
            affine[:3, :3] = np.stack(rows, axis=1)
    affine[:3, 3] = np.asarray(header.get("space origin", np.zeros(3)), dtype=float)[:3]
    zooms = tuple(float(z) for z in np.linalg.norm(affine[:3, :3], axis=0))
    return np.asarray(data, dtype=np.float32), affine, zooms


def _checked_3d(path: Path, data: np.ndarray) -> np.ndarray:
    """``data`` as a finite 3D array (a trailing singleton 4th axis squeezed), or VolumeError."""
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise VolumeError(f"{path}: expected a 3D volume, got shape {data.shape}")
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise VolumeError(f"{path}: {bad} voxels are NaN or infinite")
    return data


def load_nifti(path: str | os.PathLike) -> tuple[nib.Nifti1Image, np.ndarray]:
    """A NIfTI image (header and affine kept) and its checked 3D float32 data.

    The data have the header's intensity scaling applied.  Raises :class:`VolumeError`
    naming the file when it is missing, not NIfTI, unreadable, not 3D or not finite.
    """
    path = Path(path)
    if not path.is_file():
        raise VolumeError(f"{path}: file not found")
    try:
        img = nib.load(str(path))
    except Exception as exc:
        raise VolumeError(f"{path}: cannot read as NIfTI ({type(exc).__name__}: {exc})") from exc
    if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
        raise VolumeError(f"{path}: not a NIfTI file (it reads as {type(img).__name__})")
    try:
        data = np.asarray(img.get_fdata(dtype=np.float32))
    except Exception as exc:
        raise VolumeError(
            f"{path}: cannot read the NIfTI data ({type(exc).__name__}: {exc})"
        ) from exc
    return img, _checked_3d(path, data)


def load_volume(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """Read a 3D NIfTI (or NRRD) volume as float32 with its affine and voxel sizes.

    Raises :class:`VolumeError` naming the file when it is missing, unreadable or
    truncated, not 3D (a trailing singleton 4th axis is squeezed), or holds NaN/Inf.
    """
    path = Path(path)
    if path.suffix != ".nrrd":
        img, data = load_nifti(path)
        return data, img.affine, tuple(float(z) for z in img.header.get_zooms()[:3])
    if not path.is_file():
        raise VolumeError(f"{path}: file not found")
    try:
        data, affine, zooms = _read_nrrd(path)
    except Exception as exc:
        raise VolumeError(f"{path}: cannot read as NRRD ({type(exc).__name__}: {exc})") from exc
    return _checked_3d(path, data), affine, zooms
