rule evaluate:
    input:
        sr=f"{RESULTS}/sr/{{method}}/{{dataset}}/{{subject}}.npz",
        data=f"{RESULTS}/data/{{dataset}}/{{subject}}.npz",
    output:
        f"{RESULTS}/metrics/{{method}}/{{dataset}}/{{subject}}.tsv",
    log:
        f"{RESULTS}/logs/evaluate/{{method}}/{{dataset}}/{{subject}}.log",
    conda:
        "../envs/rrlsrn.yaml"
    params:
        shave=config["evaluation"]["shave"],
    script:
        "../workflow_scripts/evaluate.py"
