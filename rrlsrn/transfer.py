"""Cross-dataset transfer: each learned method trained on one set of datasets, tested on
every test dataset of the run (issue 18).

Rows are training data (the run's own ``train_on``, then each ``transfer`` set), columns
the test datasets, cells the PSNR gain over bicubic interpolation on the same LR images:
per-slice PSNR -> per-subject mean -> per-subject difference from bicubic -> mean and 95%
t-interval over test subjects, exactly as the protocol-sensitivity table
(:func:`rrlsrn.protocols.protocol_gains`, with training sets in place of protocols).
Adult to fetal, the paper's own transfer, is one cell of it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from rrlsrn.labels import method_label, metric_label
from rrlsrn.protocols import REFERENCE, gain_cell, protocol_gains

PathLike = str | os.PathLike
RUN_ROW = "run"  # the run's own models, trained on ``train_on``


def transfer_gains(
    metrics: Mapping[str, pd.DataFrame], methods: Sequence[str], reference: str = REFERENCE
) -> pd.DataFrame:
    """Long table: ``training``, dataset, metric, method, quantity, n, mean, sd, ci_low,
    ci_high.  ``metrics`` maps a row (training data) to the per-slice metrics of its
    models; the ``reference`` method's metrics (the same in every row: it is not trained)
    are taken from the :data:`RUN_ROW` row and paired with each row's models."""
    if RUN_ROW not in metrics:
        raise ValueError(f"no metrics of the run's own row {RUN_ROW!r}")
    own = metrics[RUN_ROW]
    base = own[own["method"] == reference]
    if base.empty:
        raise ValueError(f"the run's metrics hold no {reference} rows to measure gains over")
    rows = {
        name: pd.concat([frame[frame["method"] != reference], base], ignore_index=True)
        for name, frame in metrics.items()
    }
    long = protocol_gains(rows, [reference, *methods], reference)
    long = long[long["method"] != reference].rename(columns={"protocol": "training"})
    return long.reset_index(drop=True)


def row_label(name: str, datasets: Sequence[str]) -> str:
    """``run: adult + skull`` / ``skull: adult_skull``: a row's name and training data."""
    return f"{name}: {' + '.join(datasets)}"


def transfer_table(long: pd.DataFrame, rows: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """Metric, method and training data, then one column per test dataset: the gain over
    bicubic in dB with its 95% CI."""
    gains = long[long["quantity"] == "gain"]
    index = gains.set_index(["training", "dataset", "metric", "method"]).sort_index()
    datasets = list(dict.fromkeys(gains["dataset"]))
    out = []
    for metric in dict.fromkeys(gains["metric"]):
        for method in dict.fromkeys(gains["method"]):
            for name, trained_on in rows.items():
                cells = {}
                for dataset in datasets:
                    key = (name, dataset, metric, method)
                    cells[dataset] = gain_cell(index.loc[key], True) if key in index.index else "–"
                out.append(
                    {
                        "Metric": metric_label(metric),
                        "Method": method_label(method),
                        "Trained on": row_label(name, trained_on),
                        **cells,
                    }
                )
    return pd.DataFrame(out)


def transfer_figure(
    long: pd.DataFrame, rows: Mapping[str, Sequence[str]], scale: int, metric: str = "psnr"
) -> Figure:
    """One heat map per method: training data (rows) x test dataset (columns), coloured by
    the gain over bicubic (dB, diverging around 0), each cell written with its 95% CI."""
    gains = long[(long["quantity"] == "gain") & (long["metric"] == metric)]
    methods = list(dict.fromkeys(gains["method"]))
    datasets = list(dict.fromkeys(gains["dataset"]))
    if not methods:
        raise ValueError(f"no {metric} gains to draw")
    names = list(rows)
    index = gains.set_index(["training", "dataset", "method"])
    grids = {
        m: np.array(
            [
                [
                    index.loc[(r, d, m), "mean"] if (r, d, m) in index.index else np.nan
                    for d in datasets
                ]
                for r in names
            ],
            dtype=float,
        )
        for m in methods
    }
    limit = max(float(np.nanmax(np.abs(g))) for g in grids.values() if np.isfinite(g).any())
    fig = Figure(
        figsize=(1.6 + 1.9 * len(datasets) * len(methods), 1.2 + 0.75 * len(names)),
        layout="constrained",
    )
    axes = np.atleast_1d(fig.subplots(1, len(methods), squeeze=False)[0])
    for ax, method in zip(axes, methods, strict=True):
        image = ax.imshow(grids[method], cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
        for i, r in enumerate(names):
            for j, d in enumerate(datasets):
                if (r, d, method) in index.index:
                    row = index.loc[(r, d, method)]
                    dark = abs(grids[method][i, j]) > 0.6 * limit  # white on deep colours
                    text = gain_cell(row, True).replace(" [", "\n[")
                    colour = "white" if dark else "black"
                    ax.text(j, i, text, ha="center", va="center", fontsize=7.5, color=colour)
        ax.set_xticks(range(len(datasets)), datasets, rotation=20, ha="right")
        ax.set_yticks(range(len(names)), [row_label(r, rows[r]) for r in names])
        ax.set_xlabel("tested on")
        ax.set_title(method_label(method), fontsize=10)
    fig.colorbar(image, ax=list(axes), label=f"{metric_label(metric)} gain over bicubic (dB)")
    fig.suptitle(f"Trained on one dataset, tested on others, x{scale} (95% CI)", fontsize=11)
    return fig


def write_transfer(
    metric_files: Mapping[str, Sequence[PathLike]],
    rows: Mapping[str, Sequence[str]],
    methods: Sequence[str],
    table_stem: PathLike,
    long_out: PathLike,
    figure_stem: PathLike,
    scale: int = 2,
) -> list[Path]:
    """The transfer table (CSV + Markdown + LaTeX), its long CSV and figure (PNG + PDF)
    from each row's metric files (``rows``: row name -> its training datasets)."""
    from rrlsrn.figures import save_figure  # imports torch: only when writing
    from rrlsrn.io import write_text_atomic
    from rrlsrn.tables import load_metrics, write_table

    missing = [name for name in rows if name not in metric_files]
    if missing:
        raise ValueError(f"no metric files given for the transfer rows {missing}")
    metrics = {name: load_metrics(metric_files[name]) for name in rows}
    long = transfer_gains(metrics, methods)
    paths = write_table(
        transfer_table(long, rows),
        table_stem,
        f"Transfer, x{scale}: each learned method trained on the datasets of a row, tested "
        "on each dataset (columns); PSNR gain (dB) over bicubic interpolation on the same "
        "LR images, mean [95% CI, t] over test subjects of the per-subject differences.",
    )
    write_text_atomic(long_out, long.to_csv(index=False, float_format="%.6f"))
    return [*paths, Path(long_out), *save_figure(transfer_figure(long, rows, scale), figure_stem)]
