"""Resumable checked downloads (against a local HTTP server) and safe tar extraction."""

from __future__ import annotations

import hashlib
import io
import os
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FileServer, RangeHandler, local_http_server

from rrlsrn.data.download import (
    ArchiveError,
    DownloadError,
    UnsafeArchiveError,
    download,
    safe_extract,
)

PAYLOAD = os.urandom(300_000)


@pytest.fixture
def server() -> Iterator[tuple[str, FileServer]]:
    behaviour = FileServer(files={"/data.bin": PAYLOAD})
    handler = type("BoundHandler", (RangeHandler,), {"behaviour": behaviour})
    with local_http_server(handler) as url:
        yield url, behaviour


FAST = {"backoff_s": 0.01, "timeout_s": 5, "progress": False, "chunk": 1 << 14}


def test_fresh_download(server, tmp_path):
    base, b = server
    dest = download(f"{base}/data.bin", tmp_path / "sub" / "data.bin", progress=True, tries=1)
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "sub" / "data.bin.part").exists()
    assert len(b.requests) == 1 and "Range" not in b.requests[0]


def test_resume_from_part(server, tmp_path):
    base, b = server
    dest = tmp_path / "data.bin"
    half = len(PAYLOAD) // 2
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD[:half])
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    download(f"{base}/data.bin", dest, sha256=sha, expected_size=len(PAYLOAD), **FAST)
    assert dest.read_bytes() == PAYLOAD
    assert [r.get("Range") for r in b.requests] == [f"bytes={half}-"]


def test_server_ignoring_range_restarts(server, tmp_path):
    base, b = server
    b.ignore_range = True
    (tmp_path / "data.bin.part").write_bytes(b"x" * 1000)
    assert download(f"{base}/data.bin", tmp_path / "data.bin", **FAST).read_bytes() == PAYLOAD


def test_complete_part_and_416(server, tmp_path):
    base, b = server
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD)
    assert download(f"{base}/data.bin", tmp_path / "data.bin", **FAST).read_bytes() == PAYLOAD
    assert len(b.requests) == 1


def test_retries_after_500(server, tmp_path):
    base, b = server
    b.fail_first = 2
    dest = download(f"{base}/data.bin", tmp_path / "data.bin", tries=3, **FAST)
    assert dest.read_bytes() == PAYLOAD
    assert len(b.requests) == 3


def test_gives_up_after_tries(server, tmp_path):
    base, b = server
    b.fail_first = 10
    with pytest.raises(DownloadError, match=r"HTTP 500.*after 2 tries"):
        download(f"{base}/data.bin", tmp_path / "data.bin", tries=2, **FAST)
    assert len(b.requests) == 2 and not (tmp_path / "data.bin").exists()


def test_short_read_is_resumed(server, tmp_path):
    base, b = server
    b.cut_after = 100_000
    dest = download(f"{base}/data.bin", tmp_path / "data.bin", **FAST)
    assert dest.read_bytes() == PAYLOAD
    assert [r.get("Range") for r in b.requests] == [None, "bytes=100000-"]


def test_short_read_final_failure_keeps_part(server, tmp_path):
    base, b = server
    b.cut_after = 1000
    with pytest.raises(DownloadError, match=r"short read.*kept for resuming"):
        download(f"{base}/data.bin", tmp_path / "data.bin", tries=1, **FAST)
    assert (tmp_path / "data.bin.part").stat().st_size == 1000


def test_404_fails_at_once(server, tmp_path):
    base, b = server
    url = f"{base}/missing.bin"
    with pytest.raises(DownloadError, match="HTTP 404") as info:
        download(url, tmp_path / "missing.bin", **FAST)
    assert url in str(info.value) and str(tmp_path / "missing.bin") in str(info.value)
    assert len(b.requests) == 1
    assert list(tmp_path.iterdir()) == []


def test_sha256_mismatch_deletes_everything(server, tmp_path):
    base, b = server
    b.garbage = True
    with pytest.raises(DownloadError, match="SHA-256 mismatch"):
        download(
            f"{base}/data.bin",
            tmp_path / "d.bin",
            sha256=hashlib.sha256(PAYLOAD).hexdigest(),
            **FAST,
        )
    assert list(tmp_path.iterdir()) == []


