"""Kirby 21: session ids, URLs, fetching from a local server, PAR headers and splits."""

from __future__ import annotations

import http.server
import io
import tarfile
from collections.abc import Iterator
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import local_http_server, run_snakemake

from rrlsrn.data import kirby21
from rrlsrn.data.download import ArchiveError
from rrlsrn.data.kirby21 import (
    SESSIONS,
    SUBJECT_OF,
    check_split,
    fetch_session,
    paper_split,
    read_par_header,
    session_id,
    subject_disjoint_split,
    url_for,
)
from rrlsrn.io import VolumeError, load_volume

PAR = Path(nib.__file__).parent / "tests" / "data" / "T1.PAR"


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(kirby21.URL_ENV, raising=False)


def _session_archive(path: Path, sid: str, folder: str = "") -> Path:
    """A Kirby-like archive: MPRAGE .nii + .par and an unneeded fMRI volume."""
    volume = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    nifti = nib.Nifti1Image(volume, np.diag([1.0, 1.0, 1.2, 1.0])).to_bytes()
    members = {
        f"{sid}-MPRAGE.nii": nifti,
        f"{sid}-MPRAGE.par": PAR.read_bytes(),
        f"{sid}-fMRI.nii": nifti,
    }
    with tarfile.open(path, "w:bz2") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(folder + name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def server(tmp_path) -> Iterator[tuple[str, list[str]]]:
    """Serve ``tmp_path/served`` over HTTP; yield the Kirby base URL and the request log."""
    served = tmp_path / "served"
    served.mkdir()
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(served), **kwargs)

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            requests.append(self.path)
            super().do_GET()

    with local_http_server(Handler) as url:
        yield f"{url}/{{session}}.tar.bz2", requests


def test_constants_and_urls(monkeypatch):
    assert len(SESSIONS) == 42 and SESSIONS[0] == "KKI2009-01" and SESSIONS[-1] == "KKI2009-42"
    assert SUBJECT_OF["KKI2009-01"] == 849 and SUBJECT_OF["KKI2009-42"] == 422
    counts = np.unique(list(SUBJECT_OF.values()), return_counts=True)[1]
    assert len(counts) == 21 and set(counts) == {2}
    assert session_id(7) == session_id("07") == session_id("KKI2009-07") == "KKI2009-07"
    with pytest.raises(ValueError, match="not a Kirby 21 session"):
        session_id(43)
    assert url_for(1) == "https://www.nitrc.org/frs/downloadlink.php/2201"
    assert url_for("KKI2009-42", "http://m/{link}/{session}.tbz") == "http://m/2242/KKI2009-42.tbz"
    assert url_for(3, "http://mirror/kirby/") == "http://mirror/kirby/KKI2009-03.tar.bz2"
    monkeypatch.setenv(kirby21.URL_ENV, "http://env/{session}")
    assert url_for(5) == "http://env/KKI2009-05"


@pytest.mark.parametrize("folder", ["", "KKI2009-01/"], ids=["root", "top-folder"])
def test_fetch_session_extracts_only_mprage(server, tmp_path, folder):
    base_url, requests = server
    _session_archive(tmp_path / "served" / "KKI2009-01.tar.bz2", "KKI2009-01", folder)
    root = tmp_path / "kirby"
    got = fetch_session(1, root, base_url=base_url, progress=False)
    nifti = root / "KKI2009-01" / "KKI2009-01-MPRAGE.nii"
    assert got == {"MPRAGE": nifti}
    assert sorted(p.name for p in (root / "KKI2009-01").iterdir()) == [
        "KKI2009-01-MPRAGE.nii",
        "KKI2009-01-MPRAGE.par",
    ]
    data, _, zooms = load_volume(nifti)
    assert data.shape == (4, 5, 6) and zooms == pytest.approx((1.0, 1.0, 1.2))
    assert (root / "archives" / "KKI2009-01.tar.bz2").is_file()
    assert requests == ["/KKI2009-01.tar.bz2"]
    assert fetch_session("KKI2009-01", root, base_url=base_url, progress=False) == got
    assert requests == ["/KKI2009-01.tar.bz2"]


