"""OpenNeuro datasets from the S3 bucket, against a tiny fake S3 on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import math
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

import pytest
from conftest import local_http_server

import rrlsrn.data.download
from rrlsrn.data import openneuro
from rrlsrn.data.download import DownloadError
from rrlsrn.data.openneuro import (
    Listing,
    S3Object,
    anat_files,
    check_accession,
    fetch_listing,
    fetch_object,
    get_bytes,
    list_objects,
    listing_path,
    load_listing,
    local_path,
    person_of,
    provenance,
    snapshot_of,
)

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
DS = "ds000001"
MULTIPART = "sub-02/ses-1/anat/sub-02_ses-1_run-2_T1w.nii.gz"


def _bids(ds: str, description: dict, changes: str | None) -> dict[str, bytes]:
    files = {
        "dataset_description.json": json.dumps(description).encode(),
        "participants.tsv": b"participant_id\tage\nsub-01\t30\nsub-02\t40\nsub-03\t50\n",
        "README": b"a fake dataset",
        "sub-01/anat/sub-01_T1w.nii.gz": b"T1 of sub-01" * 50,
        "sub-01/anat/sub-01_T1w.json": b"{}",
        "sub-01/anat/sub-01_T1w_mask.nii.gz": b"not BIDS",
        "sub-01/anat/sub-01_T2w.nii.gz": b"T2 of sub-01" * 40,
        "sub-02/ses-1/anat/sub-02_ses-1_T1w.nii.gz": b"T1 of sub-02 ses-1" * 30,
        MULTIPART: b"T1 of sub-02 ses-1 run-2" * 30,
        "sub-03/func/sub-03_task-rest_bold.nii.gz": b"bold" * 10,
        "derivatives/fmriprep/sub-01/anat/sub-01_T1w.nii.gz": b"derived",
        "sub-01/anat/derivatives/sub-01_T1w.nii.gz": b"odd place",
        "sourcedata/sub-01/anat/sub-01_T1w.nii.gz": b"source",
        "sourcedata/sub-03/anat/sub-03_FLAIR.nii.gz": b"source flair",
    }
    if changes is not None:
        files["CHANGES"] = changes.encode()
    return {f"{ds}/{k}": v for k, v in files.items()}


BUCKET = {
    **_bids(
        DS,
        {
            "Name": "fake",
            "BIDSVersion": "1.8.0",
            "License": "CC0",
            "DatasetDOI": "doi:10.18112/openneuro.ds000001.v1.0.1",
        },
        "1.0.1 2019-06-18\n  - fixed things\n1.0.0 2018-01-01\n  - initial\n",
    ),
    **_bids(
        "ds000002",
        {"Name": "no DOI", "License": "PDDL"},
        "Revision history for ds000002\n\n2.0.0 2021-03-04\n  - more\n1.0.0 2020-01-01\n",
    ),
    **_bids("ds000003", {"Name": "no version anywhere"}, None),
    "ds0000010/dataset_description.json": b"{}",  # shares the prefix 'ds000001' without '/'
}


@dataclass
class Fake:
    """The fake bucket's contents and behaviour; tests change it between requests."""

    objects: dict[str, bytes] = field(default_factory=lambda: dict(BUCKET))
    etags: dict[str, str] = field(default_factory=dict)
    served: dict[str, bytes] = field(default_factory=dict)  # key -> bytes served instead
    fail_first: int = 0  # answer this many requests with 503
    bad_xml_page: int | None = None  # answer this listing page (0-based) with broken XML
    drop_token: bool = False  # truncated pages without a continuation token
    listings: list[str] = field(default_factory=list)
    gets: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for key, data in self.objects.items():
            self.etags.setdefault(key, hashlib.md5(data).hexdigest())
        self.etags[f"{DS}/{MULTIPART}"] = "0123456789abcdef0123456789abcdef-2"

    def listing(self, query: dict[str, str]) -> bytes:
        page = len(self.listings) - 1
        if self.bad_xml_page == page:
            return b"<ListBucketResult><IsTruncated>true</IsTrunc"
        prefix = query.get("prefix", "")
        max_keys = int(query.get("max-keys", 1000))
        keys = sorted(k for k in self.objects if k.startswith(prefix))
        if "continuation-token" in query:
            after = base64.urlsafe_b64decode(query["continuation-token"]).decode()
            keys = [k for k in keys if k > after]
        page_keys, truncated = keys[:max_keys], len(keys) > max_keys
        parts = [
            f'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="{NS}">',
            "<Name>openneuro.org</Name>",
            f"<Prefix>{escape(prefix)}</Prefix><KeyCount>{len(page_keys)}</KeyCount>",
            f"<MaxKeys>{max_keys}</MaxKeys><IsTruncated>{str(truncated).lower()}</IsTruncated>",
        ]
        for key in page_keys:
            parts.append(
                f"<Contents><Key>{escape(key)}</Key>"
                "<LastModified>2019-06-18T00:00:00.000Z</LastModified>"
                f"<ETag>&quot;{self.etags[key]}&quot;</ETag>"
                f"<Size>{len(self.objects[key])}</Size><StorageClass>STANDARD</StorageClass>"
                "</Contents>"
            )
        if truncated and not self.drop_token:
            token = base64.urlsafe_b64encode(page_keys[-1].encode()).decode()
            parts.append(f"<NextContinuationToken>{token}</NextContinuationToken>")
        parts.append("</ListBucketResult>")
        return "".join(parts).encode()


