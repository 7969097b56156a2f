"""Training on some datasets and testing on others (issue 18): ``train_on``, the
``transfer`` sets and their checks, datasets switched off or skipped when missing, and
the transfer table's gains against values worked out by hand."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO, job_counts, run_snakemake
from snakemake.utils import validate

from rrlsrn import pipeline
from rrlsrn.transfer import transfer_figure, transfer_gains, transfer_table, write_transfer

SCHEMA_PATH = REPO / "schemas/config.schema.yaml"
SCHEMA = pipeline.load_schema(SCHEMA_PATH)
T_975_1 = 12.706204736174704  # t(0.975, 1 degree of freedom), from a table
DEFAULT = yaml.safe_load((REPO / "config.yaml").read_text())


def settled(config: dict) -> tuple[dict, list[str]]:
    """The workflow's parse-time checks on ``config``: (config, warnings)."""
    config = copy.deepcopy(config)
    notices = pipeline.settle_config(config, SCHEMA, lambda c: validate(c, str(SCHEMA_PATH)))
    return config, notices


def transfer_config() -> dict:
    """config.yaml with configs/transfer.yaml merged on it, as Snakemake merges them."""
    from snakemake.utils import update_config

    config = copy.deepcopy(DEFAULT)
    update_config(config, yaml.safe_load((REPO / "configs/transfer.yaml").read_text()))
    return config


# ------------------------------------------------------------ datasets switched off


@pytest.mark.parametrize("off", [None, {"enabled": False}])
def test_a_dataset_is_switched_off_from_a_layer(off):
    config = copy.deepcopy(DEFAULT)
    config["datasets"]["embedded_fetal"] = off
    config, notices = settled(config)
    assert list(config["datasets"]) == ["embedded_adult"] and notices == []


def test_switching_every_dataset_off_is_refused():
    config = copy.deepcopy(DEFAULT)
    config["datasets"] = {"embedded_adult": None, "embedded_fetal": {"enabled": False}}
    with pytest.raises(pipeline.ConfigError, match="every dataset is switched off"):
        settled(config)


def test_a_missing_dataset_stops_the_run_unless_it_may_be_skipped(tmp_path):
    config = copy.deepcopy(DEFAULT)
    config["datasets"]["namic"] = {"source": "namic", "path": str(tmp_path / "namic")}
    with pytest.raises(pipeline.ConfigError, match="dataset 'namic': no NAMIC case found"):
        settled(config)
    config["datasets"]["namic"]["on_missing"] = "skip"
    config, notices = settled(config)
    assert "namic" not in config["datasets"]
    assert len(notices) == 1 and notices[0].startswith("dataset 'namic' left out")
    for output in ("table1to3_namic", "fig2_examples_namic", "table6_runtime"):
        assert output in notices[0]


def test_skip_does_not_hide_a_mistake_in_a_dataset_that_is_there(tmp_path):
    (tmp_path / "a.nii.gz").write_bytes(b"")  # there, but broken
    config = copy.deepcopy(DEFAULT)
    config["datasets"]["mine"] = {"source": "folder", "path": str(tmp_path), "on_missing": "skip"}
    with pytest.raises(pipeline.ConfigError, match=r"unreadable NIfTI file: a\.nii\.gz \(empty"):
        settled(config)


def test_a_dataset_left_out_leaves_train_on_and_transfer_too(tmp_path):
    config = transfer_config()
    config["datasets"]["adult_skull"] = None
    config, notices = settled(config)
    assert config["train_on"] == ["adult_stripped"]
    assert config["transfer"] == {"stripped_only": ["adult_stripped"]}
    assert notices == [
        "train_on: trains without 'adult_skull' (left out)",
        "transfer.skull_only: its datasets are left out; the transfer table lacks its row",
    ]
    config = transfer_config()
    config["train_on"] = ["adult_skull"]
    config["datasets"]["adult_skull"] = {"enabled": False}
    with pytest.raises(pipeline.ConfigError, match="train_on: its datasets .* all left out"):
        settled(config)


# ------------------------------------------------------------ train_on and transfer


def test_train_on_selects_the_training_units():
    config, _ = settled(transfer_config())
    assert pipeline.training_units(config, ["adult_skull"], "train") == [
        "adult_skull/ds000011-sub-01"
    ]
    assert pipeline.training_units(config, pipeline.training_datasets(config), "val") == [
        "adult_stripped/ds002748-sub-53",
        "adult_skull/ds000011-sub-02",
    ]
    default, _ = settled(DEFAULT)
    assert pipeline.training_datasets(default) == ["embedded_adult", "embedded_fetal"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"train_on": ["adult"]}, "train_on: 'adult' is not a dataset of the run"),
        ({"transfer": {"x": ["nope"]}}, "transfer.x: 'nope' is not a dataset of the run"),
        ({"train_on": ["embedded_fetal"]}, "train_on: datasets .* have no train unit"),
        ({"transfer": {"a b": ["adult_skull"]}}, "config: transfer: 'a b' does not match"),
        ({"methods": ["rrlsrn"]}, "transfer: the gains are over the bicubic method"),
        ({"methods": ["bicubic", "nmu"]}, "transfer: the run has no learned method"),
        ({"training": {"preset": "none", "overrides": {}}}, "transfer: preset 'none' trains"),
    ],
)
def test_training_data_mistakes_are_named(change, message):
    config = transfer_config()
    config.update(change)
    with pytest.raises(pipeline.ConfigError, match=message):
        settled(config)


