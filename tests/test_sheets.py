"""Sample sheets (units.tsv): the seeded person split, reading and drafting sheets, the
``sheet`` source in the pipeline, ``rrlsrn data sheet`` and one Snakemake dry run."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import job_counts, run_snakemake

from rrlsrn import pipeline
from rrlsrn.cli import main
from rrlsrn.data.sheets import SheetError, contrast_in_name, draft_sheet, read_sheet
from rrlsrn.data.splits import person_split

HEADER = "subject\tvolume\tmask\trole"


def write_nifti(path: Path, shape=(8, 8, 4), seed: int = 0) -> Path:
    """A tiny real NIfTI volume of random float32 voxels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.random.default_rng(seed).random(shape, dtype=np.float32)
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    return path


def write_sheet(path: Path, *lines: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def roles_by_person(rows) -> dict[str, set[str]]:
    """person -> the roles of their units (excluded units left out)."""
    out: dict[str, set[str]] = {}
    for row in rows.values():
        if row.role != "excluded":
            out.setdefault(row.person, set()).add(row.role)
    return out


# ---------------------------------------------------------------- person_split


@pytest.mark.parametrize(
    ("persons", "val", "test", "expected"),
    [
        # round(0.2 * 10) = 2 test, round(0.1 * 10) = 1 val, 7 train
        (10, 0.1, 0.2, {"train": 7, "val": 1, "test": 2}),
        # round(0.2 * 5) = 1 test; round(0.1 * 5) = round(0.5) = 0, raised to 1 val
        (5, 0.1, 0.2, {"train": 3, "val": 1, "test": 1}),
        # 0.6 -> 1 test, 0.3 -> 0 raised to 1 val: one training person left
        (3, 0.1, 0.2, {"train": 1, "val": 1, "test": 1}),
        # a zero fraction draws nobody
        (4, 0.0, 0.5, {"train": 2, "test": 2}),
        (20, 0.25, 0.25, {"train": 10, "val": 5, "test": 5}),
        # round(2.1) = 2 of each
        (7, 0.3, 0.3, {"train": 3, "val": 2, "test": 2}),
    ],
)
def test_person_split_draws_the_counts_worked_out_by_hand(persons, val, test, expected):
    units = {f"u{i:02d}": f"p{i:02d}" for i in range(persons)}
    for seed in (0, 1, 7):
        split = person_split(units, val_fraction=val, test_fraction=test, seed=seed)
        assert set(split) == set(units)
        assert dict(Counter(split.values())) == expected


def test_every_unit_of_a_person_gets_the_persons_role():
    # 6 persons with 1 to 3 units each: round(1.2) = 1 test, round(0.6) = 1 val person
    units = {f"p{p}-scan{s}": f"p{p}" for p in range(6) for s in range(1 + p % 3)}
    for seed in range(10):
        split = person_split(units, seed=seed)
        role_of: dict[str, set[str]] = {}
        for unit, role in split.items():
            role_of.setdefault(units[unit], set()).add(role)
        assert all(len(roles) == 1 for roles in role_of.values()), role_of
        per_person = Counter(next(iter(r)) for r in role_of.values())
        assert per_person == {"train": 4, "val": 1, "test": 1}


def test_the_same_seed_draws_the_same_split_and_other_seeds_differ():
    units = {f"u{i}": f"p{i}" for i in range(10)}
    first = person_split(units, seed=5)
    assert person_split(dict(reversed(units.items())), seed=5) == first  # order of input
    others = [person_split(units, seed=seed) for seed in range(6, 16)]
    assert any(other != first for other in others)


def test_adding_scans_of_persons_already_drawn_moves_nobody():
    units = {f"u{i}": f"p{i}" for i in range(8)}
    for seed in range(5):
        before = person_split(units, seed=seed)
        more = {**units, "u0-rescan": "p0", "u5-rescan": "p5", "u5-t2": "p5"}
        after = person_split(more, seed=seed)
        assert {u: after[u] for u in units} == before
        assert after["u0-rescan"] == before["u0"]
        assert after["u5-rescan"] == after["u5-t2"] == before["u5"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"val_fraction": -0.1}, r"val_fraction must be in \[0, 1\), got -0.1"),
        ({"test_fraction": 1.0}, r"test_fraction must be in \[0, 1\), got 1.0"),
        ({"test_fraction": 1.5}, r"test_fraction must be in \[0, 1\), got 1.5"),
    ],
)
def test_fractions_out_of_range_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        person_split({f"u{i}": f"p{i}" for i in range(10)}, **kwargs)


