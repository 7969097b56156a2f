"""Ship a trained checkpoint inside the package with a model card.

The shipped file keeps only the weights and the facts needed to rebuild and describe
the model (no optimiser state), so it stays small (about 2 MB for RRLSRN).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rrlsrn.checkpoint import load_checkpoint, save_checkpoint
from rrlsrn.degrade import bicubic_up, make_degradation
from rrlsrn.io import load_slices, write_text_atomic
from rrlsrn.metrics import psnr
from rrlsrn.models import build_model, count_parameters
from rrlsrn.train import evenly_spaced

LICENCE = (
    "Weights: MIT, as the rest of rrlsrn-bench. Training data: OpenNeuro ds002748 "
    "(CC0) and OpenfMRI ds000011 (PDDL 1.0); see rrlsrn/data/embedded/."
)


def reference_psnr(
    val_files: Sequence[str | os.PathLike], count: int, scale: int, degradation: dict[str, Any]
) -> float:
    """Bicubic PSNR on the validation slices the trainer scores (same selection)."""
    slices = evenly_spaced(load_slices(val_files), count)
    degrade_fn = make_degradation(**degradation)
    values = [
        float(psnr(np.clip(bicubic_up(degrade_fn(s, scale), scale), 0, 1), s, shave=scale))
        for s in slices
    ]
    return float(np.mean(values))


def ship_weights(
    checkpoint: str | os.PathLike,
    name: str,
    dest_dir: str | os.PathLike,
    train_files: Sequence[str | os.PathLike],
    val_files: Sequence[str | os.PathLike],
    command: str,
    device: str = "2 CPU cores",
) -> tuple[Path, Path]:
    """Copy the weights of ``checkpoint`` to ``dest_dir/name.pt`` and write ``name.md``."""
    state = load_checkpoint(checkpoint)
    settings = state.get("settings", {})
    slim = {
        k: state[k]
        for k in (
            "model_name",
            "model_kwargs",
            "model",
            "step",
            "best_val_psnr",
            "settings",
            "scale",
            "degradation",
            "init",
        )
        if k in state
    }
    dest = Path(dest_dir)
    pt_path, md_path = dest / f"{name}.pt", dest / f"{name}.md"
    save_checkpoint(slim, pt_path)

    log_path = Path(checkpoint).with_name("train_log.csv")
    curve = []
    if log_path.exists():
        with log_path.open() as fh:
            curve = [
                (
                    int(r["step"]),
                    float(r["val_psnr"]),
                    float(r["patches_per_s"]),
                    float(r["elapsed_s"]),
                )
                for r in csv.DictReader(fh)
            ]
    model = build_model(state["model_name"], **state.get("model_kwargs", {}))
    ref = reference_psnr(
        val_files,
        settings.get("val_slices", 32),
        state.get("scale", 2),
        state.get("degradation", {"name": "bicubic"}),
    )
    subjects = ", ".join(Path(f).stem for f in train_files)
    val_subjects = ", ".join(Path(f).stem for f in val_files)
    lines = [
        f"# Model card: `{name}`",
        "",
        f"- **Architecture**: `{state['model_name']}` {state.get('model_kwargs') or ''} "
        f"({count_parameters(model):,} parameters), x{state.get('scale', 2)}.",
        f"- **Started from**: {state.get('init', 'scratch')} (no external weights).",
        f"- **Training data**: embedded real adult T1w subjects {subjects} "
        "(axial / sagittal slices, per-volume [0, 1] normalisation); test subjects were "
        "never used.",
        f"- **Validation**: {settings.get('val_slices')} evenly spaced slices of {val_subjects}.",
        f"- **Degradation**: {state.get('degradation')}.",
        f"- **Preset**: `pretrain`: {settings.get('optimizer')} lr {settings.get('lr')} "
        f"{settings.get('scheduler')}, batch {settings.get('batch_size')} x "
        f"{settings.get('patch_size')}^2 patches, GDL weight {settings.get('gdl_weight')}, "
        f"{settings.get('max_steps')} steps; best checkpoint at step {state.get('step')}.",
        f"- **Validation PSNR**: {state.get('best_val_psnr'):.2f} dB vs bicubic "
        f"{ref:.2f} dB ({state.get('best_val_psnr') - ref:+.2f} dB).",
        f"- **Training time**: {curve[-1][3] / 60:.0f} min in the trainer ({device})."
        if curve
        else "- **Training time**: not logged.",
        f"- **Reproduce**: `{command}`.",
        f"- **Licence**: {LICENCE}",
    ]
    if curve:
        lines += ["", "| step | validation PSNR (dB) | patches/s |", "|---:|---:|---:|"]
        lines += [f"| {s} | {p:.2f} | {r:.1f} |" for s, p, r, _ in curve]
    write_text_atomic(md_path, "\n".join(lines) + "\n")
    return pt_path, md_path
