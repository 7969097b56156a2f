"""IXI and OpenNeuro through the workflow, against a local server on 127.0.0.1 (their real
hosts cannot be reached from here): archives and listings served as the real hosts serve
them, downloaded, checked, extracted, prepared and summarised by the workflow itself."""

from __future__ import annotations

import base64
import gzip
import hashlib
import http.server
import io
import json
import tarfile
import urllib.parse
from xml.sax.saxutils import escape

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import job_counts, local_http_server, run_snakemake

from rrlsrn import pipeline

IXI_SUBJECTS = ["IXI002-Guys-0828", "IXI012-HH-1211", "IXI035-IOP-0873"]
S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"


def _nifti(seed: int) -> bytes:
    """A small gzipped NIfTI head: a bright ellipsoid with texture, 1 mm voxels."""
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[-1:1:16j, -1:1:36j, -1:1:36j]
    head = (x**2 + y**2 + z**2 < 0.8).astype(np.float32) * 100
    volume = head + rng.normal(0, 5, head.shape).astype(np.float32) * (head > 0)
    image = nib.Nifti1Image(volume.transpose(2, 1, 0), np.eye(4))
    return gzip.compress(image.to_bytes(), mtime=0)


def _ixi_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for i, subject in enumerate(IXI_SUBJECTS):
            data = _nifti(i)
            info = tarfile.TarInfo(f"{subject}-T1.nii.gz")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _bucket() -> dict[str, bytes]:
    description = {
        "Name": "test",
        "BIDSVersion": "1.8.0",
        "License": "CC-BY 4.0",
        "DatasetDOI": "doi:10.18112/openneuro.ds000042.v1.0.2",
    }
    files = {"ds000042/dataset_description.json": json.dumps(description).encode()}
    for n in (1, 2, 3):
        files[f"ds000042/sub-0{n}/anat/sub-0{n}_T1w.nii.gz"] = _nifti(10 + n)
        files[f"ds000042/sub-0{n}/func/sub-0{n}_task-rest_bold.nii.gz"] = b"not wanted"
    return files


def _listing(objects: dict[str, bytes], query: dict[str, str]) -> bytes:
    """ListObjectsV2 XML, two keys a page, continuation token = the last key."""
    keys = sorted(k for k in objects if k.startswith(query.get("prefix", "")))
    if "continuation-token" in query:
        after = base64.urlsafe_b64decode(query["continuation-token"]).decode()
        keys = [k for k in keys if k > after]
    page, truncated = keys[:2], len(keys) > 2
    parts = [
        f'<ListBucketResult xmlns="{S3_NS}"><IsTruncated>{str(truncated).lower()}</IsTruncated>'
    ]
    for key in page:
        etag = hashlib.md5(objects[key]).hexdigest()
        parts.append(
            f"<Contents><Key>{escape(key)}</Key><Size>{len(objects[key])}</Size>"
            f"<ETag>&quot;{etag}&quot;</ETag></Contents>"
        )
    if truncated:
        token = base64.urlsafe_b64encode(page[-1].encode()).decode()
        parts.append(f"<NextContinuationToken>{token}</NextContinuationToken>")
    return ("".join(parts) + "</ListBucketResult>").encode()


def _handler(files: dict[str, bytes], requests: list[str]) -> type:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            url = urllib.parse.urlsplit(self.path)
            requests.append(self.path)
            query = dict(urllib.parse.parse_qsl(url.query))
            if url.path.rstrip("/") == "/s3" and query.get("list-type") == "2":
                s3 = {k.removeprefix("s3/"): v for k, v in files.items() if k.startswith("s3/")}
                body = _listing(s3, query)
            elif (key := urllib.parse.unquote(url.path.lstrip("/"))) in files:
                body = files[key]
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


