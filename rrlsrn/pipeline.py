"""What the workflow computes, derived from the config, and its checks (no Snakemake imports).

The Snakefile checks the config with these before it plans any job (a mistake stops it
with a one-line :class:`ConfigError`), and its input functions call them, so the logic is
importable and tested.  This module stays light (no torch) because every Snakemake start
imports it; the work of each rule lives in :mod:`rrlsrn.steps`.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import io
import json
import math
import os
import re
import reprlib
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from rrlsrn import plugins, registry
from rrlsrn.data.download import DownloadError
from rrlsrn.data.sources import Volume, default_split, is_missing, list_volumes
from rrlsrn.io import write_text_atomic

if TYPE_CHECKING:
    import jsonschema

NO_TRAINING = "none"  # training.preset: run the shipped weights as they are
ROLES = ("train", "val", "test")
# Sources whose data are the paper's own: their tables show the published values beside.
PAPER_SOURCES = {"kirby21": "kirby21", "namic": "namic"}
NULL_WORDS = ("null", "none", "~")  # ``--config lapsrn_mat=null`` arrives as a string
EXCLUDED = "excluded"  # in no role (e.g. rescans of test subjects in a subject-disjoint split)
# YAML 1.2 floats that PyYAML (YAML 1.1) leaves as strings: 1e-4, 5E3 (no dot)
EXPONENT_FLOAT = re.compile(r"[-+]?[0-9]+[eE][-+]?[0-9]+")


class ConfigError(ValueError):
    """A mistake in the workflow config, told in one line; the workflow stops at parse time."""


# ---------------------------------------------------------------- config checks


def load_schema(path: str | os.PathLike) -> dict[str, Any]:
    """The workflow's config schema (JSON-Schema written in YAML)."""
    return yaml.safe_load(Path(path).read_text())


