rule super_resolve:
    input:
        data=f"{RESULTS}/data/{{dataset}}/{{subject}}.npz",
        model=model_input,
    output:
        sr=f"{RESULTS}/sr/{{method}}/{{dataset}}/{{subject}}.npz",
        runtime=f"{RESULTS}/runtime/{{method}}/{{dataset}}/{{subject}}.tsv",
    log:
        f"{RESULTS}/logs/super_resolve/{{method}}/{{dataset}}/{{subject}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/super_resolve/{{method}}/{{dataset}}/{{subject}}.tsv"
    conda:
        "../envs/rrlsrn.yaml"
    threads: workflow.cores
    params:
        spec=method_spec_params,
        lapsrn_mat=lapsrn_mat,
        scale=config["scale"],
        degradation=config["degradation"],
        device=config["training"]["device"],
    script:
        "../workflow_scripts/super_resolve.py"
