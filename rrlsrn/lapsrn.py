"""Import the official LapSRN x2 weights (Lai et al. 2017) into :class:`RRLSRN`.

RRLSRN is LapSRN's first pyramid level with one more inner conv, so the released
MatConvNet model ``LapSRN_x2.mat`` is a natural starting point.  LapSRN's repository
states no licence, so the file is not shipped: :func:`lapsrn_weights_path` downloads it
from the authors' GitHub repository on first use and caches it.

Environment variables: ``RRLSRN_LAPSRN_MAT`` (use this local file, no download),
``RRLSRN_LAPSRN_URL`` (download address, default :data:`LAPSRN_X2_URL`) and
``RRLSRN_CACHE`` (cache folder, default ``~/.cache/rrlsrn``).
"""

from __future__ import annotations

import logging
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io
import torch
from torch import nn

from rrlsrn import registry
from rrlsrn.checkpoint import load_state_into
from rrlsrn.io import atomic_path
from rrlsrn.models import IMAGE_BRANCHES, RRLSRN

LAPSRN_X2_URL = (
    "https://raw.githubusercontent.com/phoenix104104/LapSRN/master/pretrained_models/LapSRN_x2.mat"
)
LAPSRN_X2_FILENAME = "LapSRN_x2.mat"
LAPSRN_X2_PARAMETERS = 407_441
LAPSRN_DEPTH = 10  # inner 3x3 convs of LapSRN's x2 level
DOWNLOAD_TRIES = 3
DOWNLOAD_BACKOFF_S = 2.0  # wait DOWNLOAD_BACKOFF_S * 2**k seconds before retry k + 1
DOWNLOAD_TIMEOUT_S = 60.0

_log = logging.getLogger(__name__)


class LapSRNDownloadError(RuntimeError):
    """The LapSRN weights could not be downloaded, or the download is not the model."""


def _expected_shapes() -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {"input_conv_f": (3, 3, 64), "input_conv_b": (64,)}
    for i in range(1, LAPSRN_DEPTH + 1):
        shapes[f"level1_conv{i}_f"] = (3, 3, 64, 64)
        shapes[f"level1_conv{i}_b"] = (64,)
    shapes.update(
        {
            "level1_upconv_f": (3, 3, 64, 64),
            "level1_upconv_b": (64,),
            "level1_residual_conv_f": (3, 3, 64),
            "level1_residual_conv_b": (),
            "level1_img_up_f": (4, 4),
        }
    )
    return shapes


