"""Checkpoint files: atomic writes, safe loading, clear errors naming the file.

A checkpoint is a dict saved with ``torch.save`` holding only tensors and plain Python
values, so it loads with ``torch.load(weights_only=True)``.  Keys:

``format`` (int), ``model_name`` (registry name), ``model_kwargs`` (dict), ``model``
(state dict) and, in training checkpoints, ``optimizer``, ``scheduler``, ``rng``,
``step``, ``best_val_psnr``, ``settings``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rrlsrn.io import atomic_path
from rrlsrn.models import build_model

CHECKPOINT_FORMAT = 1


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, corrupt, or does not fit the model."""


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Write ``state`` to ``path`` atomically (temp file in the same folder, then rename)."""
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save({"format": CHECKPOINT_FORMAT, **state}, tmp)


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; raise :class:`CheckpointError` if bad."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt files
        raise CheckpointError(
            f"checkpoint {path} is corrupt or not a torch checkpoint: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(state, dict) or "model" not in state or "model_name" not in state:
        raise CheckpointError(
            f"checkpoint {path} lacks the 'model' / 'model_name' entries written by rrlsrn"
        )
    if state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"checkpoint {path} has format {state.get('format')!r}, "
            f"this version reads format {CHECKPOINT_FORMAT}"
        )
    return state


def load_state_into(
    model: nn.Module, state_dict: dict[str, torch.Tensor], path: str | os.PathLike
) -> None:
    """Load weights strictly; a mismatch raises :class:`CheckpointError` naming ``path``."""
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"checkpoint {path} does not match the model {type(model).__name__}: {exc}"
        ) from exc


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model a checkpoint describes and load its weights (eval mode)."""
    return model_from_state(load_checkpoint(path), path).to(device)


def model_from_state(state: dict[str, Any], path: str | os.PathLike) -> nn.Module:
    """The model a loaded checkpoint ``state`` (from ``path``) describes, in eval mode."""
    try:
        model = build_model(state["model_name"], **state.get("model_kwargs", {}))
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(
            f"checkpoint {path} names a model that cannot be built: {exc}"
        ) from exc
    load_state_into(model, state["model"], path)
    return model.eval()
