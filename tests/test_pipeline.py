"""Tests for rrlsrn.pipeline (what the workflow computes) and the ``rrlsrn params`` command."""

from __future__ import annotations

import copy
import csv
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from rrlsrn import pipeline, registry, steps
from rrlsrn.cli import main
from rrlsrn.data.embedded import EMBEDDED_ROOT
from rrlsrn.io import save_npz_atomic

REPO = Path(__file__).resolve().parents[1]
DATASET = "embedded_adult"
TEST_SUBJECTS = ["ds000011-sub-03", "ds002748-sub-03", "ds002748-sub-56"]


@pytest.fixture(scope="module")
def base_config() -> dict:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    # defaults of schemas/config.schema.yaml that the functions under test read
    config.setdefault("training", {}).setdefault("overrides", {})
    config.setdefault("lapsrn_mat", None)
    config.setdefault("evaluation", {"shave": 2})
    return config


@pytest.fixture
def config(base_config) -> dict:
    return copy.deepcopy(base_config)


@pytest.fixture(autouse=True)
def no_lapsrn_env(monkeypatch):
    monkeypatch.delenv("RRLSRN_LAPSRN_MAT", raising=False)


# ---------------------------------------------------------------- datasets and splits


def test_dataset_volumes_lists_the_nine_embedded_scans(config):
    volumes = pipeline.dataset_volumes(config, DATASET)
    assert len(volumes) == 9
    assert list(volumes) == sorted(volumes)
    first = volumes["ds002748-sub-01"]
    assert first.path == EMBEDDED_ROOT / "openneuro-ds002748/sub-01_T1w.nii.gz"
    assert first.mask is None and first.person == "ds002748-sub-01"
    assert all(v.path.is_file() for v in volumes.values())


def test_embedded_fetal_stacks_come_with_their_masks_and_are_all_test(config):
    config["datasets"]["fetal"] = {"source": "embedded", "collection": "fetal"}
    volumes = pipeline.dataset_volumes(config, "fetal")
    assert list(volumes) == [f"sub-01_run-{n}" for n in range(1, 7)]
    for unit, volume in volumes.items():
        assert volume.path.is_file() and volume.mask.is_file()
        assert volume.mask.name == f"{unit}_T2w_desc-brain_mask.nii.gz"
        assert volume.person == "sub-01"  # six stacks of one fetus
    assert set(pipeline.dataset_split(config, "fetal").values()) == {"test"}


def test_a_person_in_two_roles_is_refused(config):
    config["datasets"]["fetal"] = {
        "source": "embedded",
        "collection": "fetal",
        "split": {"sub-01_run-2": "train"},
    }
    with pytest.raises(ValueError, match="same person.*sub-01"):
        pipeline.dataset_split(config, "fetal")


def test_dataset_volumes_subject_subset_and_unsupported_source(config):
    config["datasets"][DATASET]["subjects"] = ["ds000011-sub-02", "ds002748-sub-53"]
    assert list(pipeline.dataset_volumes(config, DATASET)) == ["ds000011-sub-02", "ds002748-sub-53"]
    config["datasets"]["remote"] = {"source": "xnat"}
    with pytest.raises(ValueError, match="'xnat'"):
        pipeline.dataset_volumes(config, "remote")


def test_default_split_is_5_train_1_val_3_test(config):
    split = pipeline.dataset_split(config, DATASET)
    assert len(split) == 9  # a dict: one role per subject, no subject in two roles
    roles = list(split.values())
    assert (roles.count("train"), roles.count("val"), roles.count("test")) == (5, 1, 3)
    by_role = {r: pipeline.subjects_with_role(config, DATASET, r) for r in pipeline.ROLES}
    assert by_role["test"] == TEST_SUBJECTS
    assert by_role["val"] == ["ds002748-sub-53"]
    assert len(by_role["train"]) == 5
    all_listed = by_role["train"] + by_role["val"] + by_role["test"]
    assert sorted(all_listed) == sorted(split) and len(set(all_listed)) == 9
    # both sites are in training and in testing
    for role in ("train", "test"):
        assert {s.split("-sub-")[0] for s in by_role[role]} == {"ds002748", "ds000011"}


def test_split_override_with_unknown_role_raises_naming_it(config):
    config["datasets"][DATASET]["split"] = {"ds002748-sub-01": "holdout"}
    with pytest.raises(ValueError, match="holdout") as err:
        pipeline.dataset_split(config, DATASET)
    assert "ds002748-sub-01" in str(err.value)


