rule train:
    input:
        unpack(train_inputs),
    output:
        model=f"{RESULTS}/models/{{method}}/best.pt",
        log_csv=f"{RESULTS}/models/{{method}}/train_log.csv",
    log:
        f"{RESULTS}/logs/train/{{method}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{{method}}.tsv"
    wildcard_constraints:
        method="|".join(pipeline.learned_methods(config)) or "NONE",
    conda:
        "../envs/rrlsrn.yaml"
    threads: workflow.cores
    params:
        checkpoint_dir=f"{RESULTS}/models/{{method}}/checkpoints",
        spec=method_spec_params,
        preset=config["training"]["preset"],
        overrides=training_overrides,
        device=config["training"]["device"],
        scale=config["scale"],
        degradation=config["degradation"],
        lapsrn_mat=lapsrn_mat,
    script:
        "../workflow_scripts/train.py"


rule pretrain_all:
    input:
        expand(
            f"{RESULTS}/models/{{method}}/best.pt",
            method=pipeline.learned_methods(config),
        ),
