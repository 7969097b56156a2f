"""Snakemake adapter: super-resolve one test subject with one method, timing each slice."""

from rrlsrn.pipeline import log_to

with log_to(snakemake.log[0]):  # noqa: F821
    from rrlsrn.steps import super_resolve_subject

    sm = snakemake  # noqa: F821
    super_resolve_subject(
        method=sm.wildcards.method,
        spec=sm.params.spec,
        data_file=sm.input.data,
        model_file=sm.input.model or None,
        lapsrn_mat=sm.params.lapsrn_mat,
        sr_out=sm.output.sr,
        runtime_out=sm.output.runtime,
        scale=sm.params.scale,
        degradation=sm.params.degradation,
        device=sm.params.device,
        threads=sm.threads,
        dataset=sm.wildcards.dataset,
        subject=sm.wildcards.subject,
    )
