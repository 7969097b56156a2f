"""Dataset sources: which HR volumes (and masks) a configured dataset holds.

Each source turns a dataset's config entry into ``{unit id: Volume}``; a unit is one
volume (a subject, a session or a stack) and names the files made from it.  ``person``
says who was scanned, so that splits can keep every scan of one person together.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rrlsrn.data import ixi, kirby21, mialsrtk, openneuro, sheets
from rrlsrn.data.download import DownloadError
from rrlsrn.data.embedded import ADULT_SPLIT, ADULT_T1, EMBEDDED_ROOT
from rrlsrn.data.splits import TEST_FRACTION, VAL_FRACTION, person_split
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
    """One HR volume of a dataset, its optional brain mask, who it shows, where it was
    scanned and its contrast (the last three recorded in the manifest)."""

    path: Path
    mask: Path | None = None
    person: str | None = None
    site: str | None = None
    contrast: str | None = None


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


def unreadable_niftis(paths: Iterable[Path], root: Path | None = None) -> list[str]:
    """``<file> (<why>)`` for every NIfTI of ``paths`` whose header cannot be read, the
    file named relative to ``root`` when given (other files are not checked)."""
    problems = []
    for path in paths:
        if nifti_suffix(path) is None:
            continue
        stat = path.stat()
        problem = _header_problem(str(path), stat.st_size, stat.st_mtime_ns)
        if problem:
            problems.append(f"{path.relative_to(root) if root else path} ({problem})")
    return problems


def check_nifti_headers(root: Path, paths: Iterable[Path]) -> None:
    """Raise ``ValueError`` naming every file of ``paths`` whose NIfTI header is unreadable."""
    problems = unreadable_niftis(paths, root)
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


def bids_stacks(
    root: Path, suffix: str | None = "T2w", check_headers: bool = True
) -> dict[str, Volume]:
    """Volumes ``sub-*/[ses-*/]anat/*_<suffix>.nii[.gz]`` of a BIDS folder with their masks.

    Masks are looked up as ``derivatives/*/sub-*/.../<stem>_desc-brain_mask.nii[.gz]``.
    The unit id is the file name without the suffix (``sub-01_run-1``); with ``suffix``
    None every anat volume counts and keeps its suffix (``sub-01_T1w``).  The person is
    the ``sub-`` entity, the contrast the suffix.  Headers are read as in
    :func:`folder_volumes` (unless ``check_headers`` is false: the shipped stacks).
    """
    root = Path(root).expanduser()
    wanted = suffix or "<suffix>"
    if not root.is_dir():
        raise FileNotFoundError(
            f"BIDS folder {root} does not exist: put the volumes there "
            f"(sub-XX/anat/sub-XX_run-N_{wanted}.nii.gz; optional masks under "
            f"derivatives/<name>/sub-XX/anat/sub-XX_run-N_{wanted}_desc-brain_mask.nii.gz)"
        )
    mask_files = [
        p for p in (root / "derivatives").glob("*/sub-*/**/*_desc-brain_mask.nii*") if _is_nifti(p)
    ]
    pattern = f"sub-*/**/anat/*_{suffix}.nii*" if suffix else "sub-*/**/anat/*_*.nii*"
    stacks = sorted(p for p in root.glob(pattern) if _is_nifti(p))
    if suffix is None:
        stacks = [p for p in stacks if not _strip_nifti(p.name).endswith("_mask")]
    if check_headers:
        check_nifti_headers(root, [*stacks, *mask_files])
    masks = {_strip_nifti(p.name).removesuffix("_desc-brain_mask"): p for p in mask_files}
    volumes = {}
    for path in stacks:
        stem = _strip_nifti(path.name)
        contrast = stem.rsplit("_", 1)[-1]
        unit = stem.removesuffix(f"_{suffix}") if suffix else stem
        volumes[unit] = Volume(path, masks.get(stem), unit.split("_")[0], contrast=contrast)
    if not volumes:
        raise FileNotFoundError(f"BIDS folder {root} holds no sub-*/anat/*_{wanted}.nii.gz")
    return volumes


def bids_anat(root: Path) -> dict[str, Volume]:
    """Every anat volume of a BIDS folder (any suffix), unit ids keeping their suffix."""
    return bids_stacks(root, None)


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


def sheet_volumes(spec: dict[str, Any]) -> dict[str, Volume]:
    """The units of a sample sheet (``path``: a ``units.tsv``, :mod:`rrlsrn.data.sheets`);
    every NIfTI header is read as in :func:`folder_volumes`."""
    rows = sheets.read_sheet(spec["path"])
    files = [f for r in rows.values() for f in (r.volume, r.mask) if f is not None]
    sheet = Path(spec["path"]).expanduser()
    problems = unreadable_niftis(files)
    if problems:
        raise ValueError(
            f"sample sheet {sheet} names {len(problems)} unreadable NIfTI "
            f"file{'s' if len(problems) > 1 else ''}: {'; '.join(problems)}"
        )
    return {s: Volume(r.volume, r.mask, r.person, r.site, r.contrast) for s, r in rows.items()}


def ixi_root(spec: Mapping[str, Any]) -> Path:
    """Where an IXI dataset's archive, index and volumes go (``path``, default data/ixi)."""
    return Path(spec.get("path", "data/ixi")).expanduser()


def ixi_contrast(spec: Mapping[str, Any]) -> str:
    """The IXI archive a dataset uses (``contrast``, default T1)."""
    return spec.get("contrast", "T1")


