"""Tests for rrlsrn.stats against hand computations and the paper's own intervals."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from rrlsrn.stats import holm, mean_sd_ci, paired_test, paired_tests, subject_means, summarise

T_975_DF2 = 4.302652729911275  # Student t quantiles from printed tables
T_975_DF4 = 2.7764451051977987


def test_mean_sd_ci_by_hand():
    out = mean_sd_ci([30.0, 32.0, 34.0])
    assert out["n"] == 3 and out["mean"] == pytest.approx(32.0)
    assert out["sd"] == pytest.approx(2.0)  # sqrt((4 + 0 + 4) / 2)
    half = T_975_DF2 * 2.0 / math.sqrt(3)
    assert out["ci_low"] == pytest.approx(32.0 - half, abs=1e-9)
    assert out["ci_high"] == pytest.approx(32.0 + half, abs=1e-9)


def test_mean_sd_ci_drops_nan_and_handles_one_value():
    assert mean_sd_ci([1.0, float("nan"), 3.0])["mean"] == pytest.approx(2.0)
    one = mean_sd_ci([5.0])
    assert one["n"] == 1 and one["mean"] == 5.0
    assert math.isnan(one["sd"]) and math.isnan(one["ci_low"])


@pytest.mark.parametrize(
    ("mean", "sd", "low", "high"),
    [  # Table 1 (Kirby 21, n = 5 test subjects), PSNR: mean, SD and the published CI of
        # cubic spline, LRTV and SRCNN.  The NMU and "Ours" columns do not match their own
        # printed mean and SD under any rule (NMU's interval is centred on 34.37, Ours' is
        # 1.27 wide on each side, which needs SD 1.02, not 1.05): left out, see README.
        (34.16, 1.90, 31.80, 36.51),
        (35.26, 1.90, 32.90, 37.62),
        (36.56, 1.02, 35.29, 37.83),
    ],
)
def test_intervals_reproduce_the_papers_table_1(mean, sd, low, high):
    z = np.array([-1.2, -0.4, 0.1, 0.5, 1.0])
    z = (z - z.mean()) / z.std(ddof=1)  # five values with exactly this mean and SD
    out = mean_sd_ci(mean + sd * z)
    assert out["sd"] == pytest.approx(sd)
    half = T_975_DF4 * sd / math.sqrt(5)
    assert out["ci_high"] - out["mean"] == pytest.approx(half, abs=1e-9)
    # the paper rounded mean and SD before printing: agree to its last digit
    assert out["ci_low"] == pytest.approx(low, abs=0.02)
    assert out["ci_high"] == pytest.approx(high, abs=0.02)


def test_paired_test_by_hand():
    ref = np.array([31.0, 32.0, 27.0, 34.0, 35.0])
    other = np.full(5, 30.0)  # differences 1, 2, -3, 4, 5
    out = paired_test(ref, other)
    assert out["n"] == 5 and out["mean_diff"] == pytest.approx(1.8)
    sd = math.sqrt(38.8 / 4)  # squared deviations .64 + .04 + 23.04 + 4.84 + 10.24
    assert out["t"] == pytest.approx(1.8 / (sd / math.sqrt(5)))
    assert out["cohen_dz"] == pytest.approx(1.8 / sd)
    # ranks of |d|: 1..5; negative rank sum 3 -> W = 3.  Exact two-sided p: subsets of
    # {1..5} with rank sum <= 3 are {}, {1}, {2}, {3}, {1,2}: 2 * 5 / 32.
    assert out["wilcoxon_w"] == 3.0
    assert out["wilcoxon_p"] == pytest.approx(10 / 32)
    assert out["rank_biserial"] == pytest.approx((12 - 3) / 15)
    assert 0.2 < out["t_p"] < 0.3  # t = 1.29 on 4 df: two-sided p = 0.266


def test_paired_test_degenerate_cases():
    same = paired_test(np.ones(4), np.ones(4))  # no differences at all
    assert same["mean_diff"] == 0 and math.isnan(same["t"]) and math.isnan(same["wilcoxon_p"])
    shifted = paired_test(np.arange(4.0) + 1, np.arange(4.0))  # constant difference
    assert math.isnan(shifted["t"]) and shifted["rank_biserial"] == 1.0
    assert shifted["wilcoxon_p"] == pytest.approx(2 / 16)  # all signs positive, n = 4
    with pytest.raises(ValueError, match="differ in length"):
        paired_test(np.ones(3), np.ones(4))


def test_holm_by_hand():
    # sorted 0.01 (x3 = 0.03), 0.03 (x2 = 0.06), 0.04 (x1, but monotone: 0.06)
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    # 0.2 x 2 = 0.4, then 0.3 x 1 = 0.3 raised to 0.4 (monotone); the NaN is not counted
    out = holm([0.3, float("nan"), 0.2])
    assert math.isnan(out[1]) and out[0] == pytest.approx(0.4) and out[2] == pytest.approx(0.4)
    assert holm([0.6, 0.9])[0] == 1.0  # capped at 1


def hand_metrics() -> pd.DataFrame:
    """Two methods, two subjects with 2 and 3 slices; masked values NaN on one slice."""
    values = {
        ("bicubic", "s1"): [30.0, 32.0],
        ("bicubic", "s2"): [28.0, 29.0, 30.0],
        ("rrlsrn", "s1"): [33.0, 35.0],
        ("rrlsrn", "s2"): [30.0, 31.0, 35.0],
    }
    rows = []
    for (method, subject), psnrs in values.items():
        for k, v in enumerate(psnrs):
            rows.append(
                {
                    "method": method,
                    "dataset": "adult",
                    "subject": subject,
                    "slice": k,
                    "psnr": v,
                    "ssim": v / 40,
                    "psnr_mask": float("nan") if k == 0 else v - 2,
                }
            )
    return pd.DataFrame(rows)


def test_subject_means_by_hand():
    means = subject_means(hand_metrics()).set_index(["method", "subject"])
    assert means.loc[("rrlsrn", "s2"), "psnr"] == pytest.approx(32.0)
    assert means.loc[("rrlsrn", "s2"), "slices"] == 3
    assert means.loc[("bicubic", "s1"), "psnr_mask"] == pytest.approx(30.0)  # NaN left out
    assert "ssim_mask" not in means  # absent metrics are not invented


def test_summarise_per_subject_and_per_slice():
    by_subject = summarise(hand_metrics()).set_index(["method", "metric"])
    row = by_subject.loc[("rrlsrn", "psnr")]
    assert row["n"] == 2 and row["mean"] == pytest.approx(33.0)  # subject means 34 and 32
    assert row["sd"] == pytest.approx(math.sqrt(2))
    by_slice = summarise(hand_metrics(), unit="slice").set_index(["method", "metric"])
    assert by_slice.loc[("rrlsrn", "psnr"), "n"] == 5
    assert by_slice.loc[("rrlsrn", "psnr"), "mean"] == pytest.approx(32.8)
    assert set(by_subject.reset_index()["metric"]) == {"psnr", "ssim", "psnr_mask"}
    with pytest.raises(ValueError, match="unit"):
        summarise(hand_metrics(), unit="voxel")


def test_paired_tests_pair_by_subject_and_slice():
    subjects = paired_tests(hand_metrics()).set_index("metric")
    # subject means: rrlsrn 34, 32; bicubic 31, 29 -> differences 3, 3
    assert subjects.loc["psnr", "method"] == "bicubic"
    assert subjects.loc["psnr", "n"] == 2 and subjects.loc["psnr", "mean_diff"] == 3.0
    slices = paired_tests(hand_metrics(), unit="slice").set_index("metric")
    # slice differences 3, 3, 2, 2, 5 -> mean 3
    assert slices.loc["psnr", "n"] == 5 and slices.loc["psnr", "mean_diff"] == pytest.approx(3)
    assert slices.loc["psnr_mask", "n"] == 3  # the NaN slices are dropped in pairs
    assert "wilcoxon_p_holm" in slices and "t_p_holm" in slices


def test_paired_tests_skip_datasets_without_the_reference():
    frame = hand_metrics()
    frame = frame[frame["method"] == "bicubic"]
    assert paired_tests(frame).empty