class Handler(http.server.BaseHTTPRequestHandler):
    fake: Fake

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, kind: str = "application/octet-stream") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        f = self.fake
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        if f.fail_first > 0:
            f.fail_first -= 1
            self.send_error(503, "Slow Down")
            return
        if url.path in ("", "/") and query.get("list-type") == "2":
            f.listings.append(self.path)
            self._send(200, f.listing(query), "application/xml")
            return
        key = urllib.parse.unquote(url.path.lstrip("/"))
        f.gets.append(key)
        if key not in f.objects:
            body = f"<Error><Code>NoSuchKey</Code><Key>{escape(key)}</Key></Error>".encode()
            self._send(404, body, "application/xml")
            return
        self._send(200, f.served.get(key, f.objects[key]))


@pytest.fixture
def s3(monkeypatch) -> Iterator[tuple[str, Fake]]:
    sleeps: list[float] = []
    monkeypatch.setattr(rrlsrn.data.download.time, "sleep", sleeps.append)
    monkeypatch.delenv(openneuro.URL_ENV, raising=False)
    fake = Fake()
    handler = type("BoundHandler", (Handler,), {"fake": fake})
    with local_http_server(handler) as url:
        yield url, fake


def _rel(ds: str) -> dict[str, bytes]:
    return {k[len(ds) + 1 :]: v for k, v in BUCKET.items() if k.startswith(f"{ds}/")}


# --- small pieces ---------------------------------------------------------------------


def test_base_url_and_accession(monkeypatch):
    monkeypatch.delenv(openneuro.URL_ENV, raising=False)
    assert openneuro.base_url_of() == openneuro.S3_URL == "https://s3.amazonaws.com/openneuro.org"
    monkeypatch.setenv(openneuro.URL_ENV, "http://mirror/bucket/")
    assert openneuro.base_url_of() == "http://mirror/bucket"
    assert openneuro.base_url_of("http://other/") == "http://other"
    assert check_accession("ds002748") == "ds002748"
    for bad in ("ds02748", "DS002748", "ds0027480", "ds002748/", 2748):
        with pytest.raises(ValueError, match="accession"):
            check_accession(bad)


def test_s3_object_md5():
    assert S3Object("a", 1, "9e107d9d372bb6826bd81d3542a419d6").md5 is not None
    assert S3Object("a", 1, "9E107D9D372BB6826BD81D3542A419D6").md5 == (
        "9e107d9d372bb6826bd81d3542a419d6"
    )
    assert S3Object("a", 1, "9e107d9d372bb6826bd81d3542a419d6-3").md5 is None
    assert S3Object("a", 1, "").md5 is None


