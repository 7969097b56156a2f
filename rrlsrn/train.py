"""The ONE trainer: every learned method (RRLSRN, its ablations, SRCNN, FSRCNN, ...) uses it.

Patches are sampled from HR training slices (random position with a minimum brain
fraction, random flip / 90-degree rotation), given the preset's intensity augmentation
(:mod:`rrlsrn.augment`: other contrasts, shading, noise; off unless a preset asks for it),
the LR input is made on the fly by the configured degradation operator, and the model,
built for the run's scale, is fitted with the combined Charbonnier + GDL loss on its
output.  At x4 RRLSRN is its x2 network cascaded (:class:`rrlsrn.models.RRLSRN`): the
loss at the x4 output trains the one set of x2 weights through both passes, and its
checkpoints load into the x2 network as they are.

Every ``steps_per_epoch`` steps it computes the validation PSNR on held-out slices,
appends to a CSV log and writes ``last.pt`` (full state: model, optimiser, scheduler, RNG,
step) and ``best.pt`` (weights of the best validation epoch).  A killed run resumes from
``last.pt`` and continues bit-for-bit where it stopped.

Every checkpoint carries the run's fingerprint (:func:`run_fingerprint`): model, settings,
operator, scale, initial weights and data.  A run resumes only from a ``last.pt`` with
the same fingerprint; otherwise the old files are moved to ``superseded/`` and it starts
fresh, so a changed setting never publishes the weights of an earlier run.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from rrlsrn import plugins
from rrlsrn.augment import AUGMENT_FIELDS, augment_intensity
from rrlsrn.checkpoint import (
    CheckpointError,
    checkpoint_scale,
    fingerprint_changes,
    fingerprint_tag,
    load_checkpoint,
    load_state_into,
    model_from_state,
    save_checkpoint,
    set_aside,
)
from rrlsrn.degrade import bicubic_up, make_degradation
from rrlsrn.losses import combined_loss
from rrlsrn.metrics import psnr
from rrlsrn.models import build_model
from rrlsrn.settings import TrainSettings

LOG_FIELDS = [
    "step",
    "epoch",
    "loss",
    "lr",
    "val_psnr",
    "val_bicubic_psnr",  # bicubic on the same validation slices: the curve's floor
    "elapsed_s",
    "patches_per_s",
]
RUN_FILES = ("last.pt", "best.pt", "train_log.csv")  # what a run writes in its folder
# Settings that only split a run across invocations; they do not change its result.
NOT_IN_FINGERPRINT = frozenset({"max_minutes"})


def learning_rate(settings: TrainSettings, step: int) -> float:
    """Learning rate at optimiser step ``step`` (0-based), a pure function of the settings."""
    if settings.scheduler == "constant":
        return settings.lr
    if settings.scheduler == "step":
        epoch = step // settings.steps_per_epoch
        return settings.lr * settings.step_gamma ** (epoch // settings.step_epochs)
    progress = min(step / max(settings.max_steps - 1, 1), 1.0)
    return settings.min_lr + 0.5 * (settings.lr - settings.min_lr) * (
        1 + math.cos(math.pi * progress)
    )


class PatchSampler:
    """Random HR patches with a minimum foreground fraction, flips and 90-degree rotations.

    For every slice the top-left corners whose patch holds at least ``min_foreground``
    foreground pixels are found once (integral image); a slice is drawn with probability
    proportional to its number of such corners, then a corner uniformly among them.
    Randomness comes only from the ``torch.Generator`` passed to :meth:`sample`, whose
    state the trainer checkpoints, so resumed runs draw the same patches.
    """

    def __init__(
        self,
        slices: Sequence[np.ndarray],
        patch_size: int,
        min_foreground: float = 0.25,
        foreground_threshold: float = 0.02,
    ) -> None:
        p = patch_size
        usable = [
            np.ascontiguousarray(s, dtype=np.float32)
            for s in slices
            if s.ndim == 2 and min(s.shape) >= p
        ]
        if not usable:
            raise ValueError(f"no training slice is at least {p}x{p} (got {len(slices)} slices)")
        self.patch_size = p
        self.slices = [torch.from_numpy(s) for s in usable]
        self.corners: list[torch.Tensor] = []
        for s in usable:
            ii = np.pad(
                (s > foreground_threshold).cumsum(0, dtype=np.int32).cumsum(1), ((1, 0), (1, 0))
            )
            counts = ii[p:, p:] - ii[:-p, p:] - ii[p:, :-p] + ii[:-p, :-p]
            ok = np.flatnonzero(counts >= min_foreground * p * p).astype(np.int32)
            self.corners.append(torch.from_numpy(ok))
        self.weights = torch.tensor([len(c) for c in self.corners], dtype=torch.float64)
        if self.weights.sum() == 0:  # nothing meets the fraction: fall back to any corner
            self.corners = [
                torch.arange((s.shape[0] - p + 1) * (s.shape[1] - p + 1))[:, None]
                for s in self.slices
            ]
            self.weights = torch.tensor([len(c) for c in self.corners], dtype=torch.float64)

    def sample(self, batch_size: int, gen: torch.Generator) -> torch.Tensor:
        """A (batch, 1, P, P) float32 batch of augmented HR patches."""
        idx = torch.multinomial(self.weights, batch_size, replacement=True, generator=gen)
        picks = torch.rand(batch_size, generator=gen, dtype=torch.float64)
        transforms = torch.randint(0, 8, (batch_size,), generator=gen)
        p = self.patch_size
        patches = []
        for i, u, t in zip(idx.tolist(), picks.tolist(), transforms.tolist(), strict=True):
            corners, image = self.corners[i], self.slices[i]
            flat = int(corners[min(int(u * len(corners)), len(corners) - 1)])
            top, left = divmod(flat, image.shape[1] - p + 1)
            patch = image[top : top + p, left : left + p]
            if t & 4:
                patch = patch.flip(-1)
            patches.append(torch.rot90(patch, t & 3, dims=(0, 1)))
        return torch.stack(patches)[:, None].contiguous()


def hr_patch_size(patch_size: int, scale: int) -> int:
    """The HR patch side the trainer samples: ``patch_size`` cropped to a multiple of
    ``scale`` (the LR operator needs whole LR pixels; 64 stays 64 at x2 and x4, is 63 at
    x3), as the data's slices are (:func:`rrlsrn.degrade.modcrop`)."""
    size = patch_size - patch_size % scale
    if size < scale:
        raise ValueError(f"patch_size {patch_size} is smaller than the scale {scale}")
    return size


