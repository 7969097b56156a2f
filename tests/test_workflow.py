"""The Snakemake workflow, run by subprocess as a user runs it."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from conftest import REPO, job_counts, run_snakemake
from skimage.metrics import structural_similarity

from rrlsrn import registry
from rrlsrn.checkpoint import load_model
from rrlsrn.degrade import imresize
from rrlsrn.io import load_npz
from rrlsrn.metrics import psnr


def test_default_dry_run_lists_every_job(tmp_path):
    proc = run_snakemake(["-n", "--cores", "2", "--config", "lapsrn_mat=null"], tmp_path)
    counts = job_counts(proc.stdout + proc.stderr)
    # 9 adult subjects + 6 fetal stacks prepared; no training (preset none: the shipped
    # weights); 12 methods (lapsrn_x2 off) x (3 adult test subjects + 6 fetal test
    # stacks), evaluated per method and dataset (12 x 2); one table job; Figs. 2-3 and
    # Fig. 4 per dataset; the training curves of the shipped weights.
    assert counts == {
        "prepare_subject": 15,
        "split": 2,
        "super_resolve": 108,
        "evaluate": 24,
        "tables": 1,
        "example_figures": 2,
        "gdl_figure": 2,
        "manifest": 2,
        "data_summary": 1,
        "training_curves": 1,
        "all": 1,
    }


def test_numbers_nested_in_config_arguments_are_numbers(tmp_path):
    overrides = '{"max_steps": 3, "lr": 1e-4, "grad_clip": null}'
    config = f'training={{"preset": "smoke", "overrides": {overrides}}}'
    proc = run_snakemake(["-n", "--config", config, "methods=[srcnn]"], tmp_path)
    assert job_counts(proc.stdout)["train"] == 1


def test_a_failing_job_leaves_its_traceback_in_its_log(tmp_path):
    # a header that reads (so the plan accepts it) over voxel data cut short
    folder = tmp_path / "scans"
    folder.mkdir()
    nib.save(nib.Nifti1Image(np.ones((32, 32, 8), np.float32), np.eye(4)), folder / "cut.nii")
    with open(folder / "cut.nii", "r+b") as fh:
        fh.truncate(1000)
    config = f'datasets={{"mine": {{"source": "folder", "path": "{folder}"}}}}'
    target = "results/data/mine/cut.npz"
    proc = run_snakemake(["--cores", "1", "--config", config, "--", target], tmp_path, check=False)
    assert proc.returncode != 0
    log = (tmp_path / "results/logs/prepare/mine/cut.log").read_text()
    assert "Traceback (most recent call last):" in log, proc.stdout + proc.stderr
    assert "prepare_volume" in log and "cut.nii" in log
    assert not (tmp_path / target).exists()


def test_script_jobs_import_rrlsrn_from_the_workflow_folder(tmp_path):
    # A job in a per-rule conda env runs a Python that lacks rrlsrn; Snakemake's script
    # preamble appends the workflow folder to its sys.path.  Rerun a kept job script with
    # this Python isolated from its site-packages (where rrlsrn is installed).
    target = tmp_path / "results/splits/embedded_adult.tsv"
    run_snakemake(
        ["--cores", "1", "--skip-script-cleanup", "--", str(target.relative_to(tmp_path))], tmp_path
    )
    (script,) = (tmp_path / ".snakemake/scripts").glob("*.split.py")
    extended = re.search(r"sys\.path\.extend\((\[.*?\])\)", script.read_text())
    assert str(REPO) in ast.literal_eval(extended.group(1))
    isolated = [sys.executable, "-I", "-S"]
    alone = subprocess.run([*isolated, "-c", "import rrlsrn"], capture_output=True, cwd=tmp_path)
    assert alone.returncode != 0  # this Python alone does not find rrlsrn
    target.unlink()
    subprocess.run([*isolated, str(script)], cwd=tmp_path, check=True, capture_output=True)
    assert target.read_text().startswith("subject\trole\n")


@pytest.mark.slow
def test_smoke_workflow_end_to_end(tmp_path):
    args = [
        "--configfile",
        str(REPO / "configs/smoke.yaml"),
        "--cores",
        "2",
        "--config",
        f"results={tmp_path / 'out'}",
    ]
    run_snakemake(args, tmp_path)
    out = tmp_path / "out"
    # every registered method but the imported one (its weights are not shipped) ran
    runnable = [m for m in registry.BUILT_IN if m.kind != "imported"]
    for method in runnable:
        for dataset in ("embedded_adult", "embedded_fetal"):
            assert (out / f"x2/metrics/{method.name}/{dataset}.tsv").stat().st_size > 0
    labels = [m.label for m in runnable if not m.ablation]
    assert labels[:6] == ["Bicubic", "Cubic spline", "NMU", "NMU 3D", "NMU (as published)", "LRTV"]
    assert labels[-1] == "RRLSRN"
    for dataset in ("embedded_adult", "embedded_fetal"):
        table = pd.read_csv(out / f"x2/tables/table1to3_{dataset}.csv", dtype=str)
        assert list(table.columns) == ["Statistic", "Metric", *labels]  # no paper columns
        rows = table.set_index(["Statistic", "Metric"])
        means = rows.loc[("Mean", "PSNR")].astype(float)
        assert means.between(15, 60).all(), means
        assert rows.loc[("Mean", "SSIM (mask)")].astype(float).between(0, 1).all()
    assert "\\begin{tabular}" in (out / "x2/tables/table1to3_embedded_adult.tex").read_text()

    # The bicubic PSNR / SSIM equal an independent computation from the prepared HR slices
    # (scikit-image SSIM with Wang et al.'s parameters, on the shaved slices).
    hr = load_npz(out / "data/embedded_adult/ds000011-sub-03.npz")["hr"]
    bicubic = [np.clip(imresize(imresize(s, 0.5), 2), 0, 1) for s in hr]
    expected_psnr = np.mean([float(psnr(b, s, shave=2)) for b, s in zip(bicubic, hr, strict=True)])
    expected_ssim = np.mean(
        [
            structural_similarity(
                b[2:-2, 2:-2].astype(np.float64),
                s[2:-2, 2:-2].astype(np.float64),
                data_range=1,
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
            )
            for b, s in zip(bicubic, hr, strict=True)
        ]
    )
    adult = pd.read_csv(out / "x2/tables/table1to3_embedded_adult.csv", dtype=str)
    adult = adult.set_index(["Statistic", "Metric"])
    assert float(adult.loc[("Mean", "PSNR"), "Bicubic"]) == pytest.approx(expected_psnr, abs=6e-3)
    assert float(adult.loc[("Mean", "SSIM"), "Bicubic"]) == pytest.approx(expected_ssim, abs=6e-5)

    # Tables 4-6 and the paired tests
    gdl = pd.read_csv(out / "x2/tables/table4_gdl.csv", dtype=str)
    assert {"ds000011-sub-03", "sub-01_run-1", "01"} <= set(gdl["Subject"])
    bottom = pd.read_csv(out / "x2/tables/table5_bottom_conv.csv", dtype=str)
    assert "PSNR without bottom transposed conv" in bottom.columns
    runtime = pd.read_csv(out / "x2/tables/table6_runtime.csv", dtype=str)
    own = runtime[runtime["Timing"] == "per slice (method only)"].set_index("Dataset")
    assert set(own.index) == {"embedded_adult", "embedded_fetal"}
    assert (own["RRLSRN"].astype(float) > 0).all()
    assert set(pd.read_csv(out / "x2/tables/paired_tests.csv")["Method"]) == set(labels[:-1])

    # Figures 2-4 and the training curves, PNG + PDF; the chosen slice is recorded
    for stem in ("fig2_examples", "fig3_error_maps", "fig4_gdl"):
        for dataset in ("embedded_adult", "embedded_fetal"):
            for ext in ("png", "pdf"):
                assert (out / f"x2/figures/{stem}_{dataset}.{ext}").stat().st_size > 1000
    assert (out / "x2/figures/training_curves.png").read_bytes()[:4] == b"\x89PNG"
    choice = json.loads((out / "x2/figures/fig2_examples_embedded_fetal.json").read_text())
    assert choice["subject"] == "sub-01_run-1"

    # The HTML report gathers the tables and figures with their descriptions.
    report = out / "report.html"
    run_snakemake([*args, "--report", str(report)], tmp_path)
    html = report.read_text()
    assert "table1to3_embedded_adult.md" in html and "fig2_examples_embedded_fetal.png" in html
    assert "median RRLSRN PSNR" in html  # a figure caption (report/fig2_examples.rst)

    # The fetal stack is evaluated on its slices that hold brain, inside the manual mask.
    fetal = load_npz(out / "data/embedded_fetal/sub-01_run-1.npz")
    fetal_metrics = pd.read_csv(out / "x2/metrics/rrlsrn/embedded_fetal.tsv", sep="\t")
    fetal_metrics = fetal_metrics[fetal_metrics["subject"] == "sub-01_run-1"]
    assert len(fetal_metrics) == len(fetal["hr"]) > 5
    assert np.isfinite(fetal_metrics["psnr_mask"]).all()
    assert fetal_metrics["ssim_mask"].between(0, 1).all()

    # Per-slice metrics cover every slice; the model and its log are usable.
    metrics = pd.read_csv(out / "x2/metrics/rrlsrn/embedded_adult.tsv", sep="\t")
    metrics = metrics[metrics["subject"] == "ds000011-sub-03"]
    assert len(metrics) == len(hr) and metrics["psnr"].between(10, 80).all()
    model = load_model(out / "x2/models/rrlsrn/best.pt")
    assert model.depth == 11
    log = pd.read_csv(out / "x2/models/rrlsrn/train_log.csv")
    assert list(log["step"]) == [4, 8]
    runtime = pd.read_csv(out / "x2/runtime/rrlsrn/embedded_adult/ds000011-sub-03.tsv", sep="\t")
    assert (runtime["seconds"] > 0).all()
    assert (out / "splits/embedded_adult.tsv").read_text().splitlines()[1:] == [
        "ds000011-sub-01\ttrain",
        "ds000011-sub-02\tval",
        "ds000011-sub-03\ttest",
    ]
    assert (out / "x2/logs/train/rrlsrn.log").stat().st_size > 0
