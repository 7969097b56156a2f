"""Dataset sources: which HR volumes (and masks) a configured dataset holds.

Each source turns a dataset's config entry into ``{unit id: Volume}``; a unit is one
volume (a subject, a session or a stack) and names the files made from it.  ``person``
says who was scanned, so that splits can keep every scan of one person together.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rrlsrn.data import kirby21, mialsrtk
from rrlsrn.data.embedded import ADULT_SPLIT, ADULT_T1, EMBEDDED_ROOT
from rrlsrn.io import NIFTI_SUFFIXES, nifti_suffix

NAMIC_CASES = [
    "01011",
    "01015",
    "01017",
    "01018",
    "01019",
    "01020",
    "01025",
    "01026",
    "01028",
    "01029",
    "01033",
    "01034",
    "01035",
    "01039",
    "01041",
    "01042",
    "01044",
]
# The paper tests on case01011..case01034 and trains on the rest.
NAMIC_PAPER_TEST = {f"case{c}" for c in NAMIC_CASES if c <= "01034"}


@dataclass(frozen=True)
class Volume:
    """One HR volume of a dataset, its optional brain mask, and who it shows."""

    path: Path
    mask: Path | None = None
    person: str | None = None


def _is_nifti(path: Path) -> bool:
    return path.is_file() and nifti_suffix(path) is not None


@functools.cache
def _header_problem(path: str, size: int, mtime_ns: int) -> str | None:
    """Why the NIfTI header of ``path`` cannot be read, or None (cached per size and time)."""
    if size == 0:
        return "empty file"
    import nibabel as nib  # here: a Snakemake start that plans no folder needs none

    try:
        nib.load(path)  # reads the header only; the voxels are read when prepared
    except Exception as error:  # nibabel raises ImageFileError, gzip, zlib and header errors
        return f"{type(error).__name__}: {error}".splitlines()[0]
    return None


def check_nifti_headers(root: Path, paths: Iterable[Path]) -> None:
    """Raise ``ValueError`` naming every file of ``paths`` whose NIfTI header is unreadable."""
    problems = []
    for path in paths:
        stat = path.stat()
        problem = _header_problem(str(path), stat.st_size, stat.st_mtime_ns)
        if problem:
            problems.append(f"{path.relative_to(root)} ({problem})")
    if problems:
        raise ValueError(
            f"folder {root} holds {len(problems)} unreadable NIfTI "
            f"file{'s' if len(problems) > 1 else ''}: "
            f"{'; '.join(problems)}. Replace or remove {'them' if len(problems) > 1 else 'it'} "
            f"(an interrupted copy?)"
        )


def _strip_nifti(name: str) -> str:
    return name.removesuffix(nifti_suffix(name) or "")


def embedded_volumes(spec: dict[str, Any]) -> dict[str, Volume]:
    """The shipped adult T1 scans (``collection: adult``) or fetal T2 stacks (``fetal``)."""
    collection = spec.get("collection", "adult")
    if collection == "adult":
        return {s: Volume(EMBEDDED_ROOT / p, None, s) for s, p in ADULT_T1.items()}
    if collection == "fetal":
        return bids_stacks(EMBEDDED_ROOT / "mialsrtk-sub-01", check_headers=False)
    raise ValueError(f"unknown embedded collection {collection!r}; use 'adult' or 'fetal'")


def folder_volumes(spec: dict[str, Any]) -> dict[str, Volume]:
    """Any folder of NIfTI volumes; masks matched by ``mask_suffix`` (e.g. ``_mask``).

    Only ``.nii`` / ``.nii.gz`` files count (``a.nii.gz.part`` does not); every header is
    read when the workflow plans, so an empty or broken file stops it, named.
    """
    root = Path(spec["path"]).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(
            f"dataset folder {root} does not exist: put your HR NIfTI volumes "
            f"({' / '.join(NIFTI_SUFFIXES)}) there, optional masks named "
            f"<volume>{spec.get('mask_suffix', '_mask')}.nii.gz beside them"
        )
    suffix = spec.get("mask_suffix", "_mask")
    pattern = spec.get("pattern", "*.nii*")
    matched = sorted(root.glob(pattern))
    files = [p for p in matched if _is_nifti(p)]
    check_nifti_headers(root, files)
    stems = {_strip_nifti(p.name): p for p in files}
    volumes = {}
    for stem, path in stems.items():
        if stem.endswith(suffix):
            continue
        mask = next((stems[m] for m in [stem + suffix] if m in stems), None)
        volumes[stem] = Volume(path, mask, stem)
    if not volumes:
        others = [p.name for p in matched if p not in files]
        raise FileNotFoundError(
            f"dataset folder {root} holds no NIfTI volume ({' / '.join(NIFTI_SUFFIXES)}) "
            f"matching {pattern}" + (f"; not NIfTI, ignored: {', '.join(others)}" if others else "")
        )
    return volumes


def bids_stacks(root: Path, suffix: str = "T2w", check_headers: bool = True) -> dict[str, Volume]:
    """Stacks ``sub-*/[ses-*/]anat/*_<suffix>.nii[.gz]`` of a BIDS folder with their masks.

    Masks are looked up as ``derivatives/*/sub-*/.../<stack>_desc-brain_mask.nii[.gz]``.
    The unit id is the file name without suffix (``sub-01_run-1``); the person is the
    ``sub-`` entity.  Headers are read as in :func:`folder_volumes` (unless
    ``check_headers`` is false: the shipped stacks).
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(
            f"fetal folder {root} does not exist: put BIDS-style thick-slice stacks there "
            f"(sub-XX/anat/sub-XX_run-N_{suffix}.nii.gz; optional masks under "
            f"derivatives/<name>/sub-XX/anat/sub-XX_run-N_{suffix}_desc-brain_mask.nii.gz)"
        )
    mask_files = [
        p for p in (root / "derivatives").glob("*/sub-*/**/*_desc-brain_mask.nii*") if _is_nifti(p)
    ]
    stacks = sorted(p for p in root.glob(f"sub-*/**/anat/*_{suffix}.nii*") if _is_nifti(p))
    if check_headers:
        check_nifti_headers(root, [*stacks, *mask_files])
    masks = {_strip_nifti(p.name).removesuffix("_desc-brain_mask"): p for p in mask_files}
    volumes = {}
    for path in stacks:
        stem = _strip_nifti(path.name)
        unit = stem.removesuffix(f"_{suffix}")
        volumes[unit] = Volume(path, masks.get(stem), unit.split("_")[0])
    if not volumes:
        raise FileNotFoundError(f"fetal folder {root} holds no sub-*/anat/*_{suffix}.nii.gz")
    return volumes


