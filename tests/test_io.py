"""Tests for rrlsrn.io: atomic writers, .npz round trips, checksums and volume reading."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from rrlsrn.io import (
    VolumeError,
    atomic_path,
    load_npz,
    load_volume,
    save_npz_atomic,
    sha256sum,
    write_text_atomic,
)

AFFINE = np.array(
    [
        [0.8, 0.0, 0.0, -4.0],
        [0.0, 0.9, 0.0, -5.0],
        [0.0, 0.0, 3.0, 7.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)
ZOOMS = (0.8, 0.9, 3.0)  # the diagonal of AFFINE


def save_nifti(path: Path, data: np.ndarray, affine: np.ndarray = AFFINE) -> Path:
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ---------------------------------------------------------------- atomic writers


def test_write_text_atomic_writes_and_leaves_no_temp_files(tmp_path):
    dest = tmp_path / "sub" / "out.txt"  # parent folder is created
    write_text_atomic(dest, "hello\n")
    assert dest.read_text() == "hello\n"
    assert listing(dest.parent) == ["out.txt"]
    write_text_atomic(dest, "replaced")  # overwriting an existing file works too
    assert dest.read_text() == "replaced"
    assert listing(dest.parent) == ["out.txt"]


def test_atomic_path_failure_keeps_existing_destination(tmp_path):
    dest = tmp_path / "result.txt"
    dest.write_text("old content")
    with pytest.raises(RuntimeError, match="writer crashed"), atomic_path(dest) as tmp:
        assert tmp.parent == tmp_path and tmp != dest
        tmp.write_text("half-written new cont")
        raise RuntimeError("writer crashed")
    assert dest.read_text() == "old content"
    assert listing(tmp_path) == ["result.txt"]  # the temporary file is gone


def test_atomic_path_failure_without_existing_destination_creates_nothing(tmp_path):
    dest = tmp_path / "never.txt"
    with pytest.raises(KeyError), atomic_path(dest) as tmp:
        tmp.write_text("partial")
        raise KeyError("boom")
    assert listing(tmp_path) == []


def test_atomic_path_keeps_the_requested_suffix(tmp_path):
    with atomic_path(tmp_path / "x.nii.gz", suffix=".nii.gz") as tmp:
        assert tmp.name.endswith(".nii.gz")
        tmp.write_bytes(b"data")
    assert (tmp_path / "x.nii.gz").read_bytes() == b"data"


# ---------------------------------------------------------------- npz


def test_save_npz_atomic_load_npz_round_trip(tmp_path):
    arrays = {
        "hr": np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 7,
        "mask": np.array([[True, False], [False, True]]),
        "slice_index": np.array([3, 5], dtype=np.int32),
        "axis": np.int32(2),
        "source": np.str_("/data/sub-01_T1w.nii.gz"),
    }
    path = tmp_path / "subject.npz"
    save_npz_atomic(path, **arrays)
    # np.savez appends ".npz" to names lacking it: the temp suffix must prevent a stray file
    assert listing(tmp_path) == ["subject.npz"]
    loaded = load_npz(path)
    assert sorted(loaded) == sorted(arrays)
    for key, value in arrays.items():
        assert loaded[key].dtype == np.asarray(value).dtype, key
        np.testing.assert_array_equal(loaded[key], value)
    assert str(loaded["source"]) == "/data/sub-01_T1w.nii.gz"


def test_save_npz_atomic_to_a_name_without_npz_extension(tmp_path):
    path = tmp_path / "data.bin"
    save_npz_atomic(path, a=np.ones(3))
    assert listing(tmp_path) == ["data.bin"]
    np.testing.assert_array_equal(load_npz(path)["a"], np.ones(3))


def test_load_npz_garbage_raises_value_error_naming_the_file(tmp_path):
    path = tmp_path / "garbage.npz"
    path.write_bytes(b"this is not a zip archive at all" * 10)
    with pytest.raises(ValueError, match="garbage.npz") as err:
        load_npz(path)
    assert str(path) in str(err.value)


def test_load_npz_truncated_archive_raises_value_error(tmp_path):
    path = tmp_path / "cut.npz"
    save_npz_atomic(path, a=np.random.default_rng(0).random(1000))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.npz"):
        load_npz(path)


def test_load_npz_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_npz(tmp_path / "absent.npz")


# ---------------------------------------------------------------- sha256


def test_sha256sum_matches_hashlib_across_chunks(tmp_path):
    payload = bytes(range(256)) * 41 + b"tail"
    path = tmp_path / "blob.bin"
    path.write_bytes(payload)
    expected = hashlib.sha256(payload).hexdigest()
    assert sha256sum(path) == expected
    assert sha256sum(path, chunk=7) == expected  # many partial reads, same digest
    # known vector: SHA-256 of the empty string
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert sha256sum(empty) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


# ---------------------------------------------------------------- load_volume


def test_load_volume_returns_float32_data_affine_and_zooms(tmp_path):
    data = np.arange(12 * 10 * 8, dtype=np.int16).reshape(12, 10, 8)
    path = save_nifti(tmp_path / "vol.nii.gz", data)
    volume, affine, zooms = load_volume(path)
    assert volume.dtype == np.float32
    assert volume.shape == (12, 10, 8)
    np.testing.assert_array_equal(volume, data.astype(np.float32))
    np.testing.assert_allclose(affine, AFFINE, atol=1e-6)
    assert len(zooms) == 3
    assert all(isinstance(z, float) for z in zooms)
    assert zooms == pytest.approx(ZOOMS, abs=1e-6)


def test_load_volume_accepts_trailing_singleton_axis(tmp_path):
    data = np.random.default_rng(1).random((12, 10, 8, 1)).astype(np.float32)
    path = save_nifti(tmp_path / "vol4d1.nii.gz", data)
    volume, _, zooms = load_volume(path)
    assert volume.shape == (12, 10, 8)
    np.testing.assert_array_equal(volume, data[..., 0])
    assert zooms == pytest.approx(ZOOMS, abs=1e-6)


def _missing(tmp_path: Path) -> Path:
    return tmp_path / "missing.nii.gz"


def _truncated(tmp_path: Path) -> Path:
    good = save_nifti(tmp_path / "good.nii.gz", np.ones((12, 10, 8), np.float32))
    raw = good.read_bytes()
    path = tmp_path / "truncated.nii.gz"
    path.write_bytes(raw[: len(raw) // 2])
    return path


def _four_frames(tmp_path: Path) -> Path:
    return save_nifti(tmp_path / "frames.nii.gz", np.ones((12, 10, 8, 3), np.float32))


def _two_d(tmp_path: Path) -> Path:
    return save_nifti(tmp_path / "image2d.nii.gz", np.ones((12, 10), np.float32))


def _with_nan(tmp_path: Path) -> Path:
    data = np.ones((12, 10, 8), np.float32)
    data[3, 4, 5] = np.nan
    return save_nifti(tmp_path / "nan.nii.gz", data)


def _with_inf(tmp_path: Path) -> Path:
    data = np.ones((12, 10, 8), np.float32)
    data[0, 0, 0] = np.inf
    return save_nifti(tmp_path / "inf.nii.gz", data)


@pytest.mark.parametrize(
    "make, detail",
    [
        (_missing, "not found"),
        (_truncated, "cannot read"),
        (_four_frames, r"\(12, 10, 8, 3\)"),
        (_two_d, r"\(12, 10\)"),
        (_with_nan, "1 voxels are NaN"),
        (_with_inf, "1 voxels are NaN or infinite"),
    ],
    ids=["missing", "truncated", "4d-3-frames", "2d", "nan", "inf"],
)
def test_load_volume_bad_inputs_raise_volume_error_naming_the_file(tmp_path, make, detail):
    path = make(tmp_path)
    with pytest.raises(VolumeError, match=detail) as err:
        load_volume(path)
    assert str(path) in str(err.value)
    assert isinstance(err.value, ValueError)  # callers catching ValueError see it too


def test_atomic_writes_get_a_normal_file_mode(tmp_path):
    # mkstemp creates 0600 files; outputs must get the mode a plain open() would give.
    old = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "table.md", "x")
        (tmp_path / "plain.md").write_text("x")
    finally:
        os.umask(old)
    mode = (tmp_path / "table.md").stat().st_mode & 0o777
    assert mode == (tmp_path / "plain.md").stat().st_mode & 0o777 == 0o644
