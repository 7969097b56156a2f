"""IXI: names, URLs, indexing uncompressed tars, extracting by byte range, and fetching from a
local HTTP server with injected failures (503, cut transfers, wrong checksums)."""

from __future__ import annotations

import gzip
import hashlib
import io
import random
import re
import subprocess
import sys
import tarfile
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FileServer, RangeHandler, local_http_server

import rrlsrn.data.download as download_module
from rrlsrn.data import ixi
from rrlsrn.data.download import ArchiveError, DownloadError
from rrlsrn.data.ixi import (
    IxiFile,
    Member,
    archive_name,
    archive_path,
    archive_url,
    demographics_url,
    extract_subject,
    fetch,
    fetch_archive,
    index_archive,
    index_path,
    parse_name,
    person_of,
    read_index,
    select_subjects,
    volume_path,
    write_index,
)

SUBJECTS = ["IXI002-Guys-0828", "IXI012-HH-1211", "IXI035-IOP-0873"]
LONG = "IXI-T1/" + "deep/" * 30  # a member name over 100 characters gets a PAX header
XLS = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1 fake demographics sheet"


def _volume(seed: str, n: int = 2000) -> bytes:
    """Gzip bytes standing in for a NIfTI volume, different for each seed."""
    return gzip.compress(random.Random(seed).randbytes(n), mtime=0)


# The bytes each subject's T1 member holds, worked out here, not read back from the tar.
EXPECTED = {
    "IXI002-Guys-0828": _volume("a"),
    "IXI012-HH-1211": _volume("b", 5000),
    "IXI035-IOP-0873": _volume("c", 700),
}


def _t1_members() -> dict[str, bytes]:
    """An IXI-like T1 tar's regular members: three T1 volumes and members to be ignored."""
    return {
        "IXI002-Guys-0828-T1.nii.gz": EXPECTED["IXI002-Guys-0828"],
        "README.txt": b"not a volume",
        "IXI012-HH-1211-T2.nii.gz": _volume("t2"),
        LONG + "IXI012-HH-1211-T1.nii.gz": EXPECTED["IXI012-HH-1211"],
        "IXI035-IOP-0873-T1.nii.gz": EXPECTED["IXI035-IOP-0873"],
        "../IXI040-Guys-0900-T1.nii.gz": _volume("dotdot"),
        "/abs/IXI041-HH-0901-T1.nii.gz": _volume("absolute"),
    }


def _tar(path: Path, members: dict[str, bytes], links: bool = True) -> Path:
    """Write an uncompressed tar (as IXI's are), with a symlink and a folder member."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if links:
            link = tarfile.TarInfo("IXI042-IOP-0902-T1.nii.gz")
            link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
            folder = tarfile.TarInfo("IXI-T1")
            folder.type = tarfile.DIRTYPE
            tar.addfile(link)
            tar.addfile(folder)
    return path


def _info(tar_bytes: bytes, name: str) -> tarfile.TarInfo:
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tar:
        return tar.getmember(name)


@pytest.fixture(scope="module")
def t1_tar(tmp_path_factory) -> bytes:
    return _tar(tmp_path_factory.mktemp("tar") / "IXI-T1.tar", _t1_members()).read_bytes()


@pytest.fixture(autouse=True)
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """No URL override from the caller's shell; retries without real waiting."""
    monkeypatch.delenv(ixi.URL_ENV, raising=False)
    sleeps: list[float] = []
    monkeypatch.setattr(download_module, "time", types.SimpleNamespace(sleep=sleeps.append))
    return sleeps


# --- a local server with injected failures -------------------------------------------


def _calls(b: FileServer) -> list[tuple[str, str | None]]:
    """(path, Range header) of each request the server saw."""
    return [(r["path"], r.get("Range")) for r in b.requests]


TAR_URL = "/ixi/IXI-T1.tar"


