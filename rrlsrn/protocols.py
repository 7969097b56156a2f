"""Protocol sensitivity: each method's PSNR gain over bicubic interpolation under each
degradation protocol of the run (issue 16).

The compared methods' own papers made their LR data differently (the paper's MATLAB
bicubic; Pham et al. 2017's Gaussian blur + spline resampling, the SRCNN3D / Kirby 21
lineage; k-space truncation; Rician noise on top).  A ``protocols:`` list in the config
runs the same methods, with the same models, on the same test subjects under each; this
module turns their per-slice metrics into one table and one figure.

Gain of method m under protocol p = PSNR(m) - PSNR(bicubic), both on the LR images p
made, paired per test subject: per-slice PSNR -> per-subject mean (of each method) ->
per-subject difference -> mean and 95% t-interval over subjects
(:func:`rrlsrn.stats.mean_sd_ci`), the paper's unit of analysis.  Whole-slice PSNR and
PSNR inside the brain mask are reported separately.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from rrlsrn.labels import method_label, metric_label
from rrlsrn.stats import mean_sd_ci, subject_means

PathLike = str | os.PathLike
REFERENCE = "bicubic"  # rrlsrn.pipeline.PROTOCOL_REFERENCE
PROTOCOL_METRICS = ("psnr", "psnr_mask")
OPERATOR_WORDS = {
    "bicubic": "MATLAB bicubic",
    "kspace": "k-space truncation",
    "gaussian_block": "Gaussian blur + block mean",
    "gaussian_spline": "Gaussian blur + cubic-spline resampling (Pham et al. 2017)",
}
LONG_COLUMNS = [
    "protocol", "dataset", "metric", "method", "quantity",
    "n", "mean", "sd", "ci_low", "ci_high",
]  # fmt: skip


def describe(entry: Mapping[str, Any]) -> str:
    """One line saying what a protocol does, e.g. ``MATLAB bicubic + Rician noise, SNR 20``."""
    spec = dict(entry.get("degradation") or {"name": "bicubic"})
    text = OPERATOR_WORDS.get(spec["name"], spec["name"])
    if spec["name"] == "gaussian_spline":
        text += f", sigma {spec.get('sigma', 1.0):g} px"
    elif "sigma" in spec:
        text += f", sigma {spec['sigma']:g} px"
    if spec.get("window", "none") != "none":
        text += f", {spec['window'].capitalize()} window"
    noise = entry.get("noise")
    if noise:
        text += f" + Rician noise, SNR {noise['snr']:g}"
    return text


def protocol_gains(
    metrics: Mapping[str, pd.DataFrame],
    methods: Sequence[str],
    reference: str = REFERENCE,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Long table (:data:`LONG_COLUMNS`) of every protocol, dataset, metric and method.

    ``metrics`` maps a protocol name to its per-slice metrics (``method``, ``dataset``,
    ``subject``, ``slice``, ``psnr``, ...).  ``quantity`` is ``psnr`` (the method's own
    PSNR over subjects) or ``gain`` (its per-subject difference from ``reference``; not
    given for the reference itself).  Subjects lacking either method are left out of the
    pair.
    """
    rows = []
    for protocol, frame in metrics.items():
        frame = frame[frame["method"].isin(methods)]
        if reference not in set(frame["method"]):
            raise ValueError(f"protocol {protocol!r}: no {reference} metrics to measure gains over")
        means = subject_means(frame)
        for dataset, per_dataset in means.groupby("dataset", sort=False):
            for metric in (m for m in PROTOCOL_METRICS if m in per_dataset):
                wide = per_dataset.pivot(index="subject", columns="method", values=metric)
                for method in (m for m in methods if m in wide):
                    key = {"protocol": protocol, "dataset": dataset, "metric": metric}
                    rows.append(
                        {**key, "method": method, "quantity": "psnr",
                         **mean_sd_ci(wide[method].to_numpy(), confidence)}
                    )  # fmt: skip
                    if method != reference:
                        gain = (wide[method] - wide[reference]).to_numpy()
                        rows.append(
                            {**key, "method": method, "quantity": "gain",
                             **mean_sd_ci(gain, confidence)}
                        )  # fmt: skip
    return pd.DataFrame(rows, columns=LONG_COLUMNS)


