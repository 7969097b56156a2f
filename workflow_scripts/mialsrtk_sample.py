"""Snakemake adapter: download the public MIALSRTK fetal sample (checked by SHA-256)."""

from rrlsrn.pipeline import log_to

with log_to(snakemake.log[0]):  # noqa: F821
    from rrlsrn.data.mialsrtk import fetch_sample

    sm = snakemake  # noqa: F821
    for path in fetch_sample(sm.wildcards.fetal_root, base_url=sm.params.base_url):
        print(path)
