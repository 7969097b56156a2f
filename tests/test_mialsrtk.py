"""The public fetal sample, fetched by raw-file address from a local server."""

from __future__ import annotations

import functools
import http.server
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import local_http_server, run_snakemake

from rrlsrn.data.download import DownloadError
from rrlsrn.data.embedded import EMBEDDED_ROOT
from rrlsrn.data.mialsrtk import SHA256, fetch_sample
from rrlsrn.data.sources import list_volumes
from rrlsrn.io import load_npz

SAMPLE = EMBEDDED_ROOT / "mialsrtk-sub-01"


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def serve(folder: Path):
    return local_http_server(functools.partial(Quiet, directory=str(folder)))


def test_fetch_sample_downloads_every_file_checked(tmp_path):
    with serve(SAMPLE) as url:
        paths = fetch_sample(tmp_path / "fetal", base_url=url, progress=False)
    assert len(paths) == 12
    for rel in SHA256:
        assert (tmp_path / "fetal" / rel).read_bytes() == (SAMPLE / rel).read_bytes()
    volumes = list_volumes(
        {"source": "fetal", "path": str(tmp_path / "fetal"), "download": "mialsrtk"}
    )
    assert len(volumes) == 6 and all(
        v.path.is_file() and v.mask.is_file() for v in volumes.values()
    )


def test_a_tampered_file_is_refused_and_not_kept(tmp_path):
    served = tmp_path / "served"
    shutil.copytree(SAMPLE, served)
    bad = served / "sub-01/anat/sub-01_run-3_T2w.nii.gz"
    bad.write_bytes(bad.read_bytes()[:-10] + b"0123456789")
    with serve(served) as url, pytest.raises(DownloadError, match="run-3"):
        fetch_sample(tmp_path / "fetal", base_url=url, progress=False)
    assert not (tmp_path / "fetal/sub-01/anat/sub-01_run-3_T2w.nii.gz").exists()


@pytest.mark.slow
def test_workflow_fetches_the_sample_and_prepares_a_stack(tmp_path):
    config = {
        "results": str(tmp_path / "out"),
        "datasets": {
            "fetal_dl": {
                "source": "fetal",
                "path": str(tmp_path / "fetal"),
                "download": "mialsrtk",
                "min_mask_fraction": 0.005,
            }
        },
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    target = tmp_path / "out/data/fetal_dl/sub-01_run-2.npz"
    with serve(SAMPLE) as url:
        config["datasets"]["fetal_dl"]["base_url"] = url
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
        run_snakemake(
            ["--cores", "1", str(target), "--configfile", str(tmp_path / "config.yaml")],
            tmp_path,
        )
    data = load_npz(target)
    assert str(data["mask_source"]).startswith("supplied:")
    assert data["hr"].shape[1:] == (320, 320) and len(data["hr"]) >= 15
