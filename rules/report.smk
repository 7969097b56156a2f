rule summary_table:
    input:
        metrics=test_metric_files(),
    output:
        csv=f"{RESULTS}/tables/psnr_summary.csv",
        md=f"{RESULTS}/tables/psnr_summary.md",
        tex=f"{RESULTS}/tables/psnr_summary.tex",
    log:
        f"{RESULTS}/logs/summary_table.log",
    conda:
        "../envs/rrlsrn.yaml"
    script:
        "../workflow_scripts/summary_table.py"
