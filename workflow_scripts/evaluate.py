"""Snakemake adapter: per-slice metrics of one method on one dataset's test subjects."""

from rrlsrn.pipeline import log_to

with log_to(snakemake.log[0]):  # noqa: F821
    from rrlsrn.steps import evaluate_method

    sm = snakemake  # noqa: F821
    evaluate_method(
        sr_files=sm.input.sr,
        data_files=sm.input.data,
        subjects=sm.params.subjects,
        out=sm.output[0],
        method=sm.wildcards.method,
        dataset=sm.wildcards.dataset,
        shave=sm.params.shave,
    )
