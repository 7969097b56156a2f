"""Snakemake adapter: per-slice metrics of one method on one test subject."""

from rrlsrn.pipeline import log_to
from rrlsrn.steps import evaluate_subject

with log_to(snakemake.log[0]):  # noqa: F821
    sm = snakemake  # noqa: F821
    evaluate_subject(
        sr_file=sm.input.sr,
        data_file=sm.input.data,
        out=sm.output[0],
        method=sm.wildcards.method,
        dataset=sm.wildcards.dataset,
        subject=sm.wildcards.subject,
        shave=sm.params.shave,
    )