def ixi_volumes(spec: dict[str, Any]) -> dict[str, Volume]:
    """IXI subjects of one ``contrast`` (T1, T2, PD), listed from the archive's index
    (written when ``IXI-<contrast>.tar`` is downloaded) or, before it, from ``subjects``;
    ``limit`` keeps the first N.  Files appear under ``path`` as the workflow extracts them."""
    root, contrast = ixi_root(spec), ixi_contrast(spec)
    wanted = spec.get("subjects")
    if ixi.index_path(root, contrast).is_file():
        known = list(ixi.read_index(root, contrast))
    elif wanted:
        known = list(wanted)
    else:
        raise FileNotFoundError(
            f"IXI {contrast} is not downloaded into {root} (no "
            f"{ixi.index_path(root, contrast).name}): run `rrlsrn data fetch-ixi {root} "
            f"--contrast {contrast}` once (IXI-{contrast}.tar, several GB, resumable), or "
            "list the `subjects:` to use"
        )
    volumes = {}
    for subject in ixi.select_subjects(known, wanted, spec.get("limit")):
        name = ixi.parse_name(f"{subject}-{contrast}.nii.gz")
        path = ixi.volume_path(root, contrast, subject)
        volumes[subject] = Volume(path, None, ixi.person_of(subject), name.site, contrast)
    return volumes


def openneuro_root(spec: Mapping[str, Any]) -> Path:
    """Where an OpenNeuro dataset's files and listing go: ``<path>/<accession>``."""
    return Path(spec.get("path", "data/openneuro")).expanduser() / spec["dataset"]


def openneuro_listing(spec: dict[str, Any]) -> openneuro.Listing:
    """The pinned snapshot's file listing (cached beside the files after the first time)."""
    openneuro.check_accession(spec["dataset"])
    return openneuro.load_listing(
        openneuro_root(spec), spec["dataset"], str(spec["snapshot"]), base_url=spec.get("base_url")
    )


def openneuro_volumes(spec: dict[str, Any]) -> dict[str, Volume]:
    """The ``suffix`` anat volumes (T1w, T2w, FLAIR, ...) of an OpenNeuro dataset at a
    pinned ``snapshot``, optionally of some ``subjects``; listed from the public S3
    bucket (once, then from the cached listing), downloaded by the workflow."""
    suffix = spec.get("suffix", "T1w")
    files = openneuro.anat_files(openneuro_listing(spec), suffix, spec.get("subjects"))
    root = openneuro_root(spec)
    return {
        unit: Volume(
            openneuro.local_path(root, obj.key), None, openneuro.person_of(unit), None, suffix
        )
        for unit, obj in files.items()
    }


SOURCES = {
    "embedded": embedded_volumes,
    "folder": folder_volumes,
    "fetal": fetal_volumes,
    "kirby21": kirby21_volumes,
    "namic": namic_volumes,
    "sheet": sheet_volumes,
    "ixi": ixi_volumes,
    "openneuro": openneuro_volumes,
}
# Sources that read ``subjects`` themselves (IXI ids before the index exists; OpenNeuro
# persons, not unit ids).
OWN_SUBJECTS = {"ixi", "openneuro"}


def list_volumes(spec: dict[str, Any]) -> dict[str, Volume]:
    """``{unit: Volume}`` of a dataset config entry, restricted to ``subjects`` if given."""
    source = spec["source"]
    if source not in SOURCES:
        raise ValueError(
            f"dataset source {source!r} is not supported; use one of {sorted(SOURCES)}"
        )
    volumes = SOURCES[source](spec)
    wanted = spec.get("subjects")
    if wanted and source not in OWN_SUBJECTS:
        missing = sorted(set(wanted) - set(volumes))
        if missing:
            raise ValueError(
                f"subjects {missing} are not in the {source} dataset; known: {sorted(volumes)}"
            )
        volumes = {s: volumes[s] for s in wanted}
    return dict(sorted(volumes.items()))


def is_missing(error: BaseException) -> bool:
    """Whether a source's error means the dataset is not there (a folder or file absent,
    not downloaded, its host unreachable), as opposed to a mistake in it."""
    return isinstance(error, FileNotFoundError | DownloadError)


def default_split(spec: dict[str, Any], volumes: Mapping[str, Volume]) -> dict[str, str]:
    """The split used when config gives none, by source and ``split_policy``.

    ``subject_disjoint`` (default) keeps every scan of a person in one role; ``paper`` is
    the paper's own split (Kirby 21: train 06-42, test 01-05, which puts the test
    subjects' rescans in training; NAMIC: test case01011..01034).  IXI and OpenNeuro
    get a seeded subject-disjoint split (:func:`seeded_split`), a sample sheet its own
    roles; fetal stacks and users' folders are test sets.
    """
    units = list(volumes)
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
    elif source in SEEDED_SPLIT:
        split = seeded_split(spec, {u: v.person or u for u, v in volumes.items()})
    elif source == "sheet":
        split = sheets.sheet_roles(sheets.read_sheet(spec["path"]))
    else:
        split = dict.fromkeys(units, "test")
    return {u: split[u] for u in units}


# Sources without a published split: a seeded subject-disjoint one.
SEEDED_SPLIT = {"ixi", "openneuro"}


def seeded_split(spec: dict[str, Any], persons: dict[str, str]) -> dict[str, str]:
    """The dataset's seeded subject-disjoint split (``seed``, ``val_fraction``,
    ``test_fraction``), :func:`rrlsrn.data.splits.person_split`."""
    return person_split(
        persons,
        val_fraction=spec.get("val_fraction", VAL_FRACTION),
        test_fraction=spec.get("test_fraction", TEST_FRACTION),
        seed=spec.get("seed", 0),
    )
