"""Tests for the scales of a run (rrlsrn.pipeline): which methods run at x2, x3, x4, what
the HR slices are cropped to, the border shave, and runs without training (preset none)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from rrlsrn import pipeline
from rrlsrn.weights import WEIGHTS_DIR

REPO = Path(__file__).resolve().parents[1]
CASCADES = ["rrlsrn", "rrlsrn_no_gdl", "rrlsrn_bicubic_bottom"]


@pytest.fixture
def config() -> dict:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config.setdefault("training", {}).setdefault("overrides", {})
    config["lapsrn_mat"] = None
    config["methods"] = ["bicubic", "nmu", "srcnn", "fsrcnn", *CASCADES]
    return copy.deepcopy(config)


def test_scales_replaces_scale_and_slices_are_cropped_to_every_scale(config):
    assert pipeline.run_scales(config) == [2]
    assert pipeline.data_scale(config) == 2
    config["scales"] = [2, 3, 4]
    assert pipeline.run_scales(config) == [2, 3, 4]
    assert pipeline.data_scale(config) == 12  # lcm(2, 3, 4): every scale scores the same HR
    config["scales"] = [4, 2]
    assert pipeline.data_scale(config) == 4


@pytest.mark.parametrize(
    ("shave", "scale", "expected"), [("scale", 4, 4), ("scale", 2, 2), (3, 4, 3)]
)
def test_shave_is_the_scale_unless_a_number_is_given(config, shave, scale, expected):
    config["evaluation"] = {"shave": shave}
    assert pipeline.shave(config, scale) == expected


def test_cascades_run_at_x4_but_not_x3_and_unshipped_scales_are_left_out(config):
    config["training"]["preset"] = "demo"  # fine-tunes shipped weights
    assert pipeline.enabled_methods(config, scale=2) == config["methods"]
    # x4: RRLSRN's family cascades its x2 weights; the other networks run their x4 weights
    config["methods"] += ["edsr", "rfdn"]
    assert pipeline.enabled_methods(config, scale=4) == config["methods"]
    del config["methods"][-2:]
    # x3: no power of 2, no x3 weights: only the classical methods
    assert pipeline.enabled_methods(config, scale=3) == ["bicubic", "nmu"]
    notices = pipeline.scale_notices({**config, "scales": [3]})
    assert "x3: rrlsrn left out: rrlsrn reaches x2, x4" in "\n".join(notices)
    assert any(n.startswith("x3: srcnn left out: srcnn has no shipped x3 weights") for n in notices)
    assert len(notices) == 5


def test_from_scratch_training_runs_every_network_at_x3(config):
    config["training"]["preset"] = "pretrain"  # init: scratch, no weights needed
    assert pipeline.enabled_methods(config, scale=3) == ["bicubic", "nmu", "srcnn", "fsrcnn"]
    assert pipeline.enabled_methods(config, scale=4) == config["methods"]


def test_a_scale_without_any_method_stops_the_run(config):
    config["methods"] = CASCADES
    config["scales"] = [2, 3]
    with pytest.raises(pipeline.ConfigError, match=r"^config: scale 3: none of the methods"):
        pipeline.check_scales(config)


def test_cascades_are_trained_for_shipping_at_x2_only(config):
    learned = ["srcnn", "fsrcnn", *CASCADES]
    assert pipeline.weights_to_make(config, 2, learned) == learned
    assert pipeline.weights_to_make(config, 4, learned) == ["srcnn", "fsrcnn"]


def test_preset_none_runs_the_shipped_weights_without_training(config):
    config["training"]["preset"] = "none"
    assert not pipeline.trains(config)
    assert pipeline.shipped_model(config, "rrlsrn", 4) == str(WEIGHTS_DIR / "rrlsrn.pt")
    assert pipeline.shipped_model(config, "srcnn", 2) == str(WEIGHTS_DIR / "srcnn.pt")
    pipeline.check_training(config)  # no training settings to check
    config["method_specs"] = {"mine": {"kind": "learned", "model": "my_net:MyNet"}}
    config["methods"].append("mine")
    with pytest.raises(pipeline.ConfigError, match="'mine': preset 'none' runs shipped weights"):
        pipeline.check_training(config)


def test_method_spec_gives_the_weights_usable_at_the_scale(config):
    assert pipeline.method_spec(config, "rrlsrn", scale=4)["weights"] == "rrlsrn"  # cascade
    assert pipeline.method_spec(config, "srcnn", scale=2)["weights"] == "srcnn"
    assert pipeline.method_spec(config, "bicubic", scale=3)["weights"] is None