def test_ixi_and_openneuro_are_downloaded_checked_and_prepared_by_the_workflow(tmp_path):
    files = {"ixi/IXI-T1.tar": _ixi_tar(), "ixi/IXI.xls": b"demographics"}
    files.update({f"s3/{k}": v for k, v in _bucket().items()})
    requests: list[str] = []
    with local_http_server(_handler(files, requests)) as url:
        config = {
            "results": "results",
            "datasets": {
                "ixi": {
                    "source": "ixi",
                    "path": "data/ixi",
                    "subjects": IXI_SUBJECTS,  # before the archive is indexed
                    "base_url": f"{url}/ixi",
                    "min_mask_fraction": 0.01,
                },
                "on": {
                    "source": "openneuro",
                    "dataset": "ds000042",
                    "snapshot": "1.0.2",
                    "path": "data/openneuro",
                    "base_url": f"{url}/s3",
                    "min_mask_fraction": 0.01,
                },
            },
            "methods": ["bicubic"],
            "training": {"preset": "none"},
        }
        (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(config))
        args = ["--configfile", "cfg.yaml", "--replace-workflow-config", "--cores", "2"]
        targets = ["results/tables/data_summary.md", "results/splits/ixi.tsv"]
        run = run_snakemake([*args, *targets], tmp_path)
        jobs = job_counts(run.stdout + run.stderr)
        assert jobs["ixi_archive"] == 1 and jobs["ixi_volume"] == 3
        assert jobs["openneuro_file"] == 3 and jobs["prepare_subject"] == 6
        listed = [r for r in requests if "list-type=2" in r]
        assert len(listed) == 4  # 7 keys, 2 a page; then cached beside the files

    ixi_root = tmp_path / "data/ixi"
    extracted = (ixi_root / "IXI-T1/IXI012-HH-1211-T1.nii.gz").read_bytes()
    assert extracted == _nifti(1)  # byte for byte the archive's member
    assert (ixi_root / "IXI.xls").read_bytes() == b"demographics"
    assert not any("func" in r for r in requests)  # only the anat files asked for
    manifest = pd.read_csv(tmp_path / "results/manifests/ixi.tsv", sep="\t")
    assert dict(zip(manifest["unit"], manifest["site"], strict=True)) == {
        "IXI002-Guys-0828": "Guys",
        "IXI012-HH-1211": "HH",
        "IXI035-IOP-0873": "IOP",
    }
    assert set(manifest["licence"]) == {"CC BY-SA 3.0"} and set(manifest["contrast"]) == {"T1"}
    assert sorted(manifest["role"]) == ["test", "train", "val"]  # 3 persons: one in each
    on = pd.read_csv(tmp_path / "results/manifests/on.tsv", sep="\t")
    size = len(files["s3/ds000042/sub-01/anat/sub-01_T1w.nii.gz"])
    first = on.set_index("unit").loc["sub-01"]
    assert first["licence"] == "CC-BY 4.0" and f"({size} B, ETag " in first["download"]
    summary = (tmp_path / "results/tables/data_summary.md").read_text()
    assert "CC-BY 4.0" in summary and all(site in summary for site in ("Guys", "HH", "IOP"))

    # Indexed now: planning lists from the index, `limit` keeps the first ones.
    spec = {"source": "ixi", "path": str(ixi_root), "limit": 2, "val_fraction": 0}
    split = pipeline.dataset_split({"datasets": {"ixi": spec}}, "ixi")
    assert sorted(split) == IXI_SUBJECTS[:2] and sorted(split.values()) == ["test", "train"]


def test_fetch_ixi_command_downloads_and_indexes_then_the_source_lists_it(tmp_path, capsys):
    from rrlsrn.cli import main

    files = {"ixi/IXI-T1.tar": _ixi_tar(), "ixi/IXI.xls": b"demographics"}
    root = tmp_path / "ixi"
    spec = {"source": "ixi", "path": str(root)}
    with pytest.raises(pipeline.ConfigError, match="rrlsrn data fetch-ixi .* --contrast T1"):
        pipeline.dataset_volumes({"datasets": {"ixi": spec}}, "ixi")
    with local_http_server(_handler(files, [])) as url:
        assert main(["data", "fetch-ixi", str(root), "--base-url", f"{url}/ixi"]) == 0
    out = capsys.readouterr().out
    assert "IXI T1: 3 subjects indexed" in out and "CC BY-SA 3.0" in out
    volumes = pipeline.dataset_volumes({"datasets": {"ixi": spec}}, "ixi")
    assert list(volumes) == IXI_SUBJECTS
    assert [v.site for v in volumes.values()] == ["Guys", "HH", "IOP"]
    assert not (root / "IXI-T1").exists()  # extracted by the workflow, subject by subject