def test_split_override_changes_only_the_subjects_it_names(config):
    config["datasets"][DATASET]["split"] = {"ds002748-sub-01": "test", "ds000011-sub-01": "val"}
    split = pipeline.dataset_split(config, DATASET)
    assert split["ds002748-sub-01"] == "test"
    assert split["ds000011-sub-01"] == "val"
    # every other subject keeps its role from the default split (3 train, 2 val, 4 test)
    roles = list(split.values())
    assert (roles.count("train"), roles.count("val"), roles.count("test")) == (3, 2, 4)
    assert split["ds002748-sub-53"] == "val"


def test_write_split_tsv_sorted_by_subject(tmp_path):
    split = {"c": "test", "a": "train", "b": "val"}
    path = tmp_path / "splits" / "d.tsv"
    pipeline.write_split(path, split)
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t"))
    assert rows == [["subject", "role"], ["a", "train"], ["b", "val"], ["c", "test"]]
    assert path.read_text() == "subject\trole\na\ttrain\nb\tval\nc\ttest\n"


# ---------------------------------------------------------------- methods


def test_enabled_methods_drops_lapsrn_when_its_weights_are_missing(config, tmp_path):
    config["methods"] = ["bicubic", "rrlsrn", "lapsrn_x2"]
    config["lapsrn_mat"] = "weights/LapSRN_x2.mat"  # relative to the workdir: absent
    assert pipeline.lapsrn_mat_available(config, tmp_path) is None
    assert pipeline.enabled_methods(config, tmp_path) == ["bicubic", "rrlsrn"]
    config["lapsrn_mat"] = None
    assert pipeline.enabled_methods(config, tmp_path) == ["bicubic", "rrlsrn"]
    (tmp_path / "null").write_bytes(b"MATLAB 5.0")
    config["lapsrn_mat"] = "null"  # what `--config lapsrn_mat=null` gives: no weights
    assert pipeline.lapsrn_mat_available(config, tmp_path) is None


def test_enabled_methods_keeps_lapsrn_when_config_file_exists(config, tmp_path):
    config["methods"] = ["bicubic", "rrlsrn", "lapsrn_x2"]
    mat = tmp_path / "weights" / "LapSRN_x2.mat"
    mat.parent.mkdir()
    mat.write_bytes(b"MATLAB 5.0")
    config["lapsrn_mat"] = "weights/LapSRN_x2.mat"
    assert pipeline.lapsrn_mat_available(config, tmp_path) == mat.resolve()
    assert pipeline.enabled_methods(config, tmp_path) == ["bicubic", "rrlsrn", "lapsrn_x2"]


def test_enabled_methods_keeps_lapsrn_when_env_var_points_to_a_file(config, tmp_path, monkeypatch):
    config["methods"] = ["bicubic", "rrlsrn", "lapsrn_x2"]
    config["lapsrn_mat"] = "does/not/exist.mat"
    workdir = tmp_path / "work"
    workdir.mkdir()
    assert pipeline.enabled_methods(config, workdir) == ["bicubic", "rrlsrn"]
    mat = tmp_path / "elsewhere" / "LapSRN_x2.mat"
    mat.parent.mkdir()
    mat.write_bytes(b"MATLAB 5.0")
    monkeypatch.setenv("RRLSRN_LAPSRN_MAT", str(mat))  # absolute: the env var wins
    assert pipeline.lapsrn_mat_available(config, workdir) == mat.resolve()
    assert pipeline.enabled_methods(config, workdir) == ["bicubic", "rrlsrn", "lapsrn_x2"]
    monkeypatch.setenv("RRLSRN_LAPSRN_MAT", str(tmp_path / "missing.mat"))
    assert pipeline.enabled_methods(config, workdir) == ["bicubic", "rrlsrn"]


def test_learned_methods(config):
    config["methods"] = ["bicubic", "srcnn", "nmu", "rrlsrn", "lapsrn_x2", "rrlsrn_no_gdl"]
    assert pipeline.learned_methods(config) == ["srcnn", "rrlsrn", "rrlsrn_no_gdl"]
    config["methods"] = ["bicubic", "nmu", "lrtv", "cubic_spline", "lapsrn_x2"]
    assert pipeline.learned_methods(config) == []


