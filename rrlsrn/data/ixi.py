"""IXI: about 580 healthy adults' brain MRI from three London hospitals (brain-development.org).

T1, T2 and PD volumes (also MRA and DTI, unused here) were acquired at Guy's Hospital
(``Guys``, Philips 1.5T), Hammersmith Hospital (``HH``, Philips 3T) and the Institute of
Psychiatry (``IOP``, GE 1.5T).  Each contrast is one *uncompressed* tar (``IXI-T1.tar``,
about 4.5 GB) of flat members such as ``IXI002-Guys-0828-T1.nii.gz``: subject
``IXI002-Guys-0828`` is ``IXI`` + a 3-digit number, the site and a 4-digit scan code.
Demographics are in ``IXI.xls`` in the same folder.  Licence: CC BY-SA 3.0.

Because the tars are uncompressed, :func:`index_archive` records each member's byte range
once (a header scan that seeks over the data), and :func:`extract_subject` copies one
volume straight out of the tar: a workflow can extract only the subjects it uses, one job
each, without unpacking 4.5 GB.  The layout under ``root``::

    archives/IXI-T1.tar      the download (resumable; kept, never deleted here)
    IXI-T1.index.tsv         member, subject, site, offset, size of each T1 volume
    IXI-T1/IXI002-Guys-0828-T1.nii.gz
    IXI.xls                  demographics (not parsed here)

This module is imported when a workflow is parsed, so it stays light (no torch, no pandas).
"""

from __future__ import annotations

import csv
import functools
import io
import logging
import os
import re
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from rrlsrn.data.download import ArchiveError, download
from rrlsrn.io import atomic_path, write_text_atomic

_log = logging.getLogger(__name__)

CONTRASTS = ("T1", "T2", "PD")
SITES = ("Guys", "HH", "IOP")
BASE_URL = "http://biomedic.doc.ic.ac.uk/brain-development/downloads/IXI"
URL_ENV = "RRLSRN_IXI_URL"
DEMOGRAPHICS_NAME = "IXI.xls"
LICENCE = "CC BY-SA 3.0"
ATTRIBUTION = (
    "IXI dataset (https://brain-development.org/ixi-dataset/), "
    "Imperial College London, licensed CC BY-SA 3.0"
)

# File name -> SHA-256.  IXI publishes no checksums, so this starts empty (only sizes are
# checked); callers or a config may add digests they have verified themselves.
KNOWN_SHA256: dict[str, str] = {}

_CHUNK = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"
_INDEX_HEADER = ("member", "subject", "site", "offset", "size")
_NAME = re.compile(r"(IXI(\d{3})-([A-Za-z]+)-\d{4})-(.+)\.nii\.gz")
_SUBJECT = re.compile(rf"IXI\d{{3}}-(?:{'|'.join(SITES)})-\d{{4}}")


@dataclass(frozen=True)
class IxiFile:
    """What an IXI file name says: subject id, its number, the site and the contrast."""

    subject: str
    number: int
    site: str
    contrast: str


@dataclass(frozen=True)
class Member:
    """One volume in a contrast's tar: the member name, its subject and site, and the byte
    offset and size of its data in the (uncompressed) tar."""

    name: str
    subject: str
    site: str
    offset: int
    size: int


def _check_contrast(contrast: str) -> str:
    if contrast not in CONTRASTS:
        allowed = ", ".join(CONTRASTS)
        raise ValueError(f"unknown IXI contrast {contrast!r}; expected one of {allowed}")
    return contrast


def _check_subject(subject: str) -> str:
    if not isinstance(subject, str) or not _SUBJECT.fullmatch(subject):
        raise ValueError(
            f"{subject!r} is not an IXI subject id (IXI<nnn>-<site>-<nnnn>, site one of "
            f"{', '.join(SITES)}, e.g. IXI002-Guys-0828)"
        )
    return subject


