"""Aggregation and significance tests of per-slice metrics, as the paper should have done.

The unit of analysis is the test subject: per-slice values are averaged per subject, and
the mean, SD and 95% confidence interval are taken over subjects with the t distribution
(``mean +/- t(0.975, n-1) * SD / sqrt(n)``).  The paper's printed intervals follow this
formula with n = 5 for every dataset (:data:`PAPER_INTERVAL_FACTOR`), also for NAMIC's
12 and the fetal 8 test cases.  Per-slice intervals are given for comparison only: slices
of one subject are not independent, so they understate the uncertainty.

Paired tests compare a reference method (RRLSRN) with every other method on the same
subjects (or slices): the paired t-test and the Wilcoxon signed-rank test, with effect
sizes (Cohen's d_z for the t-test, the matched-pairs rank-biserial correlation for the
Wilcoxon test).  The paper reports none of them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

METRICS = ("psnr", "ssim", "psnr_mask", "ssim_mask")
UNITS = ("subject", "slice")
KEYS = ["dataset", "method", "subject", "slice"]
# The paper's intervals: mean +/- t(0.975, 4) * SD / sqrt(5) = mean +/- 1.2417 SD.  Of its
# 30 printed intervals, 10 match this exactly and 10 more within one unit of the last digit;
# half-width / SD is about 1.24 for NAMIC (12 cases) and fetal (8) too: n = 5 throughout.
PAPER_INTERVAL_FACTOR = float(sps.t.ppf(0.975, 4) / np.sqrt(5))


def mean_sd_ci(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> dict:
    """n, mean, sample SD (ddof 1) and the t-based confidence interval of the mean.

    NaN values are dropped.  With n < 2 the SD and the interval are NaN.
    """
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    n = len(x)
    mean = float(x.mean()) if n else float("nan")
    if n < 2:
        return {"n": n, "mean": mean, "sd": float("nan"), "ci_low": float("nan"),
                "ci_high": float("nan")}  # fmt: skip
    sd = float(x.std(ddof=1))
    half = float(sps.t.ppf(0.5 + confidence / 2, n - 1)) * sd / np.sqrt(n)
    return {"n": n, "mean": mean, "sd": sd, "ci_low": mean - half, "ci_high": mean + half}


def present_metrics(frame: pd.DataFrame) -> list[str]:
    """The metric columns of ``frame`` that have at least one value, in METRICS order."""
    return [m for m in METRICS if m in frame and frame[m].notna().any()]


def subject_means(metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per dataset, method and subject: the mean of each metric over its slices.

    NaN slices (e.g. an empty mask) are left out of the mean; ``slices`` counts all rows.
    """
    cols = present_metrics(metrics)
    grouped = metrics.groupby(["dataset", "method", "subject"], sort=False)
    out = grouped[cols].mean()
    out.insert(0, "slices", grouped.size())
    return out.reset_index()


def summarise(
    metrics: pd.DataFrame, unit: str = "subject", confidence: float = 0.95
) -> pd.DataFrame:
    """Long table: dataset, method, metric, unit, n, mean, sd, ci_low, ci_high.

    ``unit="subject"`` aggregates per-subject means (the paper's unit); ``"slice"`` treats
    every slice as an observation.  Rows keep the order of first appearance.
    """
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, not {unit!r}")
    frame = subject_means(metrics) if unit == "subject" else metrics
    rows = []
    for (dataset, method), group in frame.groupby(["dataset", "method"], sort=False):
        for metric in present_metrics(metrics):
            rows.append(
                {
                    "dataset": dataset,
                    "method": method,
                    "metric": metric,
                    "unit": unit,
                    **mean_sd_ci(group[metric], confidence),
                }
            )
    return pd.DataFrame(rows)


def paired_test(reference: np.ndarray, other: np.ndarray) -> dict:
    """Paired t and Wilcoxon signed-rank tests of ``reference - other``, with effect sizes.

    Pairs with a NaN on either side are dropped.  Returns n, the mean difference and its
    95% CI, the t statistic and its two-sided p, Cohen's d_z (mean / SD of the
    differences), the Wilcoxon statistic (scipy's: the smaller signed-rank sum, zero
    differences dropped) and its two-sided p (exact for small n without ties), and the
    matched-pairs rank-biserial correlation r = (R+ - R-) / (R+ + R-).  With n = 3
    subjects the smallest possible Wilcoxon p is 0.25: small test sets cannot show
    significance with it, whatever the gap.
    """
    a, b = np.asarray(reference, float), np.asarray(other, float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length: {a.shape} vs {b.shape}")
    keep = ~(np.isnan(a) | np.isnan(b))
    d = a[keep] - b[keep]
    summary = mean_sd_ci(d)
    out = {
        "n": summary["n"],
        "mean_diff": summary["mean"],
        "diff_ci_low": summary["ci_low"],
        "diff_ci_high": summary["ci_high"],
        "t": float("nan"),
        "t_p": float("nan"),
        "cohen_dz": float("nan"),
        "wilcoxon_w": float("nan"),
        "wilcoxon_p": float("nan"),
        "rank_biserial": float("nan"),
    }
    if summary["n"] < 2:
        return out
    if summary["sd"] > 0:
        t = sps.ttest_rel(a[keep], b[keep])
        out.update(t=float(t.statistic), t_p=float(t.pvalue))
        out["cohen_dz"] = summary["mean"] / summary["sd"]
    nonzero = d[d != 0]
    if len(nonzero):
        w = sps.wilcoxon(d, zero_method="wilcox")
        ranks = sps.rankdata(np.abs(nonzero))
        r_plus, r_minus = ranks[nonzero > 0].sum(), ranks[nonzero < 0].sum()
        out.update(
            wilcoxon_w=float(w.statistic),
            wilcoxon_p=float(w.pvalue),
            rank_biserial=float((r_plus - r_minus) / (r_plus + r_minus)),
        )
    return out


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (NaN entries stay NaN and do not count)."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    order = valid[np.argsort(p[valid], kind="stable")]
    m = len(order)
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(adjusted, 1.0)
    return out


def paired_tests(
    metrics: pd.DataFrame, reference: str = "rrlsrn", unit: str = "subject"
) -> pd.DataFrame:
    """``reference`` against every other method, per dataset and metric, paired by unit.

    Columns: dataset, reference, method, metric, unit, then :func:`paired_test`'s keys,
    then ``t_p_holm`` / ``wilcoxon_p_holm``: Holm-adjusted over the methods compared within
    one dataset and metric.  A positive mean difference favours the reference.  Datasets
    without the reference method are skipped.
    """
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, not {unit!r}")
    frame = subject_means(metrics) if unit == "subject" else metrics
    pair_keys = ["subject"] if unit == "subject" else ["subject", "slice"]
    rows = []
    for dataset, group in frame.groupby("dataset", sort=False):
        ref = group[group["method"] == reference].set_index(pair_keys)
        if ref.empty:
            continue
        for method in group["method"].unique():
            if method == reference:
                continue
            other = group[group["method"] == method].set_index(pair_keys)
            common = ref.index.intersection(other.index)
            for metric in present_metrics(metrics):
                rows.append(
                    {
                        "dataset": dataset,
                        "reference": reference,
                        "method": method,
                        "metric": metric,
                        "unit": unit,
                        **paired_test(ref.loc[common, metric], other.loc[common, metric]),
                    }
                )
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    for col in ("t_p", "wilcoxon_p"):
        table[f"{col}_holm"] = table.groupby(["dataset", "metric"])[col].transform(
            lambda p: holm(p.to_numpy())
        )
    return table