def test_comparison_methods_leave_the_ablation_variants_to_tables_4_and_5(config, tmp_path):
    config["lapsrn_mat"] = None
    config["methods"] = ["bicubic", "srcnn", "lapsrn_x2", "rrlsrn", "rrlsrn_no_gdl"]
    config["methods"].append("rrlsrn_bicubic_bottom")
    assert pipeline.comparison_methods(config, tmp_path) == ["bicubic", "srcnn", "rrlsrn"]
    assert pipeline.ablations_in_run(config, tmp_path) == ["gdl", "bottom_conv"]
    config["methods"] = ["bicubic", "rrlsrn", "rrlsrn_bicubic_bottom"]
    assert pipeline.ablations_in_run(config, tmp_path) == ["bottom_conv"]
    config["methods"] = ["rrlsrn_no_gdl"]  # an ablation needs the full model too
    assert pipeline.ablations_in_run(config, tmp_path) == []


def test_paper_dataset_by_source_or_key(config):
    config["datasets"]["kirby"] = {"source": "kirby21"}
    config["datasets"]["mine"] = {"source": "folder", "paper_dataset": "fetal"}
    assert pipeline.paper_dataset(config, "kirby") == "kirby21"
    assert pipeline.paper_dataset(config, "mine") == "fetal"
    assert pipeline.paper_dataset(config, "embedded_adult") is None  # not the paper's data


def test_method_settings_method_train_dict_wins(config):
    config["training"]["overrides"] = {"gdl_weight": 0.5, "max_steps": 10}
    # rrlsrn's own train dict sets gdl_weight 1.0: it overrides the config-wide 0.5
    assert pipeline.method_settings(config, "rrlsrn") == {"gdl_weight": 1.0, "max_steps": 10}
    assert pipeline.method_settings(config, "rrlsrn_no_gdl") == {
        "gdl_weight": 0.0,
        "max_steps": 10,
    }
    # a method without a train dict gets the config overrides only
    assert pipeline.method_settings(config, "bicubic") == {"gdl_weight": 0.5, "max_steps": 10}
    config["training"]["overrides"] = {}
    assert pipeline.method_settings(config, "bicubic") == {}
    # the registry is not modified
    assert registry.METHODS["rrlsrn"].train == {"gdl_weight": 1.0}


def test_shipped_histories_only_for_runs_that_start_from_shipped_weights(config):
    methods = ["rrlsrn", "srcnn"]
    histories = pipeline.shipped_histories(config, methods, 2)  # preset none: shipped as is
    assert histories["rrlsrn"].endswith("rrlsrn/weights/rrlsrn.history.csv")
    config["training"]["preset"] = "demo"  # fine-tunes the shipped weights
    histories = pipeline.shipped_histories(config, methods, 2)
    assert histories["rrlsrn"].endswith("rrlsrn/weights/rrlsrn.history.csv")
    assert histories["srcnn"].endswith("srcnn.history.csv")
    assert pipeline.shipped_histories(config, methods, 4)["rrlsrn"].endswith("/rrlsrn.history.csv")
    config["training"]["overrides"] = {"init": "scratch"}
    assert pipeline.shipped_histories(config, methods, 2) == {"rrlsrn": None, "srcnn": None}


# ---------------------------------------------------------------- evaluate_method


def write_pair(tmp_path: Path, sr_shape=(2, 16, 16)) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    hr = np.zeros((2, 16, 16), np.float32)
    hr[1] = 0.5
    sr = np.full(sr_shape, 0.1, np.float32)  # slice 0: error 0.1; slice 1: error 0.4
    mask = np.zeros((2, 16, 16), bool)
    mask[0, 3:5, 3:5] = True  # inside the shaved PSNR region, outside the SSIM map's
    mask[1, 6:10, 6:10] = True  # inside both
    data_file = tmp_path / "data.npz"
    sr_file = tmp_path / "sr.npz"
    save_npz_atomic(data_file, hr=hr, mask=mask, slice_index=np.array([4, 7], np.int32))
    save_npz_atomic(sr_file, sr=sr, slice_index=np.array([4, 7], np.int32))
    return sr_file, data_file, hr, sr


