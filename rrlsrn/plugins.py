"""A config's own methods (plug-ins): load them, check them at parse time, run them.

Three kinds, each one file plus a few lines of config (``method_specs.<name>``):

* ``python``: ``entrypoint: "module:function"``, ``f(lr, scale, **params) -> sr`` on a
  float32 (N, h, w) torch tensor in [0, 1]; a function that declares a parameter named
  ``degradation`` also gets the :mod:`rrlsrn.degrade` operator that made its input
  (found by signature inspection; ``**kwargs`` alone does not ask for it).
* ``learned``: ``model: "module:Class"``, an ``nn.Module`` built as
  ``Class(scale=scale, **model_args)`` mapping (N, 1, h, w) to (N, 1, h*scale, w*scale),
  trained by :mod:`rrlsrn.train`; checkpoints store the class path.
* ``command``: ``command: "program {input} {output} --scale {scale}"``, run without a
  shell on the LR volume as NIfTI; it writes the SR volume on the HR grid
  (:mod:`rrlsrn.steps`).

Modules are found in ``search_path`` (the folders of the ``--configfile`` files) or on
``PYTHONPATH``.  This module imports no torch: every Snakemake start imports it.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import shlex
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from rrlsrn import registry

PLACEHOLDERS = ("{input}", "{output}")


@contextlib.contextmanager
def search_path(folders: Sequence[str | os.PathLike] | None) -> Iterator[None]:
    """Put ``folders`` first on ``sys.path`` for the block (imports stay cached after)."""
    added = [str(f) for f in folders or () if str(f) not in sys.path]
    sys.path[:0] = added
    try:
        yield
    finally:
        for folder in added:
            sys.path.remove(folder)


def load(method: str, path: str, folders: Sequence[str | os.PathLike] | None = None) -> Any:
    """The object at the import path ``path`` of ``method``; ValueError naming the method."""
    with search_path(folders):
        importlib.invalidate_caches()
        try:
            return registry.load(path)
        except ValueError as error:
            raise ValueError(f"method {method!r}: {error}") from None
        except Exception as error:  # the user's module itself fails to import
            raise ValueError(
                f"method {method!r}: importing {path!r} failed: {type(error).__name__}: {error}"
            ) from error


def python_method(
    method: str, entrypoint: str, folders: Sequence[str | os.PathLike] | None = None
) -> Callable[..., Any]:
    """A ``python`` method as ``f(lr, scale, degradation, **params) -> sr`` (the classical
    methods' convention), its output checked by :func:`check_output`."""
    function = load(method, entrypoint, folders)
    wants_degradation = "degradation" in inspect.signature(function).parameters

    def run(lr: Any, scale: int, degradation: Any, **params: Any) -> Any:
        extra = {"degradation": degradation} if wants_degradation else {}
        out = function(lr, scale, **params, **extra)
        n, h, w = lr.shape
        return check_output(method, out, (n, h * scale, w * scale))

    return run


def check_output(method: str, out: Any, shape: tuple[int, ...]) -> Any:
    """``out`` (a tensor or array) if it has ``shape`` and only finite values; else a
    ValueError naming ``method``."""
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"method {method!r} returned shape {tuple(out.shape)}, expected {shape}")
    bad = int((~_isfinite(out)).sum())
    if bad:
        raise ValueError(f"method {method!r} returned {bad} NaN/inf values")
    return out


def _isfinite(out: Any) -> Any:
    if hasattr(out, "isfinite"):  # a torch tensor
        return out.isfinite()
    import numpy as np

    return np.isfinite(out)


def command_line(command: str, input: str, output: str, scale: int) -> list[str]:
    """The argument list of a ``command`` method: split like a shell (no shell runs it),
    then ``{input}``, ``{output}`` and ``{scale}`` replaced in each word."""
    values = {"{input}": str(input), "{output}": str(output), "{scale}": str(scale)}
    words = []
    for word in shlex.split(command):
        for key, value in values.items():
            word = word.replace(key, value)
        words.append(word)
    return words


