"""Dataset sources: which HR volumes (and masks) a configured dataset holds.

Each source turns a dataset's config entry into ``{unit id: Volume}``; a unit is one
volume (a subject, a session or a stack) and names the files made from it.  ``person``
says who was scanned, so that splits can keep every scan of one person together.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rrlsrn.data.embedded import ADULT_SPLIT, ADULT_T1, EMBEDDED_ROOT, FETAL_T2

NIFTI_SUFFIXES = (".nii.gz", ".nii")


@dataclass(frozen=True)
class Volume:
    """One HR volume of a dataset, its optional brain mask, and who it shows."""

    path: Path
    mask: Path | None = None
    person: str | None = None


def _strip_nifti(name: str) -> str:
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def embedded_volumes(spec: dict[str, Any]) -> dict[str, Volume]:
    """The shipped adult T1 scans (``collection: adult``) or fetal T2 stacks (``fetal``)."""
    collection = spec.get("collection", "adult")
    if collection == "adult":
        return {s: Volume(EMBEDDED_ROOT / p, None, s) for s, p in ADULT_T1.items()}
    if collection == "fetal":
        return {
            s: Volume(EMBEDDED_ROOT / img, EMBEDDED_ROOT / mask, "sub-01")
            for s, (img, mask) in FETAL_T2.items()
        }
    raise ValueError(f"unknown embedded collection {collection!r}; use 'adult' or 'fetal'")


def folder_volumes(spec: dict[str, Any]) -> dict[str, Volume]:
    """Any folder of NIfTI volumes; masks matched by ``mask_suffix`` (e.g. ``_mask``)."""
    root = Path(spec["path"]).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(
            f"dataset folder {root} does not exist: put your HR NIfTI volumes "
            f"({' / '.join(NIFTI_SUFFIXES)}) there, optional masks named "
            f"<volume>{spec.get('mask_suffix', '_mask')}.nii.gz beside them"
        )
    suffix = spec.get("mask_suffix", "_mask")
    files = sorted(p for p in root.glob(spec.get("pattern", "*.nii*")) if p.is_file())
    stems = {_strip_nifti(p.name): p for p in files}
    volumes = {}
    for stem, path in stems.items():
        if stem.endswith(suffix):
            continue
        mask = next((stems[m] for m in [stem + suffix] if m in stems), None)
        volumes[stem] = Volume(path, mask, stem)
    if not volumes:
        raise FileNotFoundError(
            f"dataset folder {root} holds no NIfTI volume matching {spec.get('pattern', '*.nii*')}"
        )
    return volumes


SOURCES = {"embedded": embedded_volumes, "folder": folder_volumes}


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
    """The split a source uses when config gives none (adult: subject-disjoint; else test)."""
    if spec["source"] == "embedded" and spec.get("collection", "adult") == "adult":
        return {u: ADULT_SPLIT[u] for u in units}
    return dict.fromkeys(units, "test")
