"""Snakemake adapter: extract one IXI subject's volume from the indexed archive."""

from rrlsrn.pipeline import log_to

with log_to(snakemake.log[0]):  # noqa: F821
    from rrlsrn.data import ixi

    sm = snakemake  # noqa: F821
    path = ixi.extract_subject(sm.wildcards.ixi_root, sm.wildcards.contrast, sm.wildcards.subject)
    print(f"{sm.wildcards.subject}: {path}")