def parse_name(name: str) -> IxiFile:
    """Parse ``[folders/]IXI002-Guys-0828-T1.nii.gz``; ValueError naming ``name`` otherwise."""
    base = str(name).replace("\\", "/").rsplit("/", 1)[-1]
    match = _NAME.fullmatch(base)
    if not match:
        raise ValueError(
            f"{name!r} is not an IXI file name (IXI<nnn>-<site>-<nnnn>-<contrast>.nii.gz)"
        )
    subject, number, site, contrast = match.groups()
    if site not in SITES:
        raise ValueError(f"{name!r}: unknown IXI site {site!r}; expected one of {', '.join(SITES)}")
    if contrast not in CONTRASTS:
        raise ValueError(
            f"{name!r}: unknown IXI contrast {contrast!r}; expected one of {', '.join(CONTRASTS)}"
        )
    return IxiFile(subject, int(number), site, contrast)


def person_of(subject: str) -> str:
    """The person part of a subject id (``IXI002-Guys-0828`` -> ``IXI002``), for splits."""
    return _check_subject(subject).split("-", 1)[0]


def archive_name(contrast: str) -> str:
    """File name of a contrast's tar, e.g. ``IXI-T1.tar``."""
    return f"IXI-{_check_contrast(contrast)}.tar"


def _base(base_url: str | None) -> str:
    return (base_url or os.environ.get(URL_ENV) or BASE_URL).rstrip("/")


def archive_url(contrast: str, base_url: str | None = None) -> str:
    """Address of a contrast's tar under ``base_url``, else ``$RRLSRN_IXI_URL``, else IXI's."""
    return f"{_base(base_url)}/{archive_name(contrast)}"


def demographics_url(base_url: str | None = None) -> str:
    """Address of ``IXI.xls`` (same folder rules as :func:`archive_url`)."""
    return f"{_base(base_url)}/{DEMOGRAPHICS_NAME}"


def index_path(root: str | os.PathLike, contrast: str) -> Path:
    """``root/IXI-<contrast>.index.tsv``."""
    return Path(root) / f"IXI-{_check_contrast(contrast)}.index.tsv"


def archive_path(root: str | os.PathLike, contrast: str) -> Path:
    """``root/archives/IXI-<contrast>.tar``."""
    return Path(root) / "archives" / archive_name(contrast)


def volume_path(root: str | os.PathLike, contrast: str, subject: str) -> Path:
    """``root/IXI-<contrast>/<subject>-<contrast>.nii.gz`` (the subject id is checked)."""
    _check_contrast(contrast)
    return Path(root) / f"IXI-{contrast}" / f"{_check_subject(subject)}-{contrast}.nii.gz"


# --- indexing -------------------------------------------------------------------------


def _index_member(tar_path: Path, info: tarfile.TarInfo, contrast: str) -> Member | None:
    """The index entry of a member, or None for anything not a plain IXI file of ``contrast``."""
    try:
        parsed = parse_name(info.name)
    except ValueError:
        return None
    if parsed.contrast != contrast:
        return None
    name = info.name.replace("\\", "/")
    pure = PurePosixPath(name)
    unsafe = pure.is_absolute() or ".." in pure.parts or re.match(r"^[A-Za-z]:", name)
    if unsafe or not info.isreg() or info.issparse():
        _log.warning("%s: ignoring member %r (not a plain relative file)", tar_path, info.name)
        return None
    return Member(info.name, parsed.subject, parsed.site, info.offset_data, info.size)


