"""How weights do on scans they were not trained on: other contrasts, the test sets (issue 17).

Every unit (a validation-contrast volume, a test subject) is super-resolved the way the
benchmark does it (:func:`rrlsrn.infer.super_resolve`: HR slice, LR by the weights'
operator, SR clipped to [0, 1]) by bicubic interpolation, by each model asked for and,
when its weights are at hand, by the imported LapSRN x2 (a network that never saw an MRI).
PSNR is taken inside the head / brain mask, so air and its noise do not flatter anyone;
gains are per-slice differences against bicubic on the same slices.

A validation-contrast volume is prepared as the workflow prepares any volume
(:func:`rrlsrn.data.prepare.prepare_volume`: per-volume percentile normalisation, slices
across the thickest axis, i.e. the in-plane images of a thick-slice stack, an Otsu head
mask).  These volumes validate; nothing ever trains on them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from torch import nn

from rrlsrn.data.prepare import SliceOptions, prepare_volume
from rrlsrn.infer import super_resolve
from rrlsrn.metrics import evaluate_slices

BICUBIC, LAPSRN = "bicubic", "lapsrn_x2"
CONTRASTS = ("t1w", "t2w", "pd", "flair")
NIFTI_SUFFIXES = (".nii", ".nii.gz")


@dataclass(frozen=True)
class Unit:
    """HR slices (N, H, W) in [0, 1] and their mask, with where they come from."""

    group: str  # a dataset name, or "validation contrasts"
    name: str
    role: str  # test, or val (validation subjects and validation-contrast volumes)
    contrast: str
    hr: np.ndarray
    mask: np.ndarray


def contrast_of(name: str) -> str:
    """The contrast named at the end of a folder or file name (``lj-ms-p04s1-flair``:
    ``FLAIR``), else ``?``."""
    word = name.lower().replace(".nii.gz", "").replace(".nii", "").rsplit("-", 1)[-1]
    word = word.rsplit("_", 1)[-1]
    return {"t1w": "T1w", "t2w": "T2w", "pd": "PD", "flair": "FLAIR"}.get(word, "?")


def find_volumes(folder: str | os.PathLike) -> list[tuple[str, Path]]:
    """(name, NIfTI path) of each volume under ``folder``: one per sub-folder (its single
    NIfTI file), or the NIfTI files in ``folder`` itself.  Raises naming the problem."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder of validation volumes")
    found = []
    for entry in sorted(root.iterdir()):
        if entry.is_dir():
            files = sorted(p for p in entry.iterdir() if p.name.endswith(NIFTI_SUFFIXES))
            if len(files) != 1:
                raise ValueError(
                    f"{entry}: expected one NIfTI volume, found {len(files)}"
                    + (f" ({', '.join(p.name for p in files)})" if files else "")
                )
            found.append((entry.name, files[0]))
        elif entry.name.endswith(NIFTI_SUFFIXES):
            found.append((entry.name.split(".nii")[0], entry))
    if not found:
        raise ValueError(f"{root}: no NIfTI volumes (.nii, .nii.gz), nor folders holding one")
    return found


def volume_units(folder: str | os.PathLike, scale: int = 2, slice_step: int = 1) -> list[Unit]:
    """The volumes of ``folder`` (:func:`find_volumes`), prepared as units at ``scale``."""
    units = []
    for name, path in find_volumes(folder):
        data = prepare_volume(path, SliceOptions(scale=scale, slice_step=slice_step))
        units.append(
            Unit("validation contrasts", name, "val", contrast_of(name), data["hr"], data["mask"])
        )
    return units


