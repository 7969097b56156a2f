"""Checkpoint files: atomic writes, safe loading, clear errors naming the file.

A checkpoint is a dict saved with ``torch.save`` holding only tensors and plain Python
values, so it loads with ``torch.load(weights_only=True)``.  Keys:

``format`` (int), ``model_name`` (registry name), ``model_kwargs`` (dict), ``scale`` (the
scale it was trained at; 2 when absent), ``model`` (state dict) and, in training
checkpoints, ``optimizer``, ``scheduler``, ``rng``, ``step``, ``best_val_psnr``,
``settings`` and ``fingerprint``: a dict of JSON values naming everything that decides the
run's result (see ``rrlsrn.train.run_fingerprint``).  A run resumes only from a checkpoint
with the same fingerprint.  Checkpoints written before fingerprints existed (the shipped
weights among them) have none and load as before.
"""

from __future__ import annotations

import datetime
import hashlib
import itertools
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rrlsrn.io import atomic_path
from rrlsrn.models import at_scale, build_model

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


def checkpoint_scale(state: Mapping[str, Any]) -> int:
    """The scale a checkpoint's network was trained at: its ``scale`` entry (else a
    ``scale`` among its model arguments, else 2)."""
    return int(state.get("scale", state.get("model_kwargs", {}).get("scale", 2)))


def load_model(
    path: str | os.PathLike, device: str | torch.device = "cpu", scale: int | None = None
) -> nn.Module:
    """Rebuild the model a checkpoint describes and load its weights (eval mode), at its
    own scale or at ``scale`` (see :func:`model_from_state`)."""
    return model_from_state(load_checkpoint(path), path, scale).to(device)


def model_from_state(
    state: dict[str, Any], path: str | os.PathLike, scale: int | None = None
) -> nn.Module:
    """The model a loaded checkpoint ``state`` (from ``path``) describes, in eval mode.

    It is built at the scale it was trained at (:func:`checkpoint_scale`), then, when
    ``scale`` differs, moved to ``scale`` by :func:`rrlsrn.models.at_scale`: a cascade
    network (RRLSRN) takes the same weights to any power of 2; any other network raises
    :class:`CheckpointError` naming ``path``.
    """
    trained = checkpoint_scale(state)
    model_args = {k: v for k, v in state.get("model_kwargs", {}).items() if k != "scale"}
    try:
        model = build_model(state["model_name"], trained, **model_args)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(
            f"checkpoint {path} names a model that cannot be built: {exc}"
        ) from exc
    load_state_into(model, state["model"], path)
    if scale is not None and scale != trained:
        try:
            model = at_scale(model, scale)
        except ValueError as exc:
            raise CheckpointError(f"checkpoint {path} holds x{trained} weights: {exc}") from None
    return model.eval()


def fingerprint_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``"key: old -> new"`` for each entry that differs between two fingerprints.

    Content hashes are shortened to 12 hex digits; an entry one side lacks shows as
    ``(none)``.  An empty list means the fingerprints are equal.
    """
    keys = [*new, *(k for k in old if k not in new)]
    return [
        f"{k}: {_shown(old, k)} -> {_shown(new, k)}"
        for k in keys
        if k not in old or k not in new or old[k] != new[k]
    ]


def _shown(fingerprint: Mapping[str, Any], key: str) -> str:
    if key not in fingerprint:
        return "(none)"
    value = fingerprint[key]
    if isinstance(value, str) and value.startswith("sha256:"):
        return value[:19]
    return value if isinstance(value, str) else json.dumps(value)


def fingerprint_tag(fingerprint: Mapping[str, Any] | None) -> str:
    """8 hex digits naming a fingerprint (``unfingerprinted`` for none)."""
    if fingerprint is None:
        return "unfingerprinted"
    text = json.dumps(fingerprint, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def set_aside(folder: str | os.PathLike, names: Sequence[str], tag: str) -> Path | None:
    """Move the files ``names`` of ``folder`` into ``folder/superseded/<UTC time>-<tag>/``.

    Nothing is deleted: a superseded run stays readable, each file moved by one atomic
    rename within the folder.  Returns the new subfolder, or None when no file existed.
    """
    folder = Path(folder)
    present = [name for name in names if (folder / name).exists()]
    if not present:
        return None
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = base = folder / "superseded" / f"{stamp}-{tag}"
    for attempt in itertools.count(1):  # two set-asides within one second get -1, -2, ...
        try:
            target.mkdir(parents=True)
            break
        except FileExistsError:
            target = base.with_name(f"{base.name}-{attempt}")
    for name in present:
        os.replace(folder / name, target / name)
    return target