def pick_device(device: str = "auto") -> torch.device:
    """CUDA when present (or asked for), else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {device}: CUDA is not available on this machine")
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise RuntimeError(
                f"device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    return torch.device(device)


def evenly_spaced(items: Sequence[Any], count: int) -> list[Any]:
    """``count`` items spread evenly over ``items`` (all of them if fewer)."""
    if count >= len(items):
        return list(items)
    positions = np.linspace(0, len(items) - 1, count).round().astype(int)
    return [items[i] for i in positions]


@torch.inference_mode()
def validation_psnr(
    model: nn.Module,
    slices: Sequence[np.ndarray],
    degrade_fn: Callable,
    scale: int,
    device: torch.device,
) -> float:
    """Mean PSNR (shave = scale) of the model on whole validation slices."""
    model.eval()
    values = []
    for hr in slices:
        hr_t = torch.from_numpy(np.ascontiguousarray(hr, dtype=np.float32))[None, None]
        lr = degrade_fn(hr_t, scale).to(device).contiguous(memory_format=torch.channels_last)
        with _autocast(device):
            sr = model(lr).float().clamp(0, 1).cpu()
        values.append(float(psnr(sr[0, 0], hr_t[0, 0], shave=scale)))
    model.train()
    return float(np.mean(values)) if values else float("nan")


def bicubic_validation_psnr(
    slices: Sequence[np.ndarray], degrade_fn: Callable, scale: int
) -> float:
    """Mean PSNR (shave = scale) of bicubic upscaling on the validation slices: what
    :func:`validation_psnr` of a model is read against."""
    values = []
    for hr in slices:
        hr_t = torch.from_numpy(np.ascontiguousarray(hr, dtype=np.float32))
        sr = bicubic_up(degrade_fn(hr_t, scale), scale).clamp(0, 1)
        values.append(float(psnr(sr, hr_t, shave=scale)))
    return float(np.mean(values)) if values else float("nan")


def _autocast(device: torch.device) -> Any:
    """bf16 autocast on CUDA, a no-op elsewhere."""
    return torch.autocast(
        device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"
    )


def _make_optimizer(model: nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
    weights = [p for n, p in model.named_parameters() if p.requires_grad and not n.endswith("bias")]
    biases = [p for n, p in model.named_parameters() if p.requires_grad and n.endswith("bias")]
    groups = [
        {"params": weights, "lr_mult": 1.0},
        {"params": biases, "lr_mult": settings.bias_lr_mult},
    ]
    groups = [g for g in groups if g["params"]]
    if settings.optimizer == "sgd":
        return torch.optim.SGD(
            groups, lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay
        )
    return torch.optim.Adam(groups, lr=settings.lr, weight_decay=settings.weight_decay)


def _rng_state(gen: torch.Generator) -> dict[str, Any]:
    state = {"sampler": gen.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore_rng(gen: torch.Generator, state: dict[str, Any]) -> None:
    gen.set_state(state["sampler"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _rewrite_log(log_path: Path, upto_step: int) -> None:
    """Keep only log rows up to ``upto_step`` (rows after the resumed checkpoint are redone)."""
    if not log_path.exists():
        return
    with log_path.open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if int(r["step"]) <= upto_step]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=LOG_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    tmp = log_path.with_suffix(".csv.tmp")
    tmp.write_text(buf.getvalue())
    os.replace(tmp, log_path)


def _append_log(log_path: Path, row: dict[str, Any]) -> None:
    new = not log_path.exists()
    with log_path.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=LOG_FIELDS)
        if new:
            writer.writeheader()
        writer.writerow(row)


def initial_weights(
    init: str,
    model_name: str,
    model_kwargs: dict[str, Any],
    weights_name: str | None = None,
    lapsrn_mat: str | os.PathLike | None = None,
    scale: int = 2,
) -> tuple[dict[str, torch.Tensor] | None, str]:
    """State dict to start from (or None for scratch) and a description of its origin.

    ``lapsrn_mat`` is the LapSRN x2 file for ``init: lapsrn_x2`` (default: the
    ``RRLSRN_LAPSRN_MAT`` file or the download cache).  Weights of another scale than
    ``scale`` serve only a cascade network (RRLSRN: the same x2 weights at every power
    of 2); for any other network they raise :class:`CheckpointError`.
    """
    if init == "scratch":
        return None, "scratch"
    if init == "lapsrn_x2":
        from rrlsrn.lapsrn import lapsrn_x2_state_dict

        if model_name != "rrlsrn":
            raise ValueError(
                f"init 'lapsrn_x2' loads LapSRN's x2 weights, which fit only the rrlsrn "
                f"model, not {model_name!r}: start {model_name} with `train: {{init: "
                f"scratch}}` in its method spec (configs/paper.yaml does)"
            )
        return lapsrn_x2_state_dict(
            lapsrn_mat,
            depth=model_kwargs.get("depth", 11),
            image_branch=model_kwargs.get("image_branch", "transposed"),
        ), init
    if init == "shipped":
        from rrlsrn.weights import shipped_weights_path

        path = shipped_weights_path(weights_name or model_name)
        origin = f"shipped:{path.name}"
    else:
        path, origin = Path(init), f"checkpoint:{init}"
    state = load_checkpoint(path)
    if checkpoint_scale(state) != scale:
        try:
            model_from_state(state, path, scale)  # a cascade network takes them as they are
        except CheckpointError as error:
            raise CheckpointError(
                f"init {init!r}: {error}; start {model_name} at x{scale} from scratch "
                f"(`train: {{init: scratch}}` in its method spec) or from x{scale} weights"
            ) from None
    return state["model"], origin


def content_digest(arrays: Iterable[tuple[str, np.ndarray | torch.Tensor]]) -> str:
    """``sha256:<hex>`` over each named array's name, dtype, shape and bytes, in order."""
    digest = hashlib.sha256()
    for name, array in arrays:
        if isinstance(array, torch.Tensor):
            array = array.detach().cpu().numpy()
        array = np.ascontiguousarray(array)
        digest.update(f"{name}:{array.dtype.str}{array.shape};".encode())
        digest.update(array.reshape(-1).view(np.uint8))
    return f"sha256:{digest.hexdigest()}"


