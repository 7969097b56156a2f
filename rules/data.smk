rule prepare_subject:
    input:
        unpack(subject_inputs),
    output:
        f"{RESULTS}/data/{{dataset}}/{{subject}}.npz",
    log:
        f"{RESULTS}/logs/prepare/{{dataset}}/{{subject}}.log",
    conda:
        "../envs/rrlsrn.yaml"
    params:
        scale=config["scale"],
        axis=slice_axis,
    script:
        "../workflow_scripts/prepare_subject.py"


rule split:
    output:
        f"{RESULTS}/splits/{{dataset}}.tsv",
    log:
        f"{RESULTS}/logs/split/{{dataset}}.log",
    conda:
        "../envs/rrlsrn.yaml"
    params:
        split=dataset_split,
    script:
        "../workflow_scripts/split.py"