@pytest.mark.parametrize(
    ("description", "changes", "expected"),
    [
        ({"DatasetDOI": "doi:10.18112/openneuro.ds000001.v1.0.1"}, None, "1.0.1"),
        ({"DatasetDOI": "10.18112/openneuro.ds000001.v1.0.1"}, "9.9.9 2030", "1.0.1"),
        ({"DatasetDOI": "https://doi.org/10.18112/openneuro.ds004000.v2.10.0"}, None, "2.10.0"),
        ({"DatasetDOI": "10.5281/zenodo.123"}, "1.2.0 2022-02-02\n1.1.0 2021", "1.2.0"),
        ({}, "Revision history\n\n  1.0.3 2020-05-05\n\t- x\n1.0.0 2019", "1.0.3"),
        ({}, "1.0.0\n", "1.0.0"),
        ({}, "no versions\n - just notes 2020-01-01\n", None),
        ({}, None, None),
        ([], None, None),
    ],
)
def test_snapshot_of(description, changes, expected):
    assert snapshot_of(description, changes) == expected


def test_person_and_local_path(tmp_path):
    assert person_of("sub-02_ses-1_run-2") == person_of("sub-02") == "sub-02"
    with pytest.raises(ValueError, match="unit id"):
        person_of("ses-1_sub-02")
    assert local_path(tmp_path, "sub-01/anat/x.nii.gz") == tmp_path / "sub-01/anat/x.nii.gz"
    for bad in ("../x", "sub-01/../../x", "/etc/passwd", ""):
        with pytest.raises(ValueError, match="unsafe"):
            local_path(tmp_path, bad)


# --- HTTP -----------------------------------------------------------------------------


def test_get_bytes_retries_then_fails(s3):
    base, fake = s3
    fake.fail_first = 2
    assert get_bytes(f"{base}/{DS}/README", backoff_s=0.5) == b"a fake dataset"
    fake.fail_first = 10
    with pytest.raises(DownloadError, match=r"README: HTTP 503.*after 3 tries"):
        get_bytes(f"{base}/{DS}/README", tries=3)
    fake.fail_first, fake.gets = 0, []
    with pytest.raises(DownloadError, match=rf"{base}/{DS}/nope: HTTP 404"):
        get_bytes(f"{base}/{DS}/nope")
    assert fake.gets == [f"{DS}/nope"]  # a 404 is not retried


def test_get_bytes_connection_refused(monkeypatch):
    monkeypatch.setattr(rrlsrn.data.download.time, "sleep", lambda s: None)
    with local_http_server(Handler) as base:
        pass  # the port is closed again
    with pytest.raises(DownloadError, match=r"127\.0\.0\.1.*after 2 tries"):
        get_bytes(f"{base}/x", tries=2, timeout_s=2)


@pytest.mark.parametrize("max_keys", [1, 2, 5, None])
def test_list_objects_paginates(s3, max_keys):
    base, fake = s3
    objects = list_objects(f"{DS}/", base_url=base, max_keys=max_keys)
    expected = {k: v for k, v in BUCKET.items() if k.startswith(f"{DS}/")}
    assert [o.key for o in objects] == sorted(expected)  # every key once, in order
    assert all(o.size == len(expected[o.key]) for o in objects)
    assert len(fake.listings) == math.ceil(len(expected) / (max_keys or 1000))
    if max_keys:
        assert all(f"max-keys={max_keys}" in url for url in fake.listings)
    by_key = {o.key: o for o in objects}
    assert by_key[f"{DS}/README"].md5 == hashlib.md5(b"a fake dataset").hexdigest()
    assert by_key[f"{DS}/{MULTIPART}"].md5 is None
    assert by_key[f"{DS}/{MULTIPART}"].etag.endswith("-2")


def test_list_objects_env_url_and_empty(s3, monkeypatch):
    base, fake = s3
    monkeypatch.setenv(openneuro.URL_ENV, base + "/")
    assert list_objects("ds999999/") == []
    assert len(fake.listings) == 1 and "prefix=ds999999%2F" in fake.listings[0]


