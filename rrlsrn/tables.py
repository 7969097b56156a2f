"""The paper's tables from per-slice metric and timing files (CSV + Markdown + LaTeX).

- Tables 1-3 (:func:`quality_table`): mean, SD and 95% CI over test subjects of PSNR and
  SSIM (whole slice and inside the mask) per method, laid out as the paper's, with the
  published values beside each method where the dataset is one of the paper's.
- Tables 4 and 5 (:func:`ablation_table`): RRLSRN with / without GDL and with / without
  the bottom transposed convolution, per test subject, with paired tests.
- Table 6 (:func:`runtime_table`): seconds per slice per method and dataset.
- :func:`paired_table`: RRLSRN against every other method (the paper has no such table).

Published numbers live in ``published.yaml``, never in code.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from rrlsrn.io import write_text_atomic
from rrlsrn.labels import method_label, metric_label
from rrlsrn.registry import ablation_table_number, ablation_table_stem, ablations
from rrlsrn.stats import (
    PAPER_INTERVAL_FACTOR,
    paired_test,
    paired_tests,
    present_metrics,
    summarise,
)

PAPER_DATASETS = {"kirby21": "Kirby 21", "namic": "NAMIC", "fetal": "clinical fetal"}
PAPER_STYLE_CI = "CI (paper-style)"
QUALITY_STATISTICS = ("Mean", "SD", "CI (95%)", PAPER_STYLE_CI)
OUTSIDE = " †"  # Table 6: timed from outside (an external program's wall time / slices)


@functools.cache
def published() -> dict[str, Any]:
    """The numbers printed in the paper (``rrlsrn/published.yaml``)."""
    text = resources.files("rrlsrn").joinpath("published.yaml").read_text()
    return yaml.safe_load(text)


def read_table(
    path: str | os.PathLike, required: Sequence[str], what: str, sep: str = "\t"
) -> pd.DataFrame:
    """A delimited table that must have ``required`` columns; errors name the file."""
    try:  # subject ids stay text ("01" is not the number 1)
        frame = pd.read_csv(path, sep=sep, dtype={"subject": str})
    except Exception as exc:
        raise ValueError(f"{path}: cannot read {what}: {exc}") from exc
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: not a {what}, missing columns {missing}")
    return frame


def _concat(frames: list[pd.DataFrame], what: str) -> pd.DataFrame:
    if not frames:
        raise ValueError(f"no {what} given")
    return pd.concat(frames, ignore_index=True)


def load_metrics(files: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """Concatenate per-subject metric TSVs (columns method, dataset, subject, slice, ...)."""
    required = ["method", "dataset", "subject", "slice", "psnr"]
    return _concat([read_table(f, required, "metrics table") for f in files], "metric files")


def load_runtimes(files: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """Concatenate per-subject timing TSVs written by the super-resolution step."""
    required = ["method", "dataset", "subject", "slice", "seconds"]
    return _concat([read_table(f, required, "runtime table") for f in files], "runtime files")


def load_rule_benchmarks(files: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """Snakemake ``benchmark:`` files of ``.../{method}/{dataset}/{subject}.tsv``.

    Returns method, dataset, subject and ``rule_seconds`` (the job's wall time, which
    includes process start and model loading, unlike the per-slice timings).
    """
    rows = []
    for f in files:
        frame = read_table(f, ["s"], "Snakemake benchmark file")
        method, dataset = Path(f).parts[-3:-1]
        rows.append(
            {
                "method": method,
                "dataset": dataset,
                "subject": Path(f).stem,
                "rule_seconds": float(frame["s"].mean()),
            }
        )
    return _concat([pd.DataFrame(rows)] if rows else [], "benchmark files")


def _fmt(value: float, metric: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.4f}" if metric.startswith("ssim") else f"{value:.2f}"


def _fmt_ci(low: float, high: float, metric: str) -> str:
    if math.isnan(low):
        return "–"
    return f"[{_fmt(low, metric)},{_fmt(high, metric)}]"


def quality_table(
    metrics: pd.DataFrame,
    dataset: str,
    methods: Sequence[str],
    paper_dataset: str | None = None,
) -> pd.DataFrame:
    """Tables 1-3 for one dataset: rows Mean / SD / CI (95%) / CI (paper-style) per
    metric, columns methods.

    Statistics are over per-subject means (t-based CI).  "CI (paper-style)" is the
    interval as the paper computed it, mean +/- 1.2417 SD (t(0.975, 4) / sqrt(5), n = 5
    whatever the count: :data:`rrlsrn.stats.PAPER_INTERVAL_FACTOR`), so ours compare with
    its printed ones like for like.  With ``paper_dataset`` (kirby21, namic or fetal) each
    method the paper reports gets a "(paper)" column beside it; its printed interval sits
    on the paper-style row.
    """
    frame = metrics[metrics["dataset"] == dataset]
    if frame.empty:
        raise ValueError(f"no metrics for dataset {dataset!r}")
    methods = [m for m in methods if m in set(frame["method"])]
    summary = summarise(frame).set_index(["method", "metric"])
    paper = published()["quality"].get(paper_dataset, {}) if paper_dataset else {}
    subjects = frame.groupby("method")["subject"].nunique()
    columns = ["Statistic", "Metric"]
    for m in methods:
        columns += [method_label(m)] + [paper_column(m)] * (m in paper.get("psnr", {}))
    rows: list[dict[str, str]] = [
        {"Statistic": "n", "Metric": "subjects"}
        | {method_label(m): str(subjects[m]) for m in methods}
    ]
    for metric in present_metrics(frame):
        for stat in QUALITY_STATISTICS:
            row = {"Statistic": stat, "Metric": metric_label(metric)}
            for m in methods:
                s = summary.loc[(m, metric)] if (m, metric) in summary.index else None
                if s is None:
                    cell = "–"
                elif stat == "CI (95%)":
                    cell = _fmt_ci(s["ci_low"], s["ci_high"], metric)
                elif stat == PAPER_STYLE_CI:
                    half = PAPER_INTERVAL_FACTOR * s["sd"]
                    cell = _fmt_ci(s["mean"] - half, s["mean"] + half, metric)
                else:
                    cell = _fmt(s["mean" if stat == "Mean" else "sd"], metric)
                row[method_label(m)] = cell
                if m in paper.get("psnr", {}):
                    row[paper_column(m)] = _paper_cell(paper, metric, m, stat)
            rows.append(row)
    return pd.DataFrame(rows, columns=columns).fillna("")


def paper_column(method: str) -> str:
    """Header of the column holding the paper's value for ``method``."""
    return f"{method_label(method)} (paper)"


