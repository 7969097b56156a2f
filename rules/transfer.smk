# Cross-dataset transfer (config `transfer:`): the run's learned methods trained once more
# on each named training set, into RESULTS/x<scale>/transfer/<name>/, run on every test
# dataset, and the transfer table: rows = training data (the run's own, then each set),
# columns = test datasets, cells = PSNR gain over bicubic with its 95% CI.
# Logic: rrlsrn.pipeline (which datasets) and rrlsrn.transfer (the table and figure).


use rule train as transfer_train with:
    input:
        unpack(transfer_train_inputs),
    output:
        model=f"{TRANSFER_RUN}/models/{{method}}/best.pt",
        log_csv=f"{TRANSFER_RUN}/models/{{method}}/train_log.csv",
    log:
        f"{TRANSFER_RUN}/logs/train/{{method}}.log",
    benchmark:
        f"{TRANSFER_RUN}/benchmarks/train/{{method}}.tsv"
    params:
        checkpoint_dir=f"{TRANSFER_RUN}/models/{{method}}/checkpoints",
        spec=method_spec_params,
        preset=config["training"]["preset"],
        overrides=training_overrides,
        device=config["training"]["device"],
        scale=scale_of,
        degradation=config["degradation"],
        lapsrn_mat=lapsrn_mat,


use rule protocol_run as transfer_run with:
    input:
        data=lambda wildcards: test_unit_files("data", wildcards, "npz"),
        model=transfer_model,
    output:
        sr=directory(f"{TRANSFER_RUN}/sr/{{method}}/{{dataset}}"),
        runtime=directory(f"{TRANSFER_RUN}/runtime/{{method}}/{{dataset}}"),
        metrics=f"{TRANSFER_RUN}/metrics/{{method}}/{{dataset}}.tsv",
    log:
        f"{TRANSFER_RUN}/logs/run/{{method}}/{{dataset}}.log",
    benchmark:
        f"{TRANSFER_RUN}/benchmarks/run/{{method}}/{{dataset}}.tsv"
    params:
        subjects=lambda wildcards: pipeline.subjects_with_role(
            config, wildcards.dataset, "test"
        ),
        spec=method_spec_params,
        lapsrn_mat=lapsrn_mat,
        scale=scale_of,
        degradations=run_operators,
        device=config["training"]["device"],
        shave=shave_of,


rule transfer_table:
    input:
        transfer_files,
    output:
        md=report(
            f"{RUN}/tables/transfer.md",
            caption="../report/transfer.rst",
            category="Transfer",
        ),
        csv=f"{RUN}/tables/transfer.csv",
        tex=f"{RUN}/tables/transfer.tex",
        long=f"{RUN}/tables/transfer_long.csv",
        png=report(
            f"{RUN}/figures/transfer.png",
            caption="../report/transfer.rst",
            category="Transfer",
        ),
        pdf=f"{RUN}/figures/transfer.pdf",
    log:
        f"{RUN}/logs/transfer_table.log",
    conda:
        "../envs/rrlsrn.yaml"
    params:
        metric_files=transfer_metric_map,
        rows={"run": pipeline.training_datasets(config), **TRANSFER},
        methods=learned_in_run,
        scale=scale_of,
    script:
        "../workflow_scripts/transfer_table.py"
