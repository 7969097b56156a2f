"""Snakemake adapter: the transfer table and figure of one scale of the run."""

from pathlib import Path

from rrlsrn.pipeline import log_to

with log_to(snakemake.log[0]):  # noqa: F821
    from rrlsrn.transfer import write_transfer

    sm = snakemake  # noqa: F821
    for path in write_transfer(
        metric_files=sm.params.metric_files,
        rows=sm.params.rows,
        methods=sm.params.methods,
        table_stem=Path(sm.output.csv).with_suffix(""),
        long_out=sm.output.long,
        figure_stem=Path(sm.output.png).with_suffix(""),
        scale=sm.params.scale,
    ):
        print(path)
