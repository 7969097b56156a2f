"""The smoke workflow through a real single-node SLURM cluster (.ci/slurm_cluster.sh)
with the executor plugin and profiles/slurm-test."""

from __future__ import annotations

import collections
import os
import re
import subprocess
import time

import pytest
from conftest import REPO, run_snakemake

CLUSTER_SCRIPT = REPO / ".ci/slurm_cluster.sh"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not hasattr(os, "geteuid") or os.geteuid() != 0,
        reason="starting the SLURM test cluster needs root",
    ),
    pytest.mark.skipif(
        not CLUSTER_SCRIPT.is_file() or not os.access(CLUSTER_SCRIPT, os.R_OK),
        reason=".ci/slurm_cluster.sh cannot be executed",
    ),
]


@pytest.fixture(scope="module")
def slurm_cluster() -> None:
    """Install/start the cluster (idempotent: seconds when it already runs)."""
    proc = subprocess.run(
        ["bash", str(CLUSTER_SCRIPT)], capture_output=True, text=True, timeout=900
    )
    if proc.returncode != 0:
        pytest.fail(f".ci/slurm_cluster.sh failed:\n{proc.stdout}\n{proc.stderr}")


def test_smoke_workflow_through_slurm(slurm_cluster, tmp_path):
    out = tmp_path / "out"
    args = [
        "--profile",
        str(REPO / "profiles/slurm-test"),
        "--configfile",
        str(REPO / "configs/smoke.yaml"),
        "--config",
        f"results={out}",
        # two methods keep the run short (each SLURM job costs ~10 s of start and polling)
        "methods=[bicubic, rrlsrn]",
    ]
    start = time.monotonic()
    proc = run_snakemake(args, tmp_path, timeout=1800)
    wall = time.monotonic() - start
    print(f"\nSLURM smoke run: {wall:.0f} s wall time")

    # The main outputs
    for dataset in ("embedded_adult", "embedded_fetal"):
        assert (out / f"x2/tables/table1to3_{dataset}.csv").stat().st_size > 0
        for stem in ("fig2_examples", "fig3_error_maps"):
            assert (out / f"x2/figures/{stem}_{dataset}.png").stat().st_size > 1000
    assert (out / "x2/metrics/rrlsrn/embedded_adult.tsv").stat().st_size > 0
    assert (out / "x2/metrics/rrlsrn/embedded_fetal.tsv").stat().st_size > 0
    for name in ("table4_gdl", "table5_bottom_conv", "table6_runtime", "paired_tests"):
        assert (out / f"x2/tables/{name}.csv").stat().st_size > 0
    assert (out / "x2/figures/training_curves.png").read_bytes()[:4] == b"\x89PNG"

    # The jobs really went through SLURM: the plugin names every job after the run ID and
    # puts rule_<rule>[_wildcards_...] into its comment. MinJobAge=600 keeps finished jobs
    # visible to squeue (no accounting storage, so no sacct).
    log = proc.stdout + proc.stderr
    match = re.search(r"SLURM run ID: (\S+)", log)
    assert match, log[-4000:]
    run_id = match.group(1)
    assert run_id.startswith("rrlsrntest_")
    squeue = subprocess.run(
        ["squeue", "--states=all", "--noheader", f"--name={run_id}", "--format=%i|%k|%T"],
        capture_output=True,
        text=True,
        check=True,
    )
    jobs = [line.split("|") for line in squeue.stdout.splitlines() if line.strip()]
    rules = collections.Counter(
        re.match(r"rule_([a-z0-9_]+?)(_wildcards_|$)", c)[1] for _, c, _ in jobs
    )
    states = collections.Counter(state for _, _, state in jobs)
    print(f"SLURM jobs of run {run_id}: {sum(rules.values())}; {dict(rules)}; {dict(states)}")
    # 2 methods x (1 adult test subject + 1 fetal stack), evaluated per method and
    # dataset; rrlsrn trained once
    assert rules["train"] == 1, rules
    assert rules["super_resolve"] == 4 and rules["evaluate"] == 4, rules
    assert rules["tables"] == 1 and rules["example_figures"] == 2, rules
    assert set(states) == {"COMPLETED"}, states
