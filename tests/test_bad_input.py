"""Bad input, as one table: every row is a command a user might type, its exit status, the
words its one-line message must hold, and the files that must stay unchanged, stay absent
or be written.  CLI rows run ``rrlsrn.cli.main`` in a scratch folder; workflow rows
(``tests/bad_input_workflow_cases.py``) run ``snakemake -n`` there.

A row passes only if the status matches, the message holds every word, no traceback is
printed, every line on stderr is an ``rrlsrn`` message, and the files are as listed.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from bad_input_workflow_cases import WORKFLOW_CASES, snakemake_args
from conftest import run_snakemake

from rrlsrn.cli import main
from rrlsrn.data.embedded import EMBEDDED_ROOT

FETAL = EMBEDDED_ROOT / "mialsrtk-sub-01" / "sub-01" / "anat" / "sub-01_run-1_T2w.nii.gz"
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


# ------------------------------------------------------------------------- set-ups


def volume(path: str | Path, shape_slice=(slice(112, 176), slice(120, 168), slice(9, 12))):
    """A real 64 x 48 x 3 crop of the shipped fetal stack (1.125 x 1.125 x 3.3 mm)."""
    img = nib.load(str(FETAL))
    data = np.asarray(img.dataobj)[shape_slice]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, img.affine, img.header), str(path))


def write(path: str, content: bytes) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(content)


def one_volume() -> None:
    volume("in.nii.gz")


def same_file_links() -> None:
    volume("in.nii.gz")
    os.symlink("in.nii.gz", "link.nii.gz")
    os.link("in.nii.gz", "hard.nii.gz")


def folder_of_two() -> None:
    volume("in/a.nii.gz")
    volume("in/c.nii.gz")


def folder_with_a_bad_file() -> None:
    folder_of_two()
    write("in/b.nii.gz", b"not a NIfTI file")


def folder_half_done() -> None:
    folder_of_two()
    write("out/a.nii.gz", b"earlier result")


def earlier_output() -> None:
    volume("in.nii.gz")
    write("out.nii.gz", b"earlier result")


def parent_is_a_file() -> None:
    volume("in.nii.gz")
    write("taken", b"a file where a folder should be")


def read_only_folder() -> None:
    volume("in.nii.gz")
    Path("locked").mkdir()
    Path("locked").chmod(0o555)


def not_nifti() -> None:
    write("scan.nii.gz", b"this is not a NIfTI file")


def zero_bytes() -> None:
    write("empty.nii.gz", b"")


def four_d() -> None:
    nib.save(nib.Nifti1Image(np.ones((8, 8, 2, 3), np.float32), np.eye(4)), "4d.nii.gz")


def nan_voxels() -> None:
    data = np.ones((8, 8, 2), np.float32)
    data[1, 2, 0] = data[3, 3, 1] = np.nan
    nib.save(nib.Nifti1Image(data, np.eye(4)), "nan.nii.gz")


def mask_on_another_grid() -> None:
    volume("in.nii.gz")
    nib.save(nib.Nifti1Image(np.ones((10, 10, 3), np.uint8), np.eye(4)), "m.nii.gz")


def corrupt_checkpoint() -> None:
    volume("in.nii.gz")
    write("best.pt", b"PK\x03\x04 truncated")


def hr_and_sr() -> None:
    volume("hr.nii.gz")
    volume("sr.nii.gz")


def sr_of_another_shape() -> None:
    volume("hr.nii.gz")
    volume("sr.nii.gz", (slice(112, 160), slice(120, 168), slice(9, 12)))


def sr_with_nan() -> None:
    volume("hr.nii.gz")
    img = nib.load("hr.nii.gz")
    data = img.get_fdata().astype(np.float32)
    data[3, 3, 1] = np.nan
    nib.save(nib.Nifti1Image(data, img.affine), "sr.nii.gz")


def garbage_manifest() -> None:
    write("results/manifests/x.tsv", b"garbage\x00\xff\n1\t2\n")


def foreign_manifest() -> None:
    write("results/manifests/x.tsv", b"a\tb\n1\t2\n")


def prepared_pair() -> None:
    from rrlsrn.data.prepare import SliceOptions, prepare_volume
    from rrlsrn.io import save_npz_atomic

    volume("in.nii.gz")
    save_npz_atomic("a.npz", **prepare_volume("in.nii.gz", SliceOptions()))


# ----------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Case:
    """A command, its exit status and message words, and what must become of files."""

    id: str
    argv: list[str]
    code: int
    words: list[str]
    setup: Callable[[], None] | None = None
    unchanged: list[str] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    skip: str | None = None


UP = ["upscale", "in.nii.gz", "out.nii.gz", "--quiet"]
NO_CUDA = "needs a machine without CUDA" if torch.cuda.is_available() else None

CLI_CASES = [
    # --- rrlsrn upscale: the input is never destroyed
    Case(
        "upscale-onto-itself",
        ["upscale", "in.nii.gz", "in.nii.gz", "--overwrite", "--quiet"],
        1,
        ["in.nii.gz", "the output is the input"],
        one_volume,
        unchanged=["in.nii.gz"],
    ),
    Case(
        "upscale-onto-a-symlink-to-the-input",
        ["upscale", "in.nii.gz", "link.nii.gz", "--overwrite", "--quiet"],
        1,
        ["link.nii.gz", "the output is the input"],
        same_file_links,
        unchanged=["in.nii.gz", "hard.nii.gz"],
    ),
    Case(
        "upscale-onto-a-hard-link-to-the-input",
        ["upscale", "in.nii.gz", "hard.nii.gz", "--overwrite", "--quiet"],
        1,
        ["hard.nii.gz", "the output is the input"],
        same_file_links,
        unchanged=["in.nii.gz", "hard.nii.gz"],
    ),
    Case(
        "upscale-folder-onto-itself",
        ["upscale", "in", "in", "--overwrite", "--quiet"],
        1,
        ["in/a.nii.gz", "the output is the input"],
        folder_of_two,
        unchanged=["in/a.nii.gz", "in/c.nii.gz"],
    ),
    Case(
        "upscale-folder-with-a-bad-file-does-the-rest",
        ["upscale", "in", "out", "--quiet"],
        1,
        ["in/b.nii.gz", "cannot read as nifti", "1 of 3 volumes failed"],
        folder_with_a_bad_file,
        unchanged=["in/a.nii.gz", "in/b.nii.gz"],
        absent=["out/b.nii.gz"],
        written=["out/a.nii.gz", "out/c.nii.gz"],
    ),
    Case(
        "upscale-folder-existing-output-refused",
        ["upscale", "in", "out", "--quiet"],
        1,
        ["out/a.nii.gz exists", "--overwrite", "--skip-existing"],
        folder_half_done,
        unchanged=["out/a.nii.gz"],
        absent=["out/c.nii.gz"],
    ),
    Case(
        "upscale-folder-skip-existing-resumes",
        ["upscale", "in", "out", "--quiet", "--skip-existing"],
        0,
        [],
        folder_half_done,
        unchanged=["out/a.nii.gz"],
        written=["out/c.nii.gz"],
    ),
    Case(
        "upscale-existing-output-refused",
        UP,
        1,
        ["out.nii.gz exists", "--overwrite"],
        earlier_output,
        unchanged=["out.nii.gz", "in.nii.gz"],
    ),
    Case(
        "upscale-overwrite-and-skip-existing",
        [*UP, "--overwrite", "--skip-existing"],
        2,
        ["--skip-existing", "not allowed with argument --overwrite"],
        earlier_output,
        unchanged=["out.nii.gz"],
    ),
    Case(
        "upscale-folder-into-a-file-name",
        ["upscale", "in", "x2.nii.gz", "--quiet"],
        1,
        ["x2.nii.gz", "is a folder, so the output must be a folder"],
        folder_of_two,
        absent=["x2.nii.gz"],
    ),
    Case(
        "upscale-output-parent-is-a-file",
        ["upscale", "in.nii.gz", "taken/out.nii.gz", "--quiet"],
        1,
        ["taken/out.nii.gz", "taken is a file, not a folder"],
        parent_is_a_file,
        unchanged=["taken"],
    ),
    Case(
        "upscale-output-folder-not-writable",
        ["upscale", "in.nii.gz", "locked/out.nii.gz", "--quiet"],
        1,
        ["locked/out.nii.gz", "not writable"],
        read_only_folder,
        absent=["locked/out.nii.gz"],
        skip="root writes anywhere: permissions cannot be tested as root" if IS_ROOT else None,
    ),
    Case(
        "upscale-output-not-nifti",
        ["upscale", "in.nii.gz", "out.png", "--quiet"],
        1,
        ["out.png", ".nii or .nii.gz"],
        one_volume,
        absent=["out.png"],
    ),
    Case("upscale-missing-input", UP, 1, ["in.nii.gz", "no such file"], absent=["out.nii.gz"]),
    Case(
        "upscale-not-nifti",
        ["upscale", "scan.nii.gz", "out.nii.gz", "--quiet"],
        1,
        ["scan.nii.gz", "cannot read as nifti"],
        not_nifti,
        absent=["out.nii.gz"],
    ),
    Case(
        "upscale-zero-byte-file",
        ["upscale", "empty.nii.gz", "out.nii.gz", "--quiet"],
        1,
        ["empty.nii.gz", "cannot read"],
        zero_bytes,
        absent=["out.nii.gz"],
    ),
    Case(
        "upscale-4d",
        ["upscale", "4d.nii.gz", "out.nii.gz", "--quiet"],
        1,
        ["4d.nii.gz", "expected a 3d volume"],
        four_d,
        absent=["out.nii.gz"],
    ),
    Case(
        "upscale-nan-voxels",
        ["upscale", "nan.nii.gz", "out.nii.gz", "--quiet"],
        1,
        ["nan.nii.gz", "2 voxels are nan"],
        nan_voxels,
        absent=["out.nii.gz"],
    ),
    Case("upscale-batch-negative", [*UP, "--batch", "-1"], 2, ["--batch", "positive integer"]),
    Case("upscale-batch-zero", [*UP, "--batch", "0"], 2, ["--batch", "positive integer, got 0"]),
    Case("upscale-batch-text", [*UP, "--batch", "many"], 2, ["--batch", "integer, got 'many'"]),
    Case("upscale-device-gpu", [*UP, "--device", "gpu"], 2, ["auto, cpu, cuda or cuda:n", "gpu"]),
    Case(
        "upscale-device-cuda-absent",
        [*UP, "--device", "cuda"],
        1,
        ["--device cuda", "cuda is not available"],
        one_volume,
        absent=["out.nii.gz"],
        skip=NO_CUDA,
    ),
    Case("upscale-scale-one", [*UP, "--scale", "1"], 2, ["--scale", "at least 2, got 1"]),
    Case(
        "upscale-scale-the-weights-cannot-reach",
        [*UP, "--scale", "3"],
        1,
        ["x2", "not x3"],
        one_volume,
        absent=["out.nii.gz"],
    ),
    Case("upscale-axis-out-of-range", [*UP, "--axis", "3"], 2, ["--axis", "invalid choice"]),
    Case(
        "upscale-mask-on-another-grid",
        [*UP, "--mask", "m.nii.gz"],
        1,
        ["m.nii.gz", "mask shape (10, 10, 3) does not match"],
        mask_on_another_grid,
        absent=["out.nii.gz"],
    ),
    Case(
        "upscale-mask-is-the-output",
        ["upscale", "in.nii.gz", "m.nii.gz", "--mask", "m.nii.gz", "--overwrite", "--quiet"],
        1,
        ["the output is the input m.nii.gz"],
        mask_on_another_grid,
        unchanged=["m.nii.gz"],
    ),
    Case(
        "upscale-unknown-shipped-weights",
        [*UP, "--model", "nope"],
        1,
        ["nope", "shipped: ['edsr', 'edsr_x4', 'fsrcnn'"],
        one_volume,
        absent=["out.nii.gz"],
    ),
    Case(
        "upscale-unknown-method",
        [*UP, "--method", "nope"],
        1,
        ["unknown method 'nope'; known: bicubic, cubic_spline, nmu", "rrlsrn"],
        one_volume,
        absent=["out.nii.gz"],
    ),
    Case(
        "upscale-unknown-degradation",
        [*UP, "--method", "nmu", "--degradation", "nope"],
        1,
        ["unknown degradation 'nope'", "bicubic", "gaussian_block", "kspace"],
        one_volume,
        absent=["out.nii.gz"],
    ),
    Case(
        "upscale-method-and-weights",
        [*UP, "--method", "nmu", "--weights", "best.pt"],
        2,
        ["--weights", "not allowed with argument --method"],
        one_volume,
        absent=["out.nii.gz"],
    ),
    Case(
        "upscale-corrupt-checkpoint",
        [*UP, "--weights", "best.pt"],
        1,
        ["best.pt", "corrupt"],
        corrupt_checkpoint,
        absent=["out.nii.gz"],
    ),
    # --- rrlsrn evaluate
    Case(
        "evaluate-negative-shave",
        ["evaluate", "hr.nii.gz", "sr.nii.gz", "--shave", "-3"],
        2,
        ["--shave", "got -3"],
    ),
    Case(
        "evaluate-mask-fraction-above-one",
        ["evaluate", "hr.nii.gz", "sr.nii.gz", "--min-mask-fraction", "2"],
        2,
        ["--min-mask-fraction", "[0, 1], got 2"],
    ),
    Case(
        "evaluate-shapes-differ",
        ["evaluate", "hr.nii.gz", "sr.nii.gz"],
        1,
        ["sr.nii.gz: shape (48, 48, 3) differs from hr.nii.gz (64, 48, 3)"],
        sr_of_another_shape,
    ),
    Case(
        "evaluate-nan-in-sr",
        ["evaluate", "hr.nii.gz", "sr.nii.gz"],
        1,
        ["sr.nii.gz: 1 voxels are nan"],
        sr_with_nan,
    ),
    Case(
        "evaluate-per-slice-onto-an-input",
        ["evaluate", "hr.nii.gz", "sr.nii.gz", "--per-slice", "sr.nii.gz"],
        1,
        ["sr.nii.gz", "would overwrite an input"],
        hr_and_sr,
        unchanged=["sr.nii.gz", "hr.nii.gz"],
    ),
    # --- rrlsrn prepare
    Case("prepare-missing", ["prepare", "in.nii.gz", "o.npz"], 1, ["in.nii.gz", "file not found"]),
    Case(
        "prepare-not-nifti",
        ["prepare", "scan.nii.gz", "o.npz"],
        1,
        ["scan.nii.gz", "cannot read as nifti"],
        not_nifti,
        absent=["o.npz"],
    ),
    Case(
        "prepare-onto-its-input",
        ["prepare", "in.nii.gz", "in.nii.gz"],
        1,
        ["in.nii.gz", "the output is an input"],
        one_volume,
        unchanged=["in.nii.gz"],
    ),
    Case("prepare-scale-zero", ["prepare", "a", "b", "--scale", "0"], 2, ["--scale", "got 0"]),
    # --- rrlsrn data summary
    Case("summary-no-manifests", ["data", "summary"], 1, ["no manifests", "data_summary.md"]),
    Case(
        "summary-garbage-manifest",
        ["data", "summary"],
        1,
        ["results/manifests/x.tsv", "cannot read manifest"],
        garbage_manifest,
    ),
    Case(
        "summary-foreign-manifest",
        ["data", "summary"],
        1,
        ["results/manifests/x.tsv", "not a manifest written by the workflow"],
        foreign_manifest,
    ),
    # --- rrlsrn train (settings are checked before any data is read)
    Case(
        "train-threads-zero",
        ["train", "--train", "a.npz", "--val", "a.npz", "--out", "ck", "--threads", "0"],
        2,
        ["--threads", "positive integer"],
    ),
    Case(
        "train-device-gpu",
        ["train", "--train", "a.npz", "--val", "a.npz", "--out", "ck", "--device", "gpu"],
        2,
        ["--device", "gpu"],
    ),
    Case(
        "train-negative-max-steps",
        ["train", "--preset", "smoke", "--set", "max_steps=-5", "--train", "a.npz"]
        + ["--val", "a.npz", "--out", "ck"],
        1,
        ["max_steps", "-5"],
        absent=["ck"],
    ),
    Case(
        "train-unknown-setting",
        ["train", "--preset", "smoke", "--set", "epochs=3", "--train", "a.npz"]
        + ["--val", "a.npz", "--out", "ck"],
        1,
        ["epochs"],
        absent=["ck"],
    ),
    Case(
        "train-unknown-preset",
        ["train", "--preset", "nope", "--train", "a.npz", "--val", "a.npz", "--out", "ck"],
        1,
        ["nope", "preset"],
        absent=["ck"],
    ),
    Case(
        "train-missing-data",
        ["train", "--preset", "smoke", "--train", "a.npz", "--val", "b.npz", "--out", "ck"],
        1,
        ["b.npz: file not found"],
        prepared_pair,
        absent=["ck/last.pt", "ck/best.pt"],
    ),
    Case(
        "train-malformed-set",
        ["train", "--set", "max_steps", "--train", "a.npz", "--val", "a.npz", "--out", "ck"],
        1,
        ["--set must look like key=value", "'max_steps'"],
    ),
    # --- the command line itself
    Case("no-command", [], 2, ["required", "command"]),
    Case("unknown-command", ["upsample"], 2, ["invalid choice", "upsample"]),
]


def snapshot(paths: list[str]) -> dict[str, str]:
    return {p: hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths}


def check_files(case: Case, before: dict[str, str]) -> None:
    assert snapshot(case.unchanged) == before, "an input or earlier output was changed"
    for path in case.absent:
        assert not Path(path).exists(), f"{path} was written"
    for path in case.written:
        assert nib.load(path).shape, f"{path} is not a readable volume"
    leftovers = [p for p in Path().rglob("*") if ".tmp" in p.name]
    assert not leftovers, f"temporary files left behind: {leftovers}"


def check_message(case: Case, code: int, out: str, err: str) -> None:
    text = (out + err).lower()
    assert code == case.code, f"exit status {code}, expected {case.code}:\n{out}\n{err}"
    for word in case.words:
        assert word.lower() in text, f"{word!r} not in:\n{out}\n{err}"
    assert "traceback" not in text
    stray = [line for line in err.splitlines() if line and not line.startswith("rrlsrn")]
    assert not stray, f"stderr lines that are not rrlsrn messages: {stray}"


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(c, id=c.id, marks=[pytest.mark.skipif(True, reason=c.skip)] if c.skip else [])
        for c in CLI_CASES
    ],
)
def test_cli_bad_input(case: Case, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    if case.setup:
        case.setup()
    before = snapshot(case.unchanged)
    try:
        code = main(case.argv)
    except SystemExit as exit_:  # argparse: bad command line
        code = exit_.code
    captured = capsys.readouterr()
    check_message(case, code, captured.out, captured.err)
    check_files(case, before)


@pytest.mark.parametrize("case", WORKFLOW_CASES, ids=[c["id"] for c in WORKFLOW_CASES])
def test_workflow_bad_input(case: dict, tmp_path):
    proc = run_snakemake(snakemake_args(case, tmp_path), tmp_path, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == case["exit_code"], output
    for word in case["words"]:
        assert word.lower() in output.lower(), f"{word!r} not in:\n{output}"
    assert "Traceback (most recent call last)" not in output
    assert len(output.splitlines()) < 8, f"not a short message:\n{output}"
    for path in case["absent"]:
        assert not (tmp_path / path).exists(), f"{path} was written"


# ------------------------------------------------------------ through the real entry point


def rrlsrn(*args: str, cwd: Path) -> subprocess.Popen:
    """The ``rrlsrn`` command as a user runs it (unbuffered, so its lines arrive at once)."""
    return subprocess.Popen(
        [sys.executable, "-m", "rrlsrn.cli", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        # as from a terminal: a background job (`make test &`) inherits SIGINT ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def test_a_user_error_is_one_line_and_debug_shows_the_traceback(tmp_path):
    proc = rrlsrn("prepare", "missing.nii.gz", "o.npz", cwd=tmp_path)
    _, err = proc.communicate(timeout=120)
    assert (proc.returncode, err) == (1, "rrlsrn prepare: missing.nii.gz: file not found\n")
    proc = rrlsrn("prepare", "missing.nii.gz", "o.npz", "--debug", cwd=tmp_path)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in err and "VolumeError" in err


def test_ctrl_c_exits_130_with_one_line_and_no_partial_output(tmp_path):
    volume(tmp_path / "in.nii.gz", (slice(None), slice(None), slice(None)))  # 22 slices, 320²
    proc = rrlsrn("upscale", "in.nii.gz", "out.nii.gz", cwd=tmp_path)
    first = proc.stdout.readline()  # printed once the volume is read, just before the network
    assert "slicing along axis 2: 22 slices of 320×320" in first, first
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert (
        err.strip()
        .splitlines()[-1]
        .endswith("rrlsrn upscale: interrupted; nothing half-written was left")
    )
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.nii.gz"]


def test_version_names_the_package_torch_and_devices(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    from importlib.metadata import version

    assert out.startswith(f"rrlsrn {version('rrlsrn-bench')}, torch {torch.__version__}")
    assert f"cpu ({torch.get_num_threads()} threads)" in out
    assert ("no CUDA device" in out) != torch.cuda.is_available()
