"""configs/paper.yaml, the paper reproduction: what it trains on and every job it lists.

Kirby 21 and the MIALSRTK fetal sample are download jobs, so their files need not exist;
NAMIC has no public host, so the tests put 17 tiny NRRD cases in a folder, and a fake
LapSRN_x2.mat makes the imported lapsrn_x2 row part of the run.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from conftest import REPO, job_counts, run_snakemake

from rrlsrn import pipeline
from rrlsrn.data import kirby21
from rrlsrn.data.sources import NAMIC_CASES
from rrlsrn.settings import make_settings

PAPER = REPO / "configs/paper.yaml"
NAMIC_TEST = [f"case{c}" for c in NAMIC_CASES[:12]]  # case01011 .. case01034
NAMIC_TRAIN = [f"case{c}" for c in NAMIC_CASES[12:]]
KIRBY_VAL = ["KKI2009-14", "KKI2009-15", "KKI2009-17", "KKI2009-26"]  # subjects 959, 814
RESCANS_OF_TEST = ["KKI2009-11", "KKI2009-22", "KKI2009-25", "KKI2009-31", "KKI2009-37"]
DISJOINT = "datasets={kirby21: {split_policy: subject_disjoint}}"  # as the config's header


def write_nrrd(path, shape=(4, 4, 2)):
    """A tiny valid NRRD volume (raw int16)."""
    header = (
        f"NRRD0004\ntype: short\ndimension: 3\nsizes: {' '.join(map(str, shape))}\n"
        "spacings: 1 1 1\nencoding: raw\nendian: little\n\n"
    )
    path.write_bytes(header.encode() + np.ones(shape, "<i2").tobytes(order="F"))


def write_fetal_bids(root, n_subjects=8):
    """One tiny stack per subject with its brain mask, BIDS layout (the paper had 8 fetuses)."""
    import nibabel as nib

    for n in range(1, n_subjects + 1):
        sub = f"sub-{n:02d}"
        masks = root / "derivatives/manual_masks" / sub / "anat"
        for folder, name in ((root / sub / "anat", "T2w"), (masks, "T2w_desc-brain_mask")):
            folder.mkdir(parents=True, exist_ok=True)
            image = nib.Nifti1Image(np.ones((4, 4, 2), np.float32), np.eye(4))
            nib.save(image, folder / f"{sub}_run-1_{name}.nii.gz")


@pytest.fixture
def paper_run(tmp_path, monkeypatch):
    """Paths of the paper config pointed into tmp_path: ``snakemake`` arguments, config."""
    monkeypatch.delenv("RRLSRN_LAPSRN_MAT", raising=False)
    namic = tmp_path / "namic"
    namic.mkdir()
    for case in NAMIC_CASES:
        write_nrrd(namic / f"case{case}-t1w.nrrd")
    (tmp_path / "LapSRN_x2.mat").write_bytes(b"listed only")
    local = {
        "results": str(tmp_path / "results"),
        "lapsrn_mat": str(tmp_path / "LapSRN_x2.mat"),
        "datasets": {
            "kirby21": {"path": str(tmp_path / "kirby21")},
            "namic": {"path": str(namic)},
            "fetal": {"path": str(tmp_path / "fetal")},
        },
    }
    (tmp_path / "local.yaml").write_text(yaml.safe_dump(local))
    return ["-n", "--cores", "2", "--configfile", str(PAPER), str(tmp_path / "local.yaml")]


def paper_config(tmp_path, *overrides):
    """The config Snakemake builds from paper.yaml + local.yaml (+ overrides), validated."""
    from snakemake.utils import update_config, validate

    config = yaml.safe_load(PAPER.read_text())
    for override in (yaml.safe_load((tmp_path / "local.yaml").read_text()), *overrides):
        update_config(config, override)
    validate(config, schema=str(REPO / "schemas/config.schema.yaml"))
    return config


def roles(config, dataset):
    return {
        r: pipeline.subjects_with_role(config, dataset, r) for r in (*pipeline.ROLES, "excluded")
    }


def test_paper_config_trains_on_the_papers_data_with_the_papers_settings(tmp_path, paper_run):
    config = paper_config(tmp_path)
    kirby = roles(config, "kirby21")
    assert kirby["test"] == list(kirby21.PAPER_TEST)
    assert kirby["val"] == KIRBY_VAL
    # train: 06..42 less the validation subjects, the test subjects' rescans included
    assert kirby["train"] == sorted(set(kirby21.SESSIONS[5:]) - set(KIRBY_VAL))
    assert set(RESCANS_OF_TEST) <= set(kirby["train"]) and not kirby["excluded"]
    assert roles(config, "namic") == {
        "train": NAMIC_TRAIN,
        "val": [],
        "test": NAMIC_TEST,
        "excluded": [],
    }
    assert roles(config, "fetal")["test"] == [f"sub-01_run-{n}" for n in range(1, 7)]
    assert pipeline.paper_dataset(config, "fetal") == "fetal"

    # The subject-disjoint run: same test and validation sessions, the rescans left out.
    disjoint = roles(
        paper_config(tmp_path, {"datasets": {"kirby21": {"split_policy": "subject_disjoint"}}}),
        "kirby21",
    )
    assert disjoint == {
        **kirby,
        "train": sorted(set(kirby["train"]) - set(RESCANS_OF_TEST)),
        "excluded": RESCANS_OF_TEST,
    }

    assert pipeline.enabled_methods(config, REPO) == config["methods"]  # lapsrn_x2 found
    assert pipeline.learned_methods(config) == [
        "srcnn",
        "fsrcnn",
        "rrlsrn",
        "rrlsrn_no_gdl",
        "rrlsrn_bicubic_bottom",
        "rrlsrn_no_bottom",
    ]
    assert pipeline.ablations_in_run(config, REPO) == ["gdl", "bottom_conv", "no_bottom"]
    inits = {
        m: make_settings("paper", pipeline.method_settings(config, m)).init
        for m in pipeline.learned_methods(config)
    }
    assert inits == {
        "srcnn": "scratch",
        "fsrcnn": "scratch",
        "rrlsrn": "lapsrn_x2",
        "rrlsrn_no_gdl": "lapsrn_x2",
        "rrlsrn_bicubic_bottom": "lapsrn_x2",
        "rrlsrn_no_bottom": "lapsrn_x2",
    }
    assert config["method_specs"]["lrtv"]["params"]["warm_start"] is False


def test_paper_dry_run_lists_every_job(tmp_path, paper_run):
    proc = run_snakemake([*paper_run, "--replace-workflow-config"], tmp_path)
    # 42 Kirby 21 sessions downloaded and prepared (5 test, 4 val, 33 train), 17 NAMIC
    # cases, 6 fetal stacks from one sample download; 6 learned methods trained once on
    # all datasets' training subjects; 14 methods x (5 + 12 + 6) test units = 322,
    # evaluated per method and dataset (14 x 3); one table job; Figs. 2-3 and Fig. 4
    # per dataset; split and manifest per dataset.
    assert job_counts(proc.stdout + proc.stderr) == {
        "kirby21_session": 42,
        "mialsrtk_sample": 1,
        "prepare_subject": 65,
        "split": 3,
        "manifest": 3,
        "data_summary": 1,
        "train": 6,
        "super_resolve": 322,
        "evaluate": 42,
        "tables": 1,
        "example_figures": 3,
        "gdl_figure": 3,
        "training_curves": 1,
        "all": 1,
    }


def test_subject_disjoint_run_neither_downloads_nor_trains_on_rescans(tmp_path, paper_run):
    args = [*paper_run, "--replace-workflow-config", "--config", DISJOINT]
    proc = run_snakemake(args, tmp_path)
    output = proc.stdout + proc.stderr
    counts = job_counts(output)
    assert (counts["kirby21_session"], counts["prepare_subject"]) == (37, 60)
    assert (counts["super_resolve"], counts["evaluate"]) == (322, 42)  # same test sets
    for session in RESCANS_OF_TEST:
        assert f"{session}-MPRAGE.nii" not in output


def test_clinical_fetal_folder_replaces_the_sample(tmp_path, paper_run):
    config = yaml.safe_load(PAPER.read_text())
    del config["datasets"]["fetal"]["download"]  # as the config says for your own scans
    (tmp_path / "clinical.yaml").write_text(yaml.safe_dump(config))
    write_fetal_bids(tmp_path / "fetal")
    args = [*paper_run[:4], str(tmp_path / "clinical.yaml"), *paper_run[5:]]
    proc = run_snakemake([*args, "--replace-workflow-config"], tmp_path)
    counts = job_counts(proc.stdout + proc.stderr)
    assert "mialsrtk_sample" not in counts
    assert counts["prepare_subject"] == 42 + 17 + 8
    assert counts["super_resolve"] == 14 * (5 + 12 + 8)


def test_misspelt_dataset_key_fails_naming_it(tmp_path, paper_run):
    (tmp_path / "typo.yaml").write_text("datasets:\n  kirby21: {split_polcy: paper}\n")
    args = [*paper_run, str(tmp_path / "typo.yaml"), "--replace-workflow-config"]
    proc = run_snakemake(args, tmp_path, check=False)
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert "config: unknown key 'split_polcy' in datasets.kirby21; allowed keys: " in output
    assert "split_policy" in output


def test_kirby21_and_fetal_only_as_the_readme_says(tmp_path, paper_run):
    (tmp_path / "namic").rename(tmp_path / "namic-elsewhere")  # NAMIC not at hand
    args = [*paper_run, "--replace-workflow-config"]
    failed = run_snakemake(args, tmp_path, check=False)
    output = failed.stdout + failed.stderr
    assert failed.returncode != 0 and "dataset 'namic': no NAMIC case found" in output
    proc = run_snakemake([*args, "--config", "datasets={namic: null}"], tmp_path)
    counts = job_counts(proc.stdout + proc.stderr)
    assert counts["prepare_subject"] == 42 + 6  # Kirby 21 and the fetal stacks only
    assert (counts["super_resolve"], counts["evaluate"]) == (14 * (5 + 6), 14 * 2)
    assert "table1to3_kirby21" in proc.stdout and "table1to3_namic" not in proc.stdout
