"""Kirby 21: the Multi-Modal MRI Reproducibility Resource (Landman et al., NeuroImage 2011).

21 healthy subjects were each scanned twice (42 sessions ``KKI2009-01`` .. ``KKI2009-42``)
on a 3T Philips scanner.  NITRC serves one ``.tar.bz2`` per session holding NIfTI volumes
(``KKI2009-NN-MPRAGE.nii``, ``-FLAIR``, ``-T2w``, ``-DTI``, ``-fMRI``, ...) with their
Philips ``.par`` headers.  The paper trains on sessions 06-42 and tests on 01-05, but the
test subjects' rescans (sessions 25, 37, 22, 11, 31) are in that training range;
:func:`subject_disjoint_split` is the leak-free alternative.
"""

from __future__ import annotations

import logging
import os
import random
import re
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from rrlsrn.data.download import ArchiveError, download, safe_extract
from rrlsrn.io import VolumeError

_log = logging.getLogger(__name__)

NITRC_URL = "https://www.nitrc.org/frs/downloadlink.php/{link}"
URL_ENV = "RRLSRN_KIRBY21_URL"
LINK_OFFSET = 2200  # NITRC download link of session NN is 2200 + NN

# Visit (session number) -> subject id, from the Kirby 21 release notes.
_VISIT_SUBJECT = {
    1: 849, 2: 934, 3: 679, 4: 906, 5: 913, 6: 142, 7: 127, 8: 742, 9: 422, 10: 815,
    11: 906, 12: 239, 13: 916, 14: 959, 15: 814, 16: 505, 17: 959, 18: 492, 19: 239,
    20: 142, 21: 815, 22: 679, 23: 800, 24: 916, 25: 849, 26: 814, 27: 800, 28: 656,
    29: 742, 30: 113, 31: 913, 32: 502, 33: 113, 34: 127, 35: 505, 36: 502, 37: 934,
    38: 492, 39: 346, 40: 656, 41: 346, 42: 422,
}  # fmt: skip

SESSIONS: tuple[str, ...] = tuple(f"KKI2009-{n:02d}" for n in range(1, 43))
SUBJECT_OF: dict[str, int] = {f"KKI2009-{n:02d}": s for n, s in _VISIT_SUBJECT.items()}
PAPER_TEST: tuple[str, ...] = SESSIONS[:5]
ROLES = ("train", "val", "test")


def session_id(session: str | int) -> str:
    """Normalise ``3``, ``"03"`` or ``"KKI2009-03"`` to ``"KKI2009-03"``."""
    text = str(session).strip()
    match = re.fullmatch(r"(?:KKI2009-)?(\d{1,2})", text)
    if not match or not 1 <= int(match.group(1)) <= 42:
        raise ValueError(f"{session!r} is not a Kirby 21 session (KKI2009-01 .. KKI2009-42)")
    return f"KKI2009-{int(match.group(1)):02d}"


def archive_name(session: str | int) -> str:
    """File name of a session's archive, e.g. ``KKI2009-01.tar.bz2``."""
    return f"{session_id(session)}.tar.bz2"


def url_for(session: str | int, base_url: str | None = None) -> str:
    """Download address of a session's archive.

    ``base_url`` (else ``$RRLSRN_KIRBY21_URL``, else NITRC) is a format string using
    ``{link}`` (NITRC link number, 2200 + NN) and/or ``{session}`` (``KKI2009-NN``); one
    with neither is taken as a folder holding ``KKI2009-NN.tar.bz2``.
    """
    sid = session_id(session)
    template = base_url or os.environ.get(URL_ENV) or NITRC_URL
    if "{link}" not in template and "{session}" not in template:
        return f"{template.rstrip('/')}/{archive_name(sid)}"
    try:
        return template.format(link=LINK_OFFSET + int(sid[-2:]), session=sid)
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(
            f"Kirby 21 URL template {template!r} may use only {{link}} and {{session}} ({exc!r})"
        ) from exc


