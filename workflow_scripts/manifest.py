"""Snakemake adapter: provenance of every prepared file of one dataset."""

from rrlsrn.pipeline import log_to

with log_to(snakemake.log[0]):  # noqa: F821
    from rrlsrn.data.summary import manifest
    from rrlsrn.io import write_text_atomic

    sm = snakemake  # noqa: F821
    files = dict(zip(sm.params.units, sm.input, strict=True))
    table = manifest(files, sm.params.split, sm.wildcards.dataset, sm.params.facts)
    write_text_atomic(sm.output[0], table.to_csv(sep="\t", index=False))