def test_too_few_persons_are_refused_saying_what_to_change():
    # 2 persons: 1 test + 1 val leave no training person
    two = {"a1": "a", "a2": "a", "b1": "b"}
    with pytest.raises(ValueError, match="2 persons cannot be split into 1 test, 1 val") as info:
        person_split(two)
    assert "lower test_fraction / val_fraction" in str(info.value)
    with pytest.raises(ValueError, match="^1 person cannot be split into 1 test, 1 val"):
        person_split({"a1": "a"})
    # without val, two persons are one test and one training person
    assert sorted(person_split(two, val_fraction=0).values()) in (
        ["test", "test", "train"],
        ["test", "train", "train"],
    )


# ---------------------------------------------------------------- read_sheet


@pytest.fixture
def study(tmp_path) -> Path:
    """A study folder with files a, b (with a mask), c.nii, d.nrrd, beside its sheet."""
    folder = tmp_path / "study"
    for name in ("a.nii.gz", "a_mask.nii.gz", "b.nii.gz"):
        write_nifti(folder / "scans" / name)
    write_nifti(folder / "scans" / "c.nii")
    (folder / "scans" / "d.nrrd").write_bytes(b"NRRD0004\n")
    return folder


def test_a_good_sheet_resolves_paths_against_its_folder(study, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # relative paths are the sheet's, not the current folder's
    b = study / "scans" / "b.nii.gz"
    sheet = write_sheet(
        study / "units.tsv",
        "# the units of a tiny study",  # line 1
        "subject\tvolume\tmask\trole\tperson\tsite\tcontrast",  # line 2
        "",  # line 3
        "a\tscans/a.nii.gz\tscans/a_mask.nii.gz\ttrain\tP1\tGuys\tT1w",  # line 4
        f"b\t{b}\t\tval\t\t\t",  # line 5: absolute path, empty optional cells
        "   # an indented comment",  # line 6
        "c\tscans/c.nii\t\ttest",  # line 7: optional cells left out
        "d\tscans/d.nrrd\t\texcluded\tP1",  # line 8: P1 excluded here, train above
    )
    rows = read_sheet(sheet)
    assert list(rows) == ["a", "b", "c", "d"]
    a, rb, c, d = rows.values()
    assert (a.line, rb.line, c.line, d.line) == (4, 5, 7, 8)
    assert a.volume == study / "scans" / "a.nii.gz" and a.volume.is_file()
    assert a.mask == study / "scans" / "a_mask.nii.gz"
    assert (a.role, a.person, a.site, a.contrast) == ("train", "P1", "Guys", "T1w")
    assert rb.volume == b and rb.mask is None
    assert (rb.role, rb.person, rb.site, rb.contrast) == ("val", "b", None, None)
    assert c.volume == study / "scans" / "c.nii" and c.person == "c" and c.role == "test"
    assert d.volume == study / "scans" / "d.nrrd" and (d.role, d.person) == ("excluded", "P1")


def test_optional_columns_may_be_absent_from_the_header(study):
    sheet = write_sheet(study / "units.tsv", "role\tvolume\tsubject", "val\tscans/b.nii.gz\tb")
    rows = read_sheet(sheet)
    assert rows["b"].volume == study / "scans" / "b.nii.gz"
    assert (rows["b"].role, rows["b"].person, rows["b"].mask) == ("val", "b", None)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            [HEADER, "a\tscans/a.nii.gz\t\ttrain", "b\tscans/nope.nii.gz\t\ttest"],
            r"line 3 \(subject 'b'\): volume \S*/scans/nope\.nii\.gz does not exist",
        ),
        (
            [HEADER, "a\tscans/a.nii.gz\tscans/gone_mask.nii.gz\ttrain"],
            r"line 2 \(subject 'a'\): mask \S*/scans/gone_mask\.nii\.gz does not exist",
        ),
        (
            [
                HEADER,
                "a\tscans/a.nii.gz\t\ttrain",
                "b\tscans/b.nii.gz\t\tval",
                "a\tscans/c.nii\t\ttest",
            ],
            r"line 4 \(subject 'a'\): subject 'a' is already on line 2",
        ),
        (
            [HEADER, "a\tscans/a.nii.gz\t\ttraining"],
            r"line 2 \(subject 'a'\): role: 'training' is not one of",
        ),
        (
            [HEADER, "a\tscans/a.nii.gz\t\t"],
            r"line 2 \(subject 'a'\): 'role' is empty",
        ),
        (
            [
                "subject\tvolume\trole\tperson",
                "a\tscans/a.nii.gz\ttrain\tP",
                "b\tscans/b.nii.gz\ttest\tP",
            ],
            r"line 3 \(subject 'b'\): person 'P' is test here and train on line 2; every scan",
        ),
        (
            ["subject\tvolume\trole\tage", "a\tscans/a.nii.gz\ttrain\t40"],
            r"line 1: unknown column 'age'; columns: subject, volume, role \(required\)",
        ),
        (
            ["subject\tvolume", "a\tscans/a.nii.gz"],
            r"line 1: no 'role' column",
        ),
        (
            ["subject\tvolume\trole\trole", "a\tscans/a.nii.gz\ttrain\ttrain"],
            r"line 1: repeated column 'role'",
        ),
        (
            [HEADER, "a b\tscans/a.nii.gz\t\ttrain"],
            r"line 2 \(subject 'a b'\): subject: 'a b' does not match",
        ),
        (
            [HEADER, "a/b\tscans/a.nii.gz\t\ttrain"],
            r"line 2 \(subject 'a/b'\): subject: 'a/b' does not match",
        ),
        (
            # 8 cells: a, the volume, an empty mask, train, P, Guys, T1w, extra
            [HEADER, "a\tscans/a.nii.gz\t\ttrain\tP\tGuys\tT1w\textra"],
            r"line 2: 8 cells, the header has 4",
        ),
        (
            [HEADER, "a\tscans/a.mgz\t\ttrain"],
            r"line 2 \(subject 'a'\): volume \S*/scans/a\.mgz is not \.nii / \.nii\.gz / \.nrrd",
        ),
    ],
    ids=[
        "missing-volume",
        "missing-mask",
        "duplicate-subject",
        "unknown-role",
        "empty-role",
        "person-in-two-roles",
        "unknown-column",
        "missing-column",
        "repeated-column",
        "subject-with-space",
        "subject-with-slash",
        "too-many-cells",
        "not-a-volume",
    ],
)
def test_a_mistake_is_refused_naming_the_sheet_and_line(study, lines, message):
    (study / "scans" / "a.mgz").write_bytes(b"x")
    sheet = write_sheet(study / "units.tsv", *lines)
    with pytest.raises(SheetError) as info:
        read_sheet(sheet)
    text = str(info.value)
    assert text.startswith(f"{sheet} line "), text
    assert re.search(message, text), text
    assert "\n" not in text and "more)" not in text