def fetch_session(
    session: str | int,
    root: str | os.PathLike,
    *,
    modalities: Iterable[str] = ("MPRAGE",),
    base_url: str | None = None,
    progress: bool = True,
    keep_archive: bool = True,
) -> dict[str, Path]:
    """Download one session and extract the NIfTI (+ ``.par``) of the chosen modalities.

    The archive goes to ``root/archives/KKI2009-NN.tar.bz2`` (resumable; no checksums are
    published, so only its size is checked), the files to ``root/KKI2009-NN/``.  Nothing is
    fetched when the NIfTIs already exist.  Returns ``{modality: nifti path}``; raises
    :class:`~rrlsrn.data.download.ArchiveError` naming the archive and any missing member.
    """
    sid = session_id(session)
    root = Path(root)
    out_dir = root / sid
    modalities = list(dict.fromkeys(modalities))
    for mod in modalities:
        if not re.fullmatch(r"[A-Za-z0-9_]+", mod):
            raise ValueError(f"bad Kirby 21 modality name {mod!r}")
    result = {mod: out_dir / f"{sid}-{mod}.nii" for mod in modalities}
    missing = [mod for mod, path in result.items() if not path.is_file()]
    if not missing:
        return result
    archive = root / "archives" / archive_name(sid)
    download(url_for(sid, base_url), archive, progress=progress)
    names = {f"{sid}-{mod}{ext}" for mod in missing for ext in (".nii", ".par")}
    try:
        extracted = safe_extract(
            archive,
            out_dir,
            lambda name: PurePosixPath(name).name in names,
            flatten=True,
            max_files=len(names),
            progress=progress,
        )
    except ArchiveError as exc:
        raise ArchiveError(f"{exc}; delete {archive} to download it again") from exc
    found = {path.name for path in extracted}
    absent = [f"{sid}-{mod}.nii" for mod in missing if f"{sid}-{mod}.nii" not in found]
    if absent:
        raise ArchiveError(f"{archive} has no member {', '.join(absent)}")
    for mod in missing:
        if f"{sid}-{mod}.par" not in found:
            _log.warning("%s has no %s-%s.par header", archive, sid, mod)
    if not keep_archive:
        archive.unlink()
    return result


def read_par_header(path: str | os.PathLike) -> dict[str, Any]:
    """The acquisition facts of a Philips ``.par`` header (read with ``nibabel.parrec``).

    Keys: ``protocol``, ``technique``, ``scan_mode``, ``max_slices``, ``scan_resolution``,
    ``recon_resolution``, ``fov_mm``, ``shape`` (x, y, slices), ``voxel_size`` (mm, the
    slice axis including the gap), ``slice_thickness`` and ``slice_gap`` (mm).
    """
    from nibabel.parrec import PARRECHeader

    path = Path(path)
    try:
        with path.open() as fh:
            header = PARRECHeader.from_fileobj(fh, permit_truncated=False, strict_sort=False)
        info, defs = header.general_info, header.image_defs
        return {
            "protocol": str(info["protocol_name"]),
            "technique": str(info["tech"]),
            "scan_mode": str(info["scan_mode"]),
            "max_slices": int(info["max_slices"]),
            "scan_resolution": tuple(int(v) for v in info["scan_resolution"]),
            "recon_resolution": tuple(int(v) for v in defs["recon resolution"][0]),
            "fov_mm": tuple(float(v) for v in info["fov"]),
            "shape": tuple(int(v) for v in header.get_data_shape()[:3]),
            "voxel_size": tuple(float(v) for v in header.get_zooms()[:3]),
            "slice_thickness": float(defs["slice thickness"][0]),
            "slice_gap": float(defs["slice gap"][0]),
        }
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise VolumeError(
            f"{path}: cannot read as a PAR header ({type(exc).__name__}: {exc})"
        ) from exc


def paper_split() -> dict[str, str]:
    """The paper's split: sessions 01-05 test, 06-42 train (leaks five test subjects)."""
    return {sid: "test" if sid in PAPER_TEST else "train" for sid in SESSIONS}


def subject_disjoint_split(val_fraction: float = 0.1, seed: int = 0) -> dict[str, str]:
    """Leak-free split: test 01-05, their rescans ``excluded``, val carved by subject.

    ``round(val_fraction * n)`` (at least one when ``val_fraction > 0``) of the ``n``
    remaining subjects are drawn with ``random.Random(seed)``; both their sessions are val.
    """
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    test_subjects = {SUBJECT_OF[sid] for sid in PAPER_TEST}
    pool = sorted({s for s in SUBJECT_OF.values() if s not in test_subjects})
    n_val = min(len(pool) - 1, max(1, round(val_fraction * len(pool)))) if val_fraction else 0
    val_subjects = set(random.Random(seed).sample(pool, n_val))
    split = {}
    for sid in SESSIONS:
        subject = SUBJECT_OF[sid]
        if sid in PAPER_TEST:
            split[sid] = "test"
        elif subject in test_subjects:
            split[sid] = "excluded"
        else:
            split[sid] = "val" if subject in val_subjects else "train"
    return split


def check_split(split: Mapping[str, str], subject_of: Mapping[str, int] = SUBJECT_OF) -> None:
    """Raise ValueError naming every subject whose sessions sit in two of train/val/test."""
    roles: dict[int, dict[str, list[str]]] = {}
    for sid, role in split.items():
        if sid not in subject_of:
            raise ValueError(f"split names {sid!r}, which is not a known session")
        if role in ROLES:
            roles.setdefault(subject_of[sid], {}).setdefault(role, []).append(sid)
    leaks = [
        f"subject {subject} ("
        + "; ".join(f"{role}: {', '.join(sids)}" for role, sids in sorted(by_role.items()))
        + ")"
        for subject, by_role in sorted(roles.items())
        if len(by_role) > 1
    ]
    if leaks:
        raise ValueError("split leaks subjects across roles: " + ", ".join(leaks))
