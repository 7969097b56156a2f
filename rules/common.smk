# Config validation and input functions. Logic lives in rrlsrn.pipeline.
from snakemake.exceptions import WorkflowError
from snakemake.utils import update_config, validate

import re
import sys

from rrlsrn import pipeline, registry
from rrlsrn.data import mialsrtk
from rrlsrn.data.embedded import EMBEDDED_ROOT

# A config's own methods' modules are looked for beside its config files.
PLUGIN_DIRS = pipeline.plugin_dirs(workflow.config_settings.configfiles)

# A config mistake stops the workflow here, before any job, in one line.
try:
    SCHEMA = pipeline.load_schema(f"{workflow.basedir}/schemas/config.schema.yaml")
    update_config(
        config, pipeline.cli_config_values(workflow.config_settings.config, SCHEMA)
    )
    NOTICES = pipeline.settle_config(
        config,
        SCHEMA,
        lambda c: validate(c, schema="../schemas/config.schema.yaml"),  # the defaults
        PLUGIN_DIRS,
    )
except pipeline.ConfigError as error:
    raise WorkflowError(str(error)) from None

RESULTS = config["results"]
SCALES = pipeline.run_scales(config)
# One scale's outputs (models, SR, metrics, tables, figures) live in RESULTS/x<scale>;
# the prepared slices, splits and manifests are shared by every scale of the run.
RUN = f"{RESULTS}/x{{scale}}"
METHODS = {s: pipeline.enabled_methods(config, workflow.basedir, s) for s in SCALES}
COMPARED = {s: pipeline.comparison_methods(config, workflow.basedir, s) for s in SCALES}
ABLATIONS = {s: pipeline.ablations_in_run(config, workflow.basedir, s) for s in SCALES}
TRAINED = pipeline.learned_methods(config) if pipeline.trains(config) else []
LEARNED = {s: [m for m in METHODS[s] if m in TRAINED] for s in SCALES}
# The pretraining history of the shipped weights each learned method runs or starts from.
HISTORIES = {
    s: {
        m: path
        for m, path in pipeline.shipped_histories(
            config, [m for m in METHODS[s] if m in pipeline.learned_methods(config)], s
        ).items()
        if path
    }
    for s in SCALES
}
DATASETS = list(config["datasets"])
TABLE_FORMATS = ["csv", "md", "tex"]
MIALSRTK_FILES = sorted(mialsrtk.SHA256)
# Download rules must never claim the scans shipped inside the package.
NOT_EMBEDDED = f"(?!{re.escape(str(EMBEDDED_ROOT))}).+"

for _notice in [*NOTICES, *pipeline.scale_notices(config, workflow.basedir)]:
    print(f"rrlsrn: {_notice}", file=sys.stderr)


wildcard_constraints:
    scale=r"\d+",


def run_dir(scale):
    """The folder of one scale's outputs."""
    return f"{RESULTS}/x{scale}"


def scale_of(wildcards):
    return int(wildcards.scale)


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


def training_files(role, datasets=None):
    """The prepared train or val files of the run's training data (``train_on``) or of
    ``datasets``."""
    names = pipeline.training_datasets(config) if datasets is None else datasets
    return [f for dataset in names for f in subject_files(dataset, role)]


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
    return pipeline.method_spec(
        config, wildcards.method, PLUGIN_DIRS, scale=scale_of(wildcards)
    )


def shave_of(wildcards):
    return pipeline.shave(config, scale_of(wildcards))


def training_overrides(wildcards):
    return pipeline.method_settings(config, wildcards.method)


def slice_options(wildcards):
    return pipeline.slice_options(config, wildcards.dataset)


def unit_facts(wildcards):
    return pipeline.unit_facts(config, wildcards.dataset)


def dataset_split(wildcards):
    return pipeline.dataset_split(config, wildcards.dataset)


def lapsrn_mat(wildcards):
    path = pipeline.lapsrn_mat_available(config, workflow.basedir)
    return str(path) if path else None


def model_input(wildcards):
    """A learned method's weights: trained in this run, or (preset none) shipped."""
    if pipeline.resolved_method(config, wildcards.method).kind != "learned":
        return []
    if not pipeline.trains(config):
        return pipeline.shipped_model(config, wildcards.method, scale_of(wildcards))
    return f"{run_dir(wildcards.scale)}/models/{wildcards.method}/best.pt"


def test_files(kind, scale, methods=None, datasets=None):
    """``{run}/{kind}/{method}/{dataset}/{subject}.tsv`` over the test subjects."""
    return [
        f"{run_dir(scale)}/{kind}/{method}/{dataset}/{subject}.tsv"
        for method in (METHODS[scale] if methods is None else methods)
        for dataset in (DATASETS if datasets is None else datasets)
        for subject in pipeline.subjects_with_role(config, dataset, "test")
    ]


