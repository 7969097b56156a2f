"""Snakemake adapter: the data summary table of every dataset in the run."""

from pathlib import Path

from rrlsrn.pipeline import log_to

with log_to(snakemake.log[0]):  # noqa: F821
    from rrlsrn.data.summary import read_manifest, summary
    from rrlsrn.tables import write_table

    sm = snakemake  # noqa: F821
    table = summary([read_manifest(f) for f in sm.input])
    write_table(
        table,
        Path(sm.output.csv).with_suffix(""),
        caption="Data: units, slices per role, slice and voxel sizes, intensity clips, sites, "
        "contrasts and licences",
    )
    print(table.to_string())
