"""Shared test helpers."""

from __future__ import annotations

import contextlib
import http.server
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def local_http_server(handler: Callable[..., http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """Run ``handler`` on 127.0.0.1 (a free port) in a thread; yield its base URL."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@dataclass
class FileServer:
    """What :class:`RangeHandler` serves and how it misbehaves; tests change it between
    requests (downloads of archives and files against 127.0.0.1)."""

    files: dict[str, bytes] = field(default_factory=dict)
    fail_first: int = 0  # answer this many requests with fail_status
    fail_status: int = 500
    cut_after: int | None = None  # send this many body bytes, then close (once)
    ignore_range: bool = False
    garbage: bool = False
    requests: list[dict[str, str]] = field(default_factory=list)


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves ``behaviour.files`` by path, with ``Range`` support and injected failures."""

    behaviour: FileServer

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        b = self.behaviour
        b.requests.append({"path": self.path, **dict(self.headers.items())})
        if b.fail_first > 0:
            b.fail_first -= 1
            self.send_error(b.fail_status, "injected failure")
            return
        if self.path not in b.files:
            self.send_error(404, "no such file")
            return
        data = b.files[self.path]
        if b.garbage:
            data = bytes(reversed(data))
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
        if match and not b.ignore_range:
            start = int(match.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if b.cut_after is not None:
            body, b.cut_after = body[: b.cut_after], None
        self.wfile.write(body)


def run_snakemake(
    args: list[str], workdir: Path, check: bool = True, timeout: int = 900
) -> subprocess.CompletedProcess:
    """Run the repository's workflow by subprocess in ``workdir``, as a user would."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        pytest.fail(
            f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a Snakemake dry run: rule -> number of jobs."""
    table = output.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    rows = (re.fullmatch(r"(\w+)\s+(\d+)", line.strip()) for line in table.splitlines())
    return {m[1]: int(m[2]) for m in rows if m and m[1] != "total"}


def two_step_settings():
    """Training settings for a from-scratch run of two 16x16-patch steps: enough to make a
    real checkpoint, quick on two cores."""
    from rrlsrn.settings import make_settings

    overrides = {"init": "scratch", "max_steps": 2, "steps_per_epoch": 2, "patch_size": 16}
    return make_settings("smoke", {**overrides, "batch_size": 2, "val_slices": 1})


@pytest.fixture(scope="session")
def real_slices() -> np.ndarray:
    """Two real axial 256x256 HR slices (ds002748-sub-01, a held-out test subject),
    per-volume normalised to [0, 1] as the workflow does."""
    import nibabel as nib

    from rrlsrn.data.embedded import embedded_volume
    from rrlsrn.data.prepare import normalise_intensities

    volume = np.asarray(nib.load(str(embedded_volume("ds002748-sub-01"))).dataobj, np.float32)
    image, _, _ = normalise_intensities(volume, 99.5)
    return np.ascontiguousarray(np.moveaxis(image[16:272, 16:272, [80, 100]], -1, 0))
