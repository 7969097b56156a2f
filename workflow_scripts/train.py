"""Snakemake adapter: train one learned method with the configured preset (resumable)."""

from rrlsrn.pipeline import log_to

with log_to(snakemake.log[0]):  # noqa: F821
    from rrlsrn.steps import train_method

    sm = snakemake  # noqa: F821
    train_method(
        spec=sm.params.spec,
        preset=sm.params.preset,
        overrides=sm.params.overrides,
        train_files=sm.input.train,
        val_files=sm.input.val,
        checkpoint_dir=sm.params.checkpoint_dir,
        best_out=sm.output.model,
        log_out=sm.output.log_csv,
        scale=sm.params.scale,
        degradation=sm.params.degradation,
        device=sm.params.device,
        threads=sm.threads,
        lapsrn_mat=sm.params.lapsrn_mat,
    )
