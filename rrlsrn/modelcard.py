"""Ship a trained checkpoint inside the package with a model card.

The shipped file keeps only the weights and the facts needed to rebuild and describe
the model (no optimiser state), the scale it was trained at among them, so it stays
small (about 2 MB for RRLSRN).  The card names that scale (and, for RRLSRN, the cascade
that takes its x2 weights to x4, x8, ...).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from torch import nn

from rrlsrn.checkpoint import checkpoint_scale, load_checkpoint, model_from_state, save_checkpoint
from rrlsrn.degrade import make_degradation
from rrlsrn.io import load_slices, write_text_atomic
from rrlsrn.models import RRLSRN, count_parameters
from rrlsrn.train import bicubic_validation_psnr, evenly_spaced
from rrlsrn.weights import history_path

LICENCE = (
    "Weights: MIT, as the rest of rrlsrn-bench. Training data: OpenNeuro ds002748 "
    "(CC0) and OpenfMRI ds000011 (PDDL 1.0); see rrlsrn/data/embedded/."
)


def reference_psnr(
    val_files: Sequence[str | os.PathLike], count: int, scale: int, degradation: dict[str, Any]
) -> float:
    """Bicubic PSNR on the validation slices the trainer scores (same selection)."""
    slices = evenly_spaced(load_slices(val_files), count)
    return bicubic_validation_psnr(slices, make_degradation(**degradation), scale)


def ship_weights(
    checkpoint: str | os.PathLike,
    name: str,
    dest_dir: str | os.PathLike,
    train_files: Sequence[str | os.PathLike],
    val_files: Sequence[str | os.PathLike],
    command: str,
    device: str = "2 CPU cores",
) -> tuple[Path, Path]:
    """Copy the weights of ``checkpoint`` to ``dest_dir/name.pt`` and write ``name.md``,
    and its training log, with bicubic's PSNR on the same validation slices, to
    ``name.history.csv`` (:func:`history_path`: the training curves draw it)."""
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
    model = model_from_state(state, checkpoint)
    scale = checkpoint_scale(state)
    ref = reference_psnr(
        val_files,
        settings.get("val_slices", 32),
        scale,
        state.get("degradation", {"name": "bicubic"}),
    )
    if log_path.exists():
        history = pd.read_csv(log_path)
        if "val_bicubic_psnr" not in history:  # a log from before the trainer wrote it
            history["val_bicubic_psnr"] = round(ref, 4)
        history["shipped"] = (history["step"] == state.get("step")).astype(int)
        write_text_atomic(history_path(name, dest), history.to_csv(index=False))
    subjects = ", ".join(Path(f).stem for f in train_files)
    val_subjects = ", ".join(Path(f).stem for f in val_files)
    lines = [
        f"# Model card: `{name}`",
        "",
        f"- **Architecture**: `{state['model_name']}` {state.get('model_kwargs') or ''} "
        f"({count_parameters(model):,} parameters), {scale_line(model, scale)}.",
        f"- **Started from**: {state.get('init', 'scratch')} (no external weights).",
        f"- **Training data**: embedded real adult T1w subjects {subjects} "
        "(axial / sagittal slices, per-volume [0, 1] normalisation); test subjects were "
        "never used.",
        f"- **Validation**: {settings.get('val_slices')} evenly spaced slices of {val_subjects}.",
        f"- **Degradation**: {state.get('degradation')}.",
        f"- **Preset**: `pretrain`: {settings.get('optimizer')} lr {settings.get('lr')} "
        f"{settings.get('scheduler')}, batch {settings.get('batch_size')} x "
        f"{settings.get('patch_size')}^2 patches, GDL weight {settings.get('gdl_weight')}, "
        f"intensity augmentation {augmentation_text(settings)}, "
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


def augmentation_text(settings: dict[str, Any]) -> str:
    """The intensity augmentations of ``settings`` that are on (``none`` if none is)."""
    from rrlsrn.augment import AUGMENT_FIELDS

    on = [f"{k.removeprefix('augment_')} {settings[k]}" for k in AUGMENT_FIELDS if settings.get(k)]
    return ", ".join(on) if on else "none"


def scale_line(model: nn.Module, scale: int) -> str:
    """The card's scale: ``x2``, with how a cascade network (RRLSRN) reaches the others."""
    if not isinstance(model, RRLSRN):
        return f"x{scale}"
    how = "trained through the cascade, " if scale > 2 else ""
    return (
        f"x{scale} ({how}x2 weights; x4, x8, ... by cascading the x2 network, "
        "the same weights at every power of 2)"
    )


MEASURED_SECTION = "## Measured on the default test sets"


def is_checkpoint_path(name: str) -> bool:
    """Whether ``name`` names a checkpoint file (a ``/`` or ``.pt``), not shipped weights."""
    return "/" in name or name.endswith(".pt")


def shipped_model(name: str) -> tuple[nn.Module, int, dict[str, Any]]:
    """The shipped weights ``name`` (or the checkpoint file ``name``) as a model, with
    their scale and LR operator."""
    from rrlsrn.weights import shipped_weights_path

    path = Path(name) if is_checkpoint_path(name) else shipped_weights_path(name)
    state = load_checkpoint(path)
    return (
        model_from_state(state, path),
        checkpoint_scale(state),
        state.get("degradation", {"name": "bicubic"}),
    )


