rule evaluate:
    input:
        sr=lambda wildcards: test_unit_files("sr", wildcards, "npz"),
        data=lambda wildcards: test_unit_files("data", wildcards, "npz"),
    output:
        f"{RUN}/metrics/{{method}}/{{dataset}}.tsv",
    log:
        f"{RUN}/logs/evaluate/{{method}}/{{dataset}}.log",
    conda:
        "../envs/rrlsrn.yaml"
    params:
        subjects=lambda wildcards: pipeline.subjects_with_role(
            config, wildcards.dataset, "test"
        ),
        shave=shave_of,
    script:
        "../workflow_scripts/evaluate.py"