def test_an_excluded_scan_does_not_fix_its_persons_role(study):
    sheet = write_sheet(
        study / "units.tsv",
        "subject\tvolume\trole\tperson",
        "a\tscans/a.nii.gz\texcluded\tP",  # line 2: no role for P yet
        "b\tscans/b.nii.gz\ttrain\tP",  # line 3: P is train
        "c\tscans/c.nii\ttest\tP",  # line 4: the clash is with line 3
    )
    with pytest.raises(SheetError, match=r"line 4 .*'P' is test here and train on line 3"):
        read_sheet(sheet)
    # without the test row the excluded scan of a training person is fine
    write_sheet(sheet, *sheet.read_text().splitlines()[:3])
    assert {s: r.role for s, r in read_sheet(sheet).items()} == {"a": "excluded", "b": "train"}


def test_a_header_below_comments_is_named_on_its_own_line(study):
    sheet = write_sheet(study / "units.tsv", "# made by hand", "subject\tvolume\trolez")
    with pytest.raises(SheetError, match=r"units\.tsv line 2: unknown column 'rolez'"):
        read_sheet(sheet)


def test_several_mistakes_name_the_first_and_count_the_rest(study):
    sheet = write_sheet(
        study / "units.tsv",
        HEADER,
        "a\tscans/nope.nii.gz\t\ttrain",  # line 2: no such file
        "b\tscans/b.nii.gz\t\ttrainn",  # line 3: unknown role
        "c d\tscans/c.nii\t\ttest",  # line 4: bad id
    )
    with pytest.raises(SheetError) as info:
        read_sheet(sheet)
    text = str(info.value)
    assert text.startswith(f"{sheet} line 2 (subject 'a'): volume ")
    assert text.endswith("does not exist (and 2 more)")


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([], ": empty sheet"),
        (["# only a comment", "", "   "], ": empty sheet"),
        ([HEADER, "# no rows, a comment"], ": no rows below the header"),
    ],
)
def test_a_sheet_without_rows_is_refused(study, lines, message):
    sheet = write_sheet(study / "units.tsv", *lines)
    with pytest.raises(SheetError, match=re.escape(f"{sheet}{message}")):
        read_sheet(sheet)


