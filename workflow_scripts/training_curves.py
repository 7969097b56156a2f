"""Snakemake adapter: training loss and validation PSNR of every learned model, joined to
the pretraining history of the shipped weights it started from."""

from pathlib import Path

from rrlsrn.pipeline import log_to

with log_to(snakemake.log[0]):  # noqa: F821
    from rrlsrn.figures import training_curves

    sm = snakemake  # noqa: F821
    logs = dict(zip(sm.params.methods, sm.input, strict=True))
    out = Path(sm.output.png).with_suffix("")
    print(training_curves(logs, out, sm.params.histories))