def measure_weights(
    names: Sequence[str],
    results: str | os.PathLike | None,
    contrasts: str | os.PathLike | None = None,
    device: str = "auto",
) -> pd.DataFrame:
    """Per-slice metrics (:func:`rrlsrn.contrasts.measure_units`) of the shipped weights
    ``names`` as shipped (not fine-tuned), of bicubic and, when its weights are at hand,
    of LapSRN x2 (at x2, and cascaded at x4, x8): on the validation and test subjects of
    the run under ``results`` and on the volumes of the folder ``contrasts``, each when
    given.

    Weights of one scale and LR operator share one set of units, and bicubic and LapSRN
    run once for them; a ``scale`` column tells the groups apart.
    """
    from rrlsrn.contrasts import LAPSRN, measure_units, run_units, volume_units
    from rrlsrn.lapsrn import lapsrn_x2_model, local_lapsrn_weights
    from rrlsrn.train import pick_device

    groups: dict[tuple[int, str], dict[str, Any]] = {}
    for name in names:
        model, scale, degradation = shipped_model(name)
        group = groups.setdefault((scale, repr(degradation)), {"degradation": degradation})
        group.setdefault("models", {})[name] = model
    lapsrn = local_lapsrn_weights()
    run = run_units(results) if results is not None else []  # the same slices at any scale
    volumes: dict[int, list] = {}  # the contrast volumes, prepared (cropped) per scale
    frames = []
    for (scale, _), group in groups.items():
        units = list(run)
        if contrasts is not None:
            if scale not in volumes:
                volumes[scale] = volume_units(contrasts, scale)
            units += volumes[scale]
        models = group["models"]
        if lapsrn is not None and scale & (scale - 1) == 0:  # x2, or x4, x8 by cascade
            models[LAPSRN] = lapsrn_x2_model(lapsrn, scale=scale)
        metrics = measure_units(units, models, scale, group["degradation"], pick_device(device))
        frames.append(metrics.assign(scale=scale))
    return pd.concat(frames, ignore_index=True)


def metrics_of(metrics: pd.DataFrame, name: str) -> pd.DataFrame:
    """The rows of :func:`measure_weights` that ``name``'s section reads: its own and
    those of bicubic and LapSRN at its scale."""
    from rrlsrn.contrasts import BICUBIC, LAPSRN

    scale = metrics.loc[metrics["method"] == name, "scale"].iloc[0]
    keep = metrics["method"].isin([name, BICUBIC, LAPSRN]) & (metrics["scale"] == scale)
    return metrics[keep]


def test_set_metrics(metrics: pd.DataFrame, name: str) -> pd.DataFrame:
    """The rows of :func:`measure_weights` for model ``name`` on test subjects, with the
    columns :func:`measured_section` reads (dataset, method, subject, metrics)."""
    rows = metrics[(metrics["method"] == name) & (metrics["role"] == "test")]
    return rows.rename(columns={"group": "dataset", "unit": "subject"}).drop(
        columns=["role", "contrast", "slice"]
    )


def measured_section(metrics: pd.DataFrame, results: str | os.PathLike) -> str:
    """Markdown: mean, SD and 95% CI over test subjects, per dataset, for the model card
    (the border left out is the weights' scale, from a ``scale`` column; 2 without one)."""
    from rrlsrn.stats import summarise

    border = int(metrics["scale"].iloc[0]) if "scale" in metrics else 2
    summary = summarise(metrics.drop(columns=["scale"], errors="ignore"))
    lines = [
        MEASURED_SECTION,
        "",
        "The shipped weights as they are (no fine-tuning), on the test subjects of the "
        f"default run (`{Path(results).name}/data`, its slice selection; "
        "`rrlsrn measure-weights`). Mean over subjects of the per-subject mean; "
        f"SD and the t-based 95% CI over subjects; {border}-pixel border left out.",
        "",
        "| dataset | subjects | slices | PSNR (dB) | 95% CI | SSIM | 95% CI |",
        "|---|---:|---:|---:|---|---:|---|",
    ]
    for dataset, group in summary.groupby("dataset", sort=False):
        row = group.set_index("metric")
        p, s = row.loc["psnr"], row.loc["ssim"]
        slices = int((metrics["dataset"] == dataset).sum())
        lines.append(
            f"| {dataset} | {int(p['n'])} | {slices} | {p['mean']:.2f} ± {p['sd']:.2f} | "
            f"[{p['ci_low']:.2f}, {p['ci_high']:.2f}] | {s['mean']:.4f} ± {s['sd']:.4f} | "
            f"[{s['ci_low']:.4f}, {s['ci_high']:.4f}] |"
        )
    return "\n".join(lines) + "\n"


GAINS_HEADING = "### Gain over bicubic (and LapSRN x2, when its weights were found), in the mask"


def gains_section(metrics: pd.DataFrame, name: str) -> str:
    """Markdown: per validation / test unit, bicubic PSNR in the mask and the gains of
    ``name`` (and of LapSRN x2 when it was measured) over it, for the model card."""
    from rrlsrn.contrasts import gain_table

    return "\n".join(
        [
            GAINS_HEADING,
            "",
            "PSNR inside the head / brain mask; gains are the mean per-slice difference "
            "against bicubic on the same slices; LapSRN x2 runs twice, cascaded, at x4. "
            "Validation subjects (`(val)`) and the "
            "validation-contrast volumes were never trained on; the contrast volumes are "
            "prepared as the workflow prepares a volume (in-plane slices, Otsu head mask).",
            "",
            gain_table(metrics, name),
        ]
    )


def write_test_set_section(md_path: str | os.PathLike, section: str) -> None:
    """Put ``section`` at the end of a model card, replacing an earlier measurement."""
    md_path = Path(md_path)
    text = md_path.read_text()
    if MEASURED_SECTION in text:
        text = text[: text.index(MEASURED_SECTION)]
    write_text_atomic(md_path, text.rstrip("\n") + "\n\n" + section)
