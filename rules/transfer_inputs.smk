# Input functions of rules/transfer.smk (cross-dataset transfer); logic in rrlsrn.pipeline.

TRANSFER = pipeline.transfer_sets(config)
TRANSFER_RUN = f"{RUN}/transfer/{{trainset}}"


def transfer_train_inputs(wildcards):
    names = TRANSFER[wildcards.trainset]
    return {
        "train": training_files("train", names),
        "val": training_files("val", names),
    }


def transfer_model(wildcards):
    return f"{run_dir(wildcards.scale)}/transfer/{wildcards.trainset}/models/{wildcards.method}/best.pt"


def run_operators(wildcards):
    """{test subject: the run's operator}: a transfer row sees the run's own LR images."""
    return {
        subject: config["degradation"]
        for subject in pipeline.subjects_with_role(config, wildcards.dataset, "test")
    }


def transfer_metric_map(wildcards):
    """{row: its metric files}: the run's own models, then each transfer set's."""
    scale = scale_of(wildcards)
    rows = {"run": metric_files(scale, LEARNED[scale] + ["bicubic"])}
    for name in TRANSFER:
        rows[name] = [
            f"{run_dir(scale)}/transfer/{name}/metrics/{method}/{dataset}.tsv"
            for method in LEARNED[scale]
            for dataset in DATASETS
        ]
    return rows


def transfer_files(wildcards):
    return [f for files in transfer_metric_map(wildcards).values() for f in files]


def transfer_outputs():
    """The transfer table and figure of every scale (none without `transfer`)."""
    if not TRANSFER:
        return []
    files = [f"tables/transfer.{ext}" for ext in TABLE_FORMATS]
    files += [
        "tables/transfer_long.csv",
        "figures/transfer.png",
        "figures/transfer.pdf",
    ]
    return [f"{run_dir(scale)}/{f}" for scale in SCALES for f in files]