@pytest.fixture
def server(t1_tar) -> Iterator[tuple[str, FileServer]]:
    """Serve the T1 tar and IXI.xls under ``/ixi/``; yield that base URL and the behaviour."""
    behaviour = FileServer(files={TAR_URL: t1_tar, "/ixi/IXI.xls": XLS}, fail_status=503)
    handler = type("BoundHandler", (RangeHandler,), {"behaviour": behaviour})
    with local_http_server(handler) as url:
        yield f"{url}/ixi/", behaviour


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --- names, URLs, paths ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("IXI002-Guys-0828-T1.nii.gz", IxiFile("IXI002-Guys-0828", 2, "Guys", "T1")),
        ("IXI-T2/IXI012-HH-1211-T2.nii.gz", IxiFile("IXI012-HH-1211", 12, "HH", "T2")),
        ("/data/ixi/IXI662-IOP-1156-PD.nii.gz", IxiFile("IXI662-IOP-1156", 662, "IOP", "PD")),
        (r"C:\ixi\IXI035-IOP-0873-T1.nii.gz", IxiFile("IXI035-IOP-0873", 35, "IOP", "T1")),
    ],
)
def test_parse_name(name, expected):
    assert parse_name(name) == expected


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("IXI002-Foo-0828-T1.nii.gz", "unknown IXI site 'Foo'"),
        ("IXI002-guys-0828-T1.nii.gz", "unknown IXI site 'guys'"),
        ("IXI002-Guys-0828-MRA.nii.gz", "unknown IXI contrast 'MRA'"),
        ("IXI002-Guys-0828-DTI-00.nii.gz", "unknown IXI contrast 'DTI-00'"),
        ("IXI02-Guys-0828-T1.nii.gz", "not an IXI file name"),
        ("IXI002-Guys-828-T1.nii.gz", "not an IXI file name"),
        ("IXI002-Guys-0828-T1.nii", "not an IXI file name"),
        ("README.txt", "not an IXI file name"),
        ("", "not an IXI file name"),
    ],
)
def test_parse_name_rejects(name, why):
    with pytest.raises(ValueError, match=re.escape(f"{name!r}") + ".*" + re.escape(why)):
        parse_name(name)


def test_person_of():
    assert person_of("IXI002-Guys-0828") == "IXI002"
    assert person_of("IXI662-IOP-1156") == "IXI662"
    for bad in ["IXI002", "IXI002-Foo-0828", "IXI002-Guys-0828-T1", "../IXI002-Guys-0828"]:
        with pytest.raises(ValueError, match=re.escape(repr(bad))):
            person_of(bad)


def test_urls_and_env(monkeypatch):
    folder = "http://biomedic.doc.ic.ac.uk/brain-development/downloads/IXI/"
    assert archive_name("PD") == "IXI-PD.tar"
    assert archive_url("T1") == folder + "IXI-T1.tar"
    assert demographics_url() == folder + "IXI.xls"
    with pytest.raises(ValueError, match="'T3'.*T1, T2, PD"):
        archive_name("T3")
    with pytest.raises(ValueError, match="'t1'"):
        archive_url("t1")
    assert archive_url("T2", "http://mirror/ixi//") == "http://mirror/ixi/IXI-T2.tar"
    monkeypatch.setenv(ixi.URL_ENV, "file:///srv/ixi/")
    assert archive_url("T2") == "file:///srv/ixi/IXI-T2.tar"
    assert demographics_url() == "file:///srv/ixi/IXI.xls"
    assert archive_url("T2", "http://mirror/ixi") == "http://mirror/ixi/IXI-T2.tar"
    assert demographics_url("http://mirror/ixi") == "http://mirror/ixi/IXI.xls"


def test_paths(tmp_path):
    assert index_path(tmp_path, "T1") == tmp_path / "IXI-T1.index.tsv"
    assert archive_path(tmp_path, "T2") == tmp_path / "archives" / "IXI-T2.tar"
    assert (
        volume_path(tmp_path, "PD", "IXI002-Guys-0828")
        == tmp_path / "IXI-PD" / "IXI002-Guys-0828-PD.nii.gz"
    )
    with pytest.raises(ValueError, match="not an IXI subject"):
        volume_path(tmp_path, "T1", "../../etc")
    with pytest.raises(ValueError, match="unknown IXI contrast"):
        index_path(tmp_path, "FLAIR")