def test_list_objects_bad_answers(s3):
    base, fake = s3
    fake.bad_xml_page = 1
    with pytest.raises(DownloadError, match=r"malformed XML") as info:
        list_objects(f"{DS}/", base_url=base, max_keys=2)
    assert f"{base}?list-type=2" in str(info.value) and "continuation-token=" in str(info.value)
    fake.bad_xml_page, fake.drop_token = None, True
    with pytest.raises(DownloadError, match="truncated but gives no continuation token"):
        list_objects(f"{DS}/", base_url=base, max_keys=2)
    fake.drop_token = False
    fake.objects["index.html"] = b"<html></html>"
    with pytest.raises(DownloadError, match="not an S3 ListBucketResult"):
        list_objects("", base_url=f"{base}/index.html")


# --- listings -------------------------------------------------------------------------


def test_fetch_listing_from_doi(s3):
    base, fake = s3
    listing = fetch_listing(DS, "1.0.1", base_url=base)
    assert (listing.dataset, listing.snapshot, listing.licence) == (DS, "1.0.1", "CC0")
    assert sorted(o.key for o in listing.objects) == sorted(_rel(DS))
    assert "CHANGES" not in fake.gets[:2] and fake.gets == [f"{DS}/dataset_description.json"]


def test_fetch_listing_from_changes(s3):
    base, fake = s3
    listing = fetch_listing("ds000002", "2.0.0", base_url=base)
    assert (listing.snapshot, listing.licence) == ("2.0.0", "PDDL")
    assert fake.gets == ["ds000002/dataset_description.json", "ds000002/CHANGES"]


def test_fetch_listing_mismatch_and_unknown(s3):
    base, fake = s3
    with pytest.raises(ValueError) as info:
        fetch_listing(DS, "1.0.0", base_url=base)
    assert str(info.value) == (
        "openneuro ds000001: the bucket holds snapshot 1.0.1, the config pins 1.0.0; "
        "pin 1.0.1 (or use a mirror of 1.0.0 via base_url)"
    )
    assert fake.listings == []  # checked before listing
    with pytest.raises(ValueError, match=r"ds000003: cannot tell which snapshot.*CHANGES"):
        fetch_listing("ds000003", "1.0.0", base_url=base)
    with pytest.raises(DownloadError, match=r"ds000009.*not found \(HTTP 404\)"):
        fetch_listing("ds000009", "1.0.0", base_url=base)
    with pytest.raises(ValueError, match="accession"):
        fetch_listing("ds1", "1.0.0", base_url=base)


def test_load_listing_caches(s3, tmp_path):
    base, fake = s3
    root = tmp_path / "data"
    first = load_listing(root, DS, "1.0.1", base_url=base)
    path = listing_path(root, DS, "1.0.1")
    assert path == root / ".openneuro-ds000001-1.0.1.json" and path.is_file()
    assert [p.name for p in root.iterdir()] == [path.name]  # no temporary left
    requests = len(fake.gets) + len(fake.listings)
    second = load_listing(root, DS, "1.0.1", base_url="http://127.0.0.1:9/unreachable")
    assert second == first
    assert len(fake.gets) + len(fake.listings) == requests
    assert json.loads(path.read_text())["licence"] == "CC0"


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        "",
        "[]",
        json.dumps({"format": 1, "dataset": DS, "snapshot": "1.0.1", "licence": None}),
        json.dumps(
            {"format": 1, "dataset": DS, "snapshot": "1.0.1", "licence": None, "objects": [[1]]}
        ),
        json.dumps(
            {
                "format": 1,
                "dataset": DS,
                "snapshot": "1.0.1",
                "licence": None,
                "objects": [["k", "12", "e"]],
            }
        ),
        json.dumps(
            {
                "format": 1,
                "dataset": "ds000002",
                "snapshot": "1.0.1",
                "licence": None,
                "objects": [],
            }
        ),
        json.dumps(
            {"format": 9, "dataset": DS, "snapshot": "1.0.1", "licence": None, "objects": []}
        ),
    ],
)
def test_corrupt_cache(s3, tmp_path, text):
    base, fake = s3
    path = listing_path(tmp_path, DS, "1.0.1")
    path.write_text(text)
    with pytest.raises(ValueError, match="delete it") as info:
        load_listing(tmp_path, DS, "1.0.1", base_url=base)
    assert str(path) in str(info.value)
    assert fake.gets == [] and fake.listings == []


