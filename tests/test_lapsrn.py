"""LapSRN x2 weight import: file parsing, exact forward equivalence, quality, download."""

from __future__ import annotations

import functools
import http.server
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
import torch.nn.functional as F
from conftest import local_http_server

from rrlsrn import lapsrn
from rrlsrn.degrade import imresize, modcrop
from rrlsrn.lapsrn import (
    LapSRNDownloadError,
    lapsrn_weights_path,
    lapsrn_x2_state_dict,
    read_lapsrn_mat,
)
from rrlsrn.metrics import psnr
from rrlsrn.models import RRLSRN

SHARED = Path(__file__).resolve().parents[2] / "shared"
MAT = SHARED / "weights/LapSRN_x2.mat"
MRI = SHARED / "data/openneuro-ds002748/sub-01_T1w.nii.gz"

needs_mat = pytest.mark.skipif(not MAT.is_file(), reason=f"LapSRN weights not found at {MAT}")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("RRLSRN_LAPSRN_MAT", "RRLSRN_LAPSRN_URL", "RRLSRN_CACHE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(lapsrn, "DOWNLOAD_BACKOFF_S", 0.0)


def lapsrn_reference(p: dict[str, np.ndarray], x: torch.Tensor) -> torch.Tensor:
    """LapSRN x2 forward written directly from the MatConvNet DagNN layers."""

    def conv(f: np.ndarray, b: np.ndarray, t: torch.Tensor) -> torch.Tensor:
        w = torch.from_numpy(np.ascontiguousarray(f.transpose(3, 2, 0, 1)))
        return F.conv2d(t, w, torch.from_numpy(np.atleast_1d(b).astype(np.float32)), padding=1)

    h, w = x.shape[-2:]
    f = F.leaky_relu(conv(p["input_conv_f"][:, :, None, :], p["input_conv_b"], x), 0.2)
    for i in range(1, 11):
        f = F.leaky_relu(conv(p[f"level1_conv{i}_f"], p[f"level1_conv{i}_b"], f), 0.2)
    up_w = torch.from_numpy(np.ascontiguousarray(p["level1_upconv_f"].transpose(3, 2, 0, 1)))
    f = F.conv_transpose2d(f, up_w, torch.from_numpy(p["level1_upconv_b"]), stride=2)
    f = F.leaky_relu(f[..., : 2 * h, : 2 * w], 0.2)  # crop [0 1 0 1]
    residual = conv(p["level1_residual_conv_f"][..., None], p["level1_residual_conv_b"], f)
    img = F.conv_transpose2d(x, torch.from_numpy(p["level1_img_up_f"])[None, None], stride=2)
    return img[..., 1:-1, 1:-1] + residual  # crop 1


def imported_model(depth: int = 11, image_branch: str = "transposed") -> RRLSRN:
    model = RRLSRN(depth=depth, image_branch=image_branch)
    model.load_state_dict(lapsrn_x2_state_dict(MAT, depth=depth, image_branch=image_branch))
    return model.eval()


def sr_gain(hr: np.ndarray) -> tuple[float, float]:
    """(PSNR of the imported depth-11 model, PSNR of bicubic) for x2 of ``hr``."""
    hr = modcrop(hr, 2)
    lr = imresize(hr, 0.5)
    with torch.no_grad():
        sr = imported_model()(torch.tensor(lr, dtype=torch.float32)[None, None])[0, 0]
    sr_psnr = float(psnr(sr.double().clamp(0, 1), torch.from_numpy(hr), shave=2))
    return sr_psnr, float(psnr(imresize(lr, 2.0), hr, shave=2))


@needs_mat
def test_parameter_count_and_shapes() -> None:
    params = read_lapsrn_mat(MAT)
    assert sum(v.size for v in params.values()) == lapsrn.LAPSRN_X2_PARAMETERS == 407_441
    assert params["level1_upconv_f"].shape == (3, 3, 64, 64)
    assert all(v.dtype == np.float32 for v in params.values())


@needs_mat
def test_depth10_equals_lapsrn_forward() -> None:
    x = torch.rand(1, 1, 20, 24, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = imported_model(depth=10)(x)
        ref = lapsrn_reference(read_lapsrn_mat(MAT), x)
    assert ours.shape == ref.shape == (1, 1, 40, 48)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)


@needs_mat
def test_state_dict_variants() -> None:
    sd = lapsrn_x2_state_dict(MAT, depth=12)
    assert torch.equal(sd["inner.11.weight"], torch.nn.init.dirac_(torch.empty(64, 64, 3, 3)))
    assert not sd["inner.10.bias"].any()
    bicubic = lapsrn_x2_state_dict(MAT, image_branch="bicubic")
    assert "image_up.weight" not in bicubic
    RRLSRN(image_branch="bicubic").load_state_dict(bicubic)  # strict
    with pytest.raises(ValueError, match="depth must be >= 10"):
        lapsrn_x2_state_dict(MAT, depth=9)


@needs_mat
def test_beats_bicubic_on_natural_image() -> None:
    skimage = pytest.importorskip("skimage")
    gray = skimage.color.rgb2gray(skimage.data.astronaut())[:256, 128:384]  # face, [0, 1]
    ours, bicubic = sr_gain(gray)
    assert ours - bicubic >= 2.0, (ours, bicubic)  # measured 33.93 vs 31.09 dB


@needs_mat
@pytest.mark.skipif(not MRI.is_file(), reason=f"MRI volume not found at {MRI}")
def test_beats_bicubic_on_mri_slice() -> None:
    nib = pytest.importorskip("nibabel")
    vol = np.asarray(nib.load(MRI).dataobj, dtype=np.float64)
    mid = vol[:, :, vol.shape[2] // 2]  # stored L, A, S: the last axis is axial
    ours, bicubic = sr_gain(np.clip(mid / np.percentile(vol[vol > 0], 99.5), 0, 1))
    assert ours - bicubic >= 2.0, (ours, bicubic)  # measured 37.00 vs 34.74 dB


def test_missing_and_corrupt_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.mat"):
        read_lapsrn_mat(tmp_path / "nope.mat")
    bad = tmp_path / "corrupt.mat"
    bad.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ValueError, match="corrupt.mat"):
        read_lapsrn_mat(bad)
    with pytest.raises(ValueError, match="corrupt.mat"):
        lapsrn_x2_state_dict(bad)


def test_wrong_model_file(tmp_path: Path) -> None:
    params = np.array(
        [("input_conv_f", np.zeros((3, 3, 32), np.float32))],
        dtype=[("name", object), ("value", object)],
    )
    path = tmp_path / "other.mat"
    scipy.io.savemat(path, {"net": {"params": params}})
    with pytest.raises(ValueError, match=r"other\.mat.*missing parameters"):
        read_lapsrn_mat(path)
    params = np.array(
        [(k, np.zeros(s, np.float32)) for k, s in lapsrn._expected_shapes().items()],
        dtype=[("name", object), ("value", object)],
    )
    params[0]["value"] = np.zeros((3, 3, 32), np.float32)
    scipy.io.savemat(path, {"net": {"params": params}})
    with pytest.raises(ValueError, match=r"other\.mat.*unexpected shapes.*input_conv_f"):
        read_lapsrn_mat(path)


class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: list[str]
    fail_first: int = 0  # answer this many requests with HTTP 500 first

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        self.requests.append(self.path)
        if len(self.requests) <= self.fail_first:
            self.send_error(500)
            return
        super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, type[_Handler]]]:
    """Serve ``tmp_path / "www"`` on 127.0.0.1; yields (base URL, handler class)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = type("Handler", (_Handler,), {"requests": []})
    with local_http_server(functools.partial(handler, directory=str(root))) as url:
        yield url, handler


def _cache_entries(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


@needs_mat
def test_download_and_cache(
    server: tuple[str, type[_Handler]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, handler = server
    shutil.copyfile(MAT, tmp_path / "www/LapSRN_x2.mat")
    handler.fail_first = 1  # a transient server error is retried
    monkeypatch.setenv("RRLSRN_LAPSRN_URL", f"{url}/LapSRN_x2.mat")
    monkeypatch.setenv("RRLSRN_CACHE", str(tmp_path / "cache"))
    path = lapsrn_weights_path()
    assert path == tmp_path / "cache/LapSRN_x2.mat"
    assert path.read_bytes() == MAT.read_bytes()
    assert len(handler.requests) == 2
    assert lapsrn_weights_path() == path
    assert len(handler.requests) == 2  # cached: no second download
    assert _cache_entries(tmp_path / "cache") == ["LapSRN_x2.mat"]
    monkeypatch.setenv("RRLSRN_LAPSRN_MAT", str(MAT))
    assert lapsrn_weights_path() == MAT


def test_download_404(
    server: tuple[str, type[_Handler]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, handler = server
    monkeypatch.setenv("RRLSRN_LAPSRN_URL", f"{url}/missing.mat")
    with pytest.raises(LapSRNDownloadError, match=r"404.*RRLSRN_LAPSRN_MAT"):
        lapsrn_weights_path(tmp_path / "cache")
    assert len(handler.requests) == 1  # client errors are not retried
    assert _cache_entries(tmp_path / "cache") == []


def test_download_garbage(
    server: tuple[str, type[_Handler]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = server
    (tmp_path / "www/LapSRN_x2.mat").write_bytes(b"<html>not a model</html>" * 100)
    monkeypatch.setenv("RRLSRN_LAPSRN_URL", f"{url}/LapSRN_x2.mat")
    monkeypatch.setenv("RRLSRN_CACHE", str(tmp_path / "cache"))
    with pytest.raises(LapSRNDownloadError, match="not the LapSRN x2 model"):
        lapsrn_weights_path()
    assert _cache_entries(tmp_path / "cache") == []


def test_local_override_must_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RRLSRN_LAPSRN_MAT", str(tmp_path / "absent.mat"))
    with pytest.raises(FileNotFoundError, match="absent.mat"):
        lapsrn_weights_path()


@needs_mat
def test_training_init_reads_the_configured_file_without_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rrlsrn.train import initial_weights

    # an empty cache and an unreachable URL: only the file passed in can serve
    monkeypatch.setenv("RRLSRN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("RRLSRN_LAPSRN_URL", "http://127.0.0.1:9/LapSRN_x2.mat")
    copy = tmp_path / "my" / "LapSRN_x2.mat"
    copy.parent.mkdir()
    shutil.copyfile(MAT, copy)
    state, origin = initial_weights("lapsrn_x2", "rrlsrn", {}, lapsrn_mat=copy)
    assert origin == "lapsrn_x2"
    expected = lapsrn_x2_state_dict(MAT)
    assert all(torch.equal(state[k], expected[k]) for k in expected)
    assert not (tmp_path / "cache").exists()


def test_lapsrn_init_for_another_model_says_what_to_configure() -> None:
    from rrlsrn.train import initial_weights

    with pytest.raises(ValueError, match="fit only the rrlsrn model, not 'srcnn'.*init: scratch"):
        initial_weights("lapsrn_x2", "srcnn", {})
