"""Tests for rrlsrn.data.prepare (volume -> slices) and rrlsrn.data.embedded (shipped data)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from rrlsrn.data.embedded import ADULT_SPLIT, ADULT_T1, EMBEDDED_ROOT, embedded_volume
from rrlsrn.data.prepare import (
    SliceOptions,
    choose_slice_axis,
    describe_slicing,
    foreground_mask,
    normalise_intensities,
    prepare_volume,
    resolve_slice_axis,
)
from rrlsrn.io import VolumeError

# ---------------------------------------------------------------- choose_slice_axis


@pytest.mark.parametrize(
    "shape, zooms, axis",
    [
        # 1. a size-1 axis is the slice axis, whatever the spacings
        ((64, 64, 1), (1.0, 1.0, 1.0), 2),
        ((1, 64, 64), (1.0, 1.0, 3.0), 0),
        # 2. the thickest spacing: a thick-slice stack along z, or along x
        ((320, 320, 22), (1.125, 1.125, 3.3), 2),
        ((22, 256, 256), (3.0, 1.0, 1.0), 0),
        # ds002748 T1: 1.0 mm > 0.868 mm, so axial slices of 288 x 288
        ((288, 288, 181), (0.868, 0.868, 1.0), 2),
        # 3. ties within 1 % go to the fewest voxels: 255 x 255 x 10 at 1 mm slices axis 2
        ((255, 255, 10), (1.0, 1.0, 1.0), 2),
        ((10, 255, 255), (1.0, 1.0, 1.0), 0),
        ((255, 10, 255), (1.0, 1.005, 0.999), 1),  # 1.005 and 0.999 are within 1 % of 1.005
        # ... and not beyond 1 %: 1.02 is thicker, whatever the voxel counts
        ((10, 255, 255), (1.0, 1.02, 1.0), 1),
        # ds000011 T1: axes 1 and 2 tie at 1.333 mm and 192 voxels; the lower index wins
        ((160, 192, 192), (1.0, 1.333, 1.333), 1),
    ],
)
def test_choose_slice_axis(shape, zooms, axis):
    assert choose_slice_axis(shape, zooms) == axis


def test_describe_slicing_names_the_axis_count_and_plane():
    assert describe_slicing((255, 255, 10), 2) == "slicing along axis 2: 10 slices of 255×255"
    assert describe_slicing((22, 256, 128), 0) == "slicing along axis 0: 22 slices of 256×128"


def test_resolve_slice_axis_refuses_slices_that_are_not_images():
    assert resolve_slice_axis("1", (4, 5, 6), (1.0, 1.0, 1.0)) == 1
    with pytest.raises(ValueError, match="v.nii: slicing along axis 1 leaves slices of 64x1"):
        resolve_slice_axis("auto", (64, 1, 1), (1.0, 1.0, 1.0), "v.nii")
    with pytest.raises(ValueError, match="v.nii: slice axis must be auto, 0, 1 or 2, got 3"):
        resolve_slice_axis(3, (4, 5, 6), (1.0, 1.0, 1.0), "v.nii")


# ---------------------------------------------------------------- normalise_intensities


def test_normalise_intensities_by_hand():
    # nonzero voxels 1..11; numpy's linear percentile: the 90th sits at rank 0.9 * (11 - 1) = 9
    # of the sorted values, i.e. exactly 10.  Zero and negative voxels do not count.
    values = np.array([0.0, -3.0, *range(1, 12)], dtype=np.float32).reshape(1, 1, 13)
    image, low, high = normalise_intensities(values, 90.0)
    assert (low, high) == (0.0, 10.0)
    expected = np.array([0, 0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.0])
    assert image.dtype == np.float32
    np.testing.assert_allclose(image.ravel(), expected, atol=1e-6)
    # 95th: rank 9.5 -> halfway between 10 and 11 = 10.5
    image, _, high = normalise_intensities(values, 95.0)
    assert high == pytest.approx(10.5)
    assert image.ravel()[-2] == pytest.approx(10 / 10.5)
    assert image.ravel()[-1] == 1.0  # 11 > 10.5 is clipped


def test_normalise_all_zero_volume_raises_naming_the_source():
    with pytest.raises(VolumeError, match="sub-07_T1w.nii.gz"):
        normalise_intensities(np.zeros((4, 4, 4)), 99.5, source="/x/sub-07_T1w.nii.gz")
    with pytest.raises(VolumeError, match="neg.nii"):
        normalise_intensities(-np.ones((4, 4, 4)), 99.5, source="neg.nii")


# ---------------------------------------------------------------- foreground_mask


def test_foreground_mask_recovers_a_bright_ball_in_noise():
    rng = np.random.default_rng(0)
    z, y, x = np.mgrid[:24, :24, :24]
    ball = (z - 11.5) ** 2 + (y - 11.5) ** 2 + (x - 11.5) ** 2 <= 7**2
    volume = np.abs(rng.normal(0.0, 0.05, ball.shape))  # Rician-like background
    volume[ball] = 1.0 + rng.normal(0.0, 0.05, int(ball.sum()))
    mask = foreground_mask(volume)
    assert mask.dtype == bool and mask.shape == ball.shape
    intersection = (mask & ball).sum()
    union = (mask | ball).sum()
    assert intersection == ball.sum()  # the whole ball is found
    assert intersection / union > 0.95  # and little else
    assert not mask[:3].any() and not mask[-3:].any()  # isolated noise specks are dropped


def test_foreground_mask_fills_holes():
    volume = np.zeros((16, 16, 16))
    volume[3:13, 3:13, 3:13] = 1.0
    volume[6:10, 6:10, 6:10] = 0.0  # a dark cavity inside the object
    mask = foreground_mask(volume)
    expected = np.zeros_like(mask)
    expected[3:13, 3:13, 3:13] = True
    np.testing.assert_array_equal(mask, expected)


def test_foreground_mask_keeps_an_object_touching_the_volume_border():
    rng = np.random.default_rng(0)
    volume = np.zeros((20, 20, 20))
    volume[:, 5:15, 5:15] = rng.uniform(0.5, 1.0, (20, 10, 10))  # spans all of axis 0
    np.testing.assert_array_equal(foreground_mask(volume), volume > 0)


# ---------------------------------------------------------------- prepare_volume

SHAPE = (13, 11, 12)  # odd in-plane sizes; 12 slices along axis 2
ZOOMS = (0.8, 0.9, 3.0)  # axis 2 leaves 0.8 x 0.9 (anisotropy 0.11): chosen automatically
BLOCK = (slice(3, 10), slice(2, 9))  # in-plane extent of the object
FILLED = [3, 4, 5, 6, 7]  # slices holding the (one-component) object; the others are zero


def synthetic_volume(tmp_path: Path, name: str = "vol.nii.gz") -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(42)
    data = np.zeros(SHAPE, np.float32)
    for k in FILLED:
        data[BLOCK[0], BLOCK[1], k] = rng.uniform(60.0, 100.0, (7, 7))
    path = tmp_path / name
    nib.save(nib.Nifti1Image(data, np.diag([*ZOOMS, 1.0])), str(path))
    return path, data


def test_prepare_volume_slices_crops_normalises_and_drops_empty_slices(tmp_path):
    path, data = synthetic_volume(tmp_path)
    out = prepare_volume(path, SliceOptions(upper_percentile=100.0))
    # 100th percentile of the nonzero voxels = their maximum
    high = float(data.max())
    assert int(out["axis"]) == 2
    assert float(out["intensity_low"]) == 0.0
    assert float(out["intensity_high"]) == pytest.approx(high)
    # empty slices are dropped and the kept positions recorded
    np.testing.assert_array_equal(out["slice_index"], FILLED)
    assert out["slice_index"].dtype == np.int32
    # modcrop to scale 2: 13 x 11 -> 12 x 10
    assert out["hr"].shape == (5, 12, 10) and out["hr"].dtype == np.float32
    assert out["mask"].shape == (5, 12, 10) and out["mask"].dtype == bool
    for j, k in enumerate(FILLED):
        np.testing.assert_allclose(out["hr"][j], data[:12, :10, k] / high, rtol=1e-6)
    assert out["hr"].min() >= 0.0 and out["hr"].max() == pytest.approx(1.0)
    # the computed mask is the object (a box: closing and hole filling keep it as is)
    expected_mask = np.zeros((12, 10), bool)
    expected_mask[BLOCK] = True
    for j in range(5):
        np.testing.assert_array_equal(out["mask"][j], expected_mask)
    # provenance
    np.testing.assert_allclose(out["spacing"], [0.8, 0.9], rtol=1e-6)
    assert str(out["source"]) == str(path)
    assert str(out["source_sha256"]) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_prepare_volume_default_percentile_clips_to_unit_range(tmp_path):
    path, data = synthetic_volume(tmp_path)
    out = prepare_volume(path)  # 99.5th percentile < max: the brightest voxels clip to 1
    assert float(out["intensity_high"]) < data.max()
    assert out["hr"].min() >= 0.0 and out["hr"].max() == 1.0
    assert (out["hr"] == 1.0).sum() >= 1


def test_prepare_volume_explicit_axis(tmp_path):
    path, data = synthetic_volume(tmp_path)
    out = prepare_volume(path, SliceOptions(axis=0, upper_percentile=100.0))
    assert int(out["axis"]) == 0
    # slices along x are 11 x 12, cropped to 10 x 12; rows 3..9 hold the object
    np.testing.assert_array_equal(out["slice_index"], np.arange(3, 10))
    assert out["hr"].shape == (7, 10, 12)
    assert out["mask"][0, 2:9, 3:8].all() and out["mask"][0].sum() == 7 * 5
    np.testing.assert_allclose(out["hr"][0], data[3, :10, :12] / data.max(), rtol=1e-6)
    np.testing.assert_allclose(out["spacing"], [0.9, 3.0], rtol=1e-6)


def test_prepare_volume_slice_step_thins_the_non_empty_slices(tmp_path):
    path, data = synthetic_volume(tmp_path)
    out = prepare_volume(path, SliceOptions(upper_percentile=100.0, slice_step=2))
    # non-empty slices 3..7; every 2nd of them, counted from the first
    np.testing.assert_array_equal(out["slice_index"], [3, 5, 7])
    for j, k in enumerate([3, 5, 7]):
        np.testing.assert_allclose(out["hr"][j], data[:12, :10, k] / data.max(), rtol=1e-6)
    assert json.loads(str(out["options"]))["slice_step"] == 2
    with pytest.raises(ValueError, match="vol.nii.gz: slice_step must be at least 1"):
        prepare_volume(path, SliceOptions(slice_step=0))


def test_prepare_volume_rejects_an_invalid_axis(tmp_path):
    path, _ = synthetic_volume(tmp_path)
    with pytest.raises(ValueError, match="vol.nii.gz"):
        prepare_volume(path, SliceOptions(axis=3))


def test_prepare_volume_all_zero_volume_raises_naming_it(tmp_path):
    path = tmp_path / "zeros.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros(SHAPE, np.float32), np.eye(4)), str(path))
    with pytest.raises(VolumeError, match="zeros.nii.gz"):
        prepare_volume(path)


def test_prepare_volume_uses_a_supplied_mask(tmp_path):
    path, data = synthetic_volume(tmp_path)
    mask = np.zeros(SHAPE, np.float32)
    mask[4:8, 3:7, 3] = 1.0  # 16 of 120 pixels in slice 3
    mask[5:9, 4:8, 6] = 1.0  # and in slice 6
    mask[3:10, 2:9, 5] = 0.3  # below 0.5: not foreground, slice 5 is dropped
    mask_path = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(mask, np.diag([*ZOOMS, 1.0])), str(mask_path))
    out = prepare_volume(path, SliceOptions(upper_percentile=100.0), mask_path=mask_path)
    # the computed mask would keep slices 3..7 with the 7 x 7 block; the supplied one wins
    np.testing.assert_array_equal(out["slice_index"], [3, 6])
    np.testing.assert_array_equal(out["mask"][0], mask[:12, :10, 3] > 0.5)
    np.testing.assert_array_equal(out["mask"][1], mask[:12, :10, 6] > 0.5)
    assert out["mask"].sum() == 32
    np.testing.assert_allclose(out["hr"][1], data[:12, :10, 6] / data.max(), rtol=1e-6)


def test_prepare_volume_mask_of_the_wrong_shape_raises_naming_the_mask(tmp_path):
    path, _ = synthetic_volume(tmp_path)
    mask_path = tmp_path / "wrong_mask.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((13, 11, 10), np.float32), np.eye(4)), str(mask_path))
    with pytest.raises(VolumeError, match="wrong_mask.nii.gz") as err:
        prepare_volume(path, mask_path=mask_path)
    assert "(13, 11, 10)" in str(err.value) and "(13, 11, 12)" in str(err.value)


def test_prepare_volume_without_enough_foreground_raises(tmp_path):
    path, _ = synthetic_volume(tmp_path)
    mask_path = tmp_path / "tiny_mask.nii.gz"
    mask = np.zeros(SHAPE, np.float32)
    mask[5, 5, 3] = 1.0  # 1 of 120 pixels < 2 %
    nib.save(nib.Nifti1Image(mask, np.eye(4)), str(mask_path))
    with pytest.raises(VolumeError, match="vol.nii.gz"):
        prepare_volume(path, mask_path=mask_path)


# ---------------------------------------------------------------- embedded data


def test_embedded_datasets_carry_provenance_and_licence():
    folders = ["openneuro-ds002748", "openfmri-ds000011", "mialsrtk-sub-01"]
    assert (EMBEDDED_ROOT / "README.md").is_file()
    for folder in folders:
        assert (EMBEDDED_ROOT / folder / "SOURCE.txt").is_file(), folder
        description = json.loads((EMBEDDED_ROOT / folder / "dataset_description.json").read_text())
        assert description.get("License"), folder
    assert (EMBEDDED_ROOT / "mialsrtk-sub-01" / "LICENSE.txt").is_file()
    assert "CC0" in (EMBEDDED_ROOT / "openneuro-ds002748" / "dataset_description.json").read_text()


def test_embedded_adult_subjects_exist_and_split_covers_them():
    assert len(ADULT_T1) == 9
    for subject in ADULT_T1:
        path = embedded_volume(subject)
        assert path.is_file() and path.name.endswith("_T1w.nii.gz"), subject
        assert path.read_bytes()[:2] == b"\x1f\x8b"  # a real gzip stream, not an LFS pointer
    assert set(ADULT_SPLIT) == set(ADULT_T1)
    with pytest.raises(KeyError, match="sub-99"):
        embedded_volume("ds002748-sub-99")


def test_embedded_ds002748_header_gives_axial_slices():
    # header only (nibabel loads data lazily): 288 x 288 x 181 at 0.868 x 0.868 x 1.0 mm
    img = nib.load(str(embedded_volume("ds002748-sub-01")))
    assert img.shape == (288, 288, 181)
    zooms = img.header.get_zooms()[:3]
    assert zooms == pytest.approx((0.868, 0.868, 1.0), abs=1e-3)
    assert choose_slice_axis(img.shape, tuple(float(z) for z in zooms)) == 2