def test_a_missing_sheet_names_itself_and_the_draft_command(tmp_path):
    sheet = tmp_path / "mine.tsv"
    with pytest.raises(FileNotFoundError) as info:
        read_sheet(sheet)
    text = str(info.value)
    assert f"sample sheet {sheet} does not exist" in text
    assert "rrlsrn data sheet FOLDER > mine.tsv" in text


def test_a_rewritten_sheet_is_read_again(study):
    sheet = write_sheet(study / "units.tsv", HEADER, "a\tscans/a.nii.gz\t\ttrain")
    assert {s: r.role for s, r in read_sheet(sheet).items()} == {"a": "train"}
    write_sheet(sheet, HEADER, "a\tscans/a.nii.gz\t\ttrain", "b\tscans/b.nii.gz\t\ttest")
    assert {s: r.role for s, r in read_sheet(sheet).items()} == {"a": "train", "b": "test"}
    write_sheet(sheet, HEADER, "a\tscans/a.nii.gz\t\tval", "b\tscans/b.nii.gz\t\ttrainee")
    with pytest.raises(SheetError, match="line 3"):
        read_sheet(sheet)


@pytest.mark.parametrize(
    ("name", "contrast"),
    [
        ("sub-01_T1w.nii.gz", "T1w"),
        ("sub-01_run-2_T2w.nii", "T2w"),
        ("IXI002-Guys-0828-T1.nii.gz", "T1w"),
        ("IXI002-Guys-0828-PD.nii.gz", "PD"),
        ("case01011-flair.nrrd", "FLAIR"),
        ("KKI2009-01-MPRAGE.nii", "T1w"),
        ("scan.nii.gz", None),
    ],
)
def test_contrast_in_name(name, contrast):
    assert contrast_in_name(name) == contrast


# ---------------------------------------------------------------- draft_sheet


def bids_tree(root: Path) -> dict[str, Path]:
    """sub-01..sub-05 with a T1w each, a T2w of sub-03, a brain mask of sub-02's T1w."""
    files = {}
    for n in range(1, 6):
        files[f"sub-0{n}_T1w"] = write_nifti(root / f"sub-0{n}/anat/sub-0{n}_T1w.nii.gz", seed=n)
    files["sub-03_T2w"] = write_nifti(root / "sub-03/anat/sub-03_T2w.nii.gz")
    (root / "dataset_description.json").write_text('{"Name": "tiny", "BIDSVersion": "1.8.0"}')
    mask = root / "derivatives/masks/sub-02/anat/sub-02_T1w_desc-brain_mask.nii.gz"
    files["mask"] = write_nifti(mask)
    return files