def read_lapsrn_mat(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read the parameters of the MatConvNet DagNN ``LapSRN_x2.mat`` as float32 arrays.

    Returns ``{param name: array}`` with MatConvNet's layout (conv filters are
    H x W x in x out).  Raises :class:`FileNotFoundError` for a missing file and
    :class:`ValueError` naming the file if it is not a MAT file or not the x2 model.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LapSRN weights file {path} does not exist")
    try:
        with path.open("rb") as fh:
            mat = scipy.io.loadmat(fh, squeeze_me=True, struct_as_record=False)
        params = mat["net"].params
        raw = {str(p.name): np.asarray(p.value, dtype=np.float32) for p in np.atleast_1d(params)}
    except Exception as exc:  # scipy raises many types for corrupt or foreign files
        raise ValueError(
            f"{path} is not a readable MatConvNet LapSRN model (.mat with net.params): "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    expected = _expected_shapes()
    missing = sorted(set(expected) - set(raw))
    if missing:
        raise ValueError(f"{path} is not the LapSRN x2 model: missing parameters {missing}")
    bad = {k: raw[k].shape for k, shape in expected.items() if raw[k].shape != shape}
    if bad:
        raise ValueError(
            f"{path} is not the LapSRN x2 model: unexpected shapes {bad} "
            f"(expected { ({k: expected[k] for k in bad}) })"
        )
    return {k: raw[k] for k in expected}


def _conv_weight(f: np.ndarray) -> torch.Tensor:
    """MatConvNet conv filter (H, W, in, out) -> torch Conv2d weight (out, in, H, W)."""
    return torch.from_numpy(np.ascontiguousarray(f.transpose(3, 2, 0, 1)))


def _convt_weight(f: np.ndarray) -> torch.Tensor:
    """vl_nnconvt filter (H, W, out, in) -> torch ConvTranspose2d weight (in, out, H, W).

    Checked numerically: the other candidate, ``transpose(2, 3, 0, 1)``, makes the
    imported model 3-7 dB worse than bicubic instead of 2-4 dB better.
    """
    return torch.from_numpy(np.ascontiguousarray(f.transpose(3, 2, 0, 1)))


def lapsrn_x2_state_dict(
    path: str | os.PathLike | None = None, depth: int = 11, image_branch: str = "transposed"
) -> dict[str, torch.Tensor]:
    """State dict for ``RRLSRN(depth, 64, image_branch)`` from LapSRN's x2 weights.

    Input conv, inner convs 1-10, the residual conv and (for ``image_branch=
    "transposed"``) the 4x4 image upsampler map one to one; the other image branches
    (fixed bicubic, none) have no weights.  Inner convs beyond the
    10th start as identity kernels with zero bias.  LapSRN's 3x3 stride-2 feature
    upsampler cropped by [0 1 0 1] equals a 4x4 stride-2 padding-1 transposed conv
    whose kernel is the 3x3 one zero-padded by one leading row and column.  ``path``
    defaults to :func:`lapsrn_weights_path`.
    """
    if depth < LAPSRN_DEPTH:
        raise ValueError(
            f"LapSRN x2 has {LAPSRN_DEPTH} inner convs; depth must be >= {LAPSRN_DEPTH}, "
            f"got {depth}"
        )
    if image_branch not in IMAGE_BRANCHES:
        raise ValueError(f"image_branch must be one of {IMAGE_BRANCHES}, got {image_branch!r}")
    p = read_lapsrn_mat(lapsrn_weights_path() if path is None else path)
    sd: dict[str, torch.Tensor] = {
        "input_conv.weight": _conv_weight(p["input_conv_f"][:, :, None, :]),
        "input_conv.bias": torch.from_numpy(p["input_conv_b"]),
    }
    for i in range(depth):
        if i < LAPSRN_DEPTH:
            weight = _conv_weight(p[f"level1_conv{i + 1}_f"])
            bias = torch.from_numpy(p[f"level1_conv{i + 1}_b"])
        else:
            weight = torch.nn.init.dirac_(torch.empty(64, 64, 3, 3))
            bias = torch.zeros(64)
        sd[f"inner.{i}.weight"], sd[f"inner.{i}.bias"] = weight, bias
    up = torch.zeros(64, 64, 4, 4)
    up[:, :, 1:, 1:] = _convt_weight(p["level1_upconv_f"])
    sd["feature_up.weight"] = up
    sd["feature_up.bias"] = torch.from_numpy(p["level1_upconv_b"])
    sd["residual_conv.weight"] = _conv_weight(p["level1_residual_conv_f"][:, :, :, None])
    sd["residual_conv.bias"] = torch.from_numpy(p["level1_residual_conv_b"].reshape(1))
    if image_branch == "transposed":
        sd["image_up.weight"] = torch.from_numpy(p["level1_img_up_f"].copy())[None, None]
    return {k: v.float().contiguous() for k, v in sd.items()}


def lapsrn_x2_model(
    path: str | os.PathLike | None = None, scale: int = 2, **model_args: Any
) -> nn.Module:
    """:class:`RRLSRN` (``model_args``) holding LapSRN's x2 weights, in eval mode: the
    ``lapsrn_x2`` method's loader (:mod:`rrlsrn.registry`).  At x4, x8, ... the x2
    network cascades (:class:`RRLSRN`); other scales raise ValueError naming LapSRN."""
    registry.cascade_passes(scale, "LapSRN x2")  # name LapSRN, not the class it is built as
    model = RRLSRN(scale, **model_args)
    state = lapsrn_x2_state_dict(path, depth=model.depth, image_branch=model.image_branch)
    load_state_into(model, state, path or LAPSRN_X2_FILENAME)
    return model.eval()


def _cache_dir(cache_dir: str | os.PathLike | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(os.environ.get("RRLSRN_CACHE") or Path.home() / ".cache" / "rrlsrn")


def _help(url: str, target: Path) -> str:
    return (
        f"download {url} by hand and either put it at {target} or set "
        f"RRLSRN_LAPSRN_MAT=/path/to/{LAPSRN_X2_FILENAME}"
    )


def _download_once(url: str, tmp: Path) -> None:
    """Stream ``url`` into ``tmp``; raise on HTTP errors and truncated transfers."""
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as resp, tmp.open("wb") as out:
        expected = resp.headers.get("Content-Length")
        size = 0
        while chunk := resp.read(1 << 16):
            out.write(chunk)
            size += len(chunk)
    if expected is not None and size != int(expected):
        raise OSError(f"transfer truncated: got {size} of {expected} bytes")


def local_lapsrn_weights(cache_dir: str | os.PathLike | None = None) -> Path | None:
    """``LapSRN_x2.mat`` if it is on this machine (``RRLSRN_LAPSRN_MAT`` or the cache),
    else None: for comparisons that run LapSRN only when its weights are at hand."""
    local = os.environ.get("RRLSRN_LAPSRN_MAT")
    if local:
        return Path(local) if Path(local).is_file() else None
    target = _cache_dir(cache_dir) / LAPSRN_X2_FILENAME
    return target if target.is_file() else None


def lapsrn_weights_path(cache_dir: str | os.PathLike | None = None) -> Path:
    """Local path of ``LapSRN_x2.mat``, downloading it into the cache on first use.

    ``RRLSRN_LAPSRN_MAT`` names a local copy to use as is.  Otherwise the file is
    fetched from ``RRLSRN_LAPSRN_URL`` (default :data:`LAPSRN_X2_URL`) into
    ``cache_dir`` (default ``RRLSRN_CACHE`` or ``~/.cache/rrlsrn``): streamed to a temp
    file, checked to be the LapSRN x2 model, then renamed into place atomically.
    """
    local = os.environ.get("RRLSRN_LAPSRN_MAT")
    if local:
        if not Path(local).is_file():
            raise FileNotFoundError(f"RRLSRN_LAPSRN_MAT={local} does not name an existing file")
        return Path(local)
    target = _cache_dir(cache_dir) / LAPSRN_X2_FILENAME
    if target.is_file():
        return target
    url = os.environ.get("RRLSRN_LAPSRN_URL") or LAPSRN_X2_URL
    _log.warning("downloading LapSRN x2 weights from %s to %s", url, target)
    with atomic_path(target, suffix=".part") as tmp:
        for attempt in range(DOWNLOAD_TRIES):
            try:
                _download_once(url, tmp)
                break
            except (OSError, ValueError) as exc:  # URLError and HTTPError are OSErrors
                permanent = isinstance(exc, ValueError) or (
                    isinstance(exc, urllib.error.HTTPError)
                    and exc.code < 500
                    and exc.code not in (408, 429)
                )
                if permanent or attempt == DOWNLOAD_TRIES - 1:
                    raise LapSRNDownloadError(
                        f"could not download the LapSRN x2 weights from {url} "
                        f"(attempt {attempt + 1} of {DOWNLOAD_TRIES}: {exc}); {_help(url, target)}"
                    ) from exc
                time.sleep(DOWNLOAD_BACKOFF_S * 2**attempt)
        try:
            read_lapsrn_mat(tmp)
        except ValueError as exc:
            raise LapSRNDownloadError(
                f"the file downloaded from {url} is not the LapSRN x2 model ({exc}); "
                f"{_help(url, target)}"
            ) from exc
    return target
