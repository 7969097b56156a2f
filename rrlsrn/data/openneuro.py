"""OpenNeuro datasets, read anonymously from the public S3 bucket ``openneuro.org``.

OpenNeuro mirrors every dataset (BIDS, mostly CC0) at
``https://s3.amazonaws.com/openneuro.org/<accession>/<path>``; the bucket holds only the
latest snapshot of each.  :func:`fetch_listing` checks that this snapshot is the one a
config pins (from ``dataset_description.json``'s ``DatasetDOI``, else ``CHANGES``) and lists
the dataset's objects (S3 ListObjectsV2); :func:`load_listing` caches that listing as JSON
next to the data so that the workflow reads it at parse time without the network.
:func:`anat_files` picks the anatomical images of one BIDS suffix and :func:`fetch_object`
downloads one (resumable, size and, for plain ETags, MD5 checked).

Imported at workflow parse time: standard library (and the download helpers) only.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from rrlsrn.data.download import DownloadError, download, fetch_bytes
from rrlsrn.io import write_text_atomic

_log = logging.getLogger(__name__)

S3_URL = "https://s3.amazonaws.com/openneuro.org"
URL_ENV = "RRLSRN_OPENNEURO_URL"
ACCESSION = re.compile(r"ds\d{6}")

_MD5 = re.compile(r"[0-9a-f]{32}")
_DOI_VERSION = re.compile(r"\.v(\d+(?:\.\d+)*)\s*$")
_CHANGES_VERSION = re.compile(r"^\s*v?(\d+\.\d+(?:\.\d+)*)(?:\s|$|:|,)")
_CACHE_FORMAT = 1
_LABEL = r"[A-Za-z0-9]+"
_ANAT = re.compile(
    rf"(?P<sub>sub-{_LABEL})/(?:ses-{_LABEL}/)?anat/"
    rf"(?P<stem>(?P=sub)(?:_{_LABEL}-{_LABEL})*)_(?P<suffix>{_LABEL})\.nii(?:\.gz)?"
)


def base_url_of(base_url: str | None = None) -> str:
    """The bucket's address: ``base_url``, else ``$RRLSRN_OPENNEURO_URL``, else :data:`S3_URL`."""
    return (base_url or os.environ.get(URL_ENV) or S3_URL).rstrip("/")


@dataclass(frozen=True, slots=True)
class S3Object:
    """One object of the bucket: its key, size in bytes and ETag (without quotes)."""

    key: str
    size: int
    etag: str

    @property
    def md5(self) -> str | None:
        """The object's MD5 (hex) when the ETag is a plain MD5, None for a multipart ETag."""
        etag = self.etag.lower()
        return etag if _MD5.fullmatch(etag) else None


def get_bytes(url: str, *, tries: int = 4, backoff_s: float = 1.0, timeout_s: float = 60) -> bytes:
    """The body of a small GET, retried on 5xx/408/429 and connection errors with
    back-off ``backoff_s * 2**k``; raises :class:`DownloadError` naming ``url``."""
    body = fetch_bytes(url, tries=tries, backoff_s=backoff_s, timeout_s=timeout_s)
    assert body is not None
    return body


