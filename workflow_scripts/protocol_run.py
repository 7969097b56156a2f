"""Snakemake adapter: one method on one dataset's test subjects under one protocol."""

from rrlsrn.pipeline import log_to

with log_to(snakemake.log[0]):  # noqa: F821
    from rrlsrn.protocols import run_protocol

    sm = snakemake  # noqa: F821
    run_protocol(
        method=sm.wildcards.method,
        spec=sm.params.spec,
        data_files=sm.input.data,
        subjects=sm.params.subjects,
        degradations=sm.params.degradations,
        model_file=sm.input.model or None,
        lapsrn_mat=sm.params.lapsrn_mat,
        sr_dir=sm.output.sr,
        runtime_dir=sm.output.runtime,
        metrics_out=sm.output.metrics,
        scale=sm.params.scale,
        dataset=sm.wildcards.dataset,
        shave=sm.params.shave,
        device=sm.params.device,
        threads=sm.threads,
    )
