rule train:
    input:
        unpack(train_inputs),
    output:
        model=f"{RUN}/models/{{method}}/best.pt",
        log_csv=f"{RUN}/models/{{method}}/train_log.csv",
    log:
        f"{RUN}/logs/train/{{method}}.log",
    benchmark:
        f"{RUN}/benchmarks/train/{{method}}.tsv"
    wildcard_constraints:
        method="|".join(TRAINED) or "NONE",
    conda:
        "../envs/rrlsrn.yaml"
    threads: workflow.cores
    params:
        checkpoint_dir=f"{RUN}/models/{{method}}/checkpoints",
        spec=method_spec_params,
        preset=config["training"]["preset"],
        overrides=training_overrides,
        device=config["training"]["device"],
        scale=scale_of,
        degradation=config["degradation"],
        lapsrn_mat=lapsrn_mat,
    script:
        "../workflow_scripts/train.py"


rule pretrain_all:
    input:
        [
            f"{run_dir(scale)}/models/{method}/best.pt"
            for scale in SCALES
            for method in pipeline.weights_to_make(config, scale, LEARNED[scale])
        ],