def index_archive(tar_path: str | os.PathLike, contrast: str) -> list[Member]:
    """The ``contrast`` volumes of an uncompressed IXI tar, sorted by subject.

    Only headers are read (tar mode ``r:`` seeks over the data).  Links, absolute names,
    names with ``..`` and non-IXI members are left out.  Raises
    :class:`~rrlsrn.data.download.ArchiveError` naming the tar when it is truncated or
    corrupt (including a member whose data run past the end of the file, or a missing
    end-of-archive block) or holds no volume of ``contrast``.
    """
    _check_contrast(contrast)
    tar_path = Path(tar_path)
    file_size = tar_path.stat().st_size
    found: dict[str, Member] = {}
    try:
        with tar_path.open("rb") as fh, tarfile.open(fileobj=fh, mode="r:") as tar:
            last = "the start"
            while (info := tar.next()) is not None:
                end = info.offset_data + info.size
                if info.isreg() and not info.issparse() and end > file_size:
                    raise ArchiveError(
                        f"{tar_path} is truncated: member {info.name!r} needs bytes "
                        f"{info.offset_data}-{end} but the file has {file_size} bytes"
                    )
                last = f"member {info.name!r}"
                member = _index_member(tar_path, info, contrast)
                if member is None:
                    continue
                if member.subject in found:
                    _log.warning(
                        "%s: %r and %r are both %s; the later one is used",
                        tar_path,
                        found[member.subject].name,
                        member.name,
                        member.subject,
                    )
                found[member.subject] = member
            # tarfile stops quietly at a missing or unreadable header after the first one;
            # a complete tar ends with zero blocks right where the scan stopped.
            fh.seek(tar.offset)
            block = fh.read(tarfile.BLOCKSIZE)
    except (tarfile.TarError, EOFError) as exc:
        raise ArchiveError(
            f"{tar_path} is truncated or corrupt ({type(exc).__name__}: {exc})"
        ) from exc
    if len(block) < tarfile.BLOCKSIZE:
        raise ArchiveError(
            f"{tar_path} is truncated: it ends at byte {file_size} after {last} "
            "without the tar end-of-archive block"
        )
    if block.count(0) != tarfile.BLOCKSIZE:
        raise ArchiveError(
            f"{tar_path} is corrupt: unreadable tar header at byte {tar.offset} after {last}"
        )
    if not found:
        raise ArchiveError(
            f"{tar_path} holds no IXI {contrast} volume "
            f"(no member named IXI<nnn>-<site>-<nnnn>-{contrast}.nii.gz)"
        )
    return sorted(found.values(), key=lambda m: m.subject)


def _member_problem(member: Member, contrast: str) -> str:
    """Why ``member`` cannot be an index entry of ``contrast``, or ''."""
    try:
        parsed = parse_name(member.name)
    except ValueError as exc:
        return str(exc)
    if parsed.contrast != contrast:
        return f"{member.name!r} is a {parsed.contrast} volume, not {contrast}"
    if (member.subject, member.site) != (parsed.subject, parsed.site):
        return (
            f"subject {member.subject!r} / site {member.site!r} do not match "
            f"the member name {member.name!r}"
        )
    if member.offset < 0 or member.offset % tarfile.BLOCKSIZE or member.size < 0:
        return f"bad byte range offset={member.offset} size={member.size}"
    return ""


def write_index(root: str | os.PathLike, contrast: str, members: Sequence[Member]) -> Path:
    """Write ``root/IXI-<contrast>.index.tsv`` atomically (sorted by subject); return it."""
    path = index_path(root, contrast)
    seen: set[str] = set()
    for member in members:
        problem = _member_problem(member, contrast)
        if problem:
            raise ValueError(f"cannot write {path}: {problem}")
        if member.subject in seen:
            raise ValueError(f"cannot write {path}: subject {member.subject} is listed twice")
        seen.add(member.subject)
    text = io.StringIO()
    writer = csv.writer(text, delimiter="\t", lineterminator="\n")
    writer.writerow(_INDEX_HEADER)
    for m in sorted(members, key=lambda m: m.subject):
        writer.writerow([m.name, m.subject, m.site, m.offset, m.size])
    write_text_atomic(path, text.getvalue())
    return path


def _int_field(value: str) -> int | None:
    return int(value) if value.isascii() and value.isdigit() else None


@functools.lru_cache(maxsize=64)
def _parse_index(path: str, contrast: str, _stamp: tuple[int, int, int]) -> tuple[Member, ...]:
    """Parse an index file; cached on the file's (size, mtime_ns, inode) ``_stamp``."""
    members: dict[str, Member] = {}
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh, delimiter="\t")
            header = next(reader, None)
            if header != list(_INDEX_HEADER):
                raise ValueError(
                    f"{path}, line 1: expected the header {'<tab>'.join(_INDEX_HEADER)}, "
                    f"got {header!r}"
                )
            for row in reader:
                where = f"{path}, line {reader.line_num}"
                if len(row) != len(_INDEX_HEADER):
                    raise ValueError(f"{where}: expected 5 tab-separated fields, got {row!r}")
                offset, size = _int_field(row[3]), _int_field(row[4])
                if offset is None or size is None:
                    raise ValueError(f"{where}: offset and size must be integers, got {row!r}")
                member = Member(row[0], row[1], row[2], offset, size)
                problem = _member_problem(member, contrast)
                if problem:
                    raise ValueError(f"{where}: {problem}")
                if member.subject in members:
                    raise ValueError(f"{where}: subject {member.subject} is listed twice")
                members[member.subject] = member
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"{path} is not a readable index ({type(exc).__name__}: {exc})") from exc
    if not members:
        raise ValueError(f"{path} lists no volume")
    return tuple(sorted(members.values(), key=lambda m: m.subject))


