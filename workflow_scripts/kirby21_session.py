"""Snakemake adapter: download one Kirby 21 session and extract its MPRAGE safely."""

from pathlib import Path

from rrlsrn.pipeline import log_to

with log_to(snakemake.log[0]):  # noqa: F821
    from rrlsrn.data.kirby21 import fetch_session

    sm = snakemake  # noqa: F821
    session = f"KKI2009-{sm.wildcards.nn}"
    paths = fetch_session(
        session, Path(sm.wildcards.kirby_root), base_url=sm.params.base_url, keep_archive=False
    )
    print(f"{session}: {paths}")
