"""Kill the workflow in the middle of training, run it again: it resumes and ends the same."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import REPO, run_snakemake

from rrlsrn.checkpoint import load_checkpoint

MAX_STEPS = 24  # 6 epochs of 4 steps: a checkpoint every epoch


def write_config(
    path,
    results,
    overrides: str = f"{{max_steps: {MAX_STEPS}}}",
    methods: str = "[bicubic, rrlsrn]",
) -> None:
    """The smoke run cut to one dataset; by default two methods, trained long enough to be
    killed.  ``overrides`` and ``methods`` are YAML text."""
    path.write_text(
        f"""
results: {results}
datasets:
  embedded_adult:
    source: embedded
    subjects: [ds000011-sub-01, ds000011-sub-02, ds000011-sub-03]
    split: {{ds000011-sub-01: train, ds000011-sub-02: val, ds000011-sub-03: test}}
training:
  preset: smoke
  overrides: {overrides}
methods: {methods}
"""
    )


def snakemake_args(config) -> list[str]:
    """The smoke run with ``config`` on top, made only as far as rrlsrn's adult metrics
    (prepare, train, super-resolve, evaluate: what a resume can change; no tables or
    figures, which would only add jobs)."""
    target = config.parent / "out/x2/metrics/rrlsrn/embedded_adult.tsv"
    return ["--configfile", str(REPO / "configs/smoke.yaml"), str(config), "--cores", "2",
            str(target)]  # fmt: skip


@pytest.mark.slow
def test_killed_training_resumes_from_its_checkpoint(tmp_path):
    killed, reference = tmp_path / "killed", tmp_path / "reference"
    for folder in (killed, reference):
        folder.mkdir()
        write_config(folder / "run.yaml", folder / "out")
    last = killed / "out/x2/models/rrlsrn/checkpoints/last.pt"

    # 1. Start the workflow and stop it (SIGTERM, as scancel or Ctrl-C) once training
    #    has written a checkpoint but before it has finished.
    proc = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"),
         *snakemake_args(killed / "run.yaml")],
        cwd=killed,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 600
    stopped_at = None
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if last.exists():
                try:
                    stopped_at = load_checkpoint(last)["step"]
                except Exception:  # being replaced right now: look again
                    stopped_at = None
                if stopped_at is not None and stopped_at < MAX_STEPS:
                    os.killpg(proc.pid, signal.SIGTERM)
                    break
            time.sleep(0.2)
    finally:
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert stopped_at is not None and 0 < stopped_at < MAX_STEPS, "training was not interrupted"
    assert not (killed / "out/x2/models/rrlsrn/best.pt").exists()  # published only when finished

    # 2. Run it again: training resumes from the checkpoint and the run completes.
    run_snakemake([*snakemake_args(killed / "run.yaml"), "--rerun-incomplete"], killed)
    train_log = (killed / "out/x2/logs/train/rrlsrn.log").read_text()
    resumed_at = load_checkpoint(last)["step"]
    assert resumed_at == MAX_STEPS
    assert "resuming rrlsrn from" in train_log and "'start_step': 0" not in train_log

    # 3. An uninterrupted run gives the same model, log and metrics.
    run_snakemake(snakemake_args(reference / "run.yaml"), reference)
    a = load_checkpoint(killed / "out/x2/models/rrlsrn/best.pt")["model"]
    b = load_checkpoint(reference / "out/x2/models/rrlsrn/best.pt")["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    log_csv = killed / "out/x2/models/rrlsrn/train_log.csv"
    steps = [line.split(",")[0] for line in log_csv.read_text().splitlines()[1:]]
    assert steps == [str(4 * k) for k in range(1, MAX_STEPS // 4 + 1)]  # each epoch once
    metrics = "out/x2/metrics/rrlsrn/embedded_adult.tsv"
    assert (killed / metrics).read_text() == (reference / metrics).read_text()
    sr = "out/x2/sr/rrlsrn/embedded_adult/ds000011-sub-03.npz"
    np.testing.assert_array_equal(np.load(killed / sr)["sr"], np.load(reference / sr)["sr"])