def _parse_page(url: str, body: bytes) -> tuple[list[S3Object], bool, str | None]:
    """One ListObjectsV2 answer: its objects, IsTruncated and NextContinuationToken."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise DownloadError(f"listing {url} answered malformed XML ({exc})") from exc
    ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    if root.tag != f"{ns}ListBucketResult":
        raise DownloadError(
            f"listing {url} answered <{root.tag}>, not an S3 ListBucketResult "
            f"(is {URL_ENV} or base_url an S3 bucket address?)"
        )
    objects = []
    for item in root.iter(f"{ns}Contents"):
        key = item.findtext(f"{ns}Key")
        size = (item.findtext(f"{ns}Size") or "").strip()
        if key is None or not size.isdigit():
            raise DownloadError(f"listing {url} has an entry without a key or size")
        if key.endswith("/"):
            continue  # a folder marker
        etag = (item.findtext(f"{ns}ETag") or "").strip().strip('"')
        objects.append(S3Object(key, int(size), etag))
    truncated = (root.findtext(f"{ns}IsTruncated") or "false").strip().lower() == "true"
    token = (root.findtext(f"{ns}NextContinuationToken") or "").strip() or None
    return objects, truncated, token


def list_objects(
    prefix: str, *, base_url: str | None = None, max_keys: int | None = None
) -> list[S3Object]:
    """Every object whose key starts with ``prefix`` (S3 ListObjectsV2, all pages)."""
    base = base_url_of(base_url)
    params: dict[str, str] = {"list-type": "2", "prefix": prefix}
    if max_keys is not None:
        params["max-keys"] = str(int(max_keys))
    objects: list[S3Object] = []
    seen_tokens: set[str] = set()
    token: str | None = None
    while True:
        query = dict(params, **({"continuation-token": token} if token else {}))
        url = f"{base}?{urllib.parse.urlencode(query, quote_via=urllib.parse.quote)}"
        page, truncated, token = _parse_page(url, get_bytes(url))
        objects.extend(page)
        if not truncated:
            return objects
        if token is None:
            raise DownloadError(f"listing {url} is truncated but gives no continuation token")
        if token in seen_tokens:
            raise DownloadError(f"listing {url} repeats the continuation token {token!r}")
        seen_tokens.add(token)


def check_accession(dataset: str) -> str:
    """``dataset`` when it is an OpenNeuro accession (``ds`` and six digits), else ValueError."""
    if not isinstance(dataset, str) or not ACCESSION.fullmatch(dataset):
        raise ValueError(
            f"{dataset!r} is not an OpenNeuro accession number (ds and six digits, e.g. ds000001)"
        )
    return dataset


def snapshot_of(description: dict, changes: str | None) -> str | None:
    """The snapshot (version) of a dataset: the ``.v<version>`` end of its ``DatasetDOI``,
    else the first version line of its ``CHANGES``, else None."""
    doi = description.get("DatasetDOI") if isinstance(description, dict) else None
    if isinstance(doi, str) and (match := _DOI_VERSION.search(doi)):
        return match.group(1)
    for line in (changes or "").splitlines():
        if match := _CHANGES_VERSION.match(line):
            return match.group(1)
    return None


@dataclass(frozen=True)
class Listing:
    """The objects of one snapshot of a dataset, keys relative to the dataset folder."""

    dataset: str
    snapshot: str
    licence: str | None
    objects: tuple[S3Object, ...]

    @functools.cached_property
    def by_key(self) -> dict[str, S3Object]:
        """Key -> object (built once: every download job of a plan looks one up)."""
        return {obj.key: obj for obj in self.objects}


def fetch_listing(dataset: str, snapshot: str, *, base_url: str | None = None) -> Listing:
    """Check that the bucket holds snapshot ``snapshot`` of ``dataset``; list its objects."""
    check_accession(dataset)
    base = base_url_of(base_url)
    url = f"{base}/{dataset}/dataset_description.json"
    body = fetch_bytes(url, missing_ok=True)
    if body is None:
        raise DownloadError(
            f"openneuro {dataset}: {url} not found (HTTP 404); is {dataset} an OpenNeuro "
            "dataset, and is the base URL the bucket?"
        )
    try:
        description = json.loads(body)
    except ValueError as exc:
        raise ValueError(f"openneuro {dataset}: {url} is not valid JSON ({exc})") from exc
    if not isinstance(description, dict):
        raise ValueError(f"openneuro {dataset}: {url} is not a JSON object")
    held = snapshot_of(description, None)
    if held is None:
        changes_url = f"{base}/{dataset}/CHANGES"
        changes = fetch_bytes(changes_url, missing_ok=True)
        held = snapshot_of(description, changes.decode("utf-8", "replace") if changes else None)
        if held is None:
            raise ValueError(
                f"openneuro {dataset}: cannot tell which snapshot the bucket holds "
                f"(no version in the DatasetDOI of {url}, none in {changes_url})"
            )
    pinned = str(snapshot).strip()
    if held != pinned:
        raise ValueError(
            f"openneuro {dataset}: the bucket holds snapshot {held}, the config pins {pinned}; "
            f"pin {held} (or use a mirror of {pinned} via base_url)"
        )
    licence = description.get("License")
    prefix = f"{dataset}/"
    objects = tuple(
        S3Object(obj.key[len(prefix) :], obj.size, obj.etag)
        for obj in list_objects(prefix, base_url=base)
        if obj.key.startswith(prefix)
    )
    return Listing(dataset, held, str(licence) if licence is not None else None, objects)


def listing_path(root: str | os.PathLike, dataset: str, snapshot: str) -> Path:
    """Where :func:`load_listing` caches the listing of a snapshot."""
    return Path(root) / f".openneuro-{dataset}-{snapshot}.json"


def _listing_json(listing: Listing) -> str:
    head = {
        "format": _CACHE_FORMAT,
        "dataset": listing.dataset,
        "snapshot": listing.snapshot,
        "licence": listing.licence,
    }
    rows = ",\n".join(json.dumps([o.key, o.size, o.etag]) for o in listing.objects)
    return json.dumps(head)[:-1] + ', "objects": [\n' + rows + "\n]}\n"


def _read_cache(path: Path, dataset: str, snapshot: str) -> Listing:
    stat = path.stat()
    return _read_cache_once(str(path), dataset, snapshot, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _read_cache_once(name: str, dataset: str, snapshot: str, size: int, mtime_ns: int) -> Listing:
    """The cached listing, parsed once per file state (planning asks for it per job)."""
    path = Path(name)
    try:
        data = json.loads(path.read_text())
        if data["format"] != _CACHE_FORMAT:
            raise ValueError(f"format {data['format']!r}, expected {_CACHE_FORMAT}")
        if (data["dataset"], data["snapshot"]) != (dataset, snapshot):
            raise ValueError(f"it lists {data['dataset']} {data['snapshot']}")
        licence = data["licence"]
        if licence is not None and not isinstance(licence, str):
            raise ValueError("licence is not a string")
        objects = tuple(S3Object(k, s, e) for k, s, e in data["objects"])
        if not all(
            isinstance(o.key, str) and type(o.size) is int and isinstance(o.etag, str)
            for o in objects
        ):
            raise ValueError("an object entry is not [key, size, etag]")
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(
            f"{path} is not a valid OpenNeuro listing cache ({type(exc).__name__}: {exc}); "
            "delete it to list the bucket again"
        ) from exc
    return Listing(dataset, snapshot, licence, objects)


def load_listing(
    root: str | os.PathLike, dataset: str, snapshot: str, *, base_url: str | None = None
) -> Listing:
    """The listing of a snapshot: read from the cache under ``root`` when present, else
    fetched with :func:`fetch_listing` and cached (written atomically)."""
    check_accession(dataset)
    path = listing_path(root, dataset, snapshot)
    if path.is_file():
        return _read_cache(path, dataset, str(snapshot))
    listing = fetch_listing(dataset, snapshot, base_url=base_url)
    write_text_atomic(path, _listing_json(listing))
    return listing


def _subject_id(subject: str) -> str:
    text = str(subject).strip()
    return text if text.startswith("sub-") else f"sub-{text}"


def _few(items: Iterable[str], n: int = 8) -> str:
    items = sorted(items)
    shown = ", ".join(items[:n])
    return shown + (f", ... ({len(items)} in all)" if len(items) > n else "")


def anat_files(
    listing: Listing, suffix: str = "T1w", subjects: Iterable[str] | None = None
) -> dict[str, S3Object]:
    """Unit id (file name less ``_<suffix>.nii[.gz]``, e.g. ``sub-02_ses-1_run-2``) -> object,
    for the raw BIDS images ``sub-*/[ses-*/]anat/sub-*[_...]_<suffix>.nii[.gz]``.

    ``subjects`` ("01" or "sub-01") keeps those subjects' images; raises ValueError naming
    unknown subjects, or the suffixes that do exist when none has ``suffix``.
    """
    if not re.fullmatch(_LABEL, suffix):
        raise ValueError(f"bad BIDS suffix {suffix!r} (letters and digits only, e.g. T1w)")
    found: dict[str, S3Object] = {}
    others: set[str] = set()
    for obj in listing.objects:
        match = _ANAT.fullmatch(obj.key)
        if match is None:
            continue
        if match["suffix"] != suffix:
            others.add(match["suffix"])
            continue
        unit = match["stem"]
        if unit in found:
            raise ValueError(
                f"openneuro {listing.dataset}: {found[unit].key} and {obj.key} are both unit {unit}"
            )
        found[unit] = obj
    if not found:
        have = f"the anat folders hold {_few(others)}" if others else "it has no anat images"
        raise ValueError(
            f"openneuro {listing.dataset} {listing.snapshot}: no {suffix} image "
            f"(sub-*/[ses-*/]anat/sub-*_{suffix}.nii[.gz]); {have}"
        )
    if subjects is None:
        return dict(sorted(found.items()))
    if isinstance(subjects, str):
        subjects = [subjects]
    wanted = {_subject_id(s) for s in subjects}
    known = {person_of(unit) for unit in found}
    unknown = wanted - known
    if unknown:
        raise ValueError(
            f"openneuro {listing.dataset} {listing.snapshot}: no {suffix} image for "
            f"{_few(unknown)}; subjects with one: {_few(known)}"
        )
    return {unit: obj for unit, obj in sorted(found.items()) if person_of(unit) in wanted}


def person_of(unit: str) -> str:
    """The subject (``sub-XX``) of a unit id."""
    match = re.match(rf"sub-{_LABEL}", unit)
    if match is None:
        raise ValueError(f"{unit!r} is not a BIDS unit id (sub-<label>...)")
    return match.group(0)


def local_path(root: str | os.PathLike, key: str) -> Path:
    """Where an object (key relative to the dataset) is stored under ``root``."""
    pure = PurePosixPath(key)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        raise ValueError(f"unsafe OpenNeuro key {key!r}")
    return Path(root).joinpath(*pure.parts)


def _md5sum(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def fetch_object(
    root: str | os.PathLike,
    dataset: str,
    obj: S3Object,
    *,
    base_url: str | None = None,
    progress: bool = True,
) -> Path:
    """Download one object of ``dataset`` to ``root/<key>`` (size and, when the ETag is an
    MD5, MD5 checked); a present file that passes is kept without any request."""
    check_accession(dataset)
    dest = local_path(root, obj.key)
    md5 = obj.md5
    if dest.is_file():
        size = dest.stat().st_size
        if size == obj.size and (md5 is None or _md5sum(dest) == md5):
            return dest
        _log.warning("%s is not the bucket's %s; downloading it again", dest, obj.key)
        dest.unlink()
    url = f"{base_url_of(base_url)}/{dataset}/{urllib.parse.quote(obj.key)}"
    download(url, dest, expected_size=obj.size, progress=progress)
    if md5 is not None:
        actual = _md5sum(dest)
        if actual != md5:
            dest.unlink(missing_ok=True)
            raise DownloadError(
                f"could not download {url} to {dest}: MD5 mismatch: got {actual}, expected "
                f"{md5} (the ETag); the file was deleted"
            )
    return dest


def provenance(listing: Listing, obj: S3Object) -> dict[str, Any]:
    """What the manifest records of a downloaded object."""
    return {
        "dataset": listing.dataset,
        "snapshot": listing.snapshot,
        "key": obj.key,
        "size": obj.size,
        "etag": obj.etag,
        "licence": listing.licence,
    }