def test_evaluate_method_writes_per_slice_tsv_for_every_subject(tmp_path):
    sr_file, data_file, _, _ = write_pair(tmp_path)
    out = tmp_path / "metrics" / "rrlsrn" / "embedded_adult.tsv"
    frame = steps.evaluate_method(
        [sr_file, sr_file], [data_file, data_file], ["s1", "s2"], out, "rrlsrn",
        "embedded_adult", shave=2,
    )  # fmt: skip
    back = pd.read_csv(out, sep="\t", dtype={"subject": str})
    columns = ["method", "dataset", "subject", "slice", "psnr", "ssim", "psnr_mask", "ssim_mask"]
    assert list(back.columns) == list(frame.columns) == columns
    assert back["method"].tolist() == ["rrlsrn"] * 4
    assert back["dataset"].tolist() == ["embedded_adult"] * 4
    assert back["subject"].tolist() == ["s1", "s1", "s2", "s2"]
    assert back["slice"].tolist() == [4, 7, 4, 7]
    values = ["psnr", "ssim", "psnr_mask", "ssim_mask"]
    pd.testing.assert_frame_equal(back.iloc[2:][values].reset_index(drop=True), back[values][:2])
    back = back.iloc[:2]
    # error 0.1 -> MSE 0.01 -> 20 dB; error 0.4 -> MSE 0.16 -> 10 log10(1 / 0.16) dB
    np.testing.assert_allclose(back["psnr"], [20.0, -10 * math.log10(0.16)], atol=1e-5)
    # constant images: no variance, so SSIM = (2 mx my + C1) / (mx^2 + my^2 + C1), C1 = 1e-4
    c1 = 0.01**2
    expected = [c1 / (0.1**2 + c1), (2 * 0.05 + c1) / (0.1**2 + 0.5**2 + c1)]
    np.testing.assert_allclose(back["ssim"], expected, atol=1e-6)
    # masked: slice 0's mask lies inside the PSNR region but not the SSIM map's
    assert back["psnr_mask"][0] == pytest.approx(20.0, abs=1e-5)
    assert math.isnan(back["ssim_mask"][0])
    assert back["ssim_mask"][1] == pytest.approx(expected[1], abs=1e-6)


def test_evaluate_method_shape_mismatch_raises_naming_the_sr_file(tmp_path):
    sr_file, data_file, _, _ = write_pair(tmp_path, sr_shape=(2, 8, 6))
    out = tmp_path / "m.tsv"
    with pytest.raises(ValueError, match="sr.npz") as err:
        steps.evaluate_method([sr_file], [data_file], ["s1"], out, "bicubic", "d", shave=2)
    assert str(sr_file) in str(err.value)
    assert not out.exists()
    with pytest.raises(ValueError, match="must match one to one"):
        steps.evaluate_method([sr_file], [data_file], ["s1", "s2"], out, "bicubic", "d", 2)


# ---------------------------------------------------------------- rrlsrn params


def test_cli_params_default_model(capsys):
    # input conv       1*64*9 + 64        =    640
    # 11 inner convs   11*(64*64*9 + 64)  = 11 * 36928 = 406208
    # feature up       64*64*16 + 64      =  65600
    # residual conv    64*9 + 1           =    577
    # image up         1*1*4*4 (no bias)  =     16
    # total                               = 473041
    expected = 1 * 64 * 9 + 64 + 11 * (64 * 64 * 9 + 64) + 64 * 64 * 16 + 64 + 64 * 9 + 1 + 16
    assert expected == 640 + 406208 + 65600 + 577 + 16 == 473041
    assert main(["params"]) == 0
    out = capsys.readouterr().out
    assert "473,041 trainable parameters" in out
    assert "13 conv layers" in out and "2 transposed convs" in out


def test_cli_params_bicubic_bottom_has_16_fewer(capsys):
    assert main(["params", "--model-arg", "image_branch=bicubic"]) == 0
    out = capsys.readouterr().out
    assert f"{473041 - 16:,} trainable parameters" in out  # 473,025: no 4x4 image-branch kernel
    assert "13 conv layers" in out and "1 transposed convs" in out
    assert "image_branch" in out


def test_cli_params_typed_model_args(capsys):
    # depth=2 is YAML-typed to an int: 640 + 2*36928 + 65600 + 577 + 16 = 140689
    assert main(["params", "--model-arg", "depth=2"]) == 0
    out = capsys.readouterr().out
    assert "140,689 trainable parameters" in out and "4 conv layers" in out


@pytest.mark.parametrize("bad", ["image_branch", "=bicubic"])
def test_cli_params_malformed_model_arg_exits_with_a_clear_message(bad, capsys):
    assert main(["params", "--model-arg", bad]) == 1
    message = capsys.readouterr().err
    assert "--model-arg must look like KEY=VALUE" in message
    assert repr(bad) in message


def test_split_override_naming_an_unknown_subject_is_refused():
    # A typo ("sub-3" for "sub-03") must not silently send the test subject to training.
    config = {
        "datasets": {"embedded_adult": {"source": "embedded", "split": {"ds002748-sub-3": "test"}}}
    }
    with pytest.raises(ValueError, match="ds002748-sub-3"):
        pipeline.dataset_split(config, "embedded_adult")