def test_licence():
    assert ixi.LICENCE == "CC BY-SA 3.0" and "CC BY-SA 3.0" in ixi.ATTRIBUTION
    assert "brain-development.org" in ixi.ATTRIBUTION and "Imperial" in ixi.ATTRIBUTION
    assert ixi.KNOWN_SHA256 == {}


def test_import_is_light():
    code = "import sys, rrlsrn.data.ixi; print(sorted({'torch', 'pandas'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- indexing and extracting ----------------------------------------------------------


def test_index_matches_tarfile(tmp_path, t1_tar):
    tar = tmp_path / "IXI-T1.tar"
    tar.write_bytes(t1_tar)
    members = index_archive(tar, "T1")
    assert [m.subject for m in members] == SUBJECTS
    assert [m.site for m in members] == ["Guys", "HH", "IOP"]
    for m in members:
        info = _info(t1_tar, m.name)
        assert (m.offset, m.size) == (info.offset_data, info.size)
        assert t1_tar[m.offset : m.offset + m.size] == EXPECTED[m.subject]
    long = next(m for m in members if m.subject == "IXI012-HH-1211")
    assert long.name == LONG + "IXI012-HH-1211-T1.nii.gz"
    assert long.offset > _info(t1_tar, long.name).offset + 512  # behind its PAX header
    with pytest.raises(ArchiveError, match=re.escape(str(tar)) + ".*no IXI PD volume"):
        index_archive(tar, "PD")


def test_extract_is_byte_identical(tmp_path, t1_tar):
    # One volume over the 1 MiB copy chunk, so the copy crosses chunk boundaries.
    big = gzip.compress(random.Random("big").randbytes(1_300_000), compresslevel=0, mtime=0)
    contents = {**_t1_members(), "IXI002-Guys-0828-T1.nii.gz": big}
    tar = _tar(archive_path(tmp_path, "T1"), contents)
    write_index(tmp_path, "T1", index_archive(tar, "T1"))
    with tarfile.open(tar, "r:") as ref:
        for subject, member in read_index(tmp_path, "T1").items():
            out = extract_subject(tmp_path, "T1", subject)
            assert out == volume_path(tmp_path, "T1", subject)
            assert out.read_bytes() == ref.extractfile(member.name).read()
    assert volume_path(tmp_path, "T1", "IXI002-Guys-0828").read_bytes() == big
    assert _files(tmp_path / "IXI-T1") == [f"{s}-T1.nii.gz" for s in SUBJECTS]
    # Done already: the tar is not even opened.
    tar.rename(tmp_path / "elsewhere.tar")
    assert extract_subject(tmp_path, "T1", SUBJECTS[0]).read_bytes() == big


