rule super_resolve:
    input:
        data=f"{RESULTS}/data/{{dataset}}/{{subject}}.npz",
        model=model_input,
    output:
        sr=f"{RUN}/sr/{{method}}/{{dataset}}/{{subject}}.npz",
        runtime=f"{RUN}/runtime/{{method}}/{{dataset}}/{{subject}}.tsv",
    log:
        f"{RUN}/logs/super_resolve/{{method}}/{{dataset}}/{{subject}}.log",
    benchmark:
        f"{RUN}/benchmarks/super_resolve/{{method}}/{{dataset}}/{{subject}}.tsv"
    conda:
        "../envs/rrlsrn.yaml"
    threads: workflow.cores
    params:
        spec=method_spec_params,
        lapsrn_mat=lapsrn_mat,
        scale=scale_of,
        degradation=config["degradation"],
        device=config["training"]["device"],
    script:
        "../workflow_scripts/super_resolve.py"
