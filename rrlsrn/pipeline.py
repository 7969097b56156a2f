"""What the workflow computes, derived from the validated config (no Snakemake imports).

The Snakefile's input functions call these, so the logic is importable and tested.  This
module stays light (no torch) because every Snakemake start imports it; the work of
each rule lives in :mod:`rrlsrn.steps`.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rrlsrn.data.sources import Volume, default_split, list_volumes
from rrlsrn.io import write_text_atomic

ROLES = ("train", "val", "test")
# Tables 4 and 5: ablation -> (variant without the component, full model, component)
ABLATIONS = {
    "gdl": ("rrlsrn_no_gdl", "rrlsrn", "GDL"),
    "bottom_conv": ("rrlsrn_bicubic_bottom", "rrlsrn", "bottom transposed conv"),
}
# Sources whose data are the paper's own: their tables show the published values beside.
PAPER_SOURCES = {"kirby21": "kirby21", "namic": "namic"}
NULL_WORDS = ("null", "none", "~")  # ``--config lapsrn_mat=null`` arrives as a string
EXCLUDED = "excluded"  # in no role (e.g. rescans of test subjects in a subject-disjoint split)


def dataset_volumes(config: dict[str, Any], dataset: str) -> dict[str, Volume]:
    """Unit id -> HR volume (+ mask) of a configured dataset."""
    return list_volumes(config["datasets"][dataset])


def dataset_split(config: dict[str, Any], dataset: str) -> dict[str, str]:
    """Unit id -> role (train / val / test), the source's default under config overrides.

    Raises when an override names an unknown unit or role, or when one person's scans
    end up in two different roles (e.g. a rescan of a test subject in training), except
    under ``split_policy: paper``, which reproduces the paper's split as it was.
    """
    spec = config["datasets"][dataset]
    volumes = dataset_volumes(config, dataset)
    override = spec.get("split") or {}
    unknown = sorted(set(override) - set(volumes))
    if unknown:
        raise ValueError(
            f"dataset {dataset!r}: the split names subjects that are not in the "
            f"dataset: {unknown}; known subjects: {sorted(volumes)}"
        )
    split = {**default_split(spec, list(volumes)), **override}
    bad = {s: r for s, r in split.items() if r not in (*ROLES, EXCLUDED)}
    if bad:
        raise ValueError(f"dataset {dataset!r}: unknown roles {bad}; use one of {ROLES}")
    roles_of_person: dict[str, set[str]] = {}
    for unit, role in split.items():
        if role != EXCLUDED:
            roles_of_person.setdefault(volumes[unit].person or unit, set()).add(role)
    leaks = {p: sorted(r) for p, r in roles_of_person.items() if len(r) > 1}
    if leaks and spec.get("split_policy") != "paper":
        raise ValueError(f"dataset {dataset!r}: the same person is in several roles: {leaks}")
    return split


def slice_options(config: dict[str, Any], dataset: str) -> dict[str, Any]:
    """How ``dataset``'s volumes become slices: SliceOptions' fields set in its config."""
    spec = config["datasets"][dataset]
    return {
        "axis": spec.get("slice_axis", "auto"),
        "min_mask_fraction": spec.get("min_mask_fraction", 0.02),
        "slice_step": spec.get("slice_step", 1),
    }


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
    if not candidate or str(candidate).strip().lower() in NULL_WORDS:
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


def comparison_methods(config: dict[str, Any], workdir: str | os.PathLike = ".") -> list[str]:
    """Methods of Tables 1-3, 6 and Figs. 2-3: the run's methods less the ablation variants."""
    variants = {without for without, _, _ in ABLATIONS.values()}
    return [m for m in enabled_methods(config, workdir) if m not in variants]


def ablations_in_run(config: dict[str, Any], workdir: str | os.PathLike = ".") -> list[str]:
    """The ablations (keys of ABLATIONS) whose two models are both in the run."""
    methods = set(enabled_methods(config, workdir))
    return [a for a, (without, full, _) in ABLATIONS.items() if {without, full} <= methods]


def paper_dataset(config: dict[str, Any], dataset: str) -> str | None:
    """Which of the paper's datasets (kirby21, namic, fetal) ``dataset`` is, if any.

    Set by the dataset's ``paper_dataset`` key, else by its source (Kirby 21 and NAMIC
    downloads are the paper's data; the paper's clinical fetal scans are not public).
    """
    spec = config["datasets"][dataset]
    if "paper_dataset" in spec:
        return spec["paper_dataset"]
    return PAPER_SOURCES.get(spec["source"])


def learned_methods(config: dict[str, Any]) -> list[str]:
    """Methods of the run that the trainer trains."""
    return [m for m in config["methods"] if config["method_specs"][m]["kind"] == "learned"]


@contextlib.contextmanager
def log_to(path: str | os.PathLike) -> Iterator[None]:
    """Send stdout and stderr (progress bars included) of a workflow step to its log file."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with (
        open(path, "w", buffering=1) as fh,
        contextlib.redirect_stdout(fh),
        contextlib.redirect_stderr(fh),
    ):
        yield


def method_settings(config: dict[str, Any], method: str) -> dict[str, Any]:
    """Training preset overrides for ``method``: config overrides, then the method's own."""
    spec = config["method_specs"][method]
    return {**config["training"].get("overrides", {}), **spec.get("train", {})}
