"""Snakemake adapter: Fig. 2 (example slices) and Fig. 3 (error maps) of one dataset."""

from pathlib import Path

from rrlsrn.pipeline import log_to

with log_to(snakemake.log[0]):  # noqa: F821
    from rrlsrn.figures import dataset_figures

    sm = snakemake  # noqa: F821
    choice = dataset_figures(
        dataset=sm.wildcards.dataset,
        metrics_files=sm.input.metrics,
        data_files=sm.params.data,
        sr_files=sm.params.sr,
        degradation=sm.params.degradation,
        scale=sm.params.scale,
        example_out=Path(sm.output.example).with_suffix(""),
        error_out=Path(sm.output.errors).with_suffix(""),
    )
    print(choice)
