"""What a dataset holds, from its prepared slice files: the data summary and manifest.

The summary answers "what did this table measure": units and slices per role, slice
sizes, voxel sizes and intensity clips.  The manifest ties every prepared file to its
source scan (path and SHA-256) and the processing options, so a number in a table can be
traced back to the scans it came from.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from rrlsrn.io import load_npz, sha256sum

FACTS = ("site", "contrast", "licence", "download")


def manifest(
    files: Mapping[str, str | os.PathLike],
    roles: Mapping[str, str],
    dataset: str,
    facts: Mapping[str, Mapping[str, str | None]] | None = None,
) -> pd.DataFrame:
    """One row per prepared file ``{unit: npz path}``: provenance and processing facts,
    with the source's ``facts`` per unit (site, contrast, licence, what was downloaded)."""
    rows = []
    facts = facts or {}
    for unit, path in sorted(files.items()):
        data = load_npz(path)
        hr = data["hr"]
        rows.append(
            {
                "dataset": dataset,
                "unit": unit,
                "role": roles.get(unit, "?"),
                "file": str(path),
                "file_sha256": sha256sum(path),
                "source": str(data["source"]),
                "source_sha256": str(data["source_sha256"]),
                "slices": int(hr.shape[0]),
                "slice_shape": "x".join(str(n) for n in hr.shape[1:]),
                "axis": int(data["axis"]),
                "spacing_mm": "x".join(f"{z:.3f}" for z in data["spacing"]),
                "intensity_clip": f"[{float(data['intensity_low']):g}, "
                f"{float(data['intensity_high']):g}]",
                "mask": str(data["mask_source"]) if "mask_source" in data else "computed",
                "mask_fraction": float(data["mask"].mean()),
                "options": str(data["options"]) if "options" in data else json.dumps({}),
                **{k: facts.get(unit, {}).get(k) or "" for k in FACTS},
            }
        )
    return pd.DataFrame(rows)


def summary(manifests: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Per dataset and role: units, slices, slice sizes, voxel sizes, intensity clips."""
    table = pd.concat(manifests, ignore_index=True)
    for column in FACTS:  # manifests written before these columns existed
        table[column] = table[column].fillna("") if column in table else ""

    def distinct(values: pd.Series) -> str:
        return ", ".join(sorted({v for v in values if v}))

    grouped = table.groupby(["dataset", "role"], sort=True)
    out = grouped.agg(
        units=("unit", "count"),
        slices=("slices", "sum"),
        slice_shapes=("slice_shape", distinct),
        spacing_mm=("spacing_mm", distinct),
        intensity_clip_high=("intensity_clip", _high_range),
        mask_fraction=("mask_fraction", "mean"),
        sites=("site", distinct),
        contrasts=("contrast", distinct),
        licence=("licence", distinct),
    ).reset_index()
    return out


def _high_range(clips: pd.Series) -> str:
    """Range of the per-volume upper clips (raw scanner units mapped to 1.0)."""
    highs = [float(c.strip("[]").split(",")[1]) for c in clips]
    return f"{min(highs):.4g}-{max(highs):.4g}"


SUMMARY_COLUMNS = (
    "dataset",
    "role",
    "unit",
    "slices",
    "slice_shape",
    "spacing_mm",
    "intensity_clip",
    "mask_fraction",
)


def read_manifest(path: str | os.PathLike) -> pd.DataFrame:
    """Load a manifest TSV written by the workflow; a clear error names a bad file."""
    try:
        table = pd.read_csv(
            Path(path),
            sep="\t",
            dtype={"unit": str, "slice_shape": str, **dict.fromkeys(FACTS, str)},
        )
    except Exception as exc:
        raise ValueError(f"{path}: cannot read manifest: {exc}") from exc
    missing = [c for c in SUMMARY_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: not a manifest written by the workflow: no {missing} columns")
    try:
        table["slices"].astype(int)
        table["mask_fraction"].astype(float)
        [float(str(c).strip("[]").split(",")[1]) for c in table["intensity_clip"]]
    except (ValueError, IndexError, TypeError) as exc:
        raise ValueError(f"{path}: manifest values are garbled: {exc}") from exc
    return table