def read_index(root: str | os.PathLike, contrast: str) -> dict[str, Member]:
    """Subject -> :class:`Member` from ``root/IXI-<contrast>.index.tsv``, sorted by subject.

    Cheap to call repeatedly (parsed once per file version).  FileNotFoundError when the
    archive was not indexed yet; ValueError naming the file and line when it is garbled.
    """
    path = index_path(root, contrast)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path}: no IXI {contrast} index; fetch the archive first "
            "(rrlsrn.data.ixi.fetch_archive)"
        ) from None
    members = _parse_index(str(path), contrast, (st.st_size, st.st_mtime_ns, st.st_ino))
    return {m.subject: m for m in members}


# --- downloading and extracting -------------------------------------------------------


def fetch_archive(
    root: str | os.PathLike,
    contrast: str,
    *,
    base_url: str | None = None,
    sha256: str | None = None,
    progress: bool = True,
) -> Path:
    """Download ``IXI-<contrast>.tar`` to ``root/archives/`` and index it; return the index.

    The download is resumable and retried (:func:`~rrlsrn.data.download.download`);
    ``sha256`` defaults to :data:`KNOWN_SHA256` (empty: IXI publishes none).  Nothing is
    done when a readable index newer than the tar exists.  A truncated or corrupt tar
    raises :class:`~rrlsrn.data.download.ArchiveError`; the tar is kept (it is the user's
    download) and the message says to delete it to download it again.
    """
    _check_contrast(contrast)
    tar = archive_path(root, contrast)
    index = index_path(root, contrast)
    if tar.is_file() and index.is_file() and index.stat().st_mtime_ns >= tar.stat().st_mtime_ns:
        try:
            read_index(root, contrast)
            return index
        except ValueError as exc:
            _log.warning("%s; indexing %s again", exc, tar)
    name = archive_name(contrast)
    download(
        archive_url(contrast, base_url),
        tar,
        sha256=sha256 or KNOWN_SHA256.get(name),
        progress=progress,
    )
    try:
        members = index_archive(tar, contrast)
    except ArchiveError as exc:
        raise ArchiveError(f"{exc}; delete {tar} to download it again") from exc
    return write_index(root, contrast, members)


def fetch_demographics(
    root: str | os.PathLike,
    *,
    base_url: str | None = None,
    sha256: str | None = None,
    progress: bool = True,
) -> Path:
    """Download ``IXI.xls`` (demographics: sex, age, ...) to ``root``; return its path."""
    return download(
        demographics_url(base_url),
        Path(root) / DEMOGRAPHICS_NAME,
        sha256=sha256 or KNOWN_SHA256.get(DEMOGRAPHICS_NAME),
        progress=progress,
    )