IXI_NAMES = {
    # unit: (person, site, contrast)
    "IXI002-Guys-0828-T1": ("IXI002", "Guys", "T1w"),
    "IXI002-Guys-0828-T2": ("IXI002", "Guys", "T2w"),
    "IXI012-HH-1211-T1": ("IXI012", "HH", "T1w"),
    "IXI013-HH-1212-T1": ("IXI013", "HH", "T1w"),
    "IXI014-HH-1236-T1": ("IXI014", "HH", "T1w"),
    "IXI025-Guys-0852-PD": ("IXI025", "Guys", "PD"),
    "IXI033-IOP-0866-T1": ("IXI033", "IOP", "T1w"),
}


def ixi_folder(root: Path) -> None:
    for i, unit in enumerate(IXI_NAMES):
        write_nifti(root / f"{unit}.nii.gz", seed=i)
    write_nifti(root / "IXI002-Guys-0828-T1_mask.nii.gz")


def saved_draft(folder, sheet: Path, **kwargs) -> dict:
    text = draft_sheet(folder, relative_to=sheet.parent, **kwargs)
    sheet.parent.mkdir(parents=True, exist_ok=True)
    sheet.write_text(text)
    return read_sheet(sheet)


def test_a_draft_of_a_bids_tree_reads_back_with_a_person_split(tmp_path):
    files = bids_tree(tmp_path / "bids")
    rows = saved_draft(tmp_path / "bids", tmp_path / "sheets/units.tsv")
    assert sorted(rows) == sorted(u for u in files if u != "mask")
    for unit, row in rows.items():
        assert row.volume.resolve() == files[unit].resolve()
        assert row.person == unit.split("_")[0]
        assert row.contrast == unit.split("_")[1]
        if unit == "sub-02_T1w":
            assert row.mask.resolve() == files["mask"].resolve()
        else:
            assert row.mask is None
    by_person = roles_by_person(rows)
    assert all(len(roles) == 1 for roles in by_person.values()), by_person
    # 5 persons: round(0.2 * 5) = 1 test, 0.5 -> 1 val, 3 train
    assert Counter(next(iter(r)) for r in by_person.values()) == {"train": 3, "val": 1, "test": 1}


def test_a_draft_of_an_ixi_folder_parses_persons_sites_and_contrasts(tmp_path):
    ixi_folder(tmp_path / "ixi")
    rows = saved_draft(tmp_path / "ixi", tmp_path / "sheets/units.tsv")
    assert sorted(rows) == sorted(IXI_NAMES)
    for unit, (person, site, contrast) in IXI_NAMES.items():
        row = rows[unit]
        assert row.volume.resolve() == (tmp_path / "ixi" / f"{unit}.nii.gz").resolve()
        assert (row.person, row.site, row.contrast) == (person, site, contrast)
    assert (
        rows["IXI002-Guys-0828-T1"].mask.resolve()
        == (tmp_path / "ixi/IXI002-Guys-0828-T1_mask.nii.gz").resolve()
    )
    assert all(r.mask is None for u, r in rows.items() if u != "IXI002-Guys-0828-T1")
    by_person = roles_by_person(rows)
    assert set(by_person) == {p for p, _, _ in IXI_NAMES.values()}
    assert all(len(roles) == 1 for roles in by_person.values()), by_person
    # 6 persons: round(1.2) = 1 test, round(0.6) = 1 val, 4 train
    assert Counter(next(iter(r)) for r in by_person.values()) == {"train": 4, "val": 1, "test": 1}


def test_a_draft_is_seeded(tmp_path):
    ixi_folder(tmp_path / "ixi")
    first = draft_sheet(tmp_path / "ixi", seed=3)
    assert draft_sheet(tmp_path / "ixi", seed=3) == first
    assert any(draft_sheet(tmp_path / "ixi", seed=s) != first for s in range(4, 12))


