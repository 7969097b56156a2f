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


rule kirby21_session:
    output:
        "{kirby_root}/KKI2009-{nn}/KKI2009-{nn}-MPRAGE.nii",
    log:
        "{kirby_root}/logs/KKI2009-{nn}.log",
    wildcard_constraints:
        nn=r"\d\d",
    retries: 3
    conda:
        "../envs/rrlsrn.yaml"
    params:
        base_url=kirby21_base_url,
    script:
        "../workflow_scripts/kirby21_session.py"
