"""Training settings: the presets, their schema, and the checked settings of one run.

No torch here: the workflow checks every learned method's preset and overrides with
:func:`make_settings` when it parses the config, so a bad value stops the dry run with a
one-line message instead of failing inside the train job.  The fields' types and ranges
are in ``rrlsrn/presets.schema.yaml`` (JSON-Schema), the presets in ``rrlsrn/presets.yaml``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import jsonschema
import yaml


@dataclass
class TrainSettings:
    """All knobs of a training run; presets in ``rrlsrn/presets.yaml`` fill them.

    Build it with :func:`make_settings`; types and ranges are checked either way.
    """

    optimizer: str = "adam"  # adam | sgd
    lr: float = 1e-4
    momentum: float = 0.9
    weight_decay: float = 0.0
    bias_lr_mult: float = 1.0
    scheduler: str = "cosine"  # cosine | step | constant
    min_lr: float = 0.0
    step_epochs: int = 50
    step_gamma: float = 0.5
    batch_size: int = 16
    patch_size: int = 64
    steps_per_epoch: int = 100
    max_steps: int = 1000
    max_minutes: float | None = None  # stop (resumably) after this wall time per invocation
    grad_clip: float | None = None
    loss_reduction: str = "mean"  # mean | sum_per_sample
    gdl_weight: float = 1.0
    charbonnier_eps: float = 1e-3
    min_foreground: float = 0.25
    foreground_threshold: float = 0.02
    init: str = "scratch"  # scratch | shipped | lapsrn_x2 | path to a checkpoint
    val_slices: int = 32
    seed: int = 0
    # Intensity augmentation of HR patches (rrlsrn.augment; 0 = off): probabilities of
    # tissue inversion and monotone remap, largest |ln gamma|, bias log-amplitude, noise sigma.
    augment_invert: float = 0.0
    augment_remap: float = 0.0
    augment_gamma: float = 0.0
    augment_bias: float = 0.0
    augment_noise: float = 0.0

    def __post_init__(self) -> None:
        values = dataclasses.asdict(self)
        problems = settings_problems(values)
        if problems:
            raise ValueError("invalid training settings: " + "; ".join(problems.values()))
        for name, value in _coerced(values).items():
            setattr(self, name, value)


@functools.cache
def settings_schema() -> dict[str, Any]:
    """The JSON-Schema of training settings (``rrlsrn/presets.schema.yaml``)."""
    text = resources.files("rrlsrn").joinpath("presets.schema.yaml").read_text()
    return yaml.safe_load(text)


@functools.cache
def _validator() -> jsonschema.Draft202012Validator:
    schema = settings_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def load_presets() -> dict[str, dict[str, Any]]:
    """The presets shipped with the package (``rrlsrn/presets.yaml``)."""
    text = resources.files("rrlsrn").joinpath("presets.yaml").read_text()
    return yaml.safe_load(text)


def settings_problems(values: Mapping[str, Any]) -> dict[str, str]:
    """What is wrong with ``values`` (a preset, or one merged with overrides), by key.

    Each problem is ``"key: what"``; an empty dict means the values are valid.  Keys that
    are not settings are reported as unknown, listing the known ones.
    """
    properties = settings_schema()["properties"]
    problems = {}
    unknown = [k for k in values if k not in properties]
    if unknown:
        names = ", ".join(repr(k) for k in unknown)
        problems[unknown[0]] = (
            f"unknown training setting{'s' if len(unknown) > 1 else ''} {names}; "
            f"known: {', '.join(sorted(properties))}"
        )
    for error in _validator().iter_errors({k: v for k, v in values.items() if k in properties}):
        key = str(error.path[0]) if error.path else ""
        if key in problems:
            continue
        what = error.message
        if error.validator in ("anyOf", "pattern"):
            what = f"{error.instance!r} is not {properties[key]['description']}"
        elif error.validator == "type" and isinstance(error.instance, str):
            what += _number_hint(error.instance)
        problems[key] = f"{key}: {what}"
    lr, min_lr = values.get("lr", TrainSettings.lr), values.get("min_lr", TrainSettings.min_lr)
    if not problems and min_lr > lr:
        problems["min_lr"] = f"min_lr: {min_lr} is greater than lr ({lr})"
    return dict(sorted(problems.items()))


def _number_hint(text: str) -> str:
    """A hint for a number written as a string (quoted, or YAML 1.1's ``1e-4`` without a dot)."""
    try:
        number = int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            return ""
    return f" (a string; write the number {number!r} without quotes)"


def _coerced(values: Mapping[str, Any]) -> dict[str, Any]:
    """Valid ``values`` with integer fields as int (``2.0e5`` -> 200000), numbers as float."""
    out = dict(values)
    for key, spec in settings_schema()["properties"].items():
        kinds = spec.get("type")
        if key not in out or out[key] is None or kinds is None:
            continue
        kinds = [kinds] if isinstance(kinds, str) else kinds
        out[key] = int(out[key]) if "integer" in kinds else float(out[key])
    return out


def make_settings(preset: str, overrides: Mapping[str, Any] | None = None) -> TrainSettings:
    """Settings of preset ``preset`` with ``overrides`` (from config) applied on top.

    Raises ``ValueError`` with one line naming the preset, each bad key and its problem
    (unknown key, wrong type, out of range, not one of the choices).
    """
    presets = load_presets()
    if preset not in presets:
        raise ValueError(f"unknown training preset {preset!r}; choose one of {sorted(presets)}")
    overrides = dict(overrides or {})
    values = {**presets[preset], **overrides}
    problems = settings_problems(values)
    if problems:
        where = f"training preset {preset!r}"
        if set(problems) & set(overrides):
            where += " with overrides"
        raise ValueError(f"{where}: " + "; ".join(problems.values()))
    return TrainSettings(**_coerced(values))
