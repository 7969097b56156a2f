"""Snakemake adapter: write the subject -> train/val/test file of a dataset."""

from rrlsrn.pipeline import log_to, write_split

with log_to(snakemake.log[0]):  # noqa: F821
    write_split(snakemake.output[0], snakemake.params.split)  # noqa: F821
