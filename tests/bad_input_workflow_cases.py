"""Bad workflow inputs, as data: each must stop ``snakemake -n`` with one short message.

A row is run as ``snakemake -n [--configfile <config as YAML>] [--config <config_args>...]``
in an empty work folder.  ``setup`` names a function of this module that gets that folder
(a :class:`~pathlib.Path`), creates files there and returns ``{name: text}``: each
``{name}`` in the row's config strings and ``config_args`` is replaced by its text (plain
replacement: the braces of a JSON ``--config`` value stay).  The run must exit
with ``exit_code``, print every one of ``words`` (any case) and no Python traceback, and
leave none of the ``absent`` paths (relative to the work folder).  :func:`snakemake_args`
does the setup and writes the config file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import yaml

SNAKEMAKE_ERROR = 1  # Snakemake's exit code for a WorkflowError at parse time


def _folder(tmp: Path, files: dict[str, bytes | None]) -> dict[str, str]:
    """``tmp/dataset`` holding ``files`` (None: a small valid NIfTI volume)."""
    folder = tmp / "dataset"
    folder.mkdir()
    for name, content in files.items():
        if content is None:
            image = nib.Nifti1Image(np.ones((8, 8, 4), np.float32), np.eye(4))
            nib.save(image, str(folder / name))
        else:
            (folder / name).write_bytes(content)
    return {"folder": str(folder)}


def empty_nifti(tmp: Path) -> dict[str, str]:
    return _folder(tmp, {"good.nii.gz": None, "a.nii.gz": b""})


def partial_download(tmp: Path) -> dict[str, str]:
    return _folder(tmp, {"b.nii.gz.part": b"\x1f\x8b half a download"})


def text_file(tmp: Path) -> dict[str, str]:
    return _folder(tmp, {"notes.nii.txt": b"scanner notes"})


def plugin_module(tmp: Path) -> dict[str, str]:
    """``my_plugin.py`` beside the case's config: a function and a class of the wrong kind."""
    (tmp / "my_plugin.py").write_text("def upsample(lr, scale):\n    return lr\n\nNet = 3\n")
    return {}


def own_method(kind: str, **spec: str) -> dict[str, Any]:
    """A config running ``bicubic`` and the user's method ``mine``."""
    return {"methods": ["bicubic", "mine"], "method_specs": {"mine": {"kind": kind, **spec}}}


def own_case(case_id: str, config: dict[str, Any], words: list[str]) -> dict[str, Any]:
    """A row for a bad method of the user's: a parse-time stop naming it (``my_plugin.py``
    beside the config)."""
    return {
        "id": case_id,
        "config": config,
        "config_args": [],
        "setup": "plugin_module",
        "exit_code": SNAKEMAKE_ERROR,
        "words": words,
        "absent": NO_OUTPUT,
    }


FOLDER_DATASET = {"datasets": {"mine": {"source": "folder", "path": "{folder}"}}}
NO_OUTPUT = ["results"]

