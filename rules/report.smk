rule tables:
    input:
        metrics=test_metric_files,
        runtimes=test_runtime_files,
    output:
        md=report(
            table_files("md"),
            caption="../report/tables.rst",
            category="Tables",
        ),
        csv=table_files("csv"),
        tex=table_files("tex"),
        long=f"{RUN}/tables/quality_long.csv",
    log:
        f"{RUN}/logs/tables.log",
    conda:
        "../envs/rrlsrn.yaml"
    params:
        benchmarks=test_benchmark_files,
        methods=compared_methods,
        paper_datasets=paper_datasets(),
        scale=scale_of,
    script:
        "../workflow_scripts/tables.py"


rule example_figures:
    input:
        unpack(figure_inputs),
    output:
        example=report(
            f"{RUN}/figures/fig2_examples_{{dataset}}.png",
            caption="../report/fig2_examples.rst",
            category="Figures",
        ),
        example_pdf=f"{RUN}/figures/fig2_examples_{{dataset}}.pdf",
        choice=f"{RUN}/figures/fig2_examples_{{dataset}}.json",
        errors=report(
            f"{RUN}/figures/fig3_error_maps_{{dataset}}.png",
            caption="../report/fig3_error_maps.rst",
            category="Figures",
        ),
        errors_pdf=f"{RUN}/figures/fig3_error_maps_{{dataset}}.pdf",
    log:
        f"{RUN}/logs/figures/examples_{{dataset}}.log",
    conda:
        "../envs/rrlsrn.yaml"
    params:
        data=dataset_test_data,
        sr=dataset_sr_files,
        degradation=config["degradation"],
        scale=scale_of,
    script:
        "../workflow_scripts/example_figures.py"


rule gdl_figure:
    input:
        unpack(gdl_figure_inputs),
    output:
        png=report(
            f"{RUN}/figures/fig4_gdl_{{dataset}}.png",
            caption="../report/fig4_gdl.rst",
            category="Figures",
        ),
        pdf=f"{RUN}/figures/fig4_gdl_{{dataset}}.pdf",
    log:
        f"{RUN}/logs/figures/gdl_{{dataset}}.log",
    conda:
        "../envs/rrlsrn.yaml"
    params:
        data=dataset_test_data,
        sr=gdl_sr_files,
        degradation=config["degradation"],
        scale=scale_of,
    script:
        "../workflow_scripts/gdl_figure.py"


rule training_curves:
    input:
        training_logs,
    output:
        png=report(
            f"{RUN}/figures/training_curves.png",
            caption="../report/training_curves.rst",
            category="Figures",
        ),
        pdf=f"{RUN}/figures/training_curves.pdf",
    log:
        f"{RUN}/logs/figures/training_curves.log",
    conda:
        "../envs/rrlsrn.yaml"
    params:
        methods=learned_in_run,
        histories=shipped_histories,
    script:
        "../workflow_scripts/training_curves.py"