def run_fingerprint(
    model_name: str,
    model_kwargs: Mapping[str, Any],
    settings: TrainSettings,
    scale: int,
    degradation: Mapping[str, Any],
    origin: str,
    init_state: Mapping[str, torch.Tensor] | None,
    train_slices: Sequence[np.ndarray],
    val_slices: Sequence[np.ndarray],
    model_code: str | None = None,
) -> dict[str, Any]:
    """Everything that decides a training run's result, as JSON values (str -> value).

    Model and its arguments, every setting but ``max_minutes`` (and the intensity
    augmentations that are off, so runs from before they existed still resume), scale,
    LR operator, where the initial weights come from and their content, and the content
    of the training and validation slices.  The slices are hashed here, as arrays (dtype,
    shape, bytes), so the CLI and the workflow, which both pass slices, fingerprint
    the same data the same way whatever files it came from.  ``model_code`` (the digest
    of a user's model file, :func:`rrlsrn.plugins.source_digest`) is added when given.
    """
    values = {
        "model": model_name,
        "model_args": dict(model_kwargs),
        **{
            k: v
            for k, v in dataclasses.asdict(settings).items()
            if k not in NOT_IN_FINGERPRINT and not (k in AUGMENT_FIELDS and not v)
        },
        "scale": scale,
        "degradation": dict(degradation),
        "init_from": origin,
        "init_weights": None if init_state is None else content_digest(sorted(init_state.items())),
        "train_data": content_digest((str(i), s) for i, s in enumerate(train_slices)),
        "val_data": content_digest((str(i), s) for i, s in enumerate(val_slices)),
        **({"model_code": model_code} if model_code else {}),
    }
    return json.loads(json.dumps(values))  # plain JSON values: tuples become lists


