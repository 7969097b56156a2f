"""Datasets as sample sheets: ``units.tsv``, one HR volume per row with its role.

A sheet describes a study of any size without Python: ``subject`` (the unit id),
``volume``, optional ``mask``, ``role`` (train / val / test / excluded), and optional
``person``, ``site`` and ``contrast``.  Every row is checked against the sheet's own
JSON-Schema (``rrlsrn/data/units.schema.yaml``, as the Snakemake workflow catalog checks
a ``samples.tsv``), then across rows (unique subjects, files that exist, one role per
person), and a mistake is refused in one line naming the sheet's line.  :func:`draft_sheet`
writes one from a folder, with a seeded subject-disjoint split.
"""

from __future__ import annotations

import csv
import functools
import io
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from rrlsrn.data.splits import TEST_FRACTION, VAL_FRACTION, person_split

COLUMNS = ("subject", "volume", "mask", "role", "person", "site", "contrast")
VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd")
# The contrast a file name ends with (``sub-01_T1w``, ``IXI002-Guys-0828-T2``).
_CONTRAST_WORDS = {
    "t1w": "T1w",
    "t1": "T1w",
    "mprage": "T1w",
    "t2w": "T2w",
    "t2": "T2w",
    "pd": "PD",
    "pdw": "PD",
    "flair": "FLAIR",
    "t2star": "T2starw",
    "t2starw": "T2starw",
}


class SheetError(ValueError):
    """A sample sheet that cannot be used, told in one line naming the file and line."""


@dataclass(frozen=True)
class SheetRow:
    """One row of a sample sheet, its paths resolved against the sheet's folder."""

    line: int
    subject: str
    volume: Path
    role: str
    mask: Path | None = None
    person: str | None = None
    site: str | None = None
    contrast: str | None = None


def contrast_in_name(name: str) -> str | None:
    """The contrast a volume's name ends with (``..._T1w.nii.gz`` -> ``T1w``), or None."""
    stem = re.sub(r"\.(nii(\.gz)?|nrrd)$", "", Path(name).name.lower())
    return _CONTRAST_WORDS.get(re.split(r"[-_]", stem)[-1])


@functools.cache
def _validator() -> Any:
    import jsonschema  # parse time only

    schema = yaml.safe_load(
        resources.files("rrlsrn.data").joinpath("units.schema.yaml").read_text()
    )
    return jsonschema.Draft202012Validator(schema)


def _row_problem(row: dict[str, str]) -> str | None:
    import jsonschema

    error = jsonschema.exceptions.best_match(_validator().iter_errors(row))
    if error is None:
        return None
    where = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "required":
        return error.message.replace("is a required property", "is empty")
    return f"{where}: {error.message}" if where else error.message


def _header_problem(sheet: Path, header: list[str] | None, line: int = 1) -> str | None:
    if not header:
        return f"{sheet}: empty sheet; its first line names the columns ({', '.join(COLUMNS)})"
    unknown = [c for c in header if c not in COLUMNS]
    required = ("subject", "volume", "role")
    missing = [c for c in required if c not in header]
    repeated = sorted({c for c in header if header.count(c) > 1})
    if unknown or missing or repeated:
        what = "; ".join(
            part
            for part in (
                f"unknown column{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}"
                if unknown
                else "",
                f"no {', '.join(map(repr, missing))} column" if missing else "",
                f"repeated column {', '.join(map(repr, repeated))}" if repeated else "",
            )
            if part
        )
        return (
            f"{sheet} line {line}: {what}; columns: subject, volume, role (required), "
            "mask, person, site, contrast (optional)"
        )
    return None


def _resolve(sheet: Path, text: str) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else sheet.parent / path


def read_sheet(path: str | os.PathLike) -> dict[str, SheetRow]:
    """``{subject: SheetRow}`` of a sample sheet, every row checked (see module).

    Cached per file size and modification time: the workflow asks for it many times while
    it plans.  Raises :class:`SheetError` (one line, the file and line named) or
    ``FileNotFoundError`` when the sheet itself is missing.
    """
    sheet = Path(path).expanduser()
    if not sheet.is_file():
        raise FileNotFoundError(
            f"sample sheet {sheet} does not exist: write one (tab-separated, columns "
            f"{', '.join(COLUMNS)}) or draft it with `rrlsrn data sheet FOLDER > {sheet.name}`"
        )
    stat = sheet.stat()
    return _read_sheet(str(sheet), stat.st_size, stat.st_mtime_ns)


