"""Training settings: presets checked against their JSON-Schema, one-line errors, no torch."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import tomllib

import jsonschema
import pytest
from conftest import REPO

from rrlsrn import settings
from rrlsrn.settings import TrainSettings, load_presets, make_settings, settings_schema

PRESETS = sorted(load_presets())


def test_schema_is_valid_and_describes_every_field():
    schema = settings_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    fields = {f.name for f in dataclasses.fields(TrainSettings)}
    assert set(schema["properties"]) == fields
    assert schema["additionalProperties"] is False
    assert all(spec.get("description") for spec in schema["properties"].values())


def test_schema_ships_with_the_package():
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "presets.schema.yaml" in package_data["package-data"]["rrlsrn"]


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_is_valid(preset):
    values = load_presets()[preset]
    jsonschema.validate(values, settings_schema(), cls=jsonschema.Draft202012Validator)
    assert dataclasses.asdict(make_settings(preset)).items() >= values.items()


def test_settings_import_without_torch():
    code = (
        "import sys, rrlsrn.settings as s\ns.make_settings('demo')\nprint('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"max_steps": -5}, "max_steps: -5 is less than the minimum of 1"),
        ({"max_steps": 0}, "max_steps: 0 is less than the minimum of 1"),
        ({"batch_size": 0}, "batch_size: 0 is less than the minimum of 1"),
        ({"patch_size": 3}, "patch_size: 3 is less than the minimum of 4"),
        ({"lr": 0}, "lr: 0 is less than or equal to the minimum of 0"),
        ({"lr": -1e-4}, "lr: -0.0001 is less than or equal to the minimum of 0"),
        ({"min_lr": -1.0}, "min_lr: -1.0 is less than the minimum of 0"),
        ({"min_foreground": 1.5}, "min_foreground: 1.5 is greater than the maximum of 1"),
        ({"grad_clip": 0}, "grad_clip: 0 is less than or equal to the minimum of 0"),
        ({"max_steps": "3"}, "max_steps: '3' is not of type 'integer' (a string; write the "
         "number 3 without quotes)"),
        ({"lr": "1e-4"}, "lr: '1e-4' is not of type 'number' (a string; write the number "
         "0.0001 without quotes)"),
        ({"max_steps": 2.5}, "max_steps: 2.5 is not of type 'integer'"),
        ({"batch_size": True}, "batch_size: True is not of type 'integer'"),
        ({"gdl_weight": False}, "gdl_weight: False is not of type 'number'"),
        ({"optimizer": "rmsprop"}, "optimizer: 'rmsprop' is not one of ['adam', 'sgd']"),
        ({"scheduler": "linear"}, "scheduler: 'linear' is not one of ['cosine', 'step', "
         "'constant']"),
        ({"init": "shiped"}, "init: 'shiped' is not scratch, shipped, lapsrn_x2, or a path "
         "to a checkpoint (with a '/' or a file extension)"),
        ({"min_lr": 1e-3}, "min_lr: 0.001 is greater than lr (5e-05)"),
        ({"epochs": 3}, "unknown training setting 'epochs'; known: augment_bias, augment_gamma, "
         "augment_invert, augment_noise, augment_remap, batch_size, bias_lr_mult, "
         "charbonnier_eps, foreground_threshold, gdl_weight, grad_clip, init, loss_reduction, "
         "lr, max_minutes, max_steps, min_foreground, min_lr, momentum, optimizer, patch_size, "
         "scheduler, seed, step_epochs, step_gamma, steps_per_epoch, val_slices, weight_decay"),
    ],
)  # fmt: skip
def test_bad_override_is_named_in_one_line(overrides, message):
    with pytest.raises(ValueError) as info:
        make_settings("demo", overrides)
    assert str(info.value) == f"training preset 'demo' with overrides: {message}"


def test_every_problem_is_named_on_one_line():
    with pytest.raises(ValueError) as info:
        make_settings("smoke", {"max_steps": -5, "batch_size": "8"})
    assert str(info.value) == (
        "training preset 'smoke' with overrides: batch_size: '8' is not of type 'integer' "
        "(a string; write the number 8 without quotes); max_steps: -5 is less than the "
        "minimum of 1"
    )


def test_a_bad_preset_is_named_without_overrides(monkeypatch):
    monkeypatch.setattr(settings, "load_presets", lambda: {"broken": {"val_slices": 0}})
    with pytest.raises(ValueError) as info:
        make_settings("broken", {"lr": 1e-3})
    assert str(info.value) == (
        "training preset 'broken': val_slices: 0 is less than the minimum of 1"
    )


def test_unknown_preset_is_named():
    with pytest.raises(ValueError, match=r"unknown training preset 'fast'; choose one of \["):
        make_settings("fast")


def test_numbers_are_coerced_to_the_fields_types():
    s = make_settings("demo", {"max_steps": 2.0e5, "lr": 1, "init": "runs/x/best.pt"})
    assert (s.max_steps, type(s.max_steps)) == (200000, int)
    assert (s.lr, type(s.lr)) == (1.0, float)
    assert s.init == "runs/x/best.pt" and s.max_minutes is None


def test_direct_construction_is_checked_too():
    with pytest.raises(ValueError, match="invalid training settings: val_slices: 0 is less"):
        TrainSettings(val_slices=0)