def test_slice_options_come_from_the_dataset_config_with_prepare_defaults(config):
    from rrlsrn.data.prepare import SliceOptions

    assert pipeline.slice_options(config, "embedded_adult") == {
        "axis": "auto",
        "min_mask_fraction": SliceOptions.min_mask_fraction,
        "slice_step": 2,  # config.yaml thins the 1 mm adult volumes
    }
    fetal = pipeline.slice_options(config, "embedded_fetal")
    assert fetal["min_mask_fraction"] == 0.005 and fetal["slice_step"] == 1
    SliceOptions(scale=2, **fetal)  # every key is a field of SliceOptions


# ---------------------------------------------------------------- config checks

SCHEMA = pipeline.load_schema(REPO / "schemas/config.schema.yaml")


def test_cli_nested_scalars_read_as_yaml_where_the_schema_does_not_want_a_string():
    # what Snakemake hands over for --config 'training={...}' 'datasets={...}' ... x=3
    cli = {
        "training": {"preset": "smoke", "overrides": {"max_steps": "3", "lr": "1e-4"}},
        "datasets": {"mine": {"source": "folder", "path": "2024", "slice_axis": "1"}},
        "method_specs": {"srcnn": {"train": {"grad_clip": "null", "x": "true", "y": "a: b"}}},
        "methods": ["bicubic", "srcnn"],
        "scale": 2,
        "lapsrn_mat": "null",
    }
    assert pipeline.cli_config_values(cli, SCHEMA) == {
        "training": {"preset": "smoke", "overrides": {"max_steps": 3, "lr": 1e-4}},
        "datasets": {"mine": {"source": "folder", "path": "2024", "slice_axis": 1}},
        "method_specs": {"srcnn": {"train": {"grad_clip": None, "x": True, "y": "a: b"}}},
        "methods": ["bicubic", "srcnn"],
    }  # top-level values are Snakemake's own parse: left out


@pytest.mark.parametrize(
    ("text", "value"),
    [("3", 3), ("-5", -5), ("0.5", 0.5), ("1e-4", 1e-4), ("2E3", 2000.0), ("true", True),
     ("~", None), ("adam", "adam"), ("2024-01-01", "2024-01-01"), ("[1", "[1"), ("", "")],
)  # fmt: skip
def test_yaml_scalar(text, value):
    assert pipeline.yaml_scalar(text) == value
    assert type(pipeline.yaml_scalar(text)) is type(value)


def test_the_default_config_passes_every_check(config):
    pipeline.check_schema(config, SCHEMA)
    pipeline.check_config(config)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"scael": 2},
            "config: unknown key 'scael' at the top level; allowed keys: datasets, "
            "degradation, evaluation, lapsrn_mat, method_specs, methods, protocols, results, "
            "scale, scales, train_on, training, transfer",
        ),
        (
            {"training": {"preset": "demo", "overrides": {}, "devic": "cpu"}},
            "config: unknown key 'devic' in training; allowed keys: device, overrides, preset",
        ),
        (
            {"training": {"preset": "fast"}},
            "config: training.preset: 'fast' is not one of "
            "['none', 'demo', 'paper', 'pretrain', 'smoke']",
        ),
        ({"methods": ["bicubic", 5]}, "config: methods[1]: 5 is not of type 'string'"),
        (
            {"method_specs": {"x": {"kind": "classical"}}},
            "config: method_specs.x.kind: 'classical' is not one of "
            "['interpolation', 'model-based', 'learned', 'python', 'command']",
        ),
        (
            {"method_specs": {"nmu": {"parms": {}}}},
            "config: unknown key 'parms' in method_specs.nmu; allowed keys: command, "
            "entrypoint, factory, kind, model, model_args, params, train, weights",
        ),
    ],
)
def test_schema_problems_are_one_line_naming_the_key(config, change, expected):
    config.update(change)
    with pytest.raises(pipeline.ConfigError) as info:
        pipeline.check_schema(config, SCHEMA)
    assert str(info.value) == expected


def test_schema_problem_shortens_a_long_value(config):
    config["datasets"] = ["x" * 50] * 100
    with pytest.raises(pipeline.ConfigError) as info:
        pipeline.check_schema(config, SCHEMA)
    message = str(info.value)
    assert message.startswith("config: datasets: ['xxx")
    assert message.endswith("', ...] is not of type 'object'") and len(message) < 200