def test_unit_files(kind, wildcards, ext):
    """One method's SR (``sr``) or the dataset's HR (``data``) file per test subject."""
    folder = f"{run_dir(wildcards.scale)}/sr/{wildcards.method}"
    if kind == "data":
        folder = f"{RESULTS}/data"
    return [
        f"{folder}/{wildcards.dataset}/{subject}.{ext}"
        for subject in pipeline.subjects_with_role(config, wildcards.dataset, "test")
    ]


def metric_files(scale, methods=None, datasets=None):
    """``{run}/metrics/{method}/{dataset}.tsv``: one file per method and dataset."""
    return [
        f"{run_dir(scale)}/metrics/{method}/{dataset}.tsv"
        for method in (METHODS[scale] if methods is None else methods)
        for dataset in (DATASETS if datasets is None else datasets)
    ]


def test_metric_files(wildcards):
    return metric_files(scale_of(wildcards))


def test_runtime_files(wildcards):
    return test_files("runtime", scale_of(wildcards))


def test_benchmark_files(wildcards):
    return test_files("benchmarks/super_resolve", scale_of(wildcards))


def compared_methods(wildcards):
    return COMPARED[scale_of(wildcards)]


def learned_in_run(wildcards):
    return LEARNED[scale_of(wildcards)]


def shipped_histories(wildcards):
    return HISTORIES[scale_of(wildcards)]


def training_logs(wildcards):
    return [
        f"{run_dir(wildcards.scale)}/models/{method}/train_log.csv"
        for method in learned_in_run(wildcards)
    ]


def paper_datasets():
    return {dataset: pipeline.paper_dataset(config, dataset) for dataset in DATASETS}


def table_files(ext, scale=None):
    """A scale's tables (the rule's output pattern when ``scale`` is None)."""
    stems = [f"table1to3_{dataset}" for dataset in DATASETS]
    stems += [registry.ablation_table_stem(key) for key in registry.ablations()]
    stems += ["table6_runtime", "paired_tests"]
    folder = RUN if scale is None else run_dir(scale)
    return [f"{folder}/tables/{stem}.{ext}" for stem in stems]


def dataset_metric_files(wildcards):
    return metric_files(
        scale_of(wildcards), compared_methods(wildcards), [wildcards.dataset]
    )


def dataset_test_data(wildcards):
    subjects = pipeline.subjects_with_role(config, wildcards.dataset, "test")
    return {s: f"{RESULTS}/data/{wildcards.dataset}/{s}.npz" for s in subjects}


def dataset_sr_files(wildcards, methods=None):
    subjects = pipeline.subjects_with_role(config, wildcards.dataset, "test")
    folder = run_dir(wildcards.scale)
    return {
        method: {
            s: f"{folder}/sr/{method}/{wildcards.dataset}/{s}.npz" for s in subjects
        }
        for method in (compared_methods(wildcards) if methods is None else methods)
    }


def gdl_sr_files(wildcards):
    without, full = pipeline.ablation_methods("gdl")
    files = dataset_sr_files(wildcards, [without, full])
    return {"without": files[without], "with": files[full]}


def flat_paths(nested):
    """Every path of a {key: path} or {key: {key: path}} mapping (rule inputs)."""
    if isinstance(nested, dict):
        return [p for value in nested.values() for p in flat_paths(value)]
    return [nested]


def figure_inputs(wildcards):
    return {
        "metrics": dataset_metric_files(wildcards),
        "data": flat_paths(dataset_test_data(wildcards)),
        "sr": flat_paths(dataset_sr_files(wildcards)),
    }


def gdl_figure_inputs(wildcards):
    methods = pipeline.ablation_methods("gdl")
    return {
        "metrics": metric_files(scale_of(wildcards), methods, [wildcards.dataset]),
        "data": flat_paths(dataset_test_data(wildcards)),
        "sr": flat_paths(gdl_sr_files(wildcards)),
    }


def figure_files(scale):
    stems = [f"fig2_examples_{d}" for d in DATASETS] + [
        f"fig3_error_maps_{d}" for d in DATASETS
    ]
    if "gdl" in ABLATIONS[scale]:
        stems += [f"fig4_gdl_{d}" for d in DATASETS]
    if LEARNED[scale] or HISTORIES[scale]:
        stems.append("training_curves")
    return [
        f"{run_dir(scale)}/figures/{stem}.{ext}"
        for stem in stems
        for ext in ("png", "pdf")
    ]


def all_outputs():
    return [
        *expand(f"{RESULTS}/splits/{{dataset}}.tsv", dataset=DATASETS),
        f"{RESULTS}/tables/data_summary.md",
        *[
            path
            for scale in SCALES
            for ext in TABLE_FORMATS
            for path in table_files(ext, scale)
        ],
        *[path for scale in SCALES for path in figure_files(scale)],
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


def ixi_spec(wildcards):
    return pipeline.download_spec(config, "ixi", wildcards.ixi_root)


def openneuro_file_params(wildcards):
    root = f"{wildcards.openneuro_root}/{wildcards.accession}"
    return pipeline.openneuro_object(config, root, wildcards.key)