def run_units(results: str | os.PathLike, roles: Sequence[str] = ("val", "test")) -> list[Unit]:
    """The units of ``roles`` of every dataset a workflow run prepared under ``results``
    (its ``splits/*.tsv`` and ``data/<dataset>/<subject>.npz``: its slice selection), the
    validation subjects in group ``<dataset> (val)``."""
    from rrlsrn.io import load_npz
    from rrlsrn.tables import read_table

    results = Path(results)
    splits = sorted((results / "splits").glob("*.tsv"))
    if not splits:
        raise FileNotFoundError(f"{results / 'splits'}: no split files; run the workflow first")
    units = []
    for split_file in splits:
        dataset = split_file.stem
        split = read_table(split_file, ["subject", "role"], "split file")
        for role in roles:
            for subject in split.loc[split["role"] == role, "subject"]:
                data = load_npz(results / "data" / dataset / f"{subject}.npz")
                group = dataset if role == "test" else f"{dataset} ({role})"
                units.append(Unit(group, subject, role, "", data["hr"], data["mask"]))
    return units


def measure_units(
    units: Sequence[Unit],
    models: Mapping[str, nn.Module],
    scale: int = 2,
    degradation: Mapping | None = None,
    device: str = "cpu",
) -> pd.DataFrame:
    """Per-slice PSNR (whole and in the mask) of bicubic and each model on every unit.

    Columns: group, unit, role, contrast, method, slice, then :func:`evaluate_slices`'s psnr,
    ssim, psnr_mask, ssim_mask; the border of ``scale`` pixels is left out, as in the
    tables.
    """
    frames = []
    for unit in units:
        methods: dict[str, nn.Module | None] = {BICUBIC: None, **models}
        for method, model in methods.items():
            sr, _ = super_resolve(
                list(unit.hr),
                method,
                scale,
                dict(degradation or {"name": "bicubic"}),
                model,
                device,
                progress=False,
            )
            values = evaluate_slices(np.stack(sr), unit.hr, unit.mask, shave=scale)
            frames.append(
                pd.DataFrame(
                    {
                        "group": unit.group,
                        "unit": unit.name,
                        "role": unit.role,
                        "contrast": unit.contrast,
                        "method": method,
                        "slice": np.arange(len(sr)),
                        **values,
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def gains(metrics: pd.DataFrame, metric: str = "psnr_mask") -> pd.DataFrame:
    """Per unit and method: slices, mean ``metric`` and the mean per-slice gain over bicubic.

    Slices whose masked metric is undefined (an empty mask after the border) are left out
    for every method alike.
    """
    wide = metrics.pivot_table(
        index=["group", "unit", "contrast", "slice"], columns="method", values=metric
    ).dropna()
    rows = []
    for (group, unit, contrast), table in wide.groupby(level=[0, 1, 2], sort=False):
        for method in table.columns:
            rows.append(
                {
                    "group": group,
                    "unit": unit,
                    "contrast": contrast,
                    "method": method,
                    "slices": len(table),
                    metric: table[method].mean(),
                    "gain": (table[method] - table[BICUBIC]).mean(),
                }
            )
    return pd.DataFrame(rows)


def gain_table(metrics: pd.DataFrame, name: str) -> str:
    """Markdown rows: one per unit, bicubic PSNR, the model's gain and, when measured,
    LapSRN's gain and the model's lead over it (in the mask, dB)."""
    summary = gains(metrics).set_index(["group", "unit", "method"])
    has_lapsrn = LAPSRN in metrics["method"].unique()
    head = "| data | unit | contrast | slices | bicubic (dB) | gain of this model |"
    rule = "|---|---|---|---:|---:|---:|"
    if has_lapsrn:
        head += " gain of LapSRN x2 | this model − LapSRN |"
        rule += "---:|---:|"
    lines = [head, rule]
    units = summary.reset_index()[["group", "unit", "contrast"]].drop_duplicates()
    for group, unit, contrast in units.itertuples(index=False):
        bicubic, model = summary.loc[(group, unit, BICUBIC)], summary.loc[(group, unit, name)]
        row = (
            f"| {group} | {unit} | {contrast or '—'} | {int(model['slices'])} | "
            f"{bicubic['psnr_mask']:.2f} | {model['gain']:+.2f} |"
        )
        if has_lapsrn:
            lapsrn = summary.loc[(group, unit, LAPSRN)]
            row += f" {lapsrn['gain']:+.2f} | {model['gain'] - lapsrn['gain']:+.2f} |"
        lines.append(row)
    return "\n".join(lines) + "\n"
