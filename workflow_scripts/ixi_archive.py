"""Snakemake adapter: download one IXI archive and IXI.xls (resumable) and index it."""

from rrlsrn.pipeline import log_to

with log_to(snakemake.log[0]):  # noqa: F821
    from rrlsrn.data import ixi

    sm = snakemake  # noqa: F821
    spec, root, contrast = sm.params.spec, sm.wildcards.ixi_root, sm.wildcards.contrast
    known = spec.get("sha256") or {}
    ixi.fetch_archive(
        root,
        contrast,
        base_url=spec.get("base_url"),
        sha256=known.get(ixi.archive_name(contrast)),
        progress=False,
    )
    ixi.fetch_demographics(
        root, base_url=spec.get("base_url"), sha256=known.get("IXI.xls"), progress=False
    )