def test_the_transfer_config_plans_one_training_per_row_and_the_default_run_none(tmp_path):
    args = ["-n", "--configfile", str(REPO / "configs/transfer.yaml")]
    jobs = job_counts(run_snakemake(args, tmp_path).stdout)
    # rows: the run (both adult sets) + 2 transfer sets; 1 learned method; 3 test datasets
    assert jobs["train"] == 1 and jobs["transfer_train"] == 2
    assert jobs["transfer_run"] == 2 * 3 and jobs["transfer_table"] == 1
    default = job_counts(run_snakemake(["-n"], tmp_path).stdout)
    assert not {job for job in default if job.startswith("transfer")}


# ------------------------------------------------------------ the table's numbers


def _metrics(method: str, dataset: str, psnr_by_subject: dict[str, list[float]]) -> list[dict]:
    return [
        {"method": method, "dataset": dataset, "subject": s, "slice": i, "psnr": v}
        for s, values in psnr_by_subject.items()
        for i, v in enumerate(values)
    ]


@pytest.fixture
def metrics() -> dict[str, pd.DataFrame]:
    """Two rows, two test datasets; bicubic only in the run's row (it is not trained)."""
    bicubic = _metrics("bicubic", "A", {"a1": [30, 32], "a2": [28, 28]})
    bicubic += _metrics("bicubic", "B", {"b1": [25], "b2": [27]})
    run = _metrics("rrlsrn", "A", {"a1": [33, 35], "a2": [30, 31]})
    run += _metrics("rrlsrn", "B", {"b1": [26], "b2": [29]})
    other = _metrics("rrlsrn", "A", {"a1": [31, 33], "a2": [29, 29]})
    other += _metrics("rrlsrn", "B", {"b1": [27], "b2": [30]})
    return {"run": pd.DataFrame(bicubic + run), "b_only": pd.DataFrame(other)}


def test_transfer_gains_pair_each_row_with_bicubic_per_subject(metrics):
    long = transfer_gains(metrics, ["rrlsrn"]).set_index(["training", "dataset", "quantity"])
    # run on A: subject means 34 vs 31 (+3), 30.5 vs 28 (+2.5): mean 2.75, sd 0.3536
    gain = long.loc[("run", "A", "gain")]
    assert gain["n"] == 2 and gain["mean"] == pytest.approx(2.75)
    half = T_975_1 * np.sqrt(0.125) / np.sqrt(2)
    assert gain["ci_low"] == pytest.approx(2.75 - half)
    assert gain["ci_high"] == pytest.approx(2.75 + half)
    # b_only on B: +2 and +3; on A: 32 - 31 = +1 and 29 - 28 = +1
    assert long.loc[("b_only", "B", "gain"), "mean"] == pytest.approx(2.5)
    assert long.loc[("b_only", "A", "gain"), "mean"] == pytest.approx(1.0)
    assert long.loc[("b_only", "A", "gain"), "sd"] == pytest.approx(0.0)
    assert "bicubic" not in set(long.reset_index()["method"])


def test_transfer_table_rows_are_training_data_and_columns_test_datasets(metrics):
    rows = {"run": ["A", "B"], "b_only": ["B"]}
    table = transfer_table(transfer_gains(metrics, ["rrlsrn"]), rows)
    assert list(table.columns) == ["Metric", "Method", "Trained on", "A", "B"]
    assert table["Trained on"].tolist() == ["run: A + B", "b_only: B"]
    half = T_975_1 * np.sqrt(0.125) / np.sqrt(2)
    assert table.loc[0, "A"] == f"+2.75 [{2.75 - half:+.2f}, {2.75 + half:+.2f}]"
    assert table.loc[1, "A"] == "+1.00 [+1.00, +1.00]"


def test_transfer_needs_the_runs_bicubic(metrics):
    with pytest.raises(ValueError, match="no bicubic rows"):
        transfer_gains({"run": metrics["b_only"]}, ["rrlsrn"])
    with pytest.raises(ValueError, match="own row 'run'"):
        transfer_gains({"b_only": metrics["b_only"]}, ["rrlsrn"])


def test_transfer_figure_and_files(metrics, tmp_path):
    rows = {"run": ["A", "B"], "b_only": ["B"]}
    fig = transfer_figure(transfer_gains(metrics, ["rrlsrn"]), rows, scale=2)
    grid = fig.axes[0].images[0].get_array()
    np.testing.assert_allclose(grid, [[2.75, 1.5], [1.0, 2.5]])  # rows x datasets, by hand
    files = {}
    for name, frame in metrics.items():
        files[name] = []
        for (method, dataset), part in frame.groupby(["method", "dataset"]):
            path = tmp_path / f"{name}_{method}_{dataset}.tsv"
            part.to_csv(path, sep="\t", index=False)
            files[name].append(str(path))
    written = write_transfer(
        files, rows, ["rrlsrn"], tmp_path / "t", tmp_path / "long.csv", tmp_path / "f"
    )
    assert {p.name for p in written} == {"t.csv", "t.md", "t.tex", "long.csv", "f.png", "f.pdf"}
    assert "b_only: B" in (tmp_path / "t.md").read_text()


def test_a_dataset_name_yaml_reads_as_a_boolean_is_named():
    config = copy.deepcopy(DEFAULT)
    config["datasets"].update(yaml.safe_load("on: {source: embedded, collection: fetal}"))
    with pytest.raises(pipeline.ConfigError, match="datasets: the name True is not text"):
        settled(config)
