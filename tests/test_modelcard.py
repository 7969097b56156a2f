"""Shipping a checkpoint into the package with its model card."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import two_step_settings

from rrlsrn.checkpoint import load_checkpoint, load_model
from rrlsrn.degrade import imresize
from rrlsrn.io import save_npz_atomic
from rrlsrn.metrics import psnr
from rrlsrn.modelcard import ship_weights
from rrlsrn.train import train
from rrlsrn.weights import shipped_weights, shipped_weights_path


def test_ship_weights_writes_slim_checkpoint_and_card(tmp_path):
    rng = np.random.default_rng(0)
    slices = [np.clip(rng.normal(0.5, 0.1, (32, 32)), 0, 1).astype(np.float32) for _ in range(3)]
    save_npz_atomic(tmp_path / "val.npz", hr=np.stack(slices[2:]))
    settings = two_step_settings()
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
    assert "intensity augmentation none" in card
    # the whole training log ships beside the weights, with bicubic's PSNR on the same
    # slices (logged by the trainer) and the shipped epoch marked
    history = pd.read_csv(tmp_path / "ship" / "tiny.history.csv")
    assert history["step"].tolist() == [2] and history["shipped"].tolist() == [1]
    assert history["val_bicubic_psnr"].iloc[0] == pytest.approx(ref, abs=1e-4)


def test_missing_shipped_weights_error_lists_what_ships():
    with pytest.raises(FileNotFoundError, match="no shipped weights") as info:
        shipped_weights_path("no_such_model")
    assert str(shipped_weights() or "none") in str(info.value)


def test_measured_section_aggregates_subject_means_with_a_t_interval(tmp_path):
    import pandas as pd

    from rrlsrn.modelcard import MEASURED_SECTION, measured_section, write_test_set_section

    # subject means 30, 32, 34 dB (two slices each): mean 32, SD 2,
    # CI 32 -/+ t(0.975, 2) 4.3027 * 2 / sqrt(3) = [27.03, 36.97]
    metrics = pd.DataFrame(
        {
            "dataset": "adult",
            "method": "rrlsrn",
            "subject": ["a", "a", "b", "b", "c", "c"],
            "psnr": [29.0, 31.0, 32.0, 32.0, 33.0, 35.0],
            "ssim": [0.9, 0.9, 0.9, 0.9, 0.9, 0.9],
        }
    )
    section = measured_section(metrics, "results")
    assert "| adult | 3 | 6 | 32.00 ± 2.00 | [27.03, 36.97] | 0.9000 ± 0.0000 |" in section
    card = tmp_path / "card.md"
    card.write_text("# Model card\n\n| step | psnr |\n")
    write_test_set_section(card, section)
    write_test_set_section(card, section)  # a new measurement replaces the old one
    text = card.read_text()
    assert text.count(MEASURED_SECTION) == 1 and text.startswith("# Model card\n\n| step")


def test_measured_test_sets_use_only_test_subjects_and_beat_bicubic(tmp_path, real_slices):
    from rrlsrn.modelcard import measure_weights, test_set_metrics

    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "adult.tsv").write_text("subject\trole\ns1\ttest\ns2\ttrain\n")
    hr = real_slices[:, 64:192, 64:192].astype(np.float32)
    for subject in ("s1", "s2"):
        save_npz_atomic(
            tmp_path / "data" / "adult" / f"{subject}.npz",
            hr=hr,
            mask=np.ones_like(hr, bool),
            slice_index=np.arange(len(hr)),
        )
    metrics = test_set_metrics(measure_weights(["rrlsrn"], tmp_path), "rrlsrn")
    assert list(metrics["subject"].unique()) == ["s1"] and len(metrics) == len(hr)
    bicubic = [psnr(np.clip(imresize(imresize(s, 0.5), 2.0), 0, 1), s, shave=2) for s in hr]
    assert (metrics["psnr"].to_numpy() > np.array(bicubic) + 1.0).all()
