"""Resumable, checked downloads and safe extraction of tar archives.

:func:`download` streams a URL to ``<dest>.part``, resumes an interrupted transfer with an
HTTP ``Range`` request, retries transient failures with exponential back-off, checks the
size (and SHA-256 when known) and only then renames the part onto ``dest``.
:func:`safe_extract` extracts chosen regular files from a tar archive, refusing members that
would escape the destination, and leaves nothing behind when the archive is corrupt.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import lzma
import os
import re
import tarfile
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import TypeVar

from tqdm import tqdm

from rrlsrn.io import atomic_path, sha256sum

_log = logging.getLogger(__name__)
T = TypeVar("T")

USER_AGENT = "rrlsrn-bench/0.1 (python urllib)"
_RETRY_STATUS = {408, 429}
_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED = re.compile(r"bytes\s+\*/(\d+)")
_MAX_RETRY_AFTER_S = 60.0


class DownloadError(RuntimeError):
    """A download failed for good; the message names the URL, the destination and why."""


class ArchiveError(ValueError):
    """An archive is truncated, corrupt or lacks a member that was asked for."""


class UnsafeArchiveError(ValueError):
    """A selected archive member would write outside the destination or is not a plain file."""


class _TransientError(Exception):
    """A failure worth retrying (short read, odd resume answer)."""


def _content_length(resp: http.client.HTTPResponse) -> int | None:
    value = resp.headers.get("Content-Length")
    return int(value) if value is not None and value.strip().isdigit() else None


def _retry_after(exc: urllib.error.HTTPError) -> float:
    value = exc.headers.get("Retry-After") if exc.headers is not None else None
    try:
        return min(float(value), _MAX_RETRY_AFTER_S) if value is not None else 0.0
    except ValueError:
        return 0.0


def _retrying(
    call: Callable[[], T],
    *,
    url: str,
    what: str,
    tries: int,
    backoff_s: float,
    fail: Callable[[str], Exception],
    transient: tuple[type[BaseException], ...] = (),
) -> T:
    """``call()`` with retries: transient failures (connection errors, timeouts, HTTP
    5xx/408/429, ``transient``) are tried ``tries`` times in all with back-off
    ``backoff_s * 2**k`` (at least a server's ``Retry-After``); other HTTP errors raise
    ``fail(reason)`` at once, the last failure ``fail(reason (after N tries))``."""
    if tries < 1:
        raise ValueError(f"tries must be at least 1, got {tries}")
    for attempt in range(1, tries + 1):
        delay = backoff_s * 2 ** (attempt - 1)
        try:
            return call()
        except urllib.error.HTTPError as exc:
            exc.close()
            reason = f"HTTP {exc.code} {exc.reason}"
            if exc.code < 500 and exc.code not in _RETRY_STATUS:
                raise fail(reason) from exc
            delay = max(delay, _retry_after(exc))
            last: BaseException = exc
        except (*transient, OSError, http.client.HTTPException) as exc:
            # OSError covers URLError, connection resets and socket timeouts.
            reason = f"{type(exc).__name__}: {exc}"
            last = exc
        if attempt == tries:
            raise fail(f"{reason} (after {tries} tries)") from last
        _log.warning(
            "%s of %s failed (%s), try %d of %d; retrying in %.1f s",
            what,
            url,
            reason,
            attempt,
            tries,
            delay,
        )
        time.sleep(delay)
    raise AssertionError("unreachable")


def fetch_bytes(
    url: str,
    *,
    tries: int = 4,
    backoff_s: float = 1.0,
    timeout_s: float = 60,
    missing_ok: bool = False,
) -> bytes | None:
    """The body of a small GET (a listing, a JSON file), retried as :func:`download`
    retries; None for an HTTP 404 when ``missing_ok``.  Raises :class:`DownloadError`."""

    def get() -> bytes | None:
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as resp:
                return resp.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 404 and missing_ok:
                exc.close()
                return None
            raise

    def fail(reason: str) -> DownloadError:
        return DownloadError(f"could not fetch {url}: {reason}")

    return _retrying(get, url=url, what="fetching", tries=tries, backoff_s=backoff_s, fail=fail)


def _attempt(
    url: str,
    part: Path,
    *,
    timeout_s: float,
    chunk: int,
    bar: tqdm,
    expected_size: int | None,
) -> int | None:
    """One request: append to (or restart) ``part``; return the file's total size if known."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as exc:
        if exc.code != 416 or not have:
            raise
        # Nothing left to send from byte `have`: the part is complete if its size is the total.
        match = _UNSATISFIED.search(exc.headers.get("Content-Range", "") or "")
        exc.close()
        total = int(match.group(1)) if match else expected_size
        if total == have:
            return total
        part.unlink(missing_ok=True)
        raise _TransientError(
            f"HTTP 416 for a {have}-byte partial file (remote size {total}); restarting"
        ) from None
    with resp:
        length = _content_length(resp)
        if have and resp.status == 206:
            match = _RANGE.search(resp.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != have:
                part.unlink(missing_ok=True)
                raise _TransientError(
                    f"asked to resume at byte {have}, server sent "
                    f"Content-Range {resp.headers.get('Content-Range')!r}; restarting"
                )
            total = None if match.group(3) == "*" else int(match.group(3))
            mode = "ab"
        else:
            if have:
                _log.info("%s ignored the Range request; restarting from zero", url)
            have, mode, total = 0, "wb", length
        bar.reset(total=total)
        bar.update(have)
        got = 0
        with part.open(mode) as out:
            while block := resp.read(chunk):
                out.write(block)
                got += len(block)
                bar.update(len(block))
    if length is not None and got < length:
        raise _TransientError(f"short read: got {got} of {length} bytes")
    return total


def _verify(part: Path, total: int | None, expected_size: int | None, sha256: str | None) -> str:
    """The reason ``part`` is not the wanted file, or '' when it passes."""
    size = part.stat().st_size
    if total is not None and size != total:
        return f"got {size} bytes but the server announced {total}"
    if expected_size is not None and size != expected_size:
        return f"got {size} bytes, expected {expected_size}"
    if sha256 is not None:
        actual = sha256sum(part)
        if actual != sha256.lower():
            return f"SHA-256 mismatch: got {actual}, expected {sha256.lower()}"
    return ""


def download(
    url: str,
    dest: str | os.PathLike,
    *,
    expected_size: int | None = None,
    sha256: str | None = None,
    tries: int = 4,
    backoff_s: float = 1.0,
    timeout_s: float = 60,
    progress: bool = True,
    chunk: int = 1 << 20,
) -> Path:
    """Download ``url`` to ``dest`` (resumable, retried, checked) and return ``dest``.

    The bytes go to ``dest.part``; an existing part is resumed with ``Range: bytes=N-``.
    Transient failures (connection errors, timeouts, HTTP 5xx/408/429, short reads) are
    retried ``tries`` times in all with back-off ``backoff_s * 2**k``; other HTTP errors
    fail at once.  The size (server total, ``expected_size``) and ``sha256`` are checked
    before the part is renamed onto ``dest``; a mismatch deletes the part.  An existing
    ``dest`` (with the right ``sha256`` when given) is returned without any request.
    Raises :class:`DownloadError`.
    """
    if tries < 1:
        raise ValueError(f"tries must be at least 1, got {tries}")
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    if dest.is_file():
        if sha256 is None or sha256sum(dest) == sha256.lower():
            return dest
        _log.warning("%s exists but its SHA-256 is not %s; downloading it again", dest, sha256)
    dest.parent.mkdir(parents=True, exist_ok=True)

    def fail(reason: str) -> DownloadError:
        kept = ""
        if part.exists():
            kept = f"; the partial file {part} ({part.stat().st_size} bytes) is kept for resuming"
        return DownloadError(f"could not download {url} to {dest}: {reason}{kept}")

    with tqdm(
        desc=dest.name,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        disable=not progress,
        leave=False,
    ) as bar:
        total = _retrying(
            lambda: _attempt(
                url,
                part,
                timeout_s=timeout_s,
                chunk=chunk,
                bar=bar,
                expected_size=expected_size,
            ),
            url=url,
            what="download",
            tries=tries,
            backoff_s=backoff_s,
            fail=fail,
            transient=(_TransientError,),
        )
    problem = _verify(part, total, expected_size, sha256)
    if problem:
        part.unlink(missing_ok=True)
        raise DownloadError(f"could not download {url} to {dest}: {problem}; the file was deleted")
    os.replace(part, dest)
    return dest


# Errors a corrupt or truncated compressed tar stream raises while being read.
_ARCHIVE_ERRORS = (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError)


class _ReadFailedError(Exception):
    """Wraps an error raised while reading (not writing) during extraction."""


def _read(fn: Callable[[], bytes]) -> bytes:
    try:
        return fn()
    except _ARCHIVE_ERRORS as exc:
        raise _ReadFailedError(exc) from exc


def _member_path(archive: Path, member: tarfile.TarInfo, flatten: bool) -> PurePosixPath:
    """The relative output path of a selected member, refusing anything unsafe."""
    name = member.name.replace("\\", "/")
    pure = PurePosixPath(name)
    if pure.is_absolute() or re.match(r"^[A-Za-z]:", name):
        raise UnsafeArchiveError(f"{archive}: member {member.name!r} has an absolute path")
    if ".." in pure.parts:
        raise UnsafeArchiveError(f"{archive}: member {member.name!r} contains '..'")
    if not member.isfile():
        kinds = [("symlink", member.issym()), ("hardlink", member.islnk())]
        kinds += [("device", member.isdev()), ("fifo", member.isfifo())]
        kind = next((k for k, hit in kinds if hit), f"member of tar type {member.type!r}")
        raise UnsafeArchiveError(
            f"{archive}: member {member.name!r} is a {kind}, not a regular file"
        )
    rel = PurePosixPath(*[p for p in pure.parts if p not in ("", ".")])
    if not rel.parts:
        raise UnsafeArchiveError(f"{archive}: member {member.name!r} has an empty name")
    return PurePosixPath(rel.name) if flatten else rel


def safe_extract(
    archive: str | os.PathLike,
    dest_dir: str | os.PathLike,
    members: Callable[[str], bool] | Sequence[str],
    *,
    flatten: bool = False,
    max_files: int | None = None,
    progress: bool = True,
) -> list[Path]:
    """Extract the selected regular files of a tar archive (any compression) safely.

    ``members`` is a predicate on member names or a list of exact names (reading stops
    once all are found).  ``flatten`` drops folders (``dest_dir / basename``); ``max_files``
    stops reading after that many files.  Selected members that are absolute, contain
    ``..``, or are links, devices or fifos raise :class:`UnsafeArchiveError`; a truncated
    or corrupt archive raises :class:`ArchiveError`.  Either way no output is left: every
    file is written through :func:`~rrlsrn.io.atomic_path` and only renamed into place once
    the whole extraction succeeded.  The archive is read front to back once (no seeking
    back), so a compressed archive is decompressed a single time.  Returns the paths.
    """
    archive = Path(archive)
    dest_dir = Path(dest_dir)
    if isinstance(members, str):
        members = [members]
    wanted: set[str] | None = None
    if callable(members):
        select = members
    else:
        wanted = set(members)
        select = wanted.__contains__
    dest_root = dest_dir.resolve()
    written: dict[Path, str] = {}
    with contextlib.ExitStack() as stack:
        try:
            tar = stack.enter_context(tarfile.open(archive, mode="r:*"))
            bar = stack.enter_context(
                tqdm(
                    desc=archive.name, unit="B", unit_scale=True, disable=not progress, leave=False
                )
            )
            while (member := _read(tar.next)) is not None:
                bar.update(member.size)
                if not select(member.name) or member.isdir():
                    continue
                target = dest_dir / _member_path(archive, member, flatten)
                if not target.resolve().is_relative_to(dest_root):
                    raise UnsafeArchiveError(
                        f"{archive}: member {member.name!r} would be written outside {dest_dir}"
                    )
                if target in written:
                    raise UnsafeArchiveError(
                        f"{archive}: members {written[target]!r} and {member.name!r} "
                        f"would both be written to {target}"
                    )
                written[target] = member.name
                source = _read(lambda m=member: tar.extractfile(m))
                tmp = stack.enter_context(atomic_path(target))
                with source, tmp.open("wb") as out:
                    size = 0
                    while block := _read(lambda s=source: s.read(1 << 20)):
                        out.write(block)
                        size += len(block)
                if size != member.size:
                    raise ArchiveError(
                        f"{archive}: member {member.name!r} has {size} of {member.size} bytes"
                    )
                if wanted is not None:
                    wanted.discard(member.name)
                    if not wanted:
                        break
                if max_files is not None and len(written) >= max_files:
                    break
        except _ReadFailedError as exc:
            cause = exc.__cause__
            raise ArchiveError(
                f"{archive} is truncated or corrupt ({type(cause).__name__}: {cause}); "
                "nothing was extracted"
            ) from cause
        except _ARCHIVE_ERRORS as exc:
            if isinstance(exc, OSError) and not isinstance(exc, tarfile.TarError):
                raise  # a local failure (e.g. disk full), not a bad archive
            raise ArchiveError(
                f"{archive} is truncated or corrupt ({type(exc).__name__}: {exc}); "
                "nothing was extracted"
            ) from exc
    return list(written)
