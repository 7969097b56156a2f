rule evaluate:
    input:
        sr=lambda wildcards: test_unit_files("sr", wildcards, "npz"),
        data=lambda wildcards: test_unit_files("data", wildcards, "npz"),
    output:
        f"{RESULTS}/metrics/{{method}}/{{dataset}}.tsv",
    log:
        f"{RESULTS}/logs/evaluate/{{method}}/{{dataset}}.log",
    conda:
        "../envs/rrlsrn.yaml"
    params:
        subjects=lambda wildcards: pipeline.subjects_with_role(
            config, wildcards.dataset, "test"
        ),
        shave=config["evaluation"]["shave"],
    script:
        "../workflow_scripts/evaluate.py"