def run_protocol(
    method: str,
    spec: dict[str, Any],
    data_files: Sequence[PathLike],
    subjects: Sequence[str],
    degradations: Mapping[str, dict[str, Any]],
    model_file: PathLike | None,
    lapsrn_mat: PathLike | None,
    sr_dir: PathLike,
    runtime_dir: PathLike,
    metrics_out: PathLike,
    scale: int,
    dataset: str,
    shave: int,
    device: str = "auto",
    threads: int | None = None,
) -> pd.DataFrame:
    """One method on one dataset's test subjects under one protocol: each subject's LR
    made with its operator of ``degradations`` (noise seeded per subject), super-resolved
    into ``sr_dir/<subject>.npz`` (timings in ``runtime_dir``), then scored into
    ``metrics_out`` as the run's own metrics are (:mod:`rrlsrn.steps`)."""
    from rrlsrn.steps import evaluate_method, super_resolve_subject

    if len(data_files) != len(subjects):
        raise ValueError(
            f"{metrics_out}: {len(data_files)} data files for {len(subjects)} subjects"
        )
    sr_files = [Path(sr_dir) / f"{subject}.npz" for subject in subjects]
    for folder in (sr_dir, runtime_dir):
        Path(folder).mkdir(parents=True, exist_ok=True)
    for subject, data_file, sr_file in zip(subjects, data_files, sr_files, strict=True):
        super_resolve_subject(
            method=method,
            spec=spec,
            data_file=data_file,
            model_file=model_file,
            lapsrn_mat=lapsrn_mat,
            sr_out=sr_file,
            runtime_out=Path(runtime_dir) / f"{subject}.tsv",
            scale=scale,
            degradation=degradations[subject],
            device=device,
            threads=threads,
            dataset=dataset,
            subject=subject,
        )
    return evaluate_method(sr_files, data_files, subjects, metrics_out, method, dataset, shave)


def gain_cell(row: pd.Series, signed: bool) -> str:
    if row is None or np.isnan(row["mean"]):
        return "–"
    f = "{:+.2f}" if signed else "{:.2f}"
    if np.isnan(row["ci_low"]):
        return f.format(row["mean"])
    return f"{f.format(row['mean'])} [{f.format(row['ci_low'])}, {f.format(row['ci_high'])}]"


def sensitivity_table(
    long: pd.DataFrame, protocols: Sequence[str], reference: str = REFERENCE
) -> pd.DataFrame:
    """Dataset, metric, method, then one column per protocol: the gain over ``reference``
    in dB with its 95% CI; the ``reference`` row holds its own PSNR (dB) instead."""
    index = long.set_index(["protocol", "dataset", "metric", "method", "quantity"]).sort_index()
    methods = list(dict.fromkeys(long["method"]))
    methods = [reference, *(m for m in methods if m != reference)]  # the reference row first
    rows = []
    for dataset in dict.fromkeys(long["dataset"]):
        for metric in (m for m in PROTOCOL_METRICS if m in set(long["metric"])):
            for method in methods:
                quantity = "psnr" if method == reference else "gain"
                label = method_label(method)
                row = {
                    "Dataset": dataset,
                    "Metric": metric_label(metric),
                    "Method": f"{label} (PSNR, dB)"
                    if method == reference
                    else f"{label} (gain, dB)",
                }
                cells = []
                for protocol in protocols:
                    key = (protocol, dataset, metric, method, quantity)
                    found = index.loc[key] if key in index.index else None
                    cells.append(gain_cell(found, signed=quantity == "gain"))
                if any(c != "–" for c in cells):
                    rows.append({**row, **dict(zip(protocols, cells, strict=True))})
    return pd.DataFrame(rows)


