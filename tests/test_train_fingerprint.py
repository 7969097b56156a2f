"""A run resumes only checkpoints of the same settings, operator, scale, weights and data.

Otherwise the old run is moved to ``superseded/`` (kept byte for byte) and training starts
fresh, so a rerun with other settings never publishes an earlier run's weights.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from conftest import REPO, run_snakemake
from test_resume import write_config
from test_train import TINY, smooth_slices, tiny_settings

from rrlsrn.checkpoint import fingerprint_changes, load_checkpoint, save_checkpoint, set_aside
from rrlsrn.cli import main
from rrlsrn.data.embedded import embedded_volume
from rrlsrn.train import RUN_FILES, run_fingerprint, train

BLUR = {"name": "gaussian_block", "sigma": 1.0}


def run_bytes(folder) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in RUN_FILES}


def weights_differ(a, b) -> bool:
    a, b = load_checkpoint(a)["model"], load_checkpoint(b)["model"]
    assert a.keys() == b.keys()
    return any(not torch.equal(a[k], b[k]) for k in a)


def tiny_run(out, slices, **changes):
    """Three steps of a tiny RRLSRN on smooth blobs; ``changes`` replace train() arguments."""
    args = {
        "train_slices": slices[:2],
        "val_slices": slices[2:],
        "settings": tiny_settings(max_steps=3),
        "model_kwargs": TINY,
        "degradation": BLUR,
        **changes,
    }
    return train(model_name="rrlsrn", out_dir=out, progress=False, **args)


def one_pixel_brighter(slices: list[np.ndarray]) -> list[np.ndarray]:
    changed = [s.copy() for s in slices]
    changed[1][20, 20] += 0.01
    return changed


SHA = r"sha256:[0-9a-f]{12}"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda s: {"train_slices": one_pixel_brighter(s[:2])},
            rf"\(train_data: {SHA} -> {SHA}\)",
        ),
        (
            lambda s: {"val_slices": [1 - v for v in s[2:]]},
            rf"\(val_data: {SHA} -> {SHA}\)",
        ),
        (
            lambda s: {"degradation": {"name": "bicubic"}},
            re.escape('(degradation: {"name": "gaussian_block", "sigma": 1.0} -> '
                      '{"name": "bicubic"})'),
        ),
        (
            lambda s: {"degradation": {**BLUR, "sigma": 1.5}},
            re.escape("(degradation: " + '{"name": "gaussian_block", "sigma": 1.0} -> '
                      '{"name": "gaussian_block", "sigma": 1.5})'),
        ),
        (
            lambda s: {"model_kwargs": {"depth": 3, "width": 8}},
            re.escape('(model_args: {"depth": 2, "width": 8} -> {"depth": 3, "width": 8})'),
        ),
        (
            lambda s: {"settings": tiny_settings(max_steps=3, seed=1)},
            re.escape("(seed: 0 -> 1)"),
        ),
    ],
    ids=["train_data", "val_data", "operator", "operator_param", "model_args", "seed"],
)  # fmt: skip
def test_a_changed_input_starts_fresh_and_keeps_the_old_run(tmp_path, capsys, change, expected):
    slices = smooth_slices(3)
    tiny_run(tmp_path, slices)
    before = run_bytes(tmp_path)
    capsys.readouterr()

    summary = tiny_run(tmp_path, slices, **change(slices))
    printed = capsys.readouterr().out
    (kept,) = (tmp_path / "superseded").iterdir()
    assert (summary["start_step"], summary["steps"], summary["finished"]) == (0, 3, True)
    assert re.search(
        rf"^settings changed since {re.escape(str(tmp_path / 'last.pt'))} {expected}: "
        rf"starting fresh; the old run is kept in {re.escape(str(kept))}$",
        printed,
        flags=re.M,
    ), printed
    assert run_bytes(kept) == before  # moved, not rewritten
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{8}", kept.name)


def test_the_same_inputs_resume_and_a_finished_run_stays_as_it_is(tmp_path, capsys):
    slices = smooth_slices(3)
    first = tiny_run(tmp_path, slices, stop_at_step=2)
    assert (first["steps"], first["finished"]) == (2, False)
    # max_minutes only splits a run across invocations: it does not block the resume.
    resumed = tiny_run(tmp_path, slices, settings=tiny_settings(max_steps=3, max_minutes=60.0))
    assert (resumed["start_step"], resumed["steps"], resumed["finished"]) == (2, 3, True)
    before = run_bytes(tmp_path)
    again = tiny_run(tmp_path, [s.copy() for s in slices])  # equal content, other arrays
    assert (again["start_step"], again["finished"]) == (3, True)
    assert run_bytes(tmp_path) == before
    assert not (tmp_path / "superseded").exists()
    assert "starting fresh" not in capsys.readouterr().out


def test_scale_and_initial_weights_are_in_the_fingerprint():
    slices = smooth_slices(3)
    weights = {"w": torch.zeros(2, 3)}
    args = ("rrlsrn", TINY, tiny_settings(), 2, BLUR, "checkpoint:a.pt", weights, slices, slices)
    base = run_fingerprint(*args)
    assert fingerprint_changes(base, run_fingerprint(*args)) == []
    assert fingerprint_changes(base, run_fingerprint(*args[:3], 3, *args[4:])) == ["scale: 2 -> 3"]
    other = {"w": torch.ones(2, 3)}
    (change,) = fingerprint_changes(base, run_fingerprint(*args[:6], other, *args[7:]))
    assert re.fullmatch(rf"init_weights: {SHA} -> {SHA}", change)
    assert "max_minutes" not in base and base["lr"] == 1e-3 and base["scale"] == 2


def test_a_checkpoint_without_fingerprint_is_set_aside(tmp_path, capsys):
    slices = smooth_slices(3)
    tiny_run(tmp_path, slices)
    state = load_checkpoint(tmp_path / "last.pt")
    del state["fingerprint"], state["format"]
    save_checkpoint(state, tmp_path / "last.pt")  # as written before fingerprints
    capsys.readouterr()
    summary = tiny_run(tmp_path, slices)
    printed = capsys.readouterr().out
    (kept,) = (tmp_path / "superseded").iterdir()
    assert summary["start_step"] == 0
    assert kept.name.endswith("-unfingerprinted")
    assert (
        f"cannot resume from {tmp_path / 'last.pt'}: written without a fingerprint: "
        f"starting fresh; the old run is kept in {kept}"
    ) in printed


def test_files_of_an_earlier_run_without_last_pt_are_set_aside(tmp_path, capsys):
    (tmp_path / "best.pt").write_bytes(b"an earlier run's best")
    summary = tiny_run(tmp_path, smooth_slices(3))
    (kept,) = (tmp_path / "superseded").iterdir()
    assert summary["start_step"] == 0
    assert (kept / "best.pt").read_bytes() == b"an earlier run's best"
    assert f"no {tmp_path / 'last.pt'} to resume from" in capsys.readouterr().out


def test_set_aside_never_reuses_a_folder(tmp_path):
    folders = []
    for text in ("first", "second"):
        (tmp_path / "best.pt").write_text(text)
        folders.append(set_aside(tmp_path, RUN_FILES, "abcd1234"))
    assert folders[0] != folders[1]
    assert [(f / "best.pt").read_text() for f in folders] == ["first", "second"]
    assert set_aside(tmp_path, RUN_FILES, "abcd1234") is None  # nothing left to move


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """Two subjects prepared with `rrlsrn prepare`: training (a) and validation (b)."""
    folder = tmp_path_factory.mktemp("prepared")
    for name, subject in (("a", "ds000011-sub-01"), ("b", "ds000011-sub-02")):
        assert main(["prepare", str(embedded_volume(subject)), str(folder / f"{name}.npz")]) == 0
    return folder / "a.npz", folder / "b.npz"


@pytest.mark.slow
def test_cli_rerun_with_other_settings_trains_afresh(prepared, tmp_path, capsys):
    a, b = prepared
    out = tmp_path / "ck"
    command = ["train", "--preset", "smoke", "--train", str(a), "--val", str(b),
               "--out", str(out), "--weights-name", "rrlsrn"]  # fmt: skip
    assert main(command) == 0
    first = run_bytes(out)
    capsys.readouterr()

    # The same settings again: the finished run is resumed at its end, nothing retrained.
    assert main(command) == 0
    assert f"resuming rrlsrn from {out / 'last.pt'} at step 8" in capsys.readouterr().out
    assert run_bytes(out) == first

    # Other settings: the old run is kept aside byte for byte, and training starts fresh.
    assert main([*command, "--set", "lr=0.01", "--set", "gdl_weight=0"]) == 0
    printed = capsys.readouterr().out
    (kept,) = (out / "superseded").iterdir()
    assert (
        f"settings changed since {out / 'last.pt'} (lr: 0.0001 -> 0.01; gdl_weight: 1.0 -> "
        f"0.0): starting fresh; the old run is kept in {kept}"
    ) in printed
    assert '"start_step": 0' in printed
    assert run_bytes(kept) == first
    assert weights_differ(kept / "best.pt", out / "best.pt")
    assert load_checkpoint(out / "best.pt")["fingerprint"]["lr"] == 0.01


@pytest.mark.slow
def test_workflow_rerun_with_other_settings_trains_afresh(tmp_path):
    out = tmp_path / "out"
    write_config(tmp_path / "run.yaml", out, overrides="{}", methods="[rrlsrn]")
    # (not gdl_weight: the rrlsrn method spec sets its own, which wins over these)
    (tmp_path / "changed.yaml").write_text("training:\n  overrides: {lr: 0.001, seed: 1}\n")
    configs = ["--configfile", str(REPO / "configs/smoke.yaml"), str(tmp_path / "run.yaml")]
    target = [str(out / "x2/models/rrlsrn/best.pt"), "--cores", "2"]  # before --configfile's list

    run_snakemake([*target, *configs], tmp_path)
    (tmp_path / "first.pt").write_bytes((out / "x2/models/rrlsrn/best.pt").read_bytes())
    run_snakemake([*target, *configs, str(tmp_path / "changed.yaml")], tmp_path)

    assert weights_differ(tmp_path / "first.pt", out / "x2/models/rrlsrn/best.pt")
    log = (out / "x2/logs/train/rrlsrn.log").read_text()
    assert "(lr: 0.0001 -> 0.001; seed: 0 -> 1): starting fresh" in log, log
    assert len(list((out / "x2/models/rrlsrn/checkpoints/superseded").iterdir())) == 1
