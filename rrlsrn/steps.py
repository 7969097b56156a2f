"""The work of each workflow rule, called by the thin adapters in ``workflow_scripts/``."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from rrlsrn import plugins, registry
from rrlsrn.checkpoint import load_model
from rrlsrn.degrade import make_degradation
from rrlsrn.infer import check_hr_slices, super_resolve
from rrlsrn.io import atomic_path, load_npz, load_slices, save_npz_atomic, write_text_atomic
from rrlsrn.metrics import evaluate_slices
from rrlsrn.settings import make_settings
from rrlsrn.train import pick_device, train


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
    lapsrn_mat: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Train one learned method; publish its best checkpoint and log when it finishes.

    Checkpoints live in ``checkpoint_dir`` (not a declared output), so a killed job
    resumes from ``last.pt`` when the workflow is run again with the same settings and
    data.  With other ones the trainer moves the old checkpoints to
    ``checkpoint_dir/superseded/`` and starts fresh, so ``best_out`` is always this run's.
    """
    settings = make_settings(preset, overrides)
    with plugins.search_path(spec.get("search_path")):  # a model class of the user's
        summary = train(
            spec["factory"],
            load_slices(train_files),
            load_slices(val_files),
            checkpoint_dir,
            settings,
            model_kwargs=spec.get("model_args", {}),
            scale=scale,
            degradation=degradation,
            device=device,
            weights_name=spec.get("weights"),
            threads=threads,
            lapsrn_mat=lapsrn_mat,
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
    spec: dict[str, Any],
    model_file: str | os.PathLike | None,
    lapsrn_mat: str | os.PathLike | None,
    scale: int = 2,
) -> nn.Module | None:
    """The network a method runs at x``scale``: trained checkpoint, imported weights, or
    None (classical).

    ``spec`` is :func:`rrlsrn.pipeline.method_spec`'s; an imported method's weights file
    (``lapsrn_mat``) goes to its registered ``loader``.  A cascade network (RRLSRN, LapSRN)
    reaches x4 with x2 weights (:func:`rrlsrn.models.at_scale`); any other network's
    checkpoint must be of ``scale``.
    """
    if spec["kind"] == "learned":
        if not model_file:
            raise ValueError("a learned method needs its trained checkpoint")
        return load_model(model_file, scale=scale)
    if spec["kind"] == "imported":
        return registry.load(spec["loader"])(lapsrn_mat, scale=scale, **spec.get("model_args", {}))
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
    dataset: str = "",
    subject: str = "",
) -> None:
    """Super-resolve every slice of one prepared subject; write SR slices and timings.

    The timing TSV names the method, dataset, subject and device of every slice, so the
    runtime table can be built from these files alone.
    """
    if threads:
        torch.set_num_threads(threads)
    data = load_npz(data_file)
    folders = spec.get("search_path")
    with plugins.search_path(folders):  # a config's own method: its module beside the config
        model = method_model(spec, model_file, lapsrn_mat, scale)
        factory = (
            registry.load(spec["factory"]) if spec["kind"] in registry.CLASSICAL_KINDS else None
        )
    torch_device = pick_device(device)
    if spec["kind"] == "python":
        factory = plugins.python_method(method, spec["factory"], folders)
    try:
        if spec["kind"] == "command":
            sr, seconds = command_super_resolve(method, spec["factory"], data, scale, degradation)
        else:
            sr, seconds = super_resolve(
                list(data["hr"]),
                method,
                scale,
                degradation,
                model,
                torch_device,
                params=spec.get("params", {}),
                factory=factory,
            )
    except ValueError as error:
        raise ValueError(f"{data_file}: {error}") from error
    save_npz_atomic(sr_out, sr=np.stack(sr), slice_index=data["slice_index"])
    outside = spec["kind"] == "command"
    frame = pd.DataFrame(
        {
            "method": method,
            "dataset": dataset,
            "subject": subject,
            "slice": data["slice_index"],
            "seconds": seconds,
            "device": "external program" if outside else device_name(torch_device),
            "timing": "outside" if outside else "method",
        }
    )
    write_text_atomic(runtime_out, frame.to_csv(sep="\t", index=False))
    print(f"{method}: {len(sr)} slices, {seconds.mean():.4f} s per slice")


def command_super_resolve(
    method: str, command: str, data: dict[str, Any], scale: int, degradation: dict[str, Any]
) -> tuple[list[np.ndarray], np.ndarray]:
    """A ``command`` method on a prepared subject's slices: SR slices (clipped to [0, 1])
    and seconds per slice, timed from outside (the command's wall time / slices)."""
    check_hr_slices(list(data["hr"]), scale)
    lr = make_degradation(**degradation).observe(torch.from_numpy(np.asarray(data["hr"])), scale)
    spacing = data.get("spacing", (1.0, 1.0))
    out, total = plugins.run_command(method, command, lr.numpy(), scale, spacing)
    return list(np.clip(out, 0, 1)), np.full(len(out), total / len(out))


def device_name(device: torch.device) -> str:
    """What ran the timings: the GPU's name, or the CPU with its thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def evaluate_method(
    sr_files: Sequence[str | os.PathLike],
    data_files: Sequence[str | os.PathLike],
    subjects: Sequence[str],
    out: str | os.PathLike,
    method: str,
    dataset: str,
    shave: int,
) -> pd.DataFrame:
    """Per-slice metrics of one method on a dataset's test subjects, written as one TSV.

    One job per method and dataset: the metrics take well under a second per subject,
    so per-subject jobs would mostly pay for starting Python.
    """
    if not len(sr_files) == len(data_files) == len(subjects):
        raise ValueError(
            f"{out}: {len(sr_files)} SR files, {len(data_files)} data files and "
            f"{len(subjects)} subjects must match one to one"
        )
    frame = pd.concat(
        [
            subject_metrics(sr_file, data_file, method, dataset, subject, shave)
            for sr_file, data_file, subject in zip(sr_files, data_files, subjects, strict=True)
        ],
        ignore_index=True,
    )
    write_text_atomic(out, frame.to_csv(sep="\t", index=False, float_format="%.6f"))
    return frame


def subject_metrics(
    sr_file: str | os.PathLike,
    data_file: str | os.PathLike,
    method: str,
    dataset: str,
    subject: str,
    shave: int,
) -> pd.DataFrame:
    """Per-slice metrics of one SR file against its HR slices."""
    sr, data = load_npz(sr_file), load_npz(data_file)
    if sr["sr"].shape != data["hr"].shape:
        raise ValueError(
            f"{sr_file}: SR shape {sr['sr'].shape} does not match the HR "
            f"slices {data['hr'].shape} of {data_file}"
        )
    values = evaluate_slices(sr["sr"], data["hr"], data["mask"], shave=shave)
    return pd.DataFrame(
        {
            "method": method,
            "dataset": dataset,
            "subject": subject,
            "slice": data["slice_index"],
            **values,
        }
    )