def test_extract_errors(tmp_path, t1_tar):
    tar = archive_path(tmp_path, "T1")
    tar.parent.mkdir(parents=True)
    tar.write_bytes(t1_tar)
    index = write_index(tmp_path, "T1", index_archive(tar, "T1"))
    with pytest.raises(ValueError, match="'IXI099-Guys-0999'.*" + re.escape(str(index))):
        extract_subject(tmp_path, "T1", "IXI099-Guys-0999")
    member = read_index(tmp_path, "T1")["IXI035-IOP-0873"]
    tar.write_bytes(t1_tar[: member.offset + member.size // 2])  # cut after indexing
    with pytest.raises(ArchiveError, match=re.escape(str(tar)) + ".*too short.*delete"):
        extract_subject(tmp_path, "T1", "IXI035-IOP-0873")
    assert _files(tmp_path / "IXI-T1") == []
    tar.unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(str(tar))):
        extract_subject(tmp_path, "T1", "IXI035-IOP-0873")


def test_extract_refuses_non_gzip(tmp_path):
    tar = _tar(archive_path(tmp_path, "T1"), {"IXI002-Guys-0828-T1.nii.gz": b"plain, not gzip"})
    write_index(tmp_path, "T1", index_archive(tar, "T1"))
    with pytest.raises(ArchiveError, match=re.escape(str(tar)) + ".*not gzip"):
        extract_subject(tmp_path, "T1", "IXI002-Guys-0828")
    assert _files(tmp_path / "IXI-T1") == []


def _cut_mid_member(data: bytes) -> bytes:
    info = _info(data, "IXI035-IOP-0873-T1.nii.gz")
    return data[: info.offset_data + 100]


def _cut_at_header(data: bytes) -> bytes:
    return data[: _info(data, "IXI035-IOP-0873-T1.nii.gz").offset]


def _cut_end_marker(data: bytes) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        last = tar.getmembers()[-1]
    return data[: last.offset_data + -(-last.size // 512) * 512]


def _garbage_header(data: bytes) -> bytes:
    start = _info(data, "IXI035-IOP-0873-T1.nii.gz").offset
    return data[:start] + b"\xff" * 512 + data[start + 512 :]


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (_cut_mid_member, "truncated: member 'IXI035-IOP-0873-T1.nii.gz' needs bytes"),
        (_cut_at_header, "truncated: it ends at byte"),
        (_cut_end_marker, "truncated: it ends at byte"),
        (_garbage_header, "corrupt: unreadable tar header at byte"),
        (lambda data: b"", "truncated or corrupt (ReadError"),
        (lambda data: gzip.compress(data), "truncated or corrupt (ReadError"),
    ],
    ids=["mid-member", "at-header", "no-end-block", "garbage-header", "empty", "gzipped"],
)
def test_index_refuses_damaged_tar(tmp_path, t1_tar, damage, why):
    tar = tmp_path / "IXI-T1.tar"
    tar.write_bytes(damage(t1_tar))
    with pytest.raises(ArchiveError, match=re.escape(f"{tar} is {why}")):
        index_archive(tar, "T1")


def test_read_index_roundtrip_and_cache(tmp_path):
    members = [
        Member("IXI012-HH-1211-T1.nii.gz", "IXI012-HH-1211", "HH", 1536, 10),
        Member("a b/IXI002-Guys-0828-T1.nii.gz", "IXI002-Guys-0828", "Guys", 512, 7),
    ]
    path = write_index(tmp_path, "T1", members)
    assert path.read_text().splitlines()[:2] == [
        "member\tsubject\tsite\toffset\tsize",
        "a b/IXI002-Guys-0828-T1.nii.gz\tIXI002-Guys-0828\tGuys\t512\t7",
    ]
    got = read_index(tmp_path, "T1")
    assert list(got) == ["IXI002-Guys-0828", "IXI012-HH-1211"]
    assert got == {m.subject: m for m in members}
    got.clear()  # the cache hands out copies
    assert len(read_index(tmp_path, "T1")) == 2
    write_index(tmp_path, "T1", members[:1])  # a new version of the file is read again
    assert list(read_index(tmp_path, "T1")) == ["IXI012-HH-1211"]
    with pytest.raises(ValueError, match="is a T1 volume, not T2"):
        write_index(tmp_path, "T2", members)
    with pytest.raises(FileNotFoundError, match=re.escape(str(index_path(tmp_path, "PD")))):
        read_index(tmp_path, "PD")


GOOD_ROW = "IXI002-Guys-0828-T1.nii.gz\tIXI002-Guys-0828\tGuys\t512\t7"
HH_ROW = GOOD_ROW.replace("\tGuys\t", "\tHH\t")  # the site contradicts the name
HEADER = "member\tsubject\tsite\toffset\tsize"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (f"member\tsubject\toffset\tsize\n{GOOD_ROW}\n", "line 1"),
        (f"{HEADER}\n{GOOD_ROW}\nIXI012-HH-1211-T1.nii.gz\tIXI012-HH-1211\n", "line 3"),
        (f"{HEADER}\n{GOOD_ROW.replace('512', '51x')}\n", "line 2: offset and size"),
        (f"{HEADER}\n{GOOD_ROW.replace('512', '513')}\n", "line 2: bad byte range"),
        (f"{HEADER}\n{HH_ROW}\n", "line 2: subject"),
        (f"{HEADER}\n{GOOD_ROW.replace('-T1.', '-T2.')}\n", "line 2: 'IXI002-Guys-0828-T2"),
        (f"{HEADER}\n{GOOD_ROW}\n{GOOD_ROW}\n", "line 3: subject IXI002-Guys-0828 is listed"),
        (f"{HEADER}\n", "lists no volume"),
        (b"\xff\xfe\x00garbage", "not a readable index"),
    ],
    ids=[
        "header",
        "fields",
        "integer",
        "alignment",
        "site",
        "contrast",
        "twice",
        "empty",
        "binary",
    ],
)
def test_read_index_garbled(tmp_path, text, where):
    path = index_path(tmp_path, "T1")
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*" + re.escape(where)):
        read_index(tmp_path, "T1")


