# Degradation protocols (config `protocols:`): the run's compared methods, with the same
# models, run again on LR test images made by each protocol, into
# RESULTS/x<scale>/protocols/<protocol>/; a protocol that is the run's own operator without
# noise reuses the run's results. One job per protocol, method and dataset super-resolves
# and scores every test subject (per-subject jobs would mostly pay for starting Python).
# Logic: rrlsrn.pipeline (which operator, which seed) and rrlsrn.protocols.


rule protocol_run:
    input:
        data=lambda wildcards: test_unit_files("data", wildcards, "npz"),
        model=model_input,
    output:
        sr=directory(f"{PROTOCOL_RUN}/sr/{{method}}/{{dataset}}"),
        runtime=directory(f"{PROTOCOL_RUN}/runtime/{{method}}/{{dataset}}"),
        metrics=f"{PROTOCOL_RUN}/metrics/{{method}}/{{dataset}}.tsv",
    log:
        f"{PROTOCOL_RUN}/logs/run/{{method}}/{{dataset}}.log",
    benchmark:
        f"{PROTOCOL_RUN}/benchmarks/run/{{method}}/{{dataset}}.tsv"
    wildcard_constraints:
        protocol=r"[A-Za-z0-9][A-Za-z0-9_-]*",
    conda:
        "../envs/rrlsrn.yaml"
    threads: workflow.cores
    params:
        subjects=lambda wildcards: pipeline.subjects_with_role(
            config, wildcards.dataset, "test"
        ),
        spec=method_spec_params,
        lapsrn_mat=lapsrn_mat,
        scale=scale_of,
        degradations=protocol_operators,
        device=config["training"]["device"],
        shave=shave_of,
    script:
        "../workflow_scripts/protocol_run.py"


rule protocol_sensitivity:
    input:
        protocol_metric_files,
    output:
        md=report(
            f"{RUN}/tables/protocol_sensitivity.md",
            caption="../report/protocol_sensitivity.rst",
            category="Protocols",
        ),
        csv=f"{RUN}/tables/protocol_sensitivity.csv",
        tex=f"{RUN}/tables/protocol_sensitivity.tex",
        long=f"{RUN}/tables/protocol_sensitivity_long.csv",
        png=report(
            f"{RUN}/figures/protocol_sensitivity.png",
            caption="../report/protocol_sensitivity.rst",
            category="Protocols",
        ),
        pdf=f"{RUN}/figures/protocol_sensitivity.pdf",
    log:
        f"{RUN}/logs/protocol_sensitivity.log",
    conda:
        "../envs/rrlsrn.yaml"
    params:
        metric_files=protocol_metric_map,
        entries=protocol_entries(),
        methods=compared_methods,
        scale=scale_of,
    script:
        "../workflow_scripts/protocol_sensitivity.py"
