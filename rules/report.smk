rule summary_table:
    input:
        metrics=test_metric_files(),
    output:
        csv=f"{RESULTS}/tables/psnr_summary.csv",
        md=report(
            f"{RESULTS}/tables/psnr_summary.md",
            caption="../report/psnr_summary.rst",
            category="Tables",
        ),
        tex=f"{RESULTS}/tables/psnr_summary.tex",
    log:
        f"{RESULTS}/logs/summary_table.log",
    conda:
        "../envs/rrlsrn.yaml"
    script:
        "../workflow_scripts/summary_table.py"