def fetal_volumes(spec: dict[str, Any]) -> dict[str, Volume]:
    """A user's folder of fetal thick-slice T2 stacks, BIDS-style, optional brain masks.

    With ``download: mialsrtk`` the folder is filled with the public MIALSRTK sample by
    the workflow; its volumes are listed before they exist.
    """
    root = Path(spec["path"]).expanduser()
    if spec.get("download") == "mialsrtk":
        stacks = sorted(r for r in mialsrtk.SHA256 if r.startswith("sub-01/"))
        return {
            Path(r).name.removesuffix("_T2w.nii.gz"): Volume(
                root / r,
                root / mialsrtk.MASK_OF[r],
                "sub-01",
            )
            for r in stacks
        }
    return bids_stacks(root, spec.get("suffix", "T2w"))


def kirby21_volumes(spec: dict[str, Any]) -> dict[str, Volume]:
    """Kirby 21 MPRAGE sessions; the files appear under ``path`` once downloaded."""
    root = Path(spec.get("path", "data/kirby21")).expanduser()
    return {
        s: Volume(root / s / f"{s}-MPRAGE.nii", None, str(kirby21.SUBJECT_OF[s]))
        for s in kirby21.SESSIONS
    }


def namic_volumes(spec: dict[str, Any]) -> dict[str, Volume]:
    """NAMIC Brain Multimodality T1w cases from a local folder (no public host exists)."""
    root = Path(spec["path"]).expanduser()
    volumes = {
        f"case{c}": Volume(root / f"case{c}-t1w.nrrd", None, f"case{c}")
        for c in NAMIC_CASES
        if (root / f"case{c}-t1w.nrrd").is_file()
    }
    if not volumes:
        raise FileNotFoundError(
            f"no NAMIC case found in {root}: put the cases' <case>-t1w.nrrd files there "
            f"(e.g. {root}/case01011-t1w.nrrd). NAMIC cannot be downloaded: its host "
            f"(MIDAS, hdl.handle.net/1926/1687) is gone and no public mirror is known, so "
            f"copy it from a colleague or an institutional archive"
        )
    return volumes


SOURCES = {
    "embedded": embedded_volumes,
    "folder": folder_volumes,
    "fetal": fetal_volumes,
    "kirby21": kirby21_volumes,
    "namic": namic_volumes,
}


def list_volumes(spec: dict[str, Any]) -> dict[str, Volume]:
    """``{unit: Volume}`` of a dataset config entry, restricted to ``subjects`` if given."""
    source = spec["source"]
    if source not in SOURCES:
        raise ValueError(
            f"dataset source {source!r} is not supported; use one of {sorted(SOURCES)}"
        )
    volumes = SOURCES[source](spec)
    wanted = spec.get("subjects")
    if wanted:
        missing = sorted(set(wanted) - set(volumes))
        if missing:
            raise ValueError(
                f"subjects {missing} are not in the {source} dataset; known: {sorted(volumes)}"
            )
        volumes = {s: volumes[s] for s in wanted}
    return dict(sorted(volumes.items()))


def default_split(spec: dict[str, Any], units: list[str]) -> dict[str, str]:
    """The split used when config gives none, by source and ``split_policy``.

    ``subject_disjoint`` (default) keeps every scan of a person in one role; ``paper`` is
    the paper's own split (Kirby 21: train 06-42, test 01-05, which puts the test
    subjects' rescans in training; NAMIC: test case01011..01034).  Fetal stacks and
    users' folders are test sets.
    """
    policy = spec.get("split_policy", "subject_disjoint")
    source = spec["source"]
    if source == "embedded" and spec.get("collection", "adult") == "adult":
        split = ADULT_SPLIT
    elif source == "kirby21":
        split = kirby21.paper_split() if policy == "paper" else kirby21.subject_disjoint_split()
    elif source == "namic":
        split = {u: "test" if u in NAMIC_PAPER_TEST else "train" for u in units}
        if policy != "paper":
            train = [u for u in units if split[u] == "train"]
            split.update(dict.fromkeys(train[-max(1, len(train) // 10) :], "val"))
    else:
        split = dict.fromkeys(units, "test")
    return {u: split[u] for u in units}
