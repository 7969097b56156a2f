"""What the workflow computes, derived from the validated config (no Snakemake imports).

The Snakefile's input functions call these, so the logic is importable and tested.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

from rrlsrn.data.embedded import ADULT_SPLIT, ADULT_T1, EMBEDDED_ROOT
from rrlsrn.io import write_text_atomic

ROLES = ("train", "val", "test")


def dataset_volumes(config: dict[str, Any], dataset: str) -> dict[str, Path]:
    """Subject id -> HR volume path for a configured dataset."""
    spec = config["datasets"][dataset]
    if spec["source"] == "embedded":
        subjects = spec.get("subjects") or sorted(ADULT_T1)
        return {s: EMBEDDED_ROOT / ADULT_T1[s] for s in subjects}
    raise ValueError(f"dataset {dataset!r}: source {spec['source']!r} is not supported yet")


def dataset_split(config: dict[str, Any], dataset: str) -> dict[str, str]:
    """Subject id -> role (train / val / test), checked to be a partition of the subjects."""
    spec = config["datasets"][dataset]
    subjects = dataset_volumes(config, dataset)
    split = dict(spec.get("split") or (ADULT_SPLIT if spec["source"] == "embedded" else {}))
    split = {s: split.get(s, "train") for s in subjects}
    bad = {s: r for s, r in split.items() if r not in ROLES}
    if bad:
        raise ValueError(f"dataset {dataset!r}: unknown roles {bad}; use one of {ROLES}")
    return split


def subjects_with_role(config: dict[str, Any], dataset: str, role: str) -> list[str]:
    """Sorted subjects of ``dataset`` that have ``role``."""
    return sorted(s for s, r in dataset_split(config, dataset).items() if r == role)


def write_split(path: str | os.PathLike, split: dict[str, str]) -> None:
    """Write a ``subject<TAB>role`` file atomically."""
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter="\t", lineterminator="\n")
    writer.writerow(["subject", "role"])
    writer.writerows(sorted(split.items()))
    write_text_atomic(path, buf.getvalue())


def lapsrn_mat_available(config: dict[str, Any], workdir: str | os.PathLike = ".") -> Path | None:
    """The LapSRN .mat named by config (or RRLSRN_LAPSRN_MAT) when it exists, else None."""
    candidate = os.environ.get("RRLSRN_LAPSRN_MAT") or config.get("lapsrn_mat")
    if not candidate:
        return None
    path = Path(workdir) / candidate
    return path.resolve() if path.is_file() else None


def enabled_methods(config: dict[str, Any], workdir: str | os.PathLike = ".") -> list[str]:
    """Methods of the run, dropping imported-weight methods whose weights are absent."""
    methods = []
    for name in config["methods"]:
        spec = config["method_specs"][name]
        if spec["kind"] == "imported" and lapsrn_mat_available(config, workdir) is None:
            continue
        methods.append(name)
    return methods


def learned_methods(config: dict[str, Any]) -> list[str]:
    """Methods of the run that the trainer trains."""
    return [m for m in config["methods"] if config["method_specs"][m]["kind"] == "learned"]