def cli_config_values(cli_config: Mapping[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """The ``--config`` values with their nested scalars read as in a YAML config file.

    Snakemake parses a top-level ``key=value`` itself (int, float, bool, else a string) but
    a mapping or list value with YAML's BaseLoader, which leaves every nested scalar a
    string: ``training={"overrides": {"max_steps": 3}}`` gives ``"3"``.  Here a nested
    string becomes what YAML makes of it (``3``, ``1e-4`` -> 0.0001, ``true``, ``null``),
    except where ``schema`` wants a string (a ``path: 2024`` stays ``"2024"``).  Top-level
    values are returned unchanged; update the config with the result before validating.
    """
    return {
        key: _yaml_leaves(value, _child_schema(schema, key))
        for key, value in cli_config.items()
        if isinstance(value, Mapping | list)
    }


def _child_schema(schema: dict[str, Any], key: str | int) -> dict[str, Any]:
    if isinstance(key, int):
        items = schema.get("items", {})
        return items if isinstance(items, dict) else {}
    if key in schema.get("properties", {}):
        return schema["properties"][key]
    extra = schema.get("additionalProperties", {})
    return extra if isinstance(extra, dict) else {}


def _yaml_leaves(value: Any, schema: dict[str, Any]) -> Any:
    if isinstance(value, Mapping):
        return {k: _yaml_leaves(v, _child_schema(schema, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_yaml_leaves(v, _child_schema(schema, i)) for i, v in enumerate(value)]
    kinds = schema.get("type", [])
    if not isinstance(value, str) or "string" in ([kinds] if isinstance(kinds, str) else kinds):
        return value
    return yaml_scalar(value)


def yaml_scalar(text: str) -> Any:
    """``text`` read as a YAML scalar (``"3"`` -> 3, ``"1e-4"`` -> 0.0001); other text as is."""
    if EXPONENT_FLOAT.fullmatch(text.strip()):
        return float(text)
    try:
        value = yaml.safe_load(text) if text.strip() else text
    except yaml.YAMLError:
        return text
    return value if value is None or isinstance(value, bool | int | float | str) else text


def check_schema(config: dict[str, Any], schema: dict[str, Any]) -> None:
    """Raise :class:`ConfigError` with one line for the most relevant schema violation."""
    import jsonschema  # parse time only: the jobs' ``log_to`` does not need it

    errors = jsonschema.Draft202012Validator(schema).iter_errors(config)
    error = jsonschema.exceptions.best_match(errors)
    if error is not None:
        raise ConfigError(schema_problem(error))


def schema_problem(error: jsonschema.ValidationError) -> str:
    """One line for a schema violation: where (key path), what, and the allowed keys."""
    where = key_path(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(error.schema.get("properties", {}))
        unknown = ", ".join(repr(k) for k in error.instance if k not in allowed)
        place = f"in {where}" if where else "at the top level"
        return f"config: unknown key {unknown} {place}; allowed keys: {', '.join(allowed)}"
    message = error.message.replace(repr(error.instance), _short_repr(error.instance))
    return f"config: {where or 'top level'}: {message}"


def _short_repr(value: Any) -> str:
    short = reprlib.Repr()
    short.maxlevel, short.maxdict, short.maxlist, short.maxstring = 2, 3, 3, 40
    return short.repr(value)


def key_path(path: Any) -> str:
    """``training.overrides.max_steps``, ``methods[1]``: a config key path for messages."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def check_methods(config: dict[str, Any], plugin_dirs: Sequence[str] = ()) -> None:
    """Every method of ``methods`` must be built in (:mod:`rrlsrn.registry`) or defined in
    ``method_specs``, and every ``method_specs`` entry must resolve.  A config's own
    method of the run must import (or find its program), looking in ``plugin_dirs`` too."""
    specs = config.get("method_specs", {})
    unknown = [m for m in config["methods"] if m not in registry.METHODS and m not in specs]
    if unknown:
        raise ConfigError(
            f"config: methods: unknown method{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(m) for m in unknown)}; known: "
            f"{', '.join([*registry.METHODS, *(m for m in specs if m not in registry.METHODS)])}"
        )
    for name in specs:
        try:
            resolved_method(config, name)
        except ValueError as error:
            raise ConfigError(f"config: method_specs.{name}: {error}") from None
    for name in config["methods"]:
        if name not in registry.METHODS:
            try:
                plugins.check_method(resolved_method(config, name), plugin_dirs)
            except ValueError as error:
                raise ConfigError(f"config: method_specs.{name}: {error}") from None


def trains(config: dict[str, Any]) -> bool:
    """Whether the run trains its learned methods (preset ``none``: they run their
    shipped weights as they are)."""
    return config["training"]["preset"] != NO_TRAINING


def check_training(config: dict[str, Any]) -> None:
    """The preset with each learned method's overrides must make valid training settings;
    without training (preset ``none``) a learned method needs shipped weights."""
    from rrlsrn.settings import make_settings  # torch-free

    preset = config["training"]["preset"]
    if not trains(config):
        given = ["training.overrides"] if config["training"].get("overrides") else []
        specs = config.get("method_specs", {})
        given += [f"method_specs.{m}.train" for m, spec in specs.items() if "train" in spec]
        if given:
            raise ConfigError(
                f"config: {', '.join(given)}: preset {NO_TRAINING!r} trains nothing; "
                "choose a training preset (demo, pretrain, paper, smoke) or drop them"
            )
    problems: dict[str, list[str]] = {}
    for method in learned_methods(config) if not trains(config) else ():
        if method not in registry.METHODS:
            problems.setdefault(
                f"preset {NO_TRAINING!r} runs shipped weights and a model of your own has "
                "none: choose a training preset (e.g. 'pretrain')",
                [],
            ).append(method)
    for method in learned_methods(config) if trains(config) else ():
        try:
            init = make_settings(preset, method_settings(config, method)).init
        except ValueError as error:
            problems.setdefault(str(error), []).append(method)
            continue
        if init in ("shipped", "lapsrn_x2") and ":" in resolved_method(config, method).factory:
            problems.setdefault(
                f"init {init!r} (preset {preset!r}) loads weights made for rrlsrn's own "
                "networks, not for a model of your own: set `train: {init: scratch}` (or a "
                "checkpoint path) in its method_specs entry",
                [],
            ).append(method)
    if problems:
        raise ConfigError(
            "; ".join(
                f"training of method{'s' if len(methods) > 1 else ''} "
                f"{', '.join(repr(m) for m in methods)}: {problem}"
                for problem, methods in problems.items()
            )
        )


def check_scales(config: dict[str, Any]) -> None:
    """Every scale of the run must keep at least one of the selected methods."""
    for scale in run_scales(config):
        problems = [scale_problem(config, m, scale) for m in config["methods"]]
        if all(problems):
            raise ConfigError(
                f"config: scale {scale}: none of the methods can run at x{scale}: "
                + "; ".join(problems)
            )


def check_config(config: dict[str, Any], plugin_dirs: Sequence[str] = ()) -> None:
    """Stop on what the schema cannot see: unknown methods, plug-ins that do not load
    (modules looked for in ``plugin_dirs`` too), training settings, datasets.

    Run on the validated config (defaults filled in); raises :class:`ConfigError`.
    """
    check_methods(config, plugin_dirs)
    check_training(config)
    check_scales(config)
    check_protocols(config)
    for dataset in config["datasets"]:
        dataset_split(config, dataset)
    check_training_data(config)


def check_names(config: dict[str, Any]) -> None:
    """The names under ``datasets`` and ``transfer`` must be text: YAML reads ``on:``,
    ``no:`` or ``2024:`` as a boolean or a number, which would name files ``True``."""
    for key in ("datasets", "transfer"):
        section = config.get(key)
        names = list(section) if isinstance(section, Mapping) else []
        odd = [name for name in names if not isinstance(name, str)]
        if odd:
            raise ConfigError(
                f"config: {key}: the name {odd[0]!r} is not text (YAML reads on, off, yes, "
                "no, true, false and bare numbers as such); put the name in quotes"
            )


def settle_config(
    config: dict[str, Any],
    schema: dict[str, Any],
    fill_defaults: Callable[[dict[str, Any]], None],
    plugin_dirs: Sequence[str] = (),
) -> list[str]:
    """Every parse-time check of the workflow, in order, on the merged ``config`` (in
    place): the schema, datasets switched off or skipped (:func:`drop_datasets`), the
    schema's defaults (``fill_defaults``: Snakemake's ``validate``), then
    :func:`check_config`.  Returns the warnings to print; raises :class:`ConfigError`."""
    check_names(config)
    check_schema(config, schema)
    notices = drop_datasets(config)
    fill_defaults(config)
    check_config(config, plugin_dirs)
    return notices


# ---------------------------------------------------------------- degradation protocols

# Operator parameters and the operators that take them (rrlsrn.degrade).
OPERATOR_PARAMS = {"sigma": ("gaussian_block", "gaussian_spline"), "window": ("kspace",)}
PROTOCOL_REFERENCE = "bicubic"  # the method the protocol gains are measured over


def check_degradation(spec: Mapping[str, Any], where: str) -> None:
    """An operator parameter must belong to the operator (``sigma`` of a blur, ``window``
    of ``kspace``): one-line :class:`ConfigError` naming the key otherwise."""
    for key, operators in OPERATOR_PARAMS.items():
        if key in spec and spec["name"] not in operators:
            raise ConfigError(
                f"config: {where}.{key}: the {spec['name']} operator has no {key} "
                f"(only {', '.join(operators)})"
            )


def protocols(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The run's degradation protocols (``protocols``; none when absent)."""
    return list(config.get("protocols") or [])


def protocol_names(config: dict[str, Any]) -> list[str]:
    """Names of the run's protocols, in config order."""
    return [entry["name"] for entry in protocols(config)]


def protocol_entry(config: dict[str, Any], name: str) -> dict[str, Any]:
    """The config entry of protocol ``name``, its operator filled in (default bicubic)."""
    for entry in protocols(config):
        if entry["name"] == name:
            return {**entry, "degradation": dict(entry.get("degradation") or {"name": "bicubic"})}
    raise ConfigError(f"config: protocols: no protocol {name!r}; known: {protocol_names(config)}")


def check_protocols(config: dict[str, Any]) -> None:
    """Operator parameters of ``degradation`` and of each protocol, protocol names used
    once, and the bicubic method in the run when there are protocols (the reference of
    their gains)."""
    check_degradation(config["degradation"], "degradation")
    seen: set[str] = set()
    for i, entry in enumerate(protocols(config)):
        if entry["name"] in seen:
            raise ConfigError(f"config: protocols[{i}].name: {entry['name']!r} names two protocols")
        seen.add(entry["name"])
        check_degradation(
            entry.get("degradation") or {"name": "bicubic"}, f"protocols[{i}].degradation"
        )
    if seen and PROTOCOL_REFERENCE not in config["methods"]:
        raise ConfigError(
            f"config: protocols: the gains are over the {PROTOCOL_REFERENCE} method; "
            f"add {PROTOCOL_REFERENCE!r} to methods"
        )


def _operator(spec: Mapping[str, Any]) -> dict[str, Any]:
    """An operator spec without the parameters that change nothing (``window: none``)."""
    return {k: v for k, v in spec.items() if not (k == "window" and v == "none")}


def protocol_reuses_run(config: dict[str, Any], name: str) -> bool:
    """Whether protocol ``name`` is the run's own degradation without noise: its results
    are then the run's (``<results>/x<scale>/metrics``), not computed twice."""
    entry = protocol_entry(config, name)
    return not entry.get("noise") and _operator(entry["degradation"]) == _operator(
        config["degradation"]
    )


def subject_seed(seed: int, dataset: str, subject: str) -> int:
    """The noise seed of one test subject: a stable hash (SHA-256) of the protocol's
    ``seed``, the dataset and the subject, so it is the same in every job and session."""
    digest = hashlib.sha256(f"{seed}\0{dataset}\0{subject}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1  # below 2**63 (torch's seed range)


def protocol_degradation(
    config: dict[str, Any], name: str, dataset: str, subject: str
) -> dict[str, Any]:
    """The operator a protocol's job makes its LR with (:func:`rrlsrn.degrade.
    make_degradation` keywords): the protocol's degradation, and with noise its ``snr``
    and the subject's seed (:func:`subject_seed`)."""
    entry = protocol_entry(config, name)
    spec = dict(entry["degradation"])
    noise = entry.get("noise")
    if noise:
        seed = subject_seed(int(noise.get("seed", 0)), dataset, subject)
        spec.update(snr=float(noise["snr"]), seed=seed)
    return spec


# ---------------------------------------------------------------- datasets and splits


def dataset_volumes(config: dict[str, Any], dataset: str) -> dict[str, Volume]:
    """Unit id -> HR volume (+ mask) of a configured dataset."""
    spec = config["datasets"][dataset]
    try:
        key = json.dumps(spec, sort_keys=True, default=str)
        return dict(_listed_volumes(key, _listing_stamp(spec)))
    except (OSError, ValueError, DownloadError) as error:
        raise ConfigError(f"dataset {dataset!r}: {error}") from error


@functools.lru_cache(maxsize=64)
def _listed_volumes(spec_json: str, stamp: tuple[int, ...]) -> dict[str, Volume]:
    """:func:`list_volumes` of a spec, once per spec and state of its files (every input
    function of every job asks for its dataset's volumes while Snakemake plans)."""
    return list_volumes(json.loads(spec_json))


def _listing_stamp(spec: Mapping[str, Any]) -> tuple[int, ...]:
    """Modification times of what a source lists its volumes from (its folder or sheet,
    IXI's index, OpenNeuro's cached listing): a change lists them again."""
    from rrlsrn.data import ixi
    from rrlsrn.data.sources import ixi_contrast, ixi_root, openneuro_root

    paths = [Path(spec["path"]).expanduser()] if "path" in spec else []
    if spec.get("source") == "ixi":
        paths.append(ixi.index_path(ixi_root(spec), ixi_contrast(spec)))
    elif spec.get("source") == "openneuro" and "dataset" in spec:
        paths.append(openneuro_root(spec))
    return tuple(p.stat().st_mtime_ns if p.exists() else -1 for p in paths)


def switched_off(spec: Mapping[str, Any] | None) -> bool:
    """Whether a dataset entry is switched off (``null`` or ``enabled: false``)."""
    return spec is None or spec.get("enabled", True) is False


def drop_datasets(config: dict[str, Any]) -> list[str]:
    """Leave out of ``config`` (in place) the datasets switched off and, under
    ``on_missing: skip``, those that are not there; return one warning per dataset
    skipped, naming the tables and rows the run will lack.  Run before the schema's
    defaults are filled in; raises :class:`ConfigError` when no dataset is left."""
    datasets = config["datasets"]
    left_out = [n for n, spec in datasets.items() if switched_off(spec)]
    for name in left_out:
        del datasets[name]
    notices = []
    for name, spec in list(datasets.items()):
        if spec.get("on_missing", "stop") != "skip":
            continue
        try:
            list_volumes(spec)
        except Exception as error:  # a source's own error: only "not there" is skipped
            if not is_missing(error):
                continue  # a mistake in the dataset: check_config reports it
            del datasets[name]
            left_out.append(name)
            notices.append(
                f"dataset {name!r} left out (on_missing: skip): {error}. Missing from this "
                f"run: {', '.join(dataset_outputs(name))}, its rows of table6_runtime and "
                "paired_tests and its subjects in the data summary and in training"
            )
    if not datasets:
        raise ConfigError(
            "config: datasets: every dataset is switched off or missing; keep at least one"
        )
    return notices + _prune_training_sets(config, left_out)


def _prune_training_sets(config: dict[str, Any], left_out: Sequence[str]) -> list[str]:
    """Take the datasets left out of the run out of ``train_on`` and ``transfer`` too: a
    transfer row with none left goes (named); ``train_on`` with none left stops the run."""
    notices: list[str] = []
    names = config.get("train_on")
    gone = [n for n in names or () if n in left_out]
    if gone:
        names[:] = [n for n in names if n not in gone]
        if not names:
            raise ConfigError(f"config: train_on: its datasets {gone} are all left out of the run")
        notices.append(f"train_on: trains without {', '.join(map(repr, gone))} (left out)")
    transfer = config.get("transfer") or {}
    for row, names in list(transfer.items()):
        gone = [n for n in names if n in left_out]
        if not gone:
            continue
        names[:] = [n for n in names if n not in gone]
        notices.append(
            f"transfer.{row}: trains without {', '.join(map(repr, gone))} (left out)"
            if names
            else f"transfer.{row}: its datasets are left out; the transfer table lacks its row"
        )
        if not names:
            del transfer[row]
    if "transfer" in config and not transfer:
        del config["transfer"]
    return notices


def dataset_outputs(dataset: str) -> list[str]:
    """The tables and figures of one dataset (in every scale's folder)."""
    return [
        f"table1to3_{dataset}",
        f"fig2_examples_{dataset}",
        f"fig3_error_maps_{dataset}",
        f"fig4_gdl_{dataset}",
    ]


def dataset_split(config: dict[str, Any], dataset: str) -> dict[str, str]:
    """Unit id -> role (train / val / test), the source's default under config overrides.

    Raises when an override names an unknown unit or role, or when one person's scans
    end up in two different roles (e.g. a rescan of a test subject in training), except
    under ``split_policy: paper``, which reproduces the paper's split as it was.
    """
    spec = config["datasets"][dataset]
    volumes = dataset_volumes(config, dataset)
    override = spec.get("split") or {}
    unknown = sorted(set(override) - set(volumes))
    if unknown:
        raise ConfigError(
            f"dataset {dataset!r}: the split names subjects that are not in the "
            f"dataset: {unknown}; known subjects: {sorted(volumes)}"
        )
    split = {**default_split(spec, volumes), **override}
    bad = {s: r for s, r in split.items() if r not in (*ROLES, EXCLUDED)}
    if bad:
        raise ConfigError(f"dataset {dataset!r}: unknown roles {bad}; use one of {ROLES}")
    roles_of_person: dict[str, set[str]] = {}
    for unit, role in split.items():
        if role != EXCLUDED:
            roles_of_person.setdefault(volumes[unit].person or unit, set()).add(role)
    leaks = {p: sorted(r) for p, r in roles_of_person.items() if len(r) > 1}
    if leaks and spec.get("split_policy") != "paper":
        raise ConfigError(f"dataset {dataset!r}: the same person is in several roles: {leaks}")
    return split


def unit_facts(config: dict[str, Any], dataset: str) -> dict[str, dict[str, str | None]]:
    """Per unit of ``dataset``: site, contrast, licence and what was downloaded (the
    manifest's columns; :data:`rrlsrn.data.summary.FACTS`)."""
    from rrlsrn.data import ixi, openneuro
    from rrlsrn.data.sources import ixi_contrast, openneuro_listing, openneuro_root

    spec = config["datasets"][dataset]
    volumes = dataset_volumes(config, dataset)
    licence, download = None, dict.fromkeys(volumes)
    if spec["source"] == "ixi":
        licence = ixi.LICENCE
        archive = ixi.archive_name(ixi_contrast(spec))
        download = {u: f"{archive}: {v.path.name}" for u, v in volumes.items()}
    elif spec["source"] == "openneuro":
        listing = openneuro_listing(spec)
        root = openneuro_root(spec)
        objects = {str(openneuro.local_path(root, o.key)): o for o in listing.objects}
        licence = listing.licence or "unknown"
        download = {}
        for unit, volume in volumes.items():
            obj = objects[str(volume.path)]
            download[unit] = (
                f"openneuro {listing.dataset} {listing.snapshot} {obj.key} "
                f"({obj.size} B, ETag {obj.etag})"
            )
    return {
        unit: {
            "site": volume.site,
            "contrast": volume.contrast,
            "licence": licence,
            "download": download[unit],
        }
        for unit, volume in volumes.items()
    }


def download_spec(config: dict[str, Any], source: str, root: str | os.PathLike) -> dict[str, Any]:
    """The config entry of the ``source`` dataset (ixi, openneuro) downloading into
    ``root`` (a download rule's parameters: base_url, sha256, snapshot)."""
    from rrlsrn.data.sources import ixi_root, openneuro_root

    target = Path(root).expanduser().resolve()
    for spec in config["datasets"].values():
        if spec["source"] != source:
            continue
        where = openneuro_root(spec) if source == "openneuro" else ixi_root(spec)
        if where.resolve() == target:
            return spec
    raise ConfigError(f"no {source} dataset of the config downloads into {root}")


def openneuro_object(config: dict[str, Any], root: str | os.PathLike, key: str) -> dict[str, Any]:
    """What the download rule of one OpenNeuro file needs: its S3 key, size and ETag from
    the pinned listing, and the mirror (``base_url``)."""
    from rrlsrn.data.sources import openneuro_listing

    spec = download_spec(config, "openneuro", root)
    listing = openneuro_listing(spec)
    obj = listing.by_key.get(key)
    if obj is None:
        raise ConfigError(f"openneuro {spec['dataset']} {spec['snapshot']}: no file {key}")
    return {
        "dataset": spec["dataset"],
        "key": obj.key,
        "size": obj.size,
        "etag": obj.etag,
        "base_url": spec.get("base_url"),
    }


def training_datasets(config: dict[str, Any]) -> list[str]:
    """The datasets whose train and val units train the run's models (``train_on``;
    default: every dataset of the run)."""
    return list(config.get("train_on") or config["datasets"])


def transfer_sets(config: dict[str, Any]) -> dict[str, list[str]]:
    """The transfer table's extra training data: name -> datasets (``transfer``)."""
    return {name: list(sets) for name, sets in (config.get("transfer") or {}).items()}


def training_units(config: dict[str, Any], datasets: Sequence[str], role: str) -> list[str]:
    """``dataset/unit`` of every unit with ``role`` in ``datasets`` (train or val)."""
    return [f"{d}/{u}" for d in datasets for u in subjects_with_role(config, d, role)]


def check_training_data(config: dict[str, Any]) -> None:
    """``train_on`` and every ``transfer`` set must name datasets of the run that hold
    train and val units (when the run trains); ``transfer`` needs training and bicubic
    (the reference of its gains).  Raises :class:`ConfigError` naming the key."""
    sets = {"train_on": training_datasets(config)}
    sets.update({f"transfer.{k}": v for k, v in transfer_sets(config).items()})
    for where, names in sets.items():
        unknown = [n for n in names if n not in config["datasets"]]
        if unknown:
            raise ConfigError(
                f"config: {where}: {', '.join(map(repr, unknown))} "
                f"{'is' if len(unknown) == 1 else 'are'} not a dataset of the run; "
                f"datasets: {', '.join(config['datasets'])}"
            )
    if transfer_sets(config):
        if not trains(config):
            raise ConfigError(
                f"config: transfer: preset {NO_TRAINING!r} trains nothing; choose a training "
                "preset (e.g. pretrain) to train the transfer rows"
            )
        if not learned_methods(config):
            raise ConfigError("config: transfer: the run has no learned method to train")
        if PROTOCOL_REFERENCE not in config["methods"]:
            raise ConfigError(
                f"config: transfer: the gains are over the {PROTOCOL_REFERENCE} method; "
                f"add {PROTOCOL_REFERENCE!r} to methods"
            )
    if not trains(config) or not learned_methods(config):
        return
    for where, names in sets.items():
        for role in ("train", "val"):
            if not training_units(config, names, role):
                raise ConfigError(
                    f"config: {where}: datasets {names} have no {role} unit to train with; "
                    f"give some units the role {role!r} (the dataset's split)"
                )


def slice_options(config: dict[str, Any], dataset: str) -> dict[str, Any]:
    """How ``dataset``'s volumes become slices: SliceOptions' fields set in its config."""
    spec = config["datasets"][dataset]
    return {
        "axis": spec.get("slice_axis", "auto"),
        "min_mask_fraction": spec.get("min_mask_fraction", 0.02),
        "slice_step": spec.get("slice_step", 1),
    }


def subjects_with_role(config: dict[str, Any], dataset: str, role: str) -> list[str]:
    """Sorted subjects of ``dataset`` that have ``role``."""
    return sorted(s for s, r in dataset_split(config, dataset).items() if r == role)


def write_split(path: str | os.PathLike, split: dict[str, str]) -> None:
    """Write a ``subject<TAB>role`` file atomically."""
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter="\t", lineterminator="\n")
    writer.writerow(["subject", "role"])
    writer.writerows(sorted(split.items()))
    write_text_atomic(path, buf.getvalue())


def lapsrn_mat_available(config: dict[str, Any], workdir: str | os.PathLike = ".") -> Path | None:
    """The LapSRN .mat named by config (or RRLSRN_LAPSRN_MAT) when it exists, else None."""
    candidate = os.environ.get("RRLSRN_LAPSRN_MAT") or config.get("lapsrn_mat")
    if not candidate or str(candidate).strip().lower() in NULL_WORDS:
        return None
    path = Path(workdir) / candidate
    return path.resolve() if path.is_file() else None


def shave(config: dict[str, Any], scale: int) -> int:
    """Border pixels left out of the metrics at x``scale`` (``evaluation.shave``; the
    word ``scale`` means the scale itself, the SR convention)."""
    value = config["evaluation"]["shave"]
    return scale if value == "scale" else int(value)


def run_scales(config: dict[str, Any]) -> list[int]:
    """The scales of the run: ``scales`` when the config sets it, else ``[scale]``."""
    return [int(s) for s in (config.get("scales") or [config.get("scale", 2)])]


def data_scale(config: dict[str, Any]) -> int:
    """What HR slices are cropped to a multiple of: every scale of the run (their least
    common multiple), so that every scale is scored on the same HR pixels."""
    return math.lcm(*run_scales(config))


def scale_problem(config: dict[str, Any], method: str, scale: int) -> str | None:
    """Why ``method`` cannot run at x``scale`` in this config, or None.

    Either the method cannot work at that scale at all (:func:`rrlsrn.registry.
    scale_problem`), or it is a learned method whose training starts from shipped
    weights (preset ``init: shipped``) and none are shipped for that scale.
    """
    m = resolved_method(config, method, scale)
    problem = registry.scale_problem(m, scale)
    if problem or m.kind != "learned" or method not in registry.METHODS:
        return problem
    if runs_shipped_weights(config, method) and registry.weights_at(m, scale) is None:
        preset = config["training"]["preset"]
        use = "starts from" if trains(config) else "runs"
        return (
            f"{method} has no shipped x{scale} weights (preset {preset!r} {use} them; "
            "train them with the 'pretrain' preset)"
        )
    return None


def runs_shipped_weights(config: dict[str, Any], method: str) -> bool:
    """Whether a learned ``method`` starts from (preset ``init: shipped``) or, without
    training, runs its shipped weights."""
    if not trains(config):
        return True
    from rrlsrn.settings import make_settings  # torch-free

    preset = config["training"]["preset"]
    return make_settings(preset, method_settings(config, method)).init == "shipped"


def shipped_model(config: dict[str, Any], method: str, scale: int) -> str:
    """Path of the shipped weights a learned ``method`` runs at x``scale`` without
    training (preset ``none``)."""
    from rrlsrn.weights import shipped_weights_path

    name = registry.weights_at(resolved_method(config, method, scale), scale)
    return str(shipped_weights_path(name))


def weights_to_make(config: dict[str, Any], scale: int, methods: Sequence[str]) -> list[str]:
    """Of the learned ``methods`` run at x``scale``, those whose weights are made at that
    scale (``pretrain_all``): a cascade network's x4 is its x2 weights, so it is trained
    at x2 only."""
    return [m for m in methods if scale == 2 or not resolved_method(config, m, scale).cascade]


def scale_notices(config: dict[str, Any], workdir: str | os.PathLike = ".") -> list[str]:
    """One line per method left out of a scale of the run, and why (printed at start)."""
    return [
        f"x{scale}: {method} left out: {problem}"
        for scale in run_scales(config)
        for method in config["methods"]
        if (problem := scale_problem(config, method, scale))
    ]


def enabled_methods(
    config: dict[str, Any], workdir: str | os.PathLike = ".", scale: int | None = None
) -> list[str]:
    """Methods of the run at ``scale`` (default: the first of the run): the selected
    ones less imported-weight methods whose weights are absent and methods that cannot
    run at that scale (:func:`scale_problem`)."""
    scale = run_scales(config)[0] if scale is None else scale
    lapsrn_mat = lapsrn_mat_available(config, workdir)
    return [
        m
        for m in config["methods"]
        if (lapsrn_mat is not None or resolved_method(config, m).kind != "imported")
        and scale_problem(config, m, scale) is None
    ]


def comparison_methods(
    config: dict[str, Any], workdir: str | os.PathLike = ".", scale: int | None = None
) -> list[str]:
    """Methods of Tables 1-3, 6 and Figs. 2-3: the run's methods less the ablation variants."""
    variants = {without for without, _, _ in registry.ablations().values()}
    return [m for m in enabled_methods(config, workdir, scale) if m not in variants]


def ablations_in_run(
    config: dict[str, Any], workdir: str | os.PathLike = ".", scale: int | None = None
) -> list[str]:
    """The ablations (keys of :func:`rrlsrn.registry.ablations`) with both models in the run."""
    methods = set(enabled_methods(config, workdir, scale))
    return [
        a for a, (without, full, _) in registry.ablations().items() if {without, full} <= methods
    ]


def ablation_methods(ablation: str) -> list[str]:
    """[variant without the component, full model] of an ablation, e.g. ``"gdl"``."""
    without, full, _ = registry.ablations()[ablation]
    return [without, full]


def paper_dataset(config: dict[str, Any], dataset: str) -> str | None:
    """Which of the paper's datasets (kirby21, namic, fetal) ``dataset`` is, if any.

    Set by the dataset's ``paper_dataset`` key, else by its source (Kirby 21 and NAMIC
    downloads are the paper's data; the paper's clinical fetal scans are not public).
    """
    spec = config["datasets"][dataset]
    if "paper_dataset" in spec:
        return spec["paper_dataset"]
    return PAPER_SOURCES.get(spec["source"])


def learned_methods(config: dict[str, Any]) -> list[str]:
    """Methods of the run that the trainer trains."""
    return [m for m in config["methods"] if resolved_method(config, m).kind == "learned"]


def resolved_method(
    config: dict[str, Any], method: str, scale: int | None = None
) -> registry.Method:
    """The registry's record of ``method`` with the config's ``method_specs`` on top, at
    ``scale`` (default: the first of the run)."""
    overrides = config.get("method_specs", {}).get(method)
    return registry.resolve(method, overrides, run_scales(config)[0] if scale is None else scale)


def plugin_dirs(configfiles: Sequence[str | os.PathLike]) -> list[str]:
    """Where a config's own methods' modules are looked for: the config files' folders."""
    return list(dict.fromkeys(str(Path(f).resolve().parent) for f in configfiles))


def method_spec(
    config: dict[str, Any],
    method: str,
    search_path: Sequence[str] = (),
    scale: int | None = None,
) -> dict[str, Any]:
    """What a job needs of ``method`` (a rule parameter): kind, factory, params,
    model_args, train, the shipped weights usable at ``scale`` (default: the first of
    the run), and the loader; a config's own method also ``search_path``, the folders
    its module is looked for in."""
    scale = run_scales(config)[0] if scale is None else scale
    m = resolved_method(config, method, scale)
    own = {} if method in registry.METHODS else {"search_path": list(search_path)}
    return {
        **own,
        "kind": m.kind,
        "factory": m.factory,
        "params": m.params,
        "model_args": m.model_args,
        "train": m.train,
        "weights": registry.weights_at(m, scale),
        "loader": m.loader,
    }


@contextlib.contextmanager
def log_to(path: str | os.PathLike) -> Iterator[None]:
    """Send stdout and stderr (progress bars included) of a workflow step to its log file.

    An exception leaves its traceback in the log too, and is raised on (the job fails);
    scripts import their step's modules inside the block, so import errors are logged.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with (
        open(path, "w", buffering=1) as fh,
        contextlib.redirect_stdout(fh),
        contextlib.redirect_stderr(fh),
    ):
        try:
            yield
        except BaseException:
            traceback.print_exc(file=fh)
            raise


def shipped_histories(
    config: dict[str, Any], methods: Sequence[str], scale: int
) -> dict[str, str | None]:
    """Per learned method of the run at x``scale``: the ``history.csv`` of the shipped
    weights it runs as they are (preset ``none``) or its training starts from (``init:
    shipped``), or None (another start, or weights shipped without a history).  The
    training curves draw it, joined to the run's own training."""
    from rrlsrn.settings import make_settings
    from rrlsrn.weights import history_path

    out: dict[str, str | None] = {}
    for method in methods:
        init = "shipped"
        if trains(config):
            preset = config["training"]["preset"]
            init = make_settings(preset, method_settings(config, method)).init
        name = registry.weights_at(resolved_method(config, method, scale), scale)
        path = history_path(name) if init == "shipped" and name else None
        out[method] = str(path) if path is not None and path.is_file() else None
    return out


def method_settings(config: dict[str, Any], method: str) -> dict[str, Any]:
    """Training preset overrides for ``method``: config overrides, then the method's own."""
    return {**config["training"].get("overrides", {}), **resolved_method(config, method).train}