def test_a_relative_folder_is_drafted_relative_to_the_sheets_folder(tmp_path, monkeypatch):
    bids_tree(tmp_path / "bids")
    monkeypatch.chdir(tmp_path)
    text = draft_sheet("bids", relative_to="sheets", seed=1)
    table = list(csv.DictReader(io.StringIO(text), delimiter="\t"))
    row = next(r for r in table if r["subject"] == "sub-02_T1w")
    assert row["volume"] == "../bids/sub-02/anat/sub-02_T1w.nii.gz"
    assert row["mask"] == "../bids/derivatives/masks/sub-02/anat/sub-02_T1w_desc-brain_mask.nii.gz"
    assert next(r for r in table if r["subject"] == "sub-01_T1w")["mask"] == ""


def test_a_draft_takes_masks_of_another_suffix_in_a_plain_folder(tmp_path):
    for name in ("alpha.nii.gz", "alpha_brain.nii.gz", "beta.nii", "gamma.nii.gz"):
        write_nifti(tmp_path / "scans" / name)
    rows = saved_draft(tmp_path / "scans", tmp_path / "units.tsv", mask_suffix="_brain")
    assert sorted(rows) == ["alpha", "beta", "gamma"]
    assert rows["alpha"].mask.resolve() == (tmp_path / "scans/alpha_brain.nii.gz").resolve()
    # 3 persons (each unit its own): one of each role
    assert sorted(r.role for r in rows.values()) == ["test", "train", "val"]
    assert all(r.person == s for s, r in rows.items())


# ---------------------------------------------------------------- the sheet source


def tiny_sheet(folder: Path, roles: dict[str, str], person_of: dict[str, str] | None = None):
    """Volumes <subject>.nii.gz in ``folder`` and its units.tsv with ``roles``."""
    person_of = person_of or {}
    lines = ["subject\tvolume\trole\tperson"]
    for i, (subject, role) in enumerate(roles.items()):
        write_nifti(folder / f"{subject}.nii.gz", shape=(24, 24, 24), seed=i)
        lines.append(f"{subject}\t{subject}.nii.gz\t{role}\t{person_of.get(subject, '')}")
    return write_sheet(folder / "units.tsv", *lines)


def test_dataset_split_of_a_sheet_is_the_sheets_roles(tmp_path):
    roles = {"s1": "train", "s2": "train", "s3": "val", "s4": "test", "s5": "excluded"}
    sheet = tiny_sheet(tmp_path, roles, {"s1": "P", "s2": "P", "s5": "Q"})
    config = {"datasets": {"mine": {"source": "sheet", "path": str(sheet)}}}
    assert pipeline.dataset_split(config, "mine") == roles
    assert pipeline.subjects_with_role(config, "mine", "train") == ["s1", "s2"]
    volumes = pipeline.dataset_volumes(config, "mine")
    assert volumes["s1"].path == tmp_path / "s1.nii.gz" and volumes["s1"].person == "P"


@pytest.mark.parametrize(
    ("content", "problem"), [(b"", "(empty file)"), (b"not a header " * 40, "(")]
)
def test_a_sheet_naming_an_unreadable_nifti_is_refused_naming_it(tmp_path, content, problem):
    sheet = tiny_sheet(tmp_path, {"s1": "train", "s2": "val", "s3": "test"})
    (tmp_path / "s2.nii.gz").write_bytes(content)
    config = {"datasets": {"mine": {"source": "sheet", "path": str(sheet)}}}
    with pytest.raises(pipeline.ConfigError) as info:
        pipeline.dataset_split(config, "mine")
    text = str(info.value)
    assert text.startswith("dataset 'mine': sample sheet ")
    assert f"names 1 unreadable NIfTI file: {tmp_path / 's2.nii.gz'} {problem}" in text
    assert "s1.nii.gz" not in text and "s3.nii.gz" not in text


def test_a_missing_sheet_may_be_skipped_but_a_wrong_one_is_not(tmp_path):
    broken = write_sheet(tmp_path / "broken.tsv", HEADER, "a\tnope.nii.gz\t\ttrain")
    config = {
        "datasets": {
            "gone": {"source": "sheet", "path": str(tmp_path / "gone.tsv"), "on_missing": "skip"},
            "broken": {"source": "sheet", "path": str(broken), "on_missing": "skip"},
        }
    }
    notices = pipeline.drop_datasets(config)
    assert list(config["datasets"]) == ["broken"]
    assert len(notices) == 1 and notices[0].startswith("dataset 'gone' left out")
    with pytest.raises(pipeline.ConfigError, match=r"dataset 'broken': .*broken\.tsv line 2"):
        pipeline.dataset_split(config, "broken")