def test_expected_size_mismatch(server, tmp_path):
    base, _ = server
    with pytest.raises(DownloadError, match="expected 5"):
        download(f"{base}/data.bin", tmp_path / "d.bin", expected_size=5, **FAST)
    assert list(tmp_path.iterdir()) == []


def test_existing_dest_makes_no_request(server, tmp_path):
    base, b = server
    dest = tmp_path / "data.bin"
    dest.write_bytes(b"already here")
    assert download(f"{base}/data.bin", dest, **FAST) == dest
    sha = hashlib.sha256(b"already here").hexdigest()
    assert download(f"{base}/data.bin", dest, sha256=sha, **FAST) == dest
    assert b.requests == []
    download(f"{base}/data.bin", dest, sha256=hashlib.sha256(PAYLOAD).hexdigest(), **FAST)
    assert dest.read_bytes() == PAYLOAD and len(b.requests) == 1


# --- safe_extract ---------------------------------------------------------------------


def _add(tar: tarfile.TarFile, name: str, data: bytes = b"", **attrs: object) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in attrs.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data) if data else None)


def _archive(path: Path, members: list[tuple], compresslevel: int = 9) -> Path:
    with tarfile.open(path, "w:bz2", compresslevel=compresslevel) as tar:
        for member in members:
            _add(tar, *member[:2], **(member[2] if len(member) > 2 else {}))
    return path


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_extracts_only_selected(tmp_path):
    archive = _archive(
        tmp_path / "a.tar.bz2",
        [("top/a.nii", b"AAA"), ("top/b.nii", b"BB"), ("top/sub/c.par", b"C"), ("top/x", b"X")],
    )
    out = tmp_path / "out"
    got = safe_extract(archive, out, lambda n: n.endswith((".nii", ".par")), progress=True)
    assert (
        sorted(got) == _files(out) == [out / "top/a.nii", out / "top/b.nii", out / "top/sub/c.par"]
    )
    assert (out / "top/a.nii").read_bytes() == b"AAA"
    flat = safe_extract(archive, tmp_path / "flat", ["top/sub/c.par"], flatten=True, progress=False)
    assert flat == [tmp_path / "flat" / "c.par"]


@pytest.mark.parametrize(
    "member",
    [
        ("../evil", b"pwned"),
        ("ok/../../evil", b"pwned"),
        ("/abs/path", b"pwned"),
        ("link", b"", {"type": tarfile.SYMTYPE, "linkname": "/etc/passwd"}),
        ("hard", b"", {"type": tarfile.LNKTYPE, "linkname": "safe.txt"}),
        ("dev", b"", {"type": tarfile.CHRTYPE}),
        ("fifo", b"", {"type": tarfile.FIFOTYPE}),
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "symlink", "hardlink", "device", "fifo"],
)
def test_refuses_unsafe_members(tmp_path, member):
    archive = _archive(tmp_path / "bad.tar.bz2", [("safe.txt", b"fine"), member])
    out = tmp_path / "out"
    with pytest.raises(UnsafeArchiveError, match=re.escape(repr(member[0]))) as info:
        safe_extract(archive, out, lambda n: True, progress=False)
    assert str(archive) in str(info.value)
    assert _files(out) == []
    assert not (tmp_path / "evil").exists() and not Path("/abs/path").exists()
    # Unselected unsafe members are simply skipped.
    assert safe_extract(archive, out, ["safe.txt"], progress=False) == [out / "safe.txt"]


def test_corrupt_archive(tmp_path):
    archive = tmp_path / "junk.tar.bz2"
    archive.write_bytes(os.urandom(5000))
    with pytest.raises(ArchiveError, match=re.escape(str(archive))):
        safe_extract(archive, tmp_path / "out", lambda n: True, progress=False)
    assert _files(tmp_path / "out") == []


def test_truncated_archive_leaves_nothing(tmp_path):
    # Small bz2 blocks so the first members decode before the cut and would be written.
    members = [(f"m{i}.bin", os.urandom(60_000)) for i in range(6)]
    full = _archive(tmp_path / "full.tar.bz2", members, compresslevel=1)
    archive = tmp_path / "cut.tar.bz2"
    archive.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    out = tmp_path / "out"
    with pytest.raises(ArchiveError, match=re.escape(str(archive))):
        safe_extract(archive, out, lambda n: True, progress=False)
    assert _files(out) == []
    assert len(safe_extract(full, out, lambda n: True, progress=False)) == 6
