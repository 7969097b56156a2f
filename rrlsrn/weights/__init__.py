"""Pretrained checkpoints the project made itself, each with a model card (``<name>.md``).

They are trained from scratch on the embedded training subjects only (preset
``pretrain``); see each model card for data, steps, validation PSNR and licence.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

WEIGHTS_DIR = Path(str(resources.files("rrlsrn.weights")))


def shipped_weights_path(name: str) -> Path:
    """Path of the shipped checkpoint ``<name>.pt``; a clear error lists what ships."""
    path = WEIGHTS_DIR / f"{name}.pt"
    if not path.is_file():
        available = shipped_weights()
        raise FileNotFoundError(
            f"no shipped weights {path} for {name!r}; shipped: "
            f"{available or 'none'}. Train them with the 'pretrain' "
            f"preset (see README) or use init: scratch"
        )
    return path


def shipped_weights() -> list[str]:
    """Names of the shipped checkpoints."""
    return sorted(p.stem for p in WEIGHTS_DIR.glob("*.pt"))


def history_path(name: str, dest_dir: str | os.PathLike | None = None) -> Path:
    """``<name>.history.csv`` beside the shipped weights: their whole training log."""
    return Path(dest_dir or WEIGHTS_DIR) / f"{name}.history.csv"