def sensitivity_figure(
    long: pd.DataFrame,
    protocols: Mapping[str, str],
    methods: Sequence[str],
    scale: int,
    reference: str = REFERENCE,
) -> Figure:
    """PSNR gain over ``reference`` with 95% CIs: one panel per metric (rows) and dataset
    (columns), methods along x, one marker per protocol (``protocols``: name -> what it
    does, for the legend)."""
    gains = long[long["quantity"] == "gain"]
    datasets = list(dict.fromkeys(gains["dataset"]))
    metrics = [m for m in PROTOCOL_METRICS if m in set(gains["metric"])]
    shown = [m for m in methods if m != reference and m in set(gains["method"])]
    if not (datasets and metrics and shown):
        raise ValueError(
            "no gains to draw: the protocols' metrics hold no method but the reference"
        )
    width_in = max(7.0, len(datasets) * (0.6 * len(shown) + 1.6))
    fig = Figure(figsize=(width_in, 2.9 * len(metrics) + 0.4 * len(protocols) + 0.8),
                 layout="constrained")  # fmt: skip
    axes = np.atleast_2d(fig.subplots(len(metrics), len(datasets), squeeze=False))
    width = 0.8 / max(len(protocols), 1)
    x = np.arange(len(shown))
    for r, metric in enumerate(metrics):
        for c, dataset in enumerate(datasets):
            ax = axes[r, c]
            part = gains[(gains["metric"] == metric) & (gains["dataset"] == dataset)]
            for k, (protocol, words) in enumerate(protocols.items()):
                rows = part[part["protocol"] == protocol].set_index("method").reindex(shown)
                mean = rows["mean"].to_numpy(float)
                low = np.nan_to_num(mean - rows["ci_low"].to_numpy(float))
                high = np.nan_to_num(rows["ci_high"].to_numpy(float) - mean)
                ax.errorbar(
                    x + (k - (len(protocols) - 1) / 2) * width, mean, yerr=[low, high],
                    fmt="o", ms=4, capsize=2.5, lw=1.1, label=f"{protocol}: {words}",
                )  # fmt: skip
            ax.axhline(0, color="0.4", lw=0.8)
            ax.set_xticks(x, [method_label(m) for m in shown], rotation=30, ha="right")
            ax.set_ylabel(f"{metric_label(metric)} gain over {method_label(reference)} (dB)")
            ax.set_title(f"{dataset}, {metric_label(metric)}, x{scale}", fontsize=10)
            ax.grid(True, axis="y", alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=1, fontsize=8,
               frameon=False)  # fmt: skip
    return fig


def write_protocol_sensitivity(
    metric_files: Mapping[str, Sequence[PathLike]],
    entries: Sequence[Mapping[str, Any]],
    methods: Sequence[str],
    table_stem: PathLike,
    long_out: PathLike,
    figure_stem: PathLike,
    scale: int = 2,
) -> list[Path]:
    """The protocol-sensitivity table (CSV + Markdown + LaTeX), its long CSV and figure
    (PNG + PDF) from each protocol's metric files; returns the written paths.

    ``metric_files`` maps a protocol name to its per-method, per-dataset metric TSVs;
    ``entries`` are the config's protocol entries (names, operators, noise), in order.
    """
    from rrlsrn.figures import save_figure  # imports torch: only when writing
    from rrlsrn.io import write_text_atomic
    from rrlsrn.tables import load_metrics, write_table

    names = [entry["name"] for entry in entries]
    missing = [n for n in names if n not in metric_files]
    if missing:
        raise ValueError(f"no metric files given for the protocols {missing}")
    metrics = {name: load_metrics(metric_files[name]) for name in names}
    long = protocol_gains(metrics, methods)
    words = {entry["name"]: describe(entry) for entry in entries}
    what = "; ".join(f"{name}: {text}" for name, text in words.items())
    paths = write_table(
        sensitivity_table(long, names),
        table_stem,
        f"Protocol sensitivity, x{scale}: PSNR gain (dB) over bicubic interpolation on the "
        "same LR images, mean [95% CI, t] over test subjects of the per-subject "
        "differences; the bicubic rows give its own PSNR. Protocols: " + what + ".",
    )
    write_text_atomic(long_out, long.to_csv(index=False, float_format="%.6f"))
    fig = sensitivity_figure(long, words, methods, scale)
    fig.suptitle(f"PSNR gain over bicubic per protocol, x{scale}, 95% CI", fontsize=11)
    return [*paths, Path(long_out), *save_figure(fig, figure_stem)]
