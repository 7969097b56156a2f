"""Snakemake adapter: PSNR summary table (every method, every test set)."""

from pathlib import Path

from rrlsrn.pipeline import log_to
from rrlsrn.tables import load_metrics, psnr_summary, write_table

with log_to(snakemake.log[0]):  # noqa: F821
    sm = snakemake  # noqa: F821
    table = psnr_summary(load_metrics(sm.input.metrics))
    write_table(
        table,
        Path(sm.output.csv).with_suffix(""),
        caption="PSNR (dB) on held-out test subjects, x2, whole slices "
        "(shave = scale) and inside the brain/head mask",
    )
    print(table.to_string())
