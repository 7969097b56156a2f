"""Tests for rrlsrn.tables (summary tables) and rrlsrn.metrics.evaluate_slices."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from rrlsrn.metrics import evaluate_slices, psnr
from rrlsrn.tables import load_metrics, psnr_summary, write_table

# ---------------------------------------------------------------- evaluate_slices


def test_evaluate_slices_psnr_and_masked_psnr():
    rng = np.random.default_rng(3)
    hr = rng.random((3, 10, 10))
    sr = hr + rng.normal(0, 0.05, hr.shape)
    mask = np.zeros((3, 10, 10), bool)
    mask[0, 3:6, 2:8] = True  # inside the 2-pixel border
    mask[1, 0:2, :] = True  # only in the shaved border: empty after shaving
    # slice 2: no mask at all
    out = evaluate_slices(sr, hr, mask, shave=2)
    assert sorted(out) == ["psnr", "psnr_mask"]
    assert out["psnr"].shape == (3,) and out["psnr_mask"].shape == (3,)
    for i in range(3):
        # the library's own PSNR on each slice ...
        assert out["psnr"][i] == pytest.approx(psnr(sr[i], hr[i], shave=2).item(), abs=1e-9)
        # ... and by hand: MSE over the 6 x 6 interior
        mse = np.mean((sr[i, 2:-2, 2:-2] - hr[i, 2:-2, 2:-2]) ** 2)
        assert out["psnr"][i] == pytest.approx(-10 * math.log10(mse), abs=1e-9)
    # masked PSNR of slice 0: MSE over the 3 x 6 masked pixels only
    diff = (sr[0] - hr[0])[3:6, 2:8]
    assert out["psnr_mask"][0] == pytest.approx(-10 * math.log10(np.mean(diff**2)), abs=1e-9)
    assert math.isnan(out["psnr_mask"][1])
    assert math.isnan(out["psnr_mask"][2])


def test_evaluate_slices_without_mask_has_no_masked_column():
    hr = np.zeros((2, 8, 8))
    sr = hr + 0.1  # MSE 0.01 -> 20 dB
    out = evaluate_slices(sr, hr, shave=2)
    assert list(out) == ["psnr"]
    np.testing.assert_allclose(out["psnr"], [20.0, 20.0], atol=1e-9)


# ---------------------------------------------------------------- psnr_summary


def hand_metrics() -> pd.DataFrame:
    """Two methods x two subjects (2 and 3 slices), values chosen for easy arithmetic."""
    rows = []
    values = {
        ("bicubic", "s1"): [30.0, 32.0],
        ("bicubic", "s2"): [28.0, 29.0, 30.0],
        ("rrlsrn", "s1"): [33.0, 35.0],
        ("rrlsrn", "s2"): [30.0, 31.0, 32.0],
    }
    for (method, subject), psnrs in values.items():
        for k, v in enumerate(psnrs):
            rows.append(
                {
                    "method": method,
                    "dataset": "adult",
                    "subject": subject,
                    "slice": 10 + k,
                    "psnr": v,
                    "psnr_mask": v - 2.0,
                }
            )
    return pd.DataFrame(rows)


def test_psnr_summary_by_hand():
    table = psnr_summary(hand_metrics())
    # sorted by dataset then slice mean: bicubic (29.8) before rrlsrn (32.2)
    assert list(table["method"]) == ["bicubic", "rrlsrn"]
    bic, rr = table.iloc[0], table.iloc[1]
    assert (bic["subjects"], bic["slices"]) == (2, 5)
    assert (rr["subjects"], rr["slices"]) == (2, 5)
    # bicubic: subject means 31 and 29 -> mean 30, SD sqrt((1 + 1) / 1) = sqrt(2);
    # slice mean (30 + 32 + 28 + 29 + 30) / 5 = 29.8 (differs from the subject mean:
    # the subjects have different slice counts)
    assert bic["psnr_subject_mean"] == pytest.approx(30.0)
    assert bic["psnr_subject_sd"] == pytest.approx(math.sqrt(2))
    assert bic["psnr_slice_mean"] == pytest.approx(29.8)
    assert bic["psnr_mask_subject_mean"] == pytest.approx(28.0)
    # rrlsrn: subject means 34 and 31 -> mean 32.5, SD sqrt(2 * 1.5**2 / 1) = 1.5 sqrt(2);
    # slice mean (33 + 35 + 30 + 31 + 32) / 5 = 32.2
    assert rr["psnr_subject_mean"] == pytest.approx(32.5)
    assert rr["psnr_subject_sd"] == pytest.approx(1.5 * math.sqrt(2))
    assert rr["psnr_slice_mean"] == pytest.approx(32.2)
    assert rr["psnr_mask_subject_mean"] == pytest.approx(30.5)
    # gain over bicubic, on slice means: 32.2 - 29.8 = 2.4; bicubic over itself 0
    assert rr["gain_over_bicubic_db"] == pytest.approx(2.4)
    assert bic["gain_over_bicubic_db"] == pytest.approx(0.0)


def test_psnr_summary_gain_is_per_dataset_and_single_subject_sd_is_nan():
    other = pd.DataFrame(
        {
            "method": ["bicubic", "bicubic", "rrlsrn", "rrlsrn"],
            "dataset": ["fetal"] * 4,
            "subject": ["f1"] * 4,
            "slice": [0, 1, 0, 1],
            "psnr": [20.0, 22.0, 25.0, 26.0],
        }
    )
    metrics = pd.concat([hand_metrics().drop(columns="psnr_mask"), other], ignore_index=True)
    table = psnr_summary(metrics).set_index(["dataset", "method"])
    assert "psnr_mask_subject_mean" not in table
    # fetal: bicubic 21, rrlsrn 25.5 -> gain 4.5 (not relative to the adult bicubic 29.8)
    assert table.loc[("fetal", "rrlsrn"), "gain_over_bicubic_db"] == pytest.approx(4.5)
    assert table.loc[("adult", "rrlsrn"), "gain_over_bicubic_db"] == pytest.approx(2.4)
    assert math.isnan(table.loc[("fetal", "rrlsrn"), "psnr_subject_sd"])  # one subject
    assert list(psnr_summary(metrics)["dataset"]) == ["adult", "adult", "fetal", "fetal"]


def test_psnr_summary_other_reference():
    table = psnr_summary(hand_metrics(), reference="rrlsrn").set_index("method")
    assert table.loc["bicubic", "gain_over_rrlsrn_db"] == pytest.approx(-2.4)


# ---------------------------------------------------------------- write_table


def test_write_table_csv_md_tex(tmp_path):
    table = psnr_summary(hand_metrics())
    caption = "PSNR (dB) on held-out subjects, x2"
    paths = write_table(table, tmp_path / "tables" / "psnr_summary", caption)
    names = [p.name for p in paths]
    assert names == ["psnr_summary.csv", "psnr_summary.md", "psnr_summary.tex"]
    assert sorted(p.name for p in (tmp_path / "tables").iterdir()) == sorted(names)
    back = pd.read_csv(paths[0])
    assert list(back.columns) == list(table.columns)
    assert list(back["method"]) == ["bicubic", "rrlsrn"]
    for col in ["psnr_slice_mean", "psnr_subject_mean", "psnr_subject_sd", "gain_over_bicubic_db"]:
        np.testing.assert_allclose(back[col], table[col], atol=1e-4, err_msg=col)
    np.testing.assert_allclose(back["gain_over_bicubic_db"], [0.0, 2.4], atol=1e-4)
    markdown = paths[1].read_text()
    assert markdown.splitlines()[0] == caption
    assert "| rrlsrn" in markdown and "32.20" in markdown and "29.80" in markdown
    latex = paths[2].read_text()
    assert "\\caption{" in latex and "PSNR (dB) on held-out subjects" in latex
    assert "\\begin{tabular}" in latex and "32.20" in latex


# ---------------------------------------------------------------- load_metrics


def test_load_metrics_concatenates_files(tmp_path):
    metrics = hand_metrics()
    files = []
    for i, (_, part) in enumerate(metrics.groupby(["method", "subject"])):
        path = tmp_path / f"m{i}.tsv"
        part.to_csv(path, sep="\t", index=False)
        files.append(path)
    loaded = load_metrics(files)
    assert len(loaded) == len(metrics) == 10
    assert loaded["psnr"].sum() == pytest.approx(metrics["psnr"].sum())
    assert psnr_summary(loaded)["psnr_slice_mean"].tolist() == pytest.approx([29.8, 32.2])


def test_load_metrics_missing_file_raises_naming_it(tmp_path):
    with pytest.raises(ValueError, match="absent.tsv"):
        load_metrics([tmp_path / "absent.tsv"])


def test_load_metrics_binary_garbage_raises_naming_it(tmp_path):
    path = tmp_path / "binary.tsv"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ValueError, match="binary.tsv"):
        load_metrics([path])


@pytest.mark.parametrize("text", ["", "hello world\nfoo\n", "method\tsubject\nbicubic\ts1\n"])
def test_load_metrics_text_that_is_no_metrics_table_raises_naming_it(tmp_path, text):
    path = tmp_path / "not_metrics.tsv"
    path.write_text(text)
    with pytest.raises(ValueError, match="not_metrics.tsv"):
        load_metrics([path])


def test_load_metrics_needs_files():
    with pytest.raises(ValueError, match="no metric files"):
        load_metrics([])