def _paper_cell(paper: dict, metric: str, method: str, stat: str) -> str:
    values = paper.get(metric, {}).get(method)
    if values is None:
        return ""
    if stat == PAPER_STYLE_CI:  # the paper's printed interval is computed this way
        return _fmt_ci(*values["ci"], metric)
    if stat == "CI (95%)":
        return ""
    return _fmt(values["mean" if stat == "Mean" else "sd"], metric)


def quality_long(
    metrics: pd.DataFrame, paper_datasets: dict[str, str] | None = None
) -> pd.DataFrame:
    """Every statistic as a tidy table: per subject and per slice, plus the paper's values.

    Columns: dataset, method, metric, unit, n, mean, sd, ci_low, ci_high, and
    paper_mean / paper_sd / paper_ci_low / paper_ci_high where the paper has them.
    """
    paper_datasets = paper_datasets or {}
    table = pd.concat([summarise(metrics, unit=u) for u in ("subject", "slice")])
    quality = published()["quality"]

    def paper_value(row: pd.Series, key: str) -> float:
        paper = quality.get(paper_datasets.get(row["dataset"]), {})
        values = paper.get(row["metric"], {}).get(row["method"])
        if values is None or row["unit"] != "subject":
            return float("nan")
        return values["ci"][key == "ci_high"] if key.startswith("ci") else values[key]

    for key in ("mean", "sd", "ci_low", "ci_high"):
        table[f"paper_{key}"] = table.apply(paper_value, axis=1, key=key)
    return table.reset_index(drop=True)