def test_cache_of_many_keys_is_fast(tmp_path):
    import time

    objects = tuple(
        S3Object(f"sub-{i:05d}/anat/sub-{i:05d}_T1w.nii.gz", i, f"{i:032x}") for i in range(100_000)
    )
    listing = Listing(DS, "1.0.1", "CC0", objects)
    path = listing_path(tmp_path, DS, "1.0.1")
    path.write_text(openneuro._listing_json(listing))
    start = time.perf_counter()
    assert load_listing(tmp_path, DS, "1.0.1") == listing
    assert len(anat_files(listing)) == 100_000
    assert time.perf_counter() - start < 3


# --- anatomical images ----------------------------------------------------------------


@pytest.fixture
def listing(s3) -> Listing:
    base, _ = s3
    return fetch_listing(DS, "1.0.1", base_url=base)


def test_anat_files(listing):
    t1 = anat_files(listing)
    assert list(t1) == ["sub-01", "sub-02_ses-1", "sub-02_ses-1_run-2"]
    assert t1["sub-01"].key == "sub-01/anat/sub-01_T1w.nii.gz"
    assert t1["sub-02_ses-1_run-2"].key == MULTIPART
    assert {u: o.key for u, o in anat_files(listing, "T2w").items()} == {
        "sub-01": "sub-01/anat/sub-01_T2w.nii.gz"
    }
    assert [person_of(u) for u in t1] == ["sub-01", "sub-02", "sub-02"]


def test_anat_files_nii_and_duplicates():
    objects = (
        S3Object("sub-a1/anat/sub-a1_acq-fast_T1w.nii", 1, ""),
        S3Object("sub-a1/ses-x/anat/sub-a1_ses-x_T1w.nii.gz", 1, ""),
        S3Object("sub-a1/anat/sub-b2_T1w.nii.gz", 1, ""),  # another subject's name
        S3Object("sub-a1/anat/sub-a1_T1w.nii.gz.bak", 1, ""),
    )
    listing = Listing(DS, "1.0.1", None, objects)
    assert list(anat_files(listing)) == ["sub-a1_acq-fast", "sub-a1_ses-x"]
    twice = Listing(DS, "1.0.1", None, (*objects, S3Object("sub-a1/anat/sub-a1_T1w.nii", 1, "")))
    twice = Listing(DS, "1.0.1", None, (*twice.objects, S3Object(objects[0].key + ".gz", 1, "")))
    with pytest.raises(ValueError, match="both unit sub-a1_acq-fast"):
        anat_files(twice)


def test_anat_files_subjects(listing):
    assert list(anat_files(listing, subjects=["01"])) == ["sub-01"]
    assert list(anat_files(listing, subjects=["sub-02"])) == ["sub-02_ses-1", "sub-02_ses-1_run-2"]
    assert list(anat_files(listing, subjects="02")) == ["sub-02_ses-1", "sub-02_ses-1_run-2"]
    assert len(anat_files(listing, subjects=["01", "sub-02"])) == 3
    assert anat_files(listing, subjects=[]) == {}
    with pytest.raises(ValueError, match=r"no T1w image for sub-03, sub-09; .*sub-01, sub-02"):
        anat_files(listing, subjects=["09", "sub-03", "01"])
    with pytest.raises(ValueError, match=r"no T2w image for sub-02; subjects with one: sub-01$"):
        anat_files(listing, "T2w", subjects=["02"])


