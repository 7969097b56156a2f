"""The named configs that are given after config.yaml: each one, merged onto it as
Snakemake merges ``--configfile`` files, passes the checks the workflow runs at parse time.
"""

from __future__ import annotations

import copy

import pytest
import yaml
from conftest import REPO

from rrlsrn import pipeline

OVERLAYS = [
    "x4.yaml",
    "protocols.yaml",
    "published.yaml",
    "pretrain.yaml",
    "smoke.yaml",
    "transfer.yaml",
]
DEFAULT = yaml.safe_load((REPO / "config.yaml").read_text())


def merged(name: str) -> dict:
    """config.yaml + configs/<name>, validated and completed with the schema's defaults."""
    from snakemake.utils import update_config, validate

    config = copy.deepcopy(DEFAULT)
    update_config(config, yaml.safe_load((REPO / "configs" / name).read_text()))
    path = REPO / "schemas/config.schema.yaml"
    pipeline.settle_config(config, pipeline.load_schema(path), lambda c: validate(c, str(path)))
    return config


@pytest.mark.parametrize("name", OVERLAYS)
def test_each_overlay_config_passes_the_workflows_checks(name):
    config = merged(name)
    # never writes over the default run: its own folder, or its own scale's x<scale>/
    assert config["results"] != DEFAULT["results"] or pipeline.run_scales(config) != [2]


def test_every_overlay_config_is_tested():
    names = {p.name for p in (REPO / "configs").glob("*.yaml")}
    assert names - {"paper.yaml"} == set(OVERLAYS)  # paper.yaml replaces config.yaml


def test_the_published_config_runs_every_variant_of_nmu_and_lrtv_on_the_default_data():
    config = merged("published.yaml")
    variants = {"nmu", "nmu_3d", "nmu_reference", "lrtv", "lrtv_reference"}
    assert variants <= set(config["methods"])
    assert set(config["datasets"]) == set(DEFAULT["datasets"])  # the default scans
    assert config["degradation"]["name"] == DEFAULT["degradation"]["name"]
