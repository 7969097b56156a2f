"""Measuring weights on validation volumes of other contrasts and on a run's subjects
(rrlsrn.contrasts, `rrlsrn measure-weights --contrasts`)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from rrlsrn.cli import main
from rrlsrn.contrasts import (
    LAPSRN,
    Unit,
    contrast_of,
    find_volumes,
    gain_table,
    gains,
    measure_units,
    volume_units,
)
from rrlsrn.degrade import imresize
from rrlsrn.io import save_npz_atomic
from rrlsrn.modelcard import shipped_model
from rrlsrn.weights import WEIGHTS_DIR


def write_stack(path, slices: np.ndarray) -> None:
    """(N, H, W) slices as a thick-slice stack: 1 x 1 x 3 mm, slices along the last axis."""
    path.parent.mkdir(parents=True, exist_ok=True)
    volume = np.moveaxis((slices * 1000).astype(np.int16), 0, -1)
    nib.save(nib.Nifti1Image(volume, np.diag([1.0, 1.0, 3.0, 1.0])), str(path))


@pytest.mark.parametrize(
    ("name", "contrast"),
    [
        ("lj-ms-p04s1-flair", "FLAIR"),
        ("patient01_study1_T2W.nii.gz", "T2w"),
        ("IXI002-Guys-0828-PD.nii.gz", "PD"),
        ("sub-01_T1w.nii", "T1w"),
        ("sub-01", "?"),
    ],
)
def test_contrast_is_read_from_the_name(name, contrast):
    assert contrast_of(name) == contrast


def test_find_volumes_takes_one_nifti_per_folder_and_names_problems(tmp_path, real_slices):
    write_stack(tmp_path / "a-t2w" / "scan.nii.gz", real_slices)
    write_stack(tmp_path / "b_FLAIR.nii.gz", real_slices)
    (tmp_path / "notes.txt").write_text("not a volume")
    assert [n for n, _ in find_volumes(tmp_path)] == ["a-t2w", "b_FLAIR"]
    write_stack(tmp_path / "c" / "one.nii", real_slices)
    write_stack(tmp_path / "c" / "two.nii", real_slices)
    with pytest.raises(ValueError, match=r"/c: expected one NIfTI volume, found 2 \(one.nii"):
        find_volumes(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty: no NIfTI volumes"):
        find_volumes(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="missing: no such folder"):
        find_volumes(tmp_path / "missing")


def test_volume_units_slice_across_the_thick_axis(tmp_path, real_slices):
    write_stack(tmp_path / "x-t2w" / "scan.nii.gz", real_slices[:, :100, :90])
    (unit,) = volume_units(tmp_path)
    assert (unit.name, unit.role, unit.contrast) == ("x-t2w", "val", "T2w")
    assert unit.hr.shape == (2, 100, 90) and unit.mask.shape == unit.hr.shape


def test_gains_are_per_slice_differences_against_matlab_bicubic(real_slices):
    hr = real_slices[:, 64:192, 64:192].astype(np.float32)
    mask = hr > 0.05
    model, scale, degradation = shipped_model("rrlsrn")
    units = [Unit("adult", "s1", "test", "T1w", hr, mask)]
    metrics = measure_units(units, {"rrlsrn": model, LAPSRN: model}, scale, degradation)
    assert set(metrics["method"]) == {"bicubic", "rrlsrn", LAPSRN} and len(metrics) == 6
    # bicubic by hand: MATLAB imresize down and up, clipped, PSNR in the mask, 2-pixel border
    bicubic = []
    for s, m in zip(hr, mask, strict=True):
        sr = np.clip(imresize(imresize(s, 0.5), 2.0), 0, 1)
        error = ((sr - s) ** 2)[2:-2, 2:-2][m[2:-2, 2:-2]]
        bicubic.append(10 * np.log10(1 / error.mean()))
    rows = metrics.set_index(["method", "slice"])["psnr_mask"]
    assert np.allclose(rows["bicubic"].to_numpy(), bicubic, atol=1e-3)
    summary = gains(metrics).set_index("method")
    expected_gain = (rows["rrlsrn"] - rows["bicubic"]).mean()
    assert summary.loc["rrlsrn", "gain"] == pytest.approx(expected_gain)
    assert summary.loc["rrlsrn", "gain"] > 1.0  # the shipped weights beat bicubic on T1w
    table = gain_table(metrics, "rrlsrn")
    gain = f"{expected_gain:+.2f}"
    assert f"| adult | s1 | T1w | 2 | {np.mean(bicubic):.2f} | {gain} | {gain} | +0.00 |" in table


def test_measure_weights_cli_prints_a_checkpoint_and_leaves_cards_alone(
    tmp_path, real_slices, capsys
):
    results, contrasts = tmp_path / "results", tmp_path / "contrasts"
    (results / "splits").mkdir(parents=True)
    (results / "splits" / "adult.tsv").write_text("subject\trole\ns1\ttest\ns2\tval\ns3\ttrain\n")
    hr = real_slices[:, 64:192, 64:192].astype(np.float32)
    for subject in ("s1", "s2", "s3"):
        save_npz_atomic(
            results / "data" / "adult" / f"{subject}.npz", hr=hr, mask=np.ones_like(hr, bool)
        )
    write_stack(contrasts / "v-flair" / "scan.nii.gz", hr)
    card = (WEIGHTS_DIR / "rrlsrn.md").read_text()
    checkpoint = str(WEIGHTS_DIR / "rrlsrn.pt")
    argv = ["measure-weights", "--results", str(results), "--contrasts", str(contrasts)]
    assert main([*argv, "--name", checkpoint, "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "| adult | 1 | 2 |" in out  # the test subject only, in the test-set table
    assert (
        "| adult (val) | s2 | — | 2 |" in out
        and "| validation contrasts | v-flair | FLAIR |" in out
    )
    assert "| adult | s3 |" not in out  # training subjects are never measured
    assert (WEIGHTS_DIR / "rrlsrn.md").read_text() == card


def test_weights_of_one_scale_share_bicubic_and_the_units(tmp_path, real_slices):
    from rrlsrn.modelcard import measure_weights, metrics_of

    write_stack(tmp_path / "v-t2w" / "scan.nii.gz", real_slices[:, 64:160, 64:160])
    metrics = measure_weights(["rrlsrn", "srcnn"], None, tmp_path, device="cpu")
    per_method = metrics.groupby("method").size().to_dict()
    assert per_method == {"bicubic": 2, "rrlsrn": 2, "srcnn": 2}  # bicubic run once
    assert set(metrics_of(metrics, "srcnn")["method"]) == {"bicubic", "srcnn"}