def ablation_table(
    metrics: pd.DataFrame,
    ablation: str,
    metric_names: Sequence[str] = ("psnr", "psnr_mask"),
    with_paper: bool = True,
) -> pd.DataFrame:
    """Table 4 (``ablation="gdl"``) or 5 (``"bottom_conv"`` or ``"no_bottom"``, its two
    readings): PSNR per test subject.

    One row per dataset and subject (per-subject mean over slices) with the value without
    and with the component and their difference; per dataset a mean row, a count of the
    subjects the full model improves, and paired t / Wilcoxon p-values; then, with
    ``with_paper`` (the paper's values are x2), the paper's eight clinical fetal subjects.
    """
    without, full, component = ablations()[ablation]
    frame = metrics[metrics["method"].isin([without, full])]
    names = [m for m in metric_names if m in frame and frame[m].notna().any()]
    means = frame.groupby(["dataset", "method", "subject"])[names].mean()
    columns = [
        f"{metric_label(n)} {side}"
        for n in names
        for side in (f"without {component}", f"with {component}", "difference")
    ]
    cells = functools.partial(_ablation_cells, component=component)
    rows = []
    datasets = [d for d in frame["dataset"].unique() if _has_both(means, d, without, full)]
    for dataset in datasets:
        a = means.loc[(dataset, without)]
        b = means.loc[(dataset, full)]
        subjects = a.index.intersection(b.index)
        a, b = a.loc[subjects], b.loc[subjects]
        for subject in subjects:
            rows.append(
                {"Dataset": dataset, "Subject": subject}
                | cells(names, a.loc[subject], b.loc[subject])
            )
        mean_label = f"mean (n={len(subjects)})"
        rows.append({"Dataset": dataset, "Subject": mean_label} | cells(names, a.mean(), b.mean()))
        improved, pvalues = (
            {"Dataset": dataset, "Subject": "improved"},
            {
                "Dataset": dataset,
                "Subject": "p (paired t / Wilcoxon)",
            },
        )
        for n in names:
            test = paired_test(b[n].to_numpy(), a[n].to_numpy())
            improved[f"{metric_label(n)} difference"] = f"{int((b[n] > a[n]).sum())} of {test['n']}"
            pvalues[f"{metric_label(n)} difference"] = (
                f"{_fmt_p(test['t_p'])} / {_fmt_p(test['wilcoxon_p'])}"
            )
        rows += [improved, pvalues]
    if with_paper:
        number = ablation_table_number(ablation)  # both readings of Table 5: its values
        paper = next(t for t in published()["ablations"].values() if t["table"] == number)
        label = f"paper: {PAPER_DATASETS['fetal']}"
        for k, (a, b) in enumerate(zip(paper["without"], paper["with"], strict=True), start=1):
            rows.append({"Dataset": label, "Subject": f"{k:02d}"} | cells(["psnr"], a, b))
        a, b = np.mean(paper["without"]), np.mean(paper["with"])
        rows.append({"Dataset": label, "Subject": "mean (n=8)"} | cells(["psnr"], a, b))
    return pd.DataFrame(rows, columns=["Dataset", "Subject", *columns]).astype(object).fillna("")


def _has_both(means: pd.DataFrame, dataset: str, a: str, b: str) -> bool:
    index = means.index.droplevel("subject")
    return (dataset, a) in index and (dataset, b) in index


def _ablation_cells(
    names: Sequence[str], without: Any, full: Any, component: str
) -> dict[str, str]:
    cells = {}
    for n in names:
        a = without[n] if isinstance(without, pd.Series) else without
        b = full[n] if isinstance(full, pd.Series) else full
        label = metric_label(n)
        cells[f"{label} without {component}"] = _fmt(a, n)
        cells[f"{label} with {component}"] = _fmt(b, n)
        cells[f"{label} difference"] = f"{b - a:+.2f}"
    return cells


def _fmt_p(p: float) -> str:
    if math.isnan(p):
        return "–"
    return f"{p:.2g}" if p < 0.01 else f"{p:.3f}"


