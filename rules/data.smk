rule prepare_subject:
    input:
        subject_volume,
    output:
        f"{RESULTS}/data/{{dataset}}/{{subject}}.npz",
    conda:
        "../envs/rrlsrn.yaml"
    log:
        f"{RESULTS}/logs/prepare/{{dataset}}/{{subject}}.log",
    params:
        scale=config["scale"],
        axis=slice_axis,
    script:
        "../workflow_scripts/prepare_subject.py"


rule split:
    output:
        f"{RESULTS}/splits/{{dataset}}.tsv",
    conda:
        "../envs/rrlsrn.yaml"
    log:
        f"{RESULTS}/logs/split/{{dataset}}.log",
    params:
        split=dataset_split,
    script:
        "../workflow_scripts/split.py"