def extract_subject(root: str | os.PathLike, contrast: str, subject: str) -> Path:
    """Copy one subject's volume out of the indexed tar to :func:`volume_path`; return it.

    Seeks to the member's data and streams exactly its size (no unpacking of the tar).
    Skipped when the output exists with the indexed size.  ValueError when the subject is
    not in the index; :class:`~rrlsrn.data.download.ArchiveError` when the tar is too short
    or the bytes are not gzip data (the index does not match the tar); no output is left.
    """
    index = read_index(root, contrast)
    member = index.get(subject)
    if member is None:
        raise ValueError(
            f"IXI subject {subject!r} is not in {index_path(root, contrast)} "
            f"({len(index)} {contrast} volumes indexed)"
        )
    out = volume_path(root, contrast, subject)
    if out.is_file() and out.stat().st_size == member.size:
        return out
    tar = archive_path(root, contrast)
    if not tar.is_file():
        raise FileNotFoundError(
            f"{tar} is missing; fetch it again (rrlsrn.data.ixi.fetch_archive) to extract {subject}"
        )
    end = member.offset + member.size
    stale = f"{tar} does not match its index {index_path(root, contrast)}"
    hint = f"delete {tar} to download it again"
    if tar.stat().st_size < end:
        raise ArchiveError(
            f"{tar} is too short for {member.name!r} (needs bytes {member.offset}-{end}, "
            f"has {tar.stat().st_size}): it is truncated or {stale}; {hint}"
        )
    with tar.open("rb") as src, atomic_path(out) as tmp, tmp.open("wb") as dst:
        src.seek(member.offset)
        left = member.size
        first = True
        while left:
            block = src.read(min(_CHUNK, left))
            if not block:
                raise ArchiveError(f"{tar} ended inside {member.name!r}; {hint}")
            if first and member.name.endswith(".gz") and not block.startswith(_GZIP_MAGIC):
                raise ArchiveError(
                    f"{tar}: member {member.name!r} at byte {member.offset} is not gzip "
                    f"data (starts {block[:8]!r}): {stale}; {hint}"
                )
            first = False
            dst.write(block)
            left -= len(block)
    return out


def select_subjects(
    index_subjects: Sequence[str], subjects: Sequence[str] | None, limit: int | None
) -> list[str]:
    """The chosen subjects, sorted: ``subjects`` (each must be indexed, none repeated) or
    all of ``index_subjects``; ``limit`` keeps the first N of those."""
    if limit is not None and limit < 1:
        raise ValueError(f"the IXI subject limit must be at least 1, got {limit}")
    known = set(index_subjects)
    if subjects is None:
        chosen = sorted(known)
    else:
        if isinstance(subjects, str):
            raise ValueError(f"IXI subjects must be a list of ids, got the string {subjects!r}")
        chosen = sorted(_check_subject(s) for s in subjects)
        repeated = sorted({s for s in chosen if chosen.count(s) > 1})
        if repeated:
            raise ValueError(f"IXI subjects listed more than once: {', '.join(repeated)}")
        unknown = [s for s in subjects if s not in known]
        if unknown:
            raise ValueError(
                f"unknown IXI subjects (not in the index of {len(known)}): "
                + ", ".join(map(repr, unknown))
            )
    return chosen[:limit] if limit is not None else chosen


def _current_index(root: Path, contrast: str) -> dict[str, Member] | None:
    """The index when it exists and reads, else None (:func:`fetch_archive` remakes it)."""
    try:
        return read_index(root, contrast)
    except (FileNotFoundError, ValueError):
        return None


def fetch(
    root: str | os.PathLike,
    contrast: str,
    subjects: Sequence[str] | None = None,
    *,
    base_url: str | None = None,
    sha256: str | None = None,
    progress: bool = True,
) -> dict[str, Path]:
    """Download, index and extract IXI ``contrast`` volumes (all when ``subjects`` is None),
    with the demographics; return subject -> volume path.

    The archive is not touched (nor downloaded again if deleted) when every requested
    volume is already extracted.  See :func:`fetch_archive` and :func:`extract_subject`.
    """
    _check_contrast(contrast)
    root = Path(root)
    fetch_demographics(root, base_url=base_url, progress=progress)
    index = _current_index(root, contrast)
    done = False
    if index is not None:
        chosen = select_subjects(list(index), subjects, None)
        done = all(
            volume_path(root, contrast, s).is_file()
            and volume_path(root, contrast, s).stat().st_size == index[s].size
            for s in chosen
        )
    if not done:
        fetch_archive(root, contrast, base_url=base_url, sha256=sha256, progress=progress)
        index = read_index(root, contrast)
    chosen = select_subjects(list(index), subjects, None)
    return {
        s: extract_subject(root, contrast, s)
        for s in tqdm(
            chosen, desc=f"IXI-{contrast} volumes", unit="vol", disable=not progress, leave=False
        )
    }
