# Input functions of rules/protocols.smk (degradation protocols); logic in rrlsrn.pipeline.

PROTOCOLS = pipeline.protocol_names(config)
PROTOCOL_RUN = f"{RUN}/protocols/{{protocol}}"


def protocol_folder(scale, protocol):
    """Where a protocol's SR and metrics live (the run's own when it reuses them)."""
    if pipeline.protocol_reuses_run(config, protocol):
        return run_dir(scale)
    return f"{run_dir(scale)}/protocols/{protocol}"


def protocol_metric_map(wildcards):
    """{protocol: its metric files} over the compared methods and datasets."""
    scale = scale_of(wildcards)
    return {
        protocol: [
            f"{protocol_folder(scale, protocol)}/metrics/{method}/{dataset}.tsv"
            for method in COMPARED[scale]
            for dataset in DATASETS
        ]
        for protocol in PROTOCOLS
    }


def protocol_metric_files(wildcards):
    return [f for files in protocol_metric_map(wildcards).values() for f in files]


def protocol_operators(wildcards):
    """{test subject: the operator its LR is made with} under the job's protocol."""
    return {
        subject: pipeline.protocol_degradation(
            config, wildcards.protocol, wildcards.dataset, subject
        )
        for subject in pipeline.subjects_with_role(config, wildcards.dataset, "test")
    }


def protocol_entries():
    return [pipeline.protocol_entry(config, name) for name in PROTOCOLS]


def protocol_outputs():
    """The protocol-sensitivity table and figure of every scale (none without protocols)."""
    if not PROTOCOLS:
        return []
    files = [f"tables/protocol_sensitivity.{ext}" for ext in TABLE_FORMATS]
    files += ["tables/protocol_sensitivity_long.csv"]
    files += [f"figures/protocol_sensitivity.{ext}" for ext in ("png", "pdf")]
    return [f"{run_dir(scale)}/{f}" for scale in SCALES for f in files]
