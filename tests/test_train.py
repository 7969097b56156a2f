"""The one trainer: presets, schedules, patch sampling, resume, checkpoints."""

from __future__ import annotations

import csv
import json
import math
from functools import partial

import numpy as np
import pytest
import torch

from rrlsrn.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from rrlsrn.degrade import imresize
from rrlsrn.metrics import psnr
from rrlsrn.settings import make_settings
from rrlsrn.train import PatchSampler, learning_rate, train

TINY = {"depth": 2, "width": 8}


def smooth_slices(n: int, size: int = 48, seed: int = 0) -> list[np.ndarray]:
    """Blurry random blobs in [0, 1] on a zero background: learnable, brain-like support."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = []
    for _ in range(n):
        img = np.zeros((size, size))
        for _ in range(6):
            cy, cx, r = rng.uniform(0.25, 0.75, 2).tolist() + [rng.uniform(0.05, 0.2)]
            img += rng.uniform(0.2, 0.8) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / r**2)
        img *= ((yy - 0.5) ** 2 + (xx - 0.5) ** 2) < 0.16
        out.append(np.clip(img, 0, 1).astype(np.float32))
    return out


def tiny_settings(**overrides):
    base = {
        "max_steps": 6,
        "steps_per_epoch": 3,
        "batch_size": 2,
        "patch_size": 16,
        "val_slices": 2,
        "init": "scratch",
        "lr": 1e-3,
    }
    return make_settings("smoke", {**base, **overrides})


def test_paper_preset_matches_the_paper():
    s = make_settings("paper")
    assert (s.optimizer, s.momentum, s.weight_decay, s.lr) == ("sgd", 0.9, 1e-4, 1e-5)
    assert (s.batch_size, s.patch_size, s.init) == (64, 128, "lapsrn_x2")
    # lr 1e-5 halved every 50 epochs
    assert learning_rate(s, 0) == pytest.approx(1e-5)
    assert learning_rate(s, 50 * s.steps_per_epoch - 1) == pytest.approx(1e-5)
    assert learning_rate(s, 50 * s.steps_per_epoch) == pytest.approx(5e-6)
    assert learning_rate(s, 120 * s.steps_per_epoch) == pytest.approx(2.5e-6)


def test_cosine_schedule_endpoints_and_midpoint():
    s = make_settings("demo", {"lr": 1e-3, "min_lr": 0.0, "max_steps": 101})
    assert learning_rate(s, 0) == pytest.approx(1e-3)
    assert learning_rate(s, 50) == pytest.approx(0.5e-3)  # cos(pi/2) = 0
    assert learning_rate(s, 100) == pytest.approx(0.0, abs=1e-12)


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="unknown training preset 'fast'"):
        make_settings("fast")
    with pytest.raises(ValueError, match="learnig_rate"):
        make_settings("demo", {"learnig_rate": 1})
    with pytest.raises(ValueError, match="optimizer: 'rmsprop' is not one of"):
        make_settings("demo", {"optimizer": "rmsprop"})


def test_patch_sampler_shapes_foreground_and_determinism():
    hr = np.zeros((64, 64), np.float32)
    hr[:, 40:] = 1.0  # foreground only in a 24-column stripe
    sampler = PatchSampler([hr], patch_size=16, min_foreground=0.5)
    a = sampler.sample(32, torch.Generator().manual_seed(3))
    b = sampler.sample(32, torch.Generator().manual_seed(3))
    assert a.shape == (32, 1, 16, 16)
    assert torch.equal(a, b)
    # every patch meets the foreground fraction (rotations/flips keep the fraction)
    assert (a.mean(dim=(1, 2, 3)) >= 0.5).all()


def test_patch_sampler_refuses_small_slices():
    with pytest.raises(ValueError, match="at least 32x32"):
        PatchSampler([np.zeros((16, 16), np.float32)], patch_size=32)


def test_resume_gives_identical_weights(tmp_path):
    slices = smooth_slices(6)
    settings = tiny_settings()
    run = partial(
        train,
        "rrlsrn",
        slices[:4],
        slices[4:],
        settings=settings,
        model_kwargs=TINY,
        progress=False,
    )
    straight = run(tmp_path / "a")
    first = run(tmp_path / "b", stop_at_step=4)
    assert (first["steps"], first["finished"]) == (4, False)
    resumed = run(tmp_path / "b")
    assert resumed["steps"] == straight["steps"] == 6 and resumed["finished"]
    a = load_checkpoint(tmp_path / "a" / "last.pt")
    b = load_checkpoint(tmp_path / "b" / "last.pt")
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert a["best_val_psnr"] == b["best_val_psnr"]
    with open(tmp_path / "b" / "train_log.csv") as fh:
        assert [int(r["step"]) for r in csv.DictReader(fh)] == [3, 6]
    # A finished run returns at once and changes nothing.
    again = run(tmp_path / "b")
    assert again["finished"] and again["steps"] == 6


def test_training_improves_over_initial_model(tmp_path):
    slices = smooth_slices(10, size=64, seed=1)
    val = slices[8:]
    settings = tiny_settings(max_steps=60, steps_per_epoch=20, batch_size=8, patch_size=32, lr=2e-3)
    model_kwargs = {"depth": 3, "width": 16}
    summary = train(
        "rrlsrn", slices[:8], val, tmp_path, settings, model_kwargs=model_kwargs, progress=False
    )
    untrained = load_model(tmp_path / "best.pt")
    torch.nn.init.zeros_(untrained.residual_conv.weight)
    torch.nn.init.zeros_(untrained.residual_conv.bias)
    with torch.no_grad():
        untrained.image_up.weight.copy_(
            torch.tensor(
                [
                    [0.0625, 0.1875, 0.1875, 0.0625],
                    [0.1875, 0.5625, 0.5625, 0.1875],
                    [0.1875, 0.5625, 0.5625, 0.1875],
                    [0.0625, 0.1875, 0.1875, 0.0625],
                ]
            )
        )
    before = []
    for hr in val:
        lr = torch.as_tensor(imresize(hr, 0.5))[None, None]
        with torch.no_grad():
            before.append(float(psnr(untrained(lr)[0, 0].clamp(0, 1), hr, shave=2)))
    assert summary["best_val_psnr"] > np.mean(before) + 0.5
    with open(tmp_path / "train_log.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == [20, 40, 60]
    assert all(math.isfinite(float(r["loss"])) and float(r["lr"]) > 0 for r in rows)


def test_corrupt_checkpoint_names_the_file(tmp_path):
    bad = tmp_path / "last.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match=str(bad)):
        load_checkpoint(bad)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    # A corrupt last.pt stops a resume with the same clear error.
    with pytest.raises(CheckpointError, match="corrupt"):
        train(
            "rrlsrn",
            smooth_slices(2),
            smooth_slices(1),
            tmp_path,
            tiny_settings(),
            model_kwargs=TINY,
            progress=False,
        )


def test_mismatched_checkpoint_names_the_file(tmp_path):
    slices = smooth_slices(3)
    train(
        "rrlsrn",
        slices[:2],
        slices[2:],
        tmp_path / "run",
        tiny_settings(max_steps=3),
        model_kwargs=TINY,
        progress=False,
    )
    state = load_checkpoint(tmp_path / "run" / "best.pt")
    state["model_kwargs"] = {"depth": 3, "width": 8}  # claims a deeper model
    wrong = tmp_path / "wrong.pt"
    save_checkpoint({k: v for k, v in state.items() if k != "format"}, wrong)
    with pytest.raises(CheckpointError, match=str(wrong)):
        load_model(wrong)
    # A non-rrlsrn torch file is refused.
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(CheckpointError, match="model_name"):
        load_checkpoint(other)


def test_checkpoints_load_weights_only(tmp_path):
    slices = smooth_slices(3)
    train(
        "rrlsrn",
        slices[:2],
        slices[2:],
        tmp_path,
        tiny_settings(max_steps=3),
        model_kwargs=TINY,
        progress=False,
    )
    for name in ("last.pt", "best.pt"):
        state = torch.load(tmp_path / name, weights_only=True)
        assert state["step"] == 3
        # The fingerprint is plain JSON: it survives a JSON round trip unchanged.
        assert json.loads(json.dumps(state["fingerprint"])) == state["fingerprint"]
        assert state["fingerprint"]["max_steps"] == 3
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    assert {"model", "optimizer", "scheduler", "rng", "fingerprint"} <= set(last)


def test_a_run_without_validation_slices_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no validation slices"):
        train(
            "rrlsrn",
            smooth_slices(2),
            [],
            tmp_path,
            tiny_settings(),
            model_kwargs=TINY,
            progress=False,
        )
    assert not any(tmp_path.iterdir())  # nothing written