def check_method(method: registry.Method, folders: Sequence[str | os.PathLike] = ()) -> None:
    """Parse-time check of a config's own method: its module imports and has the function
    or class, or its program is found.  Raises ValueError naming the method."""
    name = method.name
    if method.kind == "python":
        if not callable(load(name, method.factory, folders)):
            raise ValueError(f"method {name!r}: {method.factory!r} is not a function")
    elif method.kind == "learned" and ":" in method.factory:
        from torch import nn  # the user's module may import torch anyway

        cls = load(name, method.factory, folders)
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise ValueError(f"method {name!r}: {method.factory!r} is not an nn.Module class")
    elif method.kind == "command":
        missing = [p for p in PLACEHOLDERS if p not in method.factory]
        if missing:
            raise ValueError(f"method {name!r}: the command lacks {' and '.join(missing)}")
        words = command_line(method.factory, "in.nii.gz", "out.nii.gz", 2)
        if not words or shutil.which(words[0]) is None:
            program = words[0] if words else ""
            raise ValueError(f"method {name!r}: program {program!r} is not on PATH")


def source_digest(cls: type) -> str | None:
    """``sha256:<hex>`` of the file that defines ``cls`` (None if it has none)."""
    import hashlib

    try:
        path = inspect.getsourcefile(cls)
    except TypeError:
        return None
    if path is None:
        return None
    with open(path, "rb") as fh:
        return f"sha256:{hashlib.sha256(fh.read()).hexdigest()}"


def hr_grid_affine(spacing: Sequence[float]) -> Any:
    """Voxel-to-world affine of a stack of HR slices: in-plane ``spacing`` (mm) on axes
    0 and 1; axis 2 counts the slices (1 per slice, not their positions in the scan)."""
    import numpy as np

    return np.diag([*map(float, spacing), 1.0, 1.0])


def lr_grid_affine(hr_affine: Any, scale: int) -> Any:
    """The LR grid whose :func:`rrlsrn.upscale.upscaled_affine` by ``scale`` on axes 0 and
    1 is ``hr_affine``: voxels ``scale`` times larger, the same field of view."""
    import numpy as np

    from rrlsrn.upscale import upscaled_affine

    return hr_affine @ np.linalg.inv(upscaled_affine(np.eye(4), (0, 1), scale))


def run_command(
    method: str,
    command: str,
    lr: Any,
    scale: int,
    spacing: Sequence[float],
) -> tuple[Any, float]:
    """Run a ``command`` method on an (N, h, w) LR stack; return the (N, H, W) SR stack and
    the command's wall time in seconds.

    The LR stack goes to ``{input}`` as NIfTI (slices on the last axis, the LR grid's
    affine); the program writes ``{output}`` on the HR grid.  Its stdout and stderr go to
    this process's stdout (the job log).  A non-zero exit, a missing output, a wrong shape
    or NaN raise errors naming the method; an affine off the HR grid only warns.
    """
    import subprocess
    import tempfile
    import time
    from pathlib import Path

    import nibabel as nib
    import numpy as np

    hr_affine = hr_grid_affine(spacing)
    volume = np.moveaxis(np.asarray(lr, np.float32), 0, -1)
    expected = (volume.shape[0] * scale, volume.shape[1] * scale, volume.shape[2])
    with tempfile.TemporaryDirectory(prefix=f"rrlsrn-{method}-") as tmp:
        src, dst = Path(tmp) / "lr.nii.gz", Path(tmp) / "sr.nii.gz"
        nib.save(nib.Nifti1Image(volume, lr_grid_affine(hr_affine, scale)), src)
        args = command_line(command, str(src), str(dst), scale)
        print(f"method {method!r}: running {shlex.join(args)}", flush=True)
        start = time.perf_counter()
        proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        seconds = time.perf_counter() - start
        print(proc.stdout, end="", flush=True)
        if proc.returncode != 0:
            raise RuntimeError(
                f"method {method!r}: {args[0]} exited with code {proc.returncode} "
                "(its output is above in the job log)"
            )
        if not dst.is_file():
            raise RuntimeError(f"method {method!r}: {args[0]} wrote no output file {dst}")
        image = nib.load(dst)
        out = check_output(method, np.asarray(image.dataobj, np.float32), expected)
        if not np.allclose(image.affine, hr_affine, atol=1e-3):
            print(
                f"warning: method {method!r}: the output's affine is not the HR grid's "
                f"(got {image.affine.tolist()}, expected {hr_affine.tolist()}); its voxels "
                "are compared with the HR slices as they are",
                flush=True,
            )
    return np.moveaxis(out, -1, 0), seconds
