# Config validation and input functions. Logic lives in rrlsrn.pipeline.
from snakemake.utils import validate

import re

from rrlsrn import pipeline
from rrlsrn.data import mialsrtk
from rrlsrn.data.embedded import EMBEDDED_ROOT

validate(config, schema="../schemas/config.schema.yaml")

RESULTS = config["results"]
METHODS = pipeline.enabled_methods(config, workflow.basedir)
DATASETS = list(config["datasets"])
MIALSRTK_FILES = sorted(mialsrtk.SHA256)
# Download rules must never claim the scans shipped inside the package.
NOT_EMBEDDED = f"(?!{re.escape(str(EMBEDDED_ROOT))}).+"


def subject_inputs(wildcards):
    volume = pipeline.dataset_volumes(config, wildcards.dataset)[wildcards.subject]
    return {
        "volume": str(volume.path),
        **({"mask": str(volume.mask)} if volume.mask else {}),
    }


def subject_files(dataset, role):
    return expand(
        f"{RESULTS}/data/{dataset}/{{subject}}.npz",
        subject=pipeline.subjects_with_role(config, dataset, role),
    )


def training_files(role):
    return [f for dataset in DATASETS for f in subject_files(dataset, role)]


def prepared_units(dataset):
    split = pipeline.dataset_split(config, dataset)
    return sorted(u for u, role in split.items() if role != pipeline.EXCLUDED)


def dataset_units(wildcards):
    return prepared_units(wildcards.dataset)


def dataset_prepared_files(wildcards):
    return expand(
        f"{RESULTS}/data/{wildcards.dataset}/{{unit}}.npz",
        unit=prepared_units(wildcards.dataset),
    )


def train_inputs(wildcards):
    return {"train": training_files("train"), "val": training_files("val")}


def method_spec_params(wildcards):
    return config["method_specs"][wildcards.method]


def training_overrides(wildcards):
    return pipeline.method_settings(config, wildcards.method)


def slice_axis(wildcards):
    return config["datasets"][wildcards.dataset].get("slice_axis", "auto")


def min_mask_fraction(wildcards):
    return config["datasets"][wildcards.dataset].get("min_mask_fraction", 0.02)


def dataset_split(wildcards):
    return pipeline.dataset_split(config, wildcards.dataset)


def lapsrn_mat(wildcards):
    path = pipeline.lapsrn_mat_available(config, workflow.basedir)
    return str(path) if path else None


def model_input(wildcards):
    if config["method_specs"][wildcards.method]["kind"] == "learned":
        return f"{RESULTS}/models/{wildcards.method}/best.pt"
    return []


def test_metric_files():
    return [
        f"{RESULTS}/metrics/{method}/{dataset}/{subject}.tsv"
        for method in METHODS
        for dataset in DATASETS
        for subject in pipeline.subjects_with_role(config, dataset, "test")
    ]


def all_outputs():
    return [
        *expand(f"{RESULTS}/splits/{{dataset}}.tsv", dataset=DATASETS),
        f"{RESULTS}/tables/data_summary.md",
        *expand(f"{RESULTS}/tables/psnr_summary.{{ext}}", ext=["csv", "md", "tex"]),
    ]


def kirby21_base_url(wildcards):
    urls = [
        d.get("base_url")
        for d in config["datasets"].values()
        if d["source"] == "kirby21"
    ]
    return next((u for u in urls if u), None)


def mialsrtk_base_url(wildcards):
    urls = [d.get("base_url") for d in config["datasets"].values() if d.get("download")]
    return next((u for u in urls if u), None)