def test_select_subjects():
    index = ["IXI035-IOP-0873", "IXI002-Guys-0828", "IXI012-HH-1211"]
    assert select_subjects(index, None, None) == SUBJECTS
    assert select_subjects(index, None, 2) == ["IXI002-Guys-0828", "IXI012-HH-1211"]
    assert select_subjects(index, None, 10) == SUBJECTS
    assert select_subjects(index, ["IXI035-IOP-0873", "IXI012-HH-1211"], None) == SUBJECTS[1:]
    assert select_subjects(index, ["IXI035-IOP-0873", "IXI012-HH-1211"], 1) == [SUBJECTS[1]]
    with pytest.raises(ValueError, match="unknown IXI subjects.*'IXI099-Guys-0999'"):
        select_subjects(index, ["IXI002-Guys-0828", "IXI099-Guys-0999"], None)
    with pytest.raises(ValueError, match="more than once: IXI002-Guys-0828"):
        select_subjects(index, ["IXI002-Guys-0828", "IXI012-HH-1211", "IXI002-Guys-0828"], None)
    with pytest.raises(ValueError, match="'IXI002' is not an IXI subject id"):
        select_subjects(index, ["IXI002"], None)
    with pytest.raises(ValueError, match="the string"):
        select_subjects(index, "IXI002-Guys-0828", None)
    with pytest.raises(ValueError, match="at least 1, got 0"):
        select_subjects(index, None, 0)


# --- fetching from the local server ---------------------------------------------------


def test_fetch_archive_and_skip(server, tmp_path, t1_tar):
    base, b = server
    index = fetch_archive(tmp_path, "T1", base_url=base, progress=False)
    assert index == tmp_path / "IXI-T1.index.tsv"
    assert archive_path(tmp_path, "T1").read_bytes() == t1_tar
    assert list(read_index(tmp_path, "T1")) == SUBJECTS
    assert _calls(b) == [(TAR_URL, None)]
    stamp = index.stat().st_mtime_ns
    assert fetch_archive(tmp_path, "T1", base_url=base, progress=False) == index
    assert index.stat().st_mtime_ns == stamp and len(_calls(b)) == 1
    index.write_text("garbled\n")  # newer than the tar but unreadable: indexed again
    fetch_archive(tmp_path, "T1", base_url=base, progress=False)
    assert list(read_index(tmp_path, "T1")) == SUBJECTS and len(_calls(b)) == 1


def test_truncated_download_is_kept(server, tmp_path, t1_tar):
    base, b = server
    b.files[TAR_URL] = cut = _cut_mid_member(t1_tar)  # the server itself has a short file
    tar = archive_path(tmp_path, "T1")
    with pytest.raises(ArchiveError, match=re.escape(str(tar)) + ".*truncated.*delete"):
        fetch_archive(tmp_path, "T1", base_url=base, progress=False)
    assert tar.read_bytes() == cut
    assert not index_path(tmp_path, "T1").exists()