def runtime_table(
    runtimes: pd.DataFrame,
    methods: Sequence[str],
    benchmarks: pd.DataFrame | None = None,
    with_paper: bool = True,
) -> pd.DataFrame:
    """Table 6: mean seconds per slice, rows datasets, columns methods (config order).

    With ``benchmarks`` (from :func:`load_rule_benchmarks`) each dataset gets a second row:
    the rules' wall time divided by the slice count, which includes process start and
    model loading.  With ``with_paper`` the paper's (x2) rows follow, marked as measured
    on the paper's machine.
    Times of external programs (``timing`` "outside": the command's wall time divided by
    the slices, start-up included) carry :data:`OUTSIDE`.
    """
    methods = [m for m in methods if m in set(runtimes["method"])]
    per_slice = runtimes.groupby(["dataset", "method"])["seconds"].mean()
    outside = set()
    if "timing" in runtimes:
        marked = runtimes[runtimes["timing"] == "outside"]
        outside = set(zip(marked["dataset"], marked["method"], strict=True))
    slices = runtimes.groupby(["dataset", "method"]).size()
    devices = runtimes.groupby("dataset")["device"].agg(
        lambda d: ", ".join(sorted(set(map(str, d))))
    ) if "device" in runtimes else None  # fmt: skip
    rows = []
    for dataset in runtimes["dataset"].unique():
        row = {"Dataset": dataset, "Timing": "per slice (method only)"}
        row |= {
            method_label(m): _fmt_s(per_slice.get((dataset, m), float("nan")))
            + (OUTSIDE if (dataset, m) in outside else "")
            for m in methods
        }
        row["Device"] = devices[dataset] if devices is not None else ""
        rows.append(row)
        if benchmarks is not None and not benchmarks.empty:
            wall = benchmarks.groupby(["dataset", "method"])["rule_seconds"].sum()
            row = {"Dataset": dataset, "Timing": "per slice (whole job)", "Device": ""}
            for m in methods:
                if (dataset, m) in wall.index and (dataset, m) in slices.index:
                    row[method_label(m)] = _fmt_s(wall[(dataset, m)] / slices[(dataset, m)])
            rows.append(row)
    for key, values in published()["runtime"].items() if with_paper else ():
        if key == "table":
            continue
        row = {"Dataset": f"paper: {PAPER_DATASETS[key]}", "Timing": "per slice (paper)"}
        row |= {method_label(m): _fmt_s(values[m]) for m in methods if m in values}
        row["Device"] = "the paper's machine"
        rows.append(row)
    columns = ["Dataset", "Timing", *map(method_label, methods), "Device"]
    return pd.DataFrame(rows, columns=columns).fillna("–")


def _fmt_s(seconds: float) -> str:
    return "–" if math.isnan(seconds) else f"{seconds:.4f}"


def paired_table(metrics: pd.DataFrame, reference: str = "rrlsrn") -> pd.DataFrame:
    """RRLSRN against every other method: mean difference [95% CI], p-values, effect sizes.

    Both units (subjects, slices) for every metric; p-values are Holm-adjusted over the
    methods compared within a dataset, metric and unit.
    """
    parts = [paired_tests(metrics, reference, unit=u) for u in ("subject", "slice")]
    parts = [p for p in parts if not p.empty]
    if not parts:  # e.g. a run without the reference method
        return pd.DataFrame()
    tests = pd.concat(parts, ignore_index=True)
    return pd.DataFrame(
        {
            "Dataset": tests["dataset"],
            "Method": tests["method"].map(method_label),
            "Metric": tests["metric"].map(metric_label),
            "Unit": tests["unit"],
            "n": tests["n"],
            "Difference [95% CI]": [
                f"{_fmt(r.mean_diff, r.metric)} {_fmt_ci(r.diff_ci_low, r.diff_ci_high, r.metric)}"
                for r in tests.itertuples()
            ],
            "t p (Holm)": tests["t_p_holm"].map(_fmt_p),
            "Wilcoxon p (Holm)": tests["wilcoxon_p_holm"].map(_fmt_p),
            "Cohen's d_z": tests["cohen_dz"].map(lambda v: "–" if math.isnan(v) else f"{v:.2f}"),
            "rank-biserial r": tests["rank_biserial"].map(
                lambda v: "–" if math.isnan(v) else f"{v:.2f}"
            ),
        }
    )