def test_fetch_session_missing_modality_and_drop_archive(server, tmp_path):
    base_url, requests = server
    _session_archive(tmp_path / "served" / "KKI2009-02.tar.bz2", "KKI2009-02")
    root = tmp_path / "kirby"
    with pytest.raises(ArchiveError, match=r"KKI2009-02\.tar\.bz2 has no member KKI2009-02-FLAIR"):
        fetch_session(2, root, modalities=("MPRAGE", "FLAIR"), base_url=base_url, progress=False)
    got = fetch_session(
        2, root, modalities=["fMRI"], base_url=base_url, progress=False, keep_archive=False
    )
    assert got["fMRI"].is_file() and not (root / "archives" / "KKI2009-02.tar.bz2").exists()
    assert len(requests) == 1


def test_fetch_session_corrupt_archive(server, tmp_path):
    base_url, _ = server
    (tmp_path / "served" / "KKI2009-03.tar.bz2").write_bytes(b"<html>maintenance</html>")
    archive = tmp_path / "kirby" / "archives" / "KKI2009-03.tar.bz2"
    with pytest.raises(ArchiveError, match=f"delete {archive} to download it again"):
        fetch_session(3, tmp_path / "kirby", base_url=base_url, progress=False)
    assert not (tmp_path / "kirby" / "KKI2009-03").exists() or not any(
        (tmp_path / "kirby" / "KKI2009-03").iterdir()
    )


@pytest.mark.filterwarnings("ignore:PAR/REC version")
def test_read_par_header(tmp_path):
    header = read_par_header(PAR)
    assert header["max_slices"] == 10 and header["scan_resolution"] == (76, 62)
    assert header["shape"] == (80, 80, 10)
    assert header["voxel_size"] == pytest.approx((1.912, 1.912, 10.0))
    assert header["slice_thickness"] == 10.0 and header["slice_gap"] == 0.0
    bad = tmp_path / "bad.par"
    bad.write_text("not a PAR file\n")
    with pytest.raises(VolumeError, match="bad.par"):
        read_par_header(bad)


def test_paper_split_leaks():
    split = paper_split()
    roles = list(split.values())
    assert roles.count("train") == 37 and roles.count("test") == 5
    assert [s for s, r in split.items() if r == "test"] == list(SESSIONS[:5])
    with pytest.raises(ValueError, match="subject 849"):
        check_split(split, SUBJECT_OF)


def test_subject_disjoint_split():
    split = subject_disjoint_split()
    check_split(split, SUBJECT_OF)
    assert subject_disjoint_split() == split
    by_role = {r: {s for s, v in split.items() if v == r} for r in set(split.values())}
    assert by_role["test"] == set(SESSIONS[:5])
    rescans = {f"KKI2009-{n}" for n in ("25", "37", "22", "11", "31")}
    assert by_role["excluded"] == rescans
    assert by_role["val"]
    val_subjects = {SUBJECT_OF[s] for s in by_role["val"]}
    assert by_role["val"] == {s for s in SESSIONS if SUBJECT_OF[s] in val_subjects}
    assert len(by_role["train"]) + len(by_role["val"]) == 32
    assert "val" not in subject_disjoint_split(val_fraction=0.0).values()


@pytest.mark.slow
def test_workflow_downloads_extracts_and_prepares_a_session(server, tmp_path):
    """The Snakemake rules fetch a session over HTTP and slice its MPRAGE."""
    import yaml

    from rrlsrn.io import load_npz

    base_url, requests = server
    _session_archive(tmp_path / "served" / "KKI2009-01.tar.bz2", "KKI2009-01")
    config = {
        "results": str(tmp_path / "out"),
        "datasets": {
            "kirby": {"source": "kirby21", "path": str(tmp_path / "kirby"), "base_url": base_url}
        },
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    target = tmp_path / "out" / "data" / "kirby" / "KKI2009-01.npz"
    run_snakemake(
        ["--cores", "1", str(target), "--configfile", str(tmp_path / "config.yaml")], tmp_path
    )
    assert requests == ["/KKI2009-01.tar.bz2"]
    extracted = sorted(p.name for p in (tmp_path / "kirby" / "KKI2009-01").iterdir())
    assert extracted == ["KKI2009-01-MPRAGE.nii", "KKI2009-01-MPRAGE.par"]
    assert not (tmp_path / "kirby" / "archives" / "KKI2009-01.tar.bz2").exists()
    data = load_npz(target)
    assert data["hr"].ndim == 3 and 0.0 <= data["hr"].min() < data["hr"].max() <= 1.0
    assert str(data["source"]).endswith("KKI2009-01/KKI2009-01-MPRAGE.nii")
