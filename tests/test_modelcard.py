"""Shipping a checkpoint into the package with its model card."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rrlsrn.checkpoint import load_checkpoint, load_model
from rrlsrn.degrade import imresize
from rrlsrn.io import save_npz_atomic
from rrlsrn.metrics import psnr
from rrlsrn.modelcard import ship_weights
from rrlsrn.train import make_settings, train
from rrlsrn.weights import shipped_weights, shipped_weights_path


def test_ship_weights_writes_slim_checkpoint_and_card(tmp_path):
    rng = np.random.default_rng(0)
    slices = [np.clip(rng.normal(0.5, 0.1, (32, 32)), 0, 1).astype(np.float32) for _ in range(3)]
    save_npz_atomic(tmp_path / "val.npz", hr=np.stack(slices[2:]))
    settings = make_settings(
        "smoke",
        {
            "init": "scratch",
            "max_steps": 2,
            "steps_per_epoch": 2,
            "patch_size": 16,
            "batch_size": 2,
            "val_slices": 1,
        },
    )
    train(
        "rrlsrn",
        slices[:2],
        slices[2:],
        tmp_path / "run",
        settings,
        model_kwargs={"depth": 1, "width": 4},
        progress=False,
    )
    pt, md = ship_weights(
        tmp_path / "run" / "best.pt",
        "tiny",
        tmp_path / "ship",
        [tmp_path / "train.npz"],
        [tmp_path / "val.npz"],
        "make it",
    )
    state = load_checkpoint(pt)
    assert "optimizer" not in state and "rng" not in state
    model = load_model(pt)
    original = load_model(tmp_path / "run" / "best.pt")
    x = torch.rand(1, 1, 8, 8)
    assert torch.equal(model(x), original(x))
    card = md.read_text()
    # The card's bicubic reference is the PSNR of bicubic on the validation slice.
    ref = float(psnr(np.clip(imresize(imresize(slices[2], 0.5), 2), 0, 1), slices[2], shave=2))
    assert f"{ref:.2f} dB" in card
    assert f"{state['best_val_psnr']:.2f} dB" in card
    assert "make it" in card and "Licence" in card


def test_missing_shipped_weights_error_lists_what_ships():
    with pytest.raises(FileNotFoundError, match="no shipped weights") as info:
        shipped_weights_path("no_such_model")
    assert str(shipped_weights() or "none") in str(info.value)