WORKFLOW_CASES: list[dict[str, Any]] = [
    {
        "id": "training_override_out_of_range",
        "config": {"training": {"preset": "smoke", "overrides": {"max_steps": -5}}},
        "config_args": [],
        "exit_code": SNAKEMAKE_ERROR,
        "words": ["training of methods 'srcnn'", "max_steps: -5 is less than the minimum of 1"],
        "absent": NO_OUTPUT,
    },
    {
        "id": "training_override_unknown_key",
        "config": {"training": {"preset": "smoke", "overrides": {"epochs": 3}}},
        "config_args": [],
        "exit_code": SNAKEMAKE_ERROR,
        "words": ["unknown training setting 'epochs'", "known: augment_bias", "max_steps"],
        "absent": NO_OUTPUT,
    },
    {
        "id": "method_train_override_bad_type",
        "config": {
            "training": {"preset": "smoke"},
            "method_specs": {"srcnn": {"train": {"gdl_weight": "none"}}},
        },
        "config_args": [],
        "exit_code": SNAKEMAKE_ERROR,
        "words": ["training of method 'srcnn'", "gdl_weight: 'none' is not of type 'number'"],
        "absent": NO_OUTPUT,
    },
    {
        "id": "training_settings_without_training",
        "config": {"training": {"preset": "none", "overrides": {"lr": 0.1}}},
        "config_args": [],
        "exit_code": SNAKEMAKE_ERROR,
        "words": ["config: training.overrides: preset 'none' trains nothing"],
        "absent": NO_OUTPUT,
    },
    {
        # a number nested in a --config mapping arrives as a number: it reaches the range
        # check (a string would fail "'0' is not of type 'integer'")
        "id": "cli_nested_number_is_a_number",
        "config": None,
        "config_args": ['training={"preset": "smoke", "overrides": {"max_steps": 0}}'],
        "exit_code": SNAKEMAKE_ERROR,
        "words": ["max_steps: 0 is less than the minimum of 1"],
        "absent": NO_OUTPUT,
    },
    {
        "id": "folder_with_an_empty_nifti",
        "config": FOLDER_DATASET,
        "config_args": [],
        "setup": "empty_nifti",
        "exit_code": SNAKEMAKE_ERROR,
        "words": ["dataset 'mine'", "1 unreadable NIfTI file", "a.nii.gz (empty file)"],
        "absent": NO_OUTPUT,
    },
    {
        "id": "folder_with_a_partial_download",
        "config": FOLDER_DATASET,
        "config_args": [],
        "setup": "partial_download",
        "exit_code": SNAKEMAKE_ERROR,
        "words": ["dataset 'mine'", "holds no NIfTI volume", "ignored: b.nii.gz.part"],
        "absent": NO_OUTPUT,
    },
    {
        "id": "folder_with_a_text_file",
        "config": FOLDER_DATASET,
        "config_args": [],
        "setup": "text_file",
        "exit_code": SNAKEMAKE_ERROR,
        "words": ["dataset 'mine'", "holds no NIfTI volume", "ignored: notes.nii.txt"],
        "absent": NO_OUTPUT,
    },
    {
        "id": "misspelled_method",
        "config": None,
        "config_args": ["methods=[bicubic,rrlsnr]"],
        "exit_code": SNAKEMAKE_ERROR,
        "words": ["unknown method 'rrlsnr'", "known: bicubic", "rrlsrn"],
        "absent": NO_OUTPUT,
    },
    {
        "id": "method_spec_without_kind",
        "config": {"methods": ["bicubic", "mine"], "method_specs": {"mine": {"params": {}}}},
        "config_args": [],
        "exit_code": SNAKEMAKE_ERROR,
        "words": ["method_specs.mine: unknown method 'mine'", "needs 'kind' and 'factory'"],
        "absent": NO_OUTPUT,
    },
    {
        "id": "learned_method_without_factory",
        "config": {"methods": ["mine"], "method_specs": {"mine": {"kind": "learned"}}},
        "config_args": [],
        "exit_code": SNAKEMAKE_ERROR,
        "words": ["method_specs.mine: unknown method 'mine'", "needs 'kind' and 'factory'"],
        "absent": NO_OUTPUT,
    },
    own_case(
        "own_method_module_not_importable",
        own_method("python", entrypoint="no_such_module:upsample"),
        ["method_specs.mine: method 'mine'", "No module named 'no_such_module'"],
    ),
    own_case(
        "own_method_function_missing",
        own_method("python", entrypoint="my_plugin:sharpen"),
        ["method 'mine': cannot import 'my_plugin:sharpen'", "no attribute 'sharpen'"],
    ),
    own_case(
        "own_model_class_missing",
        {**own_method("learned", model="my_plugin:MyNet"), "training": {"preset": "smoke"}},
        ["method 'mine': cannot import 'my_plugin:MyNet'", "no attribute 'MyNet'"],
    ),
    own_case(
        "own_model_not_a_module_class",
        own_method("learned", model="my_plugin:Net", train={"init": "scratch"}),
        ["method 'mine': 'my_plugin:Net' is not an nn.Module class"],
    ),
    own_case(
        "own_model_from_shipped_weights",
        {**own_method("learned", model="torch.nn:Identity"), "training": {"preset": "smoke"}},
        ["training of method 'mine'", "init 'shipped'", "train: {init: scratch}"],
    ),
    own_case(
        "own_command_not_on_path",
        own_method("command", command="no_such_sr {input} {output} --scale {scale}"),
        ["method_specs.mine: method 'mine'", "program 'no_such_sr' is not on PATH"],
    ),
    own_case(
        "own_command_without_output",
        own_method("command", command="cp {input} sr.nii.gz"),
        ["method 'mine': the command lacks {output}"],
    ),
    {
        "id": "unknown_top_level_key",
        "config": None,
        "config_args": ["scael=2"],
        "exit_code": SNAKEMAKE_ERROR,
        "words": ["unknown key 'scael' at the top level", "allowed keys: datasets", "scale"],
        "absent": NO_OUTPUT,
    },
    {
        "id": "unknown_dataset_key",
        "config": {"datasets": {"embedded_adult": {"pth": "data"}}},
        "config_args": [],
        "exit_code": SNAKEMAKE_ERROR,
        "words": ["unknown key 'pth' in datasets.embedded_adult", "allowed keys:", "path"],
        "absent": NO_OUTPUT,
    },
]


def filled(value: Any, values: dict[str, str]) -> Any:
    """``value`` with ``{name}`` in its strings replaced by ``values[name]``."""
    if isinstance(value, dict):
        return {k: filled(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [filled(v, values) for v in value]
    if isinstance(value, str):
        for name, text in values.items():
            value = value.replace(f"{{{name}}}", text)
    return value


def snakemake_args(case: dict[str, Any], workdir: Path) -> list[str]:
    """The dry-run arguments of ``case`` in ``workdir``, after its setup (config file written)."""
    values = globals()[case["setup"]](workdir) if case.get("setup") else {}
    args = ["-n"]
    if case["config"] is not None:
        config = workdir / "case_config.yaml"
        config.write_text(yaml.safe_dump(filled(case["config"], values)))
        args += ["--configfile", str(config)]
    if case["config_args"]:
        args += ["--config", *filled(case["config_args"], values)]
    return args