# ---------------------------------------------------------------- rrlsrn data sheet


def test_cli_prints_a_draft_to_stdout(tmp_path, monkeypatch, capsys):
    ixi_folder(tmp_path / "ixi")
    monkeypatch.chdir(tmp_path)
    assert main(["data", "sheet", "ixi"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    table = list(csv.reader(io.StringIO(out), delimiter="\t"))
    assert table[0] == ["subject", "volume", "mask", "role", "person", "site", "contrast"]
    assert len(table) == 1 + len(IXI_NAMES)
    row = {r[0]: r for r in table[1:]}["IXI012-HH-1211-T1"]
    assert row[1:3] == ["ixi/IXI012-HH-1211-T1.nii.gz", ""]
    assert row[4:] == ["IXI012", "HH", "T1w"]


def test_cli_writes_a_draft_with_paths_relative_to_it(tmp_path, monkeypatch, capsys):
    ixi_folder(tmp_path / "ixi")
    monkeypatch.chdir(tmp_path)
    args = ["data", "sheet", "ixi", "-o", "sheets/units.tsv", "--val", "0.2", "--test", "0.4"]
    assert main([*args, "--seed", "2"]) == 0
    out, err = capsys.readouterr()
    assert out == "" and err == f"wrote sheets/units.tsv ({len(IXI_NAMES)} units)\n"
    text = (tmp_path / "sheets/units.tsv").read_text()
    assert "\t../ixi/IXI002-Guys-0828-T1.nii.gz\t../ixi/IXI002-Guys-0828-T1_mask.nii.gz\t" in text
    rows = read_sheet(tmp_path / "sheets/units.tsv")
    assert all(r.volume.is_file() for r in rows.values())
    # 6 persons: round(0.4 * 6) = 2 test, round(0.2 * 6) = 1 val, 3 train
    by_person = roles_by_person(rows)
    assert Counter(next(iter(r)) for r in by_person.values()) == {"train": 3, "val": 1, "test": 2}


def test_cli_refuses_a_missing_folder_in_one_line(tmp_path, capsys):
    missing = tmp_path / "nope"
    assert main(["data", "sheet", str(missing)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("rrlsrn data sheet: ")
    assert str(missing) in err


# ---------------------------------------------------------------- the workflow


def test_the_workflow_refuses_a_person_in_two_roles_and_plans_a_mended_sheet(tmp_path):
    roles = {"s1": "train", "s2": "val", "s3": "test"}
    sheet = tiny_sheet(tmp_path, roles, {"s1": "P", "s3": "P"})  # P in train and test
    config = tmp_path / "cfg.yaml"
    config.write_text(
        "results: out\n"
        "datasets:\n"
        "  mine: {source: sheet, path: units.tsv}\n"
        "methods: [bicubic]\n"
        "training: {preset: none}\n"
    )
    args = ["-n", "--configfile", str(config), "--replace-workflow-config", "--cores", "1"]
    proc = run_snakemake(args, tmp_path, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "units.tsv line 4 (subject 's3'): person 'P' is test here and train on line 2" in (
        output
    ), output[-3000:]
    # mended: s3 is its own person; an excluded rescan of P is not prepared
    write_nifti(tmp_path / "s1-rescan.nii.gz", shape=(24, 24, 24))
    write_sheet(
        sheet,
        "subject\tvolume\trole\tperson",
        "s1\ts1.nii.gz\ttrain\tP",
        "s2\ts2.nii.gz\tval\t",
        "s3\ts3.nii.gz\ttest\t",
        "s1-rescan\ts1-rescan.nii.gz\texcluded\tP",
    )
    proc = run_snakemake(args, tmp_path, check=False)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    counts = job_counts(proc.stdout)
    assert counts["prepare_subject"] == 3, counts
    assert "out/data/mine/s1-rescan.npz" not in proc.stdout