def test_anat_files_missing_suffix(listing):
    with pytest.raises(ValueError, match=r"ds000001 1\.0\.1: no FLAIR image.*hold T1w, T2w$"):
        anat_files(listing, "FLAIR")  # sourcedata's FLAIR does not count
    with pytest.raises(ValueError, match="bad BIDS suffix"):
        anat_files(listing, "T1w.nii")
    bare = Listing(DS, "1.0.1", None, (S3Object("sub-01/func/sub-01_bold.nii.gz", 1, ""),))
    with pytest.raises(ValueError, match="no T1w image.*it has no anat images"):
        anat_files(bare)


# --- objects --------------------------------------------------------------------------


def test_fetch_object(s3, listing, tmp_path):
    base, fake = s3
    obj = anat_files(listing)["sub-01"]
    fake.gets = []
    path = fetch_object(tmp_path, DS, obj, base_url=base, progress=False)
    assert path == tmp_path / obj.key and path.read_bytes() == BUCKET[f"{DS}/{obj.key}"]
    assert fake.gets == [f"{DS}/{obj.key}"]
    assert fetch_object(tmp_path, DS, obj, base_url=base, progress=False) == path
    assert len(fake.gets) == 1  # present and checked: no request
    path.write_bytes(b"x" * obj.size)  # right size, wrong MD5
    assert (
        fetch_object(tmp_path, DS, obj, base_url=base, progress=False).read_bytes()
        == (BUCKET[f"{DS}/{obj.key}"])
    )
    path.write_bytes(b"short")
    fetch_object(tmp_path, DS, obj, base_url=base, progress=False)
    assert path.read_bytes() == BUCKET[f"{DS}/{obj.key}"] and len(fake.gets) == 3
    assert provenance(listing, obj) == {
        "dataset": DS,
        "snapshot": "1.0.1",
        "key": "sub-01/anat/sub-01_T1w.nii.gz",
        "size": obj.size,
        "etag": obj.md5,
        "licence": "CC0",
    }


def test_fetch_object_multipart_etag(s3, listing, tmp_path):
    base, fake = s3
    obj = anat_files(listing)["sub-02_ses-1_run-2"]
    fake.served[f"{DS}/{obj.key}"] = b"?" * obj.size  # unverifiable without an MD5
    assert fetch_object(tmp_path, DS, obj, base_url=base, progress=False).stat().st_size == (
        obj.size
    )


def test_fetch_object_wrong_md5(s3, listing, tmp_path):
    base, fake = s3
    obj = anat_files(listing)["sub-02_ses-1"]
    fake.served[f"{DS}/{obj.key}"] = b"!" * obj.size
    with pytest.raises(DownloadError, match="MD5 mismatch") as info:
        fetch_object(tmp_path, DS, obj, base_url=base, progress=False)
    assert obj.md5 in str(info.value)
    assert hashlib.md5(b"!" * obj.size).hexdigest() in str(info.value)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_fetch_object_wrong_size(s3, listing, tmp_path):
    base, fake = s3
    obj = anat_files(listing)["sub-02_ses-1"]
    fake.served[f"{DS}/{obj.key}"] = b"!" * (obj.size + 1)
    with pytest.raises(DownloadError, match=f"expected {obj.size}"):
        fetch_object(tmp_path, DS, obj, base_url=base, progress=False)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_fetch_object_retries_503(s3, listing, tmp_path):
    base, fake = s3
    obj = anat_files(listing, "T2w")["sub-01"]
    fake.fail_first, fake.gets = 1, []
    path = fetch_object(tmp_path, DS, obj, base_url=base, progress=False)
    assert path.read_bytes() == BUCKET[f"{DS}/{obj.key}"] and fake.gets == [f"{DS}/{obj.key}"]


def test_fetch_object_quotes_keys(s3, tmp_path):
    base, fake = s3
    key = "sub-01/anat/odd name+x.nii.gz"
    fake.objects[f"{DS}/{key}"] = b"odd"
    obj = S3Object(key, 3, hashlib.md5(b"odd").hexdigest())
    assert fetch_object(tmp_path, DS, obj, base_url=base, progress=False).read_bytes() == b"odd"
    assert fake.gets == [f"{DS}/{key}"]
