"""Result tables from per-slice metric files (CSV + Markdown + LaTeX)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from rrlsrn.io import write_text_atomic


def load_metrics(files: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """Concatenate per-subject metric TSVs (columns method, dataset, subject, slice, ...)."""
    frames = []
    required = ["method", "dataset", "subject", "slice", "psnr"]
    for f in files:
        try:
            frame = pd.read_csv(f, sep="\t")
        except Exception as exc:
            raise ValueError(f"{f}: cannot read metrics table: {exc}") from exc
        missing = [c for c in required if c not in frame.columns]
        if missing:
            raise ValueError(f"{f}: not a metrics table, missing columns {missing}")
        frames.append(frame)
    if not frames:
        raise ValueError("no metric files given")
    return pd.concat(frames, ignore_index=True)


def psnr_summary(metrics: pd.DataFrame, reference: str = "bicubic") -> pd.DataFrame:
    """Per dataset and method: mean PSNR over slices and over subjects, gain over ``reference``.

    ``psnr_subject_mean`` / ``psnr_subject_sd`` aggregate per-subject means (the paper's
    unit); ``psnr_slice_mean`` averages all slices; ``*_mask`` are inside the brain mask.
    """
    value_cols = [c for c in ("psnr", "psnr_mask") if c in metrics]
    per_subject = metrics.groupby(["dataset", "method", "subject"])[value_cols].mean()
    grouped = per_subject.groupby(["dataset", "method"])
    table = pd.DataFrame(
        {
            "subjects": grouped.size(),
            "slices": metrics.groupby(["dataset", "method"]).size(),
            "psnr_slice_mean": metrics.groupby(["dataset", "method"])["psnr"].mean(),
            "psnr_subject_mean": grouped["psnr"].mean(),
            "psnr_subject_sd": grouped["psnr"].std(ddof=1),
        }
    )
    if "psnr_mask" in metrics:
        table["psnr_mask_subject_mean"] = grouped["psnr_mask"].mean()
    table = table.reset_index()
    ref = table[table["method"] == reference].set_index("dataset")["psnr_slice_mean"]
    table[f"gain_over_{reference}_db"] = table["psnr_slice_mean"] - table["dataset"].map(ref)
    return table.sort_values(["dataset", "psnr_slice_mean"]).reset_index(drop=True)


def write_table(
    table: pd.DataFrame, stem: str | os.PathLike, caption: str, float_format: str = "%.2f"
) -> list[Path]:
    """Write ``stem.csv``, ``stem.md`` and ``stem.tex`` atomically; return the paths."""
    stem = Path(stem)
    paths = [stem.with_suffix(s) for s in (".csv", ".md", ".tex")]
    write_text_atomic(paths[0], table.to_csv(index=False, float_format="%.4f"))
    markdown = table.to_markdown(index=False, floatfmt=float_format.strip("%"))
    write_text_atomic(paths[1], f"{caption}\n\n{markdown}\n")
    latex = table.to_latex(
        index=False, float_format=float_format.__mod__, caption=caption, escape=True
    )
    write_text_atomic(paths[2], latex)
    return paths
