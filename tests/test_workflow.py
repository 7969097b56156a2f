"""The Snakemake workflow, run by subprocess as a user runs it."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, run_snakemake

from rrlsrn.checkpoint import load_model
from rrlsrn.degrade import imresize
from rrlsrn.io import load_npz
from rrlsrn.metrics import psnr


def job_counts(output: str) -> dict[str, int]:
    """Parse the 'Job stats' block of a dry run."""
    counts = {}
    for line in output.splitlines():
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if m and m.group(1) != "total":
            counts[m.group(1)] = int(m.group(2))
    return counts


def test_default_dry_run_lists_every_job(tmp_path):
    proc = run_snakemake(["-n", "--cores", "2", "--config", "lapsrn_mat=null"], tmp_path)
    counts = job_counts(proc.stdout + proc.stderr)
    # 9 adult subjects + 6 fetal stacks prepared; rrlsrn, its two ablation variants,
    # srcnn and fsrcnn trained once; 9 methods (lapsrn_x2 off) x (3 adult test subjects
    # + 6 fetal test stacks); one table job; Figs. 2-3 and Fig. 4 per dataset.
    assert counts == {
        "prepare_subject": 15,
        "split": 2,
        "train": 5,
        "super_resolve": 81,
        "evaluate": 81,
        "tables": 1,
        "example_figures": 2,
        "gdl_figure": 2,
        "training_curves": 1,
        "manifest": 2,
        "data_summary": 1,
        "all": 1,
    }


def test_unknown_config_key_fails_naming_it(tmp_path):
    proc = run_snakemake(["-n", "--cores", "1", "--config", "scael=2"], tmp_path, check=False)
    assert proc.returncode != 0
    assert "scael" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_smoke_workflow_end_to_end(tmp_path):
    run_snakemake(
        [
            "--configfile",
            str(REPO / "configs/smoke.yaml"),
            "--cores",
            "2",
            "--config",
            f"results={tmp_path / 'out'}",
        ],
        tmp_path,
    )
    out = tmp_path / "out"
    table = pd.read_csv(out / "tables/psnr_summary.csv")
    methods = ("bicubic", "cubic_spline", "nmu", "lrtv", "srcnn", "fsrcnn", "rrlsrn")
    assert set(zip(table["dataset"], table["method"], strict=True)) == {
        (d, m) for d in ("embedded_adult", "embedded_fetal") for m in methods
    }
    assert np.isfinite(table["psnr_slice_mean"]).all()
    assert (out / "tables/psnr_summary.md").read_text().count("| embedded_adult") == 7
    rows = table.set_index(["dataset", "method"])
    # The fetal stack is evaluated on its slices that hold brain, inside the manual mask.
    fetal = load_npz(out / "data/embedded_fetal/sub-01_run-1.npz")
    assert rows.loc[("embedded_fetal", "rrlsrn"), "slices"] == len(fetal["hr"]) > 5
    assert np.isfinite(rows.loc[("embedded_fetal", "rrlsrn"), "psnr_mask_subject_mean"])
    assert "\\begin{tabular}" in (out / "tables/psnr_summary.tex").read_text()

    # The bicubic row equals an independent computation from the prepared HR slices.
    hr = load_npz(out / "data/embedded_adult/ds000011-sub-03.npz")["hr"]
    expected = np.mean(
        [float(psnr(np.clip(imresize(imresize(s, 0.5), 2), 0, 1), s, shave=2)) for s in hr]
    )
    got = rows.loc[("embedded_adult", "bicubic"), "psnr_slice_mean"]
    assert got == pytest.approx(expected, abs=1e-3)

    # Per-slice metrics cover every slice; the model and its log are usable.
    metrics = pd.read_csv(out / "metrics/rrlsrn/embedded_adult/ds000011-sub-03.tsv", sep="\t")
    assert len(metrics) == len(hr) and metrics["psnr"].between(10, 80).all()
    model = load_model(out / "models/rrlsrn/best.pt")
    assert model.depth == 11
    log = pd.read_csv(out / "models/rrlsrn/train_log.csv")
    assert list(log["step"]) == [4, 8]
    runtime = pd.read_csv(out / "runtime/rrlsrn/embedded_adult/ds000011-sub-03.tsv", sep="\t")
    assert (runtime["seconds"] > 0).all()
    assert (out / "splits/embedded_adult.tsv").read_text().splitlines()[1:] == [
        "ds000011-sub-01\ttrain",
        "ds000011-sub-02\tval",
        "ds000011-sub-03\ttest",
    ]
    assert (out / "logs/train/rrlsrn.log").stat().st_size > 0