def test_wrong_checksum(server, tmp_path, t1_tar, monkeypatch):
    base, _ = server
    with pytest.raises(DownloadError, match="SHA-256 mismatch"):
        fetch_archive(tmp_path, "T1", base_url=base, sha256="0" * 64, progress=False)
    assert _files(tmp_path / "archives") == []
    assert not index_path(tmp_path, "T1").exists()
    monkeypatch.setitem(ixi.KNOWN_SHA256, "IXI-T1.tar", "1" * 64)
    with pytest.raises(DownloadError, match="SHA-256 mismatch"):
        fetch_archive(tmp_path, "T1", base_url=base, progress=False)
    monkeypatch.setitem(ixi.KNOWN_SHA256, "IXI-T1.tar", hashlib.sha256(t1_tar).hexdigest())
    fetch_archive(tmp_path, "T1", base_url=base, progress=False)
    assert archive_path(tmp_path, "T1").read_bytes() == t1_tar


def test_retries_after_503(server, tmp_path, t1_tar, sleeps):
    base, b = server
    b.fail_first = 1
    fetch_archive(tmp_path, "T1", base_url=base, progress=False)
    assert archive_path(tmp_path, "T1").read_bytes() == t1_tar
    assert _calls(b) == [(TAR_URL, None), (TAR_URL, None)]
    assert len(sleeps) == 1  # one back-off wait between the two tries


def test_interrupted_transfer_resumes(server, tmp_path, t1_tar):
    base, b = server
    b.cut_after = 3000
    fetch_archive(tmp_path, "T1", base_url=base, progress=False)
    assert _calls(b) == [(TAR_URL, None), (TAR_URL, "bytes=3000-")]
    assert archive_path(tmp_path, "T1").read_bytes() == t1_tar
    assert list(read_index(tmp_path, "T1")) == SUBJECTS


def test_fetch_some_subjects(server, tmp_path, monkeypatch):
    base, b = server
    monkeypatch.setenv(ixi.URL_ENV, base)  # the env var is used when no base_url is given
    wanted = ["IXI035-IOP-0873", "IXI002-Guys-0828"]
    got = fetch(tmp_path, "T1", wanted, progress=True)
    assert sorted(got) == sorted(wanted)
    for subject, path in got.items():
        assert path == volume_path(tmp_path, "T1", subject)
        assert path.read_bytes() == EXPECTED[subject]
    assert _files(tmp_path / "IXI-T1") == [
        "IXI002-Guys-0828-T1.nii.gz",
        "IXI035-IOP-0873-T1.nii.gz",
    ]
    assert not volume_path(tmp_path, "T1", "IXI012-HH-1211").exists()
    assert (tmp_path / "IXI.xls").read_bytes() == XLS
    assert sorted(_calls(b)) == [("/ixi/IXI-T1.tar", None), ("/ixi/IXI.xls", None)]
    # Everything asked for is there: no request, even with the tar gone.
    archive_path(tmp_path, "T1").unlink()
    assert fetch(tmp_path, "T1", wanted, progress=False) == got
    assert len(_calls(b)) == 2
    with pytest.raises(ValueError, match="'IXI099-Guys-0999'"):
        fetch(tmp_path, "T1", ["IXI099-Guys-0999"], progress=False)
    assert len(_calls(b)) == 2
    # All subjects: the missing one needs the tar, so it is downloaded again.
    got = fetch(tmp_path, "T1", base_url=base, progress=False)
    assert list(got) == SUBJECTS
    assert volume_path(tmp_path, "T1", "IXI012-HH-1211").read_bytes() == EXPECTED["IXI012-HH-1211"]
    assert _calls(b)[2:] == [(TAR_URL, None)]
