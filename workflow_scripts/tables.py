"""Snakemake adapter: every paper table (Tables 1-6 and the paired tests) of the run."""

from pathlib import Path

from rrlsrn.pipeline import log_to

with log_to(snakemake.log[0]):  # noqa: F821
    from rrlsrn.tables import write_paper_tables

    sm = snakemake  # noqa: F821
    for path in write_paper_tables(
        metric_files=sm.input.metrics,
        runtime_files=sm.input.runtimes,
        benchmark_files=sm.params.benchmarks,
        methods=sm.params.methods,
        paper_datasets=sm.params.paper_datasets,
        out_dir=Path(sm.output.long).parent,
        scale=sm.params.scale,
    ):
        print(path)