def write_table(
    table: pd.DataFrame, stem: str | os.PathLike, caption: str, float_format: str = "%.2f"
) -> list[Path]:
    """Write ``stem.csv``, ``stem.md`` and ``stem.tex`` atomically; return the paths."""
    stem = Path(stem)
    paths = [stem.with_suffix(s) for s in (".csv", ".md", ".tex")]
    write_text_atomic(paths[0], table.to_csv(index=False, float_format="%.4f"))
    # tables of preformatted text keep their digits; numeric tables use float_format
    text_only = not any(pd.api.types.is_float_dtype(t) for t in table.dtypes)
    markdown = table.to_markdown(
        index=False, floatfmt=float_format.strip("%"), disable_numparse=text_only
    )
    write_text_atomic(paths[1], f"{caption}\n\n{markdown}\n")
    latex = table.to_latex(
        index=False, float_format=float_format.__mod__, caption=caption, escape=True
    )
    write_text_atomic(paths[2], latex)
    return paths


def write_paper_tables(
    metric_files: Sequence[str | os.PathLike],
    runtime_files: Sequence[str | os.PathLike],
    benchmark_files: Sequence[str | os.PathLike],
    methods: Sequence[str],
    paper_datasets: dict[str, str | None],
    out_dir: str | os.PathLike,
    scale: int = 2,
) -> list[Path]:
    """Every table of one scale of a run into ``out_dir``; returns the written paths.

    ``table1to3_{dataset}``, one table per ablation (``table4_gdl``, ``table5_bottom_conv``,
    ``table5_no_bottom``: :func:`rrlsrn.registry.ablation_table_stem`), ``table6_runtime``
    and ``paired_tests`` as CSV + Markdown + LaTeX, and ``quality_long.csv``.  ``methods``
    are the compared methods (the ablation variants appear in Tables 4 and 5 only);
    benchmark files that do not exist (yet) are skipped.  Every caption names the
    ``scale``; the paper's published values (all x2) are shown at x2 only.
    """
    if scale != 2:
        paper_datasets = {}
    out = Path(out_dir)
    all_metrics = load_metrics(metric_files)
    metrics = all_metrics[all_metrics["method"].isin(methods)]
    runtimes = load_runtimes(runtime_files)
    existing = [f for f in benchmark_files if Path(f).is_file()]
    benchmarks = load_rule_benchmarks(existing) if existing else None
    paths = []
    for dataset in metrics["dataset"].unique():
        paper = paper_datasets.get(dataset)
        note = f"; '(paper)': Table {published()['quality'][paper]['table']}" if paper else ""
        paths += write_table(
            quality_table(metrics, dataset, methods, paper),
            out / f"table1to3_{dataset}",
            f"{dataset}: PSNR (dB) / SSIM, x{scale}, mean, SD and 95% CI (t) over test subjects of "
            f"the per-subject means; '{PAPER_STYLE_CI}': mean ± {PAPER_INTERVAL_FACTOR:.4f} "
            "SD, the paper's formula (t(0.975, 4)/√5, n = 5 whatever the count); border "
            f"shaved; '(mask)' inside the brain mask{note}.",
        )
    for ablation, (_, _, component) in ablations().items():
        number = ablation_table_number(ablation)
        paths += write_table(
            ablation_table(all_metrics, ablation, with_paper=scale == 2),
            out / ablation_table_stem(ablation),
            f"Table {number}: PSNR (dB) per test subject, x{scale}, RRLSRN with and without "
            f"the {component}"
            + ("; the paper's eight clinical fetal subjects below." if scale == 2 else "."),
        )
    paths += write_table(
        runtime_table(runtimes, methods, benchmarks, with_paper=scale == 2),
        out / "table6_runtime",
        f"Table 6: seconds per slice, x{scale}; 'method only' times the method on the slices, "
        "'whole job' divides the workflow job's wall time (start-up and model loading "
        "included) by the slices; the paper's rows come from its own machine; "
        f"{OUTSIDE.strip()}: timed from outside (an external program's wall time divided "
        "by the slices, its start-up included).",
    )
    paths += write_table(
        paired_table(metrics),
        out / "paired_tests",
        f"x{scale}: RRLSRN minus each method: mean difference [95% CI], paired t and Wilcoxon "
        "signed-rank p (Holm-adjusted over methods), Cohen's d_z, rank-biserial r.",
    )
    long = quality_long(metrics, {d: p for d, p in paper_datasets.items() if p})
    write_text_atomic(out / "quality_long.csv", long.to_csv(index=False, float_format="%.6f"))
    return [*paths, out / "quality_long.csv"]
