"""Seconds to plan (``snakemake -n``) a 580-subject IXI config and the paper config.

    python benchmarks/bench_planning.py [--repeats 3] [--subjects 580] [--out FILE.json]

The IXI config plans every method of the default run on all subjects of an IXI T1 index
(the index is written here with made-up scan codes and offsets: planning reads only the
index, never the archive).  The paper config plans with stand-in NAMIC files (planning
only checks that they exist) and no Kirby 21 or fetal data (planned as downloads).  Each
plan is timed from the command line, as a user runs it; the median of ``--repeats`` runs
is reported.  Note: when SLURM's client is installed but no controller answers,
Snakemake's SLURM plug-in waits about 9 s in ``scontrol`` at every start; run with the
controller up (or without the client) to time the workflow itself.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def write_ixi_index(root: Path, subjects: int) -> None:
    """An IXI T1 index of ``subjects`` subjects over the three sites."""
    from rrlsrn.data import ixi

    rng = random.Random(0)
    sites = ixi.SITES
    members = []
    for n in range(2, 2 + subjects):
        subject = f"IXI{n:03d}-{sites[n % 3]}-{rng.randint(0, 9999):04d}"
        offset = 512 + (n - 2) * 8_000_512
        members.append(ixi.Member(f"{subject}-T1.nii.gz", subject, sites[n % 3], offset, 8_000_000))
    ixi.write_index(root, "T1", members)


def plan_seconds(args: list[str], cwd: Path, repeats: int) -> tuple[float, int]:
    """Median wall seconds of ``snakemake -n ARGS`` and the number of jobs planned."""
    times, jobs = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-n", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        )
        times.append(time.perf_counter() - start)
        jobs = int(proc.stdout.split("\ntotal", 1)[1].split()[0])
    return statistics.median(times), jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--subjects", type=int, default=580)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    results = {"machine": platform.platform(), "python": platform.python_version()}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_ixi_index(work / "data/ixi", args.subjects)
        ixi = {"results": "results-ixi", "datasets": {"ixi": {"source": "ixi", "path": "data/ixi"}}}
        (work / "ixi.yaml").write_text(yaml.safe_dump(ixi))
        seconds, jobs = plan_seconds(["--configfile", "ixi.yaml"], work, args.repeats)
        results["ixi"] = {"subjects": args.subjects, "jobs": jobs, "seconds": round(seconds, 2)}
        namic = work / "data/namic"
        namic.mkdir(parents=True)
        for case in yaml.safe_load((REPO / "configs/paper.yaml").read_text())["datasets"]["namic"][
            "subjects"
        ]:
            (namic / f"{case}-t1w.nrrd").write_bytes(b"stand-in")
        paper = ["--configfile", str(REPO / "configs/paper.yaml"), "--replace-workflow-config"]
        seconds, jobs = plan_seconds(paper, work, args.repeats)
        results["paper"] = {"jobs": jobs, "seconds": round(seconds, 2)}
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