@functools.cache
def _read_sheet(path: str, size: int, mtime_ns: int) -> dict[str, SheetRow]:
    sheet = Path(path)
    try:
        text = sheet.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise SheetError(f"{sheet}: not UTF-8 text ({error.reason})") from None
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1)]
    kept = [(n, line) for n, line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not kept:
        raise SheetError(f"{sheet}: empty sheet; its first line names the columns")
    header = [c.strip() for c in kept[0][1].split("\t")]
    if problem := _header_problem(sheet, header, kept[0][0]):
        raise SheetError(problem)
    rows: dict[str, SheetRow] = {}
    role_of_person: dict[str, tuple[str, int]] = {}
    problems: list[str] = []
    for number, line in kept[1:]:
        cells = next(csv.reader(io.StringIO(line), delimiter="\t"))
        if len(cells) > len(header):
            problems.append(f"line {number}: {len(cells)} cells, the header has {len(header)}")
            continue
        row = {c: v.strip() for c, v in zip(header, cells, strict=False) if v.strip()}
        at = f"line {number}" + (f" (subject {row['subject']!r})" if "subject" in row else "")
        if problem := _row_problem(row):
            problems.append(f"{at}: {problem}")
            continue
        subject = row["subject"]
        if subject in rows:
            problems.append(f"{at}: subject {subject!r} is already on line {rows[subject].line}")
            continue
        entry = SheetRow(
            line=number,
            subject=subject,
            volume=_resolve(sheet, row["volume"]),
            role=row["role"],
            mask=_resolve(sheet, row["mask"]) if "mask" in row else None,
            person=row.get("person", subject),
            site=row.get("site"),
            contrast=row.get("contrast"),
        )
        for column, file in (("volume", entry.volume), ("mask", entry.mask)):
            if file is None:
                continue
            if not file.name.endswith(VOLUME_SUFFIXES):
                problems.append(f"{at}: {column} {file} is not {' / '.join(VOLUME_SUFFIXES)}")
            elif not file.is_file():
                problems.append(f"{at}: {column} {file} does not exist")
        if entry.role != "excluded":
            first = role_of_person.setdefault(entry.person, (entry.role, number))
            if first[0] != entry.role:
                problems.append(
                    f"{at}: person {entry.person!r} is {entry.role} here and {first[0]} on "
                    f"line {first[1]}; every scan of one person needs one role"
                )
        rows[subject] = entry
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise SheetError(f"{sheet} {problems[0]}{more}")
    if not rows:
        raise SheetError(f"{sheet}: no rows below the header")
    return rows


def _units_of_folder(folder: Path, mask_suffix: str) -> dict[str, dict[str, Any]]:
    """Unit -> volume, mask, person, site, contrast of a BIDS tree or a flat folder."""
    from rrlsrn.data import ixi
    from rrlsrn.data.sources import bids_anat, folder_volumes

    if any(p.is_dir() for p in folder.glob("sub-*")):
        volumes = bids_anat(folder)
    else:
        volumes = folder_volumes({"path": str(folder), "mask_suffix": mask_suffix})
    units = {}
    for unit, volume in volumes.items():
        person, site = volume.person or unit, volume.site
        if unit.startswith("sub-"):  # BIDS-style names in a flat folder
            person = unit.split("_")[0]
        try:
            name = ixi.parse_name(volume.path.name)
            person, site = ixi.person_of(name.subject), name.site
        except ValueError:
            pass
        units[unit] = {
            "volume": volume.path,
            "mask": volume.mask,
            "person": person,
            "site": site,
            "contrast": volume.contrast or contrast_in_name(volume.path.name),
        }
    return units


def draft_sheet(
    folder: str | os.PathLike,
    *,
    seed: int = 0,
    val_fraction: float = VAL_FRACTION,
    test_fraction: float = TEST_FRACTION,
    mask_suffix: str = "_mask",
    relative_to: str | os.PathLike | None = None,
) -> str:
    """A sample sheet (TSV text) for the volumes of ``folder``: a BIDS tree (every anat
    volume, masks from ``derivatives``) or a flat folder (masks named
    ``<volume><mask_suffix>``), split by person with :func:`~rrlsrn.data.splits.person_split`.
    Paths are absolute when ``folder`` is, else relative to ``relative_to`` (default: the
    current folder), where the sheet is meant to be saved."""
    folder = Path(folder).expanduser()
    units = _units_of_folder(folder, mask_suffix)
    roles = person_split(
        {u: str(v["person"]) for u, v in units.items()},
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
    )
    base = Path(relative_to if relative_to is not None else Path.cwd()).resolve()

    def shown(path: Path | None) -> str:
        if path is None:
            return ""
        full = path.resolve()
        return os.path.relpath(full, base) if not folder.is_absolute() else str(full)

    buf = io.StringIO()
    writer = csv.writer(buf, delimiter="\t", lineterminator="\n")
    writer.writerow(COLUMNS)
    for unit, v in sorted(units.items()):
        row = {"subject": unit, "role": roles[unit], **v}
        row["volume"], row["mask"] = shown(v["volume"]), shown(v["mask"])
        writer.writerow(["" if row[c] is None else row[c] for c in COLUMNS])
    return buf.getvalue()


def sheet_roles(rows: Mapping[str, SheetRow]) -> dict[str, str]:
    """``{subject: role}`` of a read sheet."""
    return {s: r.role for s, r in rows.items()}
