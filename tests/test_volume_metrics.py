"""Tests for ``rrlsrn evaluate`` (rrlsrn.volume_metrics): values by hand and by skimage."""

from __future__ import annotations

import re

import nibabel as nib
import numpy as np
import pytest
from skimage.metrics import structural_similarity

from rrlsrn.cli import main
from rrlsrn.volume_metrics import compare_volumes

ZOOMS = (1.0, 1.0, 3.0)  # thick axis 2: the slices run across it


def save(path, data, zooms=ZOOMS):
    nib.save(nib.Nifti1Image(data.astype(np.float32), np.diag([*zooms, 1.0])), str(path))
    return path


@pytest.fixture
def pair(tmp_path):
    """HR in [100, 900) with a plateau of 1000 (>0.5 % of voxels, so p99.5 = 1000) in the
    2-pixel border, and SR = HR + 10: a normalised error of exactly 0.01 inside the border."""
    rng = np.random.default_rng(3)
    hr = rng.uniform(100, 900, (40, 36, 5))
    hr[0, :, :] = 1000.0
    sr = hr + 10.0
    return save(tmp_path / "hr.nii.gz", hr), save(tmp_path / "sr.nii.gz", sr), hr, sr


def test_psnr_by_hand_and_ssim_as_skimage(pair):
    hr_path, sr_path, hr, sr = pair
    result = compare_volumes(hr_path, sr_path)
    assert result.axis == 2 and list(result.per_slice["slice"]) == [0, 1, 2, 3, 4]
    # MSE 0.01^2 on [0, 1] data with peak 1: PSNR = 10 log10(1 / 1e-4) = 40 dB
    np.testing.assert_allclose(result.per_slice["psnr"], 40.0, atol=1e-4)
    for k in range(5):
        hr01 = np.clip(hr[..., k] / 1000, 0, 1)[2:-2, 2:-2]
        sr01 = np.clip(sr[..., k] / 1000, 0, 1)[2:-2, 2:-2]
        expected = structural_similarity(
            hr01,
            sr01,
            data_range=1.0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            win_size=11,
        )
        # skimage's mean is over its map cropped by half a window: Wang's valid region
        assert result.per_slice["ssim"][k] == pytest.approx(expected, abs=1e-6)
    summary = result.summary().set_index("metric")
    assert summary.loc["psnr", "mean"] == pytest.approx(40.0, abs=1e-4)
    assert summary.loc["psnr", "n"] == 5


def test_a_given_mask_selects_slices_and_the_masked_region(tmp_path, pair):
    hr_path, sr_path, hr, sr = pair
    mask = np.zeros(hr.shape)
    mask[10:30, 8:28, 1:4] = 1  # 400 of 1440 pixels in slices 1..3, none in 0 and 4
    result = compare_volumes(hr_path, sr_path, save(tmp_path / "m.nii.gz", mask))
    assert list(result.per_slice["slice"]) == [1, 2, 3]
    np.testing.assert_allclose(result.per_slice["psnr_mask"], 40.0, atol=1e-4)
    assert result.mask_source.endswith("m.nii.gz")


def test_shapes_that_differ_are_refused_naming_the_sr_file(tmp_path, pair, capsys):
    hr_path, _, hr, _ = pair
    small = save(tmp_path / "small.nii.gz", hr[:20])
    assert main(["evaluate", str(hr_path), str(small)]) == 1
    assert re.search("small.nii.gz: shape .* differs from .*hr.nii.gz", capsys.readouterr().err)


def test_cli_prints_the_suite_metrics(pair, tmp_path, capsys):
    hr_path, sr_path, _, _ = pair
    assert (
        main(["evaluate", str(hr_path), str(sr_path), "--per-slice", str(tmp_path / "s.csv")]) == 0
    )
    out = capsys.readouterr().out
    assert "PSNR (dB)          40.00 (SD 0.00, n 5)" in out
    assert "5 slices across axis 2" in out
    assert (tmp_path / "s.csv").read_text().startswith("slice,psnr,ssim,psnr_mask,ssim_mask")


def test_nan_in_the_sr_volume_is_refused(tmp_path, pair, capsys):
    hr_path, _, _, sr = pair
    sr = sr.copy()
    sr[3, 3, 3] = np.nan
    bad = save(tmp_path / "bad.nii.gz", sr)
    assert main(["evaluate", str(hr_path), str(bad)]) == 1
    assert "bad.nii.gz: 1 voxels are NaN" in capsys.readouterr().err
