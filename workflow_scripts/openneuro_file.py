"""Snakemake adapter: download one OpenNeuro file of the pinned listing, size and MD5 checked."""

from rrlsrn.pipeline import log_to

with log_to(snakemake.log[0]):  # noqa: F821
    from rrlsrn.data import openneuro

    sm = snakemake  # noqa: F821
    obj = sm.params.obj
    root = f"{sm.wildcards.openneuro_root}/{sm.wildcards.accession}"
    s3 = openneuro.S3Object(obj["key"], obj["size"], obj["etag"])
    path = openneuro.fetch_object(
        root, obj["dataset"], s3, base_url=obj["base_url"], progress=False
    )
    print(f"{obj['key']}: {path}")
