"""Snakemake adapter: Fig. 4 (RRLSRN with vs without GDL) of one dataset."""

from pathlib import Path

from rrlsrn.pipeline import log_to

with log_to(snakemake.log[0]):  # noqa: F821
    from rrlsrn.figures import gdl_comparison

    sm = snakemake  # noqa: F821
    choice = gdl_comparison(
        dataset=sm.wildcards.dataset,
        metrics_files=sm.input.metrics,
        data_files=sm.params.data,
        sr_with=sm.params.sr["with"],
        sr_without=sm.params.sr["without"],
        degradation=sm.params.degradation,
        scale=sm.params.scale,
        out=Path(sm.output.png).with_suffix(""),
    )
    print(choice)