def _resumable_state(out: Path, fingerprint: dict[str, Any]) -> dict[str, Any] | None:
    """The ``last.pt`` state of ``out`` if it was written with ``fingerprint``, else None.

    Files of another run (other fingerprint, none, or no ``last.pt`` beside a
    ``best.pt`` or log) are moved to ``out/superseded/...`` and the move is printed.
    """
    last = out / "last.pt"
    if not any((out / name).exists() for name in RUN_FILES):
        return None
    old = None
    if last.exists():
        state = load_checkpoint(last)
        old = state.get("fingerprint")
        if old is None:
            reason = f"cannot resume from {last}: written without a fingerprint"
        else:
            changes = fingerprint_changes(old, fingerprint)
            if not changes:
                return state
            reason = f"settings changed since {last} ({'; '.join(changes)})"
    else:
        reason = f"no {last} to resume from beside the files of an earlier run"
    kept = set_aside(out, RUN_FILES, fingerprint_tag(old))
    print(f"{reason}: starting fresh; the old run is kept in {kept}", flush=True)
    return None


def train(
    model_name: str,
    train_slices: Sequence[np.ndarray],
    val_slices: Sequence[np.ndarray],
    out_dir: str | os.PathLike,
    settings: TrainSettings,
    model_kwargs: dict[str, Any] | None = None,
    scale: int = 2,
    degradation: dict[str, Any] | None = None,
    device: str = "auto",
    weights_name: str | None = None,
    threads: int | None = None,
    progress: bool = True,
    stop_at_step: int | None = None,
    lapsrn_mat: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Train (or resume training) ``model_name`` and write checkpoints + log to ``out_dir``.

    Returns a summary: steps done, best validation PSNR, whether the run finished, and
    where it started from.  Calling it again on the same ``out_dir`` with the same
    fingerprint (:func:`run_fingerprint`; the slices are hashed here) resumes from
    ``last.pt``, and a finished run returns immediately.  With another fingerprint the
    old run's files move to ``out_dir/superseded/<UTC time>-<tag>/`` and training starts
    fresh.  ``stop_at_step`` (or the ``max_minutes`` setting) ends this invocation early
    with a resumable checkpoint.
    """
    if threads:
        torch.set_num_threads(threads)
    if not len(val_slices):
        raise ValueError(
            "no validation slices: give the run a subject with role 'val' (validation PSNR "
            "picks the best checkpoint)"
        )
    model_kwargs = dict(model_kwargs or {})
    degradation = dict(degradation or {"name": "bicubic"})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    last_path, best_path, log_path = out / "last.pt", out / "best.pt", out / "train_log.csv"
    dev = pick_device(device)
    degrade_fn = make_degradation(**degradation)

    # A config's own model class also gets the scale among its model_args
    # (rrlsrn.registry.resolve): it must be the run's.
    if model_kwargs.get("scale", scale) != scale:
        raise ValueError(
            f"{model_name}: model_args scale {model_kwargs['scale']} differs from the "
            f"run's scale {scale}"
        )
    model_args = {k: v for k, v in model_kwargs.items() if k != "scale"}

    torch.manual_seed(settings.seed)
    model = build_model(model_name, scale, **model_args)  # a cascade trains its x2 weights
    gen = torch.Generator().manual_seed(settings.seed)
    optimizer = _make_optimizer(model, settings)
    init_state, origin = initial_weights(
        settings.init, model_name, model_kwargs, weights_name, lapsrn_mat, scale
    )
    fingerprint = run_fingerprint(
        model_name,
        model_kwargs,
        settings,
        scale,
        degradation,
        origin,
        init_state,
        train_slices,
        val_slices,
        plugins.source_digest(type(model)) if ":" in model_name else None,
    )
    meta = {
        "model_name": model_name,
        "model_kwargs": model_kwargs,
        "settings": dataclasses.asdict(settings),
        "scale": scale,
        "degradation": degradation,
        "fingerprint": fingerprint,
    }

    step, best = 0, -math.inf
    state = _resumable_state(out, fingerprint)
    if state is not None:
        load_state_into(model, state["model"], last_path)
        try:
            optimizer.load_state_dict(state["optimizer"])
        except (ValueError, KeyError) as exc:
            raise CheckpointError(
                f"checkpoint {last_path}: optimiser state does not match the settings: {exc}"
            ) from exc
        _restore_rng(gen, state["rng"])
        step, best = state["step"], state["best_val_psnr"]
        _rewrite_log(log_path, step)
        print(f"resuming {model_name} from {last_path} at step {step}", flush=True)
    elif init_state is not None:
        load_state_into(model, init_state, settings.init)

    summary = {"model_name": model_name, "init": origin, "device": str(dev), "start_step": step}
    if step >= settings.max_steps:
        return {**summary, "steps": step, "best_val_psnr": best, "finished": True}

    model = model.to(dev).to(memory_format=torch.channels_last).train()
    # Optimiser state tensors follow the parameters to the device.
    for st in optimizer.state.values():
        for k, v in st.items():
            if isinstance(v, torch.Tensor) and k != "step":
                st[k] = v.to(dev)
    patch_size = hr_patch_size(settings.patch_size, scale)
    sampler = PatchSampler(
        train_slices, patch_size, settings.min_foreground, settings.foreground_threshold
    )
    val = evenly_spaced(list(val_slices), settings.val_slices)
    val_bicubic = bicubic_validation_psnr(val, degrade_fn, scale)
    pixel_factor = patch_size**2 if settings.loss_reduction == "sum_per_sample" else 1

    def checkpoint(path: Path, full: bool) -> None:
        state = {
            **meta,
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "step": step,
            "best_val_psnr": best,
            "init": origin,
        }
        if full:
            state.update(
                optimizer=optimizer.state_dict(),
                rng=_rng_state(gen),
                scheduler={"name": settings.scheduler, "step": step},
            )
        save_checkpoint(state, path)

    start = time.perf_counter()
    window_start, window_patches, loss_sum, loss_count = start, 0, 0.0, 0
    bar = tqdm(
        total=settings.max_steps,
        initial=step,
        disable=not progress,
        desc=f"train {model_name}",
        unit="step",
        mininterval=1.0,
        dynamic_ncols=True,
    )
    finished = True
    while step < settings.max_steps:
        hr = augment_intensity(sampler.sample(settings.batch_size, gen), settings, gen)
        lr_img = degrade_fn(hr, scale)
        hr = hr.to(dev, non_blocking=True).contiguous(memory_format=torch.channels_last)
        lr_img = lr_img.to(dev, non_blocking=True).contiguous(memory_format=torch.channels_last)
        rate = learning_rate(settings, step)
        for group in optimizer.param_groups:
            group["lr"] = rate * group.get("lr_mult", 1.0)
        with _autocast(dev):
            pred = model(lr_img)
        loss = (
            combined_loss(pred.float(), hr, settings.gdl_weight, settings.charbonnier_eps)
            * pixel_factor
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if settings.grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        optimizer.step()
        step += 1
        loss_sum += float(loss.detach())
        loss_count += 1
        window_patches += settings.batch_size
        bar.update(1)
        if step % settings.steps_per_epoch == 0 or step == settings.max_steps:
            train_seconds = time.perf_counter() - window_start  # excludes validation
            val_psnr = validation_psnr(model, val, degrade_fn, scale, dev)
            now = time.perf_counter()
            _append_log(
                log_path,
                {
                    "step": step,
                    "epoch": step // settings.steps_per_epoch,
                    "loss": loss_sum / loss_count,
                    "lr": rate,
                    "val_psnr": val_psnr,
                    "val_bicubic_psnr": round(val_bicubic, 4),
                    "elapsed_s": round(now - start, 3),
                    "patches_per_s": round(window_patches / train_seconds, 2),
                },
            )
            bar.set_postfix(loss=f"{loss_sum / loss_count:.4g}", val_psnr=f"{val_psnr:.2f}")
            window_start, window_patches, loss_sum, loss_count = now, 0, 0.0, 0
            if val_psnr > best or not best_path.exists():
                best = max(best, val_psnr)
                checkpoint(best_path, full=False)
            checkpoint(last_path, full=True)
        out_of_time = (
            settings.max_minutes and time.perf_counter() - start > 60 * settings.max_minutes
        )
        if step < settings.max_steps and (out_of_time or step == stop_at_step):
            checkpoint(last_path, full=True)
            finished = False
            break
    bar.close()
    return {**summary, "steps": step, "best_val_psnr": best, "finished": finished}
