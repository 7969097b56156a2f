"""Data manifest and summary from prepared slice files."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from rrlsrn.cli import main
from rrlsrn.data.summary import manifest, summary
from rrlsrn.io import save_npz_atomic


def prepared(path, slices, shape, spacing, high, source="scan.nii.gz"):
    mask = np.zeros((slices, *shape), bool)
    mask[:, : shape[0] // 2] = True  # half of every slice
    save_npz_atomic(
        path,
        hr=np.zeros((slices, *shape), np.float32),
        mask=mask,
        slice_index=np.arange(slices),
        axis=np.int32(2),
        spacing=np.asarray(spacing, np.float32),
        intensity_low=np.float32(0),
        intensity_high=np.float32(high),
        source=np.str_(source),
        source_sha256=np.str_("ab" * 32),
        mask_source=np.str_("computed"),
        options=np.str_(json.dumps({"scale": 2})),
    )
    return path


def test_manifest_and_summary_by_hand(tmp_path):
    files = {
        "a": prepared(tmp_path / "a.npz", 10, (8, 8), (1.0, 1.0), 100.0),
        "b": prepared(tmp_path / "b.npz", 4, (6, 8), (0.5, 0.5), 300.0),
        "c": prepared(tmp_path / "c.npz", 7, (8, 8), (1.0, 1.0), 200.0),
    }
    table = manifest(files, {"a": "train", "b": "train", "c": "test"}, "toy")
    assert list(table["unit"]) == ["a", "b", "c"]
    row = table.set_index("unit").loc["b"]
    assert row["file_sha256"] == hashlib.sha256(files["b"].read_bytes()).hexdigest()
    assert (row["slices"], row["slice_shape"], row["spacing_mm"]) == (4, "6x8", "0.500x0.500")
    assert row["intensity_clip"] == "[0, 300]" and row["mask_fraction"] == pytest.approx(0.5)
    assert json.loads(row["options"]) == {"scale": 2} and row["source"] == "scan.nii.gz"

    out = summary([table]).set_index("role")
    assert out.loc["train", "units"] == 2 and out.loc["train", "slices"] == 14
    assert out.loc["train", "slice_shapes"] == "6x8, 8x8"
    assert out.loc["train", "spacing_mm"] == "0.500x0.500, 1.000x1.000"
    assert out.loc["train", "intensity_clip_high"] == "100-300"
    assert out.loc["test", "slices"] == 7


def test_cli_data_summary_prints_or_says_how_to_make_it(tmp_path, capsys):
    assert main(["data", "summary", "--results", str(tmp_path)]) == 1
    assert "data_summary.md" in capsys.readouterr().err
    table = manifest(
        {"a": prepared(tmp_path / "a.npz", 3, (4, 4), (1, 1), 9)}, {"a": "test"}, "toy"
    )
    (tmp_path / "manifests").mkdir()
    table.to_csv(tmp_path / "manifests" / "toy.tsv", sep="\t", index=False)
    main(["data", "summary", "--results", str(tmp_path)])
    printed = capsys.readouterr().out
    assert "| toy" in printed and "| test" in printed