def test_an_unknown_method_is_named_with_the_known_ones(config):
    config["methods"] = ["bicubic", "rrlsnr"]
    with pytest.raises(pipeline.ConfigError) as info:
        pipeline.check_config(config)
    known = ", ".join(registry.METHODS)  # the registry's order
    assert str(info.value) == f"config: methods: unknown method 'rrlsnr'; known: {known}"
    assert known.startswith("bicubic, cubic_spline, nmu, nmu_3d, nmu_reference, lrtv")


@pytest.mark.parametrize(
    ("specs", "words"),
    [
        ({"mine": {"params": {}}}, "config: method_specs.mine: unknown method 'mine'; known: "),
        ({"nmu": {"kind": "learned"}}, "config: method_specs.nmu: method 'nmu' is built in"),
        (
            {"mine": {"kind": "model-based", "factory": "baselines.nmu:nmu"}, "nmuu": {}},
            "config: method_specs.nmuu: unknown method 'nmuu'",
        ),
    ],
)
def test_method_specs_override_built_in_methods_or_define_new_ones(config, specs, words):
    config["method_specs"] = specs
    with pytest.raises(pipeline.ConfigError) as info:
        pipeline.check_config(config)
    assert str(info.value).startswith(words)
    assert "a new method needs 'kind' and 'factory'" in str(info.value) or "built in" in words


def test_a_config_may_override_params_and_define_a_method(config):
    config["methods"] = ["nmu", "mine"]
    config["method_specs"] = {
        "nmu": {"params": {"max_iterations": 2}},
        "mine": {"kind": "model-based", "factory": "baselines.nmu:nmu", "params": {"tol": 2.0}},
    }
    pipeline.check_config(config)
    assert pipeline.method_spec(config, "nmu")["params"] == {
        **registry.METHODS["nmu"].params,
        "max_iterations": 2,
    }
    assert pipeline.method_spec(config, "mine", ["/plugins"]) == {
        "search_path": ["/plugins"],
        "kind": "model-based",
        "factory": "baselines.nmu:nmu",
        "params": {"tol": 2.0},
        "model_args": {},
        "train": {},
        "weights": None,
        "loader": None,
    }


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"max_steps": -5}, "max_steps: -5 is less than the minimum of 1"),
        ({"epochs": 3}, "unknown training setting 'epochs'; known: augment_bias"),
        ({"max_steps": "3"}, "max_steps: '3' is not of type 'integer'"),
    ],
)
def test_training_overrides_are_checked_for_every_learned_method(config, overrides, words):
    config["methods"] = ["bicubic", "srcnn", "rrlsrn"]
    config["training"] = {"preset": "smoke", "overrides": overrides}
    with pytest.raises(pipeline.ConfigError) as info:
        pipeline.check_config(config)
    assert str(info.value).startswith("training of methods 'srcnn', 'rrlsrn': training preset")
    assert words in str(info.value)


def test_a_method_train_dict_is_checked_for_that_method_only(config):
    config["training"]["preset"] = "demo"
    config["methods"] = ["srcnn", "rrlsrn"]
    config["method_specs"]["srcnn"] = {"train": {"gdl_weight": -1}}
    with pytest.raises(pipeline.ConfigError, match="^training of method 'srcnn': .*gdl_weight"):
        pipeline.check_config(config)
    config["methods"] = ["bicubic", "rrlsrn"]  # srcnn is not in the run: not checked
    pipeline.check_config(config)


def test_a_dataset_problem_names_the_dataset(config, tmp_path):
    (tmp_path / "a.nii.gz").write_bytes(b"")
    config["datasets"] = {"mine": {"source": "folder", "path": str(tmp_path)}}
    with pytest.raises(pipeline.ConfigError, match=r"^dataset 'mine': .*a\.nii\.gz \(empty file\)"):
        pipeline.check_config(config)


# ---------------------------------------------------------------- logs


def test_log_to_captures_output_and_the_traceback_of_an_error(tmp_path, capsys):
    log = tmp_path / "logs" / "step.log"
    with pytest.raises(RuntimeError, match="boom"), pipeline.log_to(log):
        print("progress 1/2")
        raise RuntimeError("boom")
    text = log.read_text()
    assert text.startswith("progress 1/2\nTraceback (most recent call last):")
    assert text.rstrip().endswith("RuntimeError: boom")
    assert capsys.readouterr() == ("", "")  # nothing went to the console from inside
