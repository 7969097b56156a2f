"""What the workflow computes, derived from the validated config (no Snakemake imports).

The Snakefile's input functions call these, so the logic is importable and tested.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from rrlsrn.checkpoint import load_model, load_state_into
from rrlsrn.data.sources import Volume, default_split, list_volumes
from rrlsrn.infer import super_resolve
from rrlsrn.io import atomic_path, load_npz, save_npz_atomic, write_text_atomic
from rrlsrn.metrics import evaluate_slices
from rrlsrn.models import build_model
from rrlsrn.train import make_settings, pick_device, train

ROLES = ("train", "val", "test")
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


def train_method(
    spec: dict[str, Any],
    preset: str,
    overrides: dict[str, Any],
    train_files: Sequence[str],
    val_files: Sequence[str],
    checkpoint_dir: str | os.PathLike,
    best_out: str | os.PathLike,
    log_out: str | os.PathLike,
    scale: int,
    degradation: dict[str, Any],
    device: str = "auto",
    threads: int | None = None,
) -> dict[str, Any]:
    """Train one learned method; publish its best checkpoint and log when it finishes.

    Checkpoints live in ``checkpoint_dir`` (not a declared output), so a killed job
    resumes from ``last.pt`` when the workflow is run again.
    """
    settings = make_settings(preset, overrides)
    train_slices = [s for f in train_files for s in load_npz(f)["hr"]]
    val_slices = [s for f in val_files for s in load_npz(f)["hr"]]
    summary = train(
        spec["model"],
        train_slices,
        val_slices,
        checkpoint_dir,
        settings,
        model_kwargs=spec.get("model_args", {}),
        scale=scale,
        degradation=degradation,
        device=device,
        weights_name=spec.get("weights"),
        threads=threads,
    )
    print(summary)
    if not summary["finished"]:
        raise RuntimeError(
            f"training stopped at step {summary['steps']} (time budget); "
            f"run the workflow again to resume from {checkpoint_dir}/last.pt"
        )
    ckpt = Path(checkpoint_dir)
    for src, dst in ((ckpt / "best.pt", best_out), (ckpt / "train_log.csv", log_out)):
        with atomic_path(dst) as tmp:
            shutil.copyfile(src, tmp)
    return summary


def method_model(
    spec: dict[str, Any], model_file: str | os.PathLike | None, lapsrn_mat: str | os.PathLike | None
) -> nn.Module | None:
    """The network a method runs: trained checkpoint, imported weights, or None (classical)."""
    if spec["kind"] == "learned":
        if not model_file:
            raise ValueError("a learned method needs its trained checkpoint")
        return load_model(model_file)
    if spec["kind"] == "imported":
        from rrlsrn.lapsrn import lapsrn_x2_state_dict

        args = spec.get("model_args", {})
        model = build_model(spec["model"], **args)
        state = lapsrn_x2_state_dict(
            lapsrn_mat,
            depth=args.get("depth", 11),
            image_branch=args.get("image_branch", "transposed"),
        )
        load_state_into(model, state, lapsrn_mat or "LapSRN_x2.mat")
        return model.eval()
    return None


def super_resolve_subject(
    method: str,
    spec: dict[str, Any],
    data_file: str | os.PathLike,
    model_file: str | os.PathLike | None,
    lapsrn_mat: str | os.PathLike | None,
    sr_out: str | os.PathLike,
    runtime_out: str | os.PathLike,
    scale: int,
    degradation: dict[str, Any],
    device: str = "auto",
    threads: int | None = None,
) -> None:
    """Super-resolve every slice of one prepared subject; write SR slices and timings."""
    if threads:
        torch.set_num_threads(threads)
    data = load_npz(data_file)
    model = method_model(spec, model_file, lapsrn_mat)
    sr, seconds = super_resolve(
        list(data["hr"]), method, scale, degradation, model, pick_device(device)
    )
    save_npz_atomic(sr_out, sr=np.stack(sr), slice_index=data["slice_index"])
    frame = pd.DataFrame({"slice": data["slice_index"], "seconds": seconds})
    write_text_atomic(runtime_out, frame.to_csv(sep="\t", index=False))
    print(f"{method}: {len(sr)} slices, {seconds.mean():.4f} s per slice")


def evaluate_subject(
    sr_file: str | os.PathLike,
    data_file: str | os.PathLike,
    out: str | os.PathLike,
    method: str,
    dataset: str,
    subject: str,
    shave: int,
) -> pd.DataFrame:
    """Per-slice metrics of one SR file against its HR slices, written as TSV."""
    sr, data = load_npz(sr_file), load_npz(data_file)
    if sr["sr"].shape != data["hr"].shape:
        raise ValueError(
            f"{sr_file}: SR shape {sr['sr'].shape} does not match the HR "
            f"slices {data['hr'].shape} of {data_file}"
        )
    values = evaluate_slices(sr["sr"], data["hr"], data["mask"], shave=shave)
    frame = pd.DataFrame(
        {
            "method": method,
            "dataset": dataset,
            "subject": subject,
            "slice": data["slice_index"],
            **values,
        }
    )
    write_text_atomic(out, frame.to_csv(sep="\t", index=False, float_format="%.6f"))
    return frame
