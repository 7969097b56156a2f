"""The embedded default data: real public scans shipped inside the package.

Nine adult T1w subjects (OpenNeuro ds002748, CC0: skull-stripped; OpenfMRI ds000011,
PDDL: with skull) and six fetal T2 stacks of one fetus with manual brain masks
(MIALSRTK sample, CC0).  Licences and provenance sit next to the files
(``rrlsrn/data/embedded/*/SOURCE.txt``, ``README.md``).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

EMBEDDED_ROOT = Path(str(resources.files("rrlsrn.data"))) / "embedded"

ADULT_T1 = {
    **{
        f"ds002748-sub-{n}": f"openneuro-ds002748/sub-{n}_T1w.nii.gz"
        for n in ("01", "02", "03", "52", "53", "56")
    },
    **{f"ds000011-sub-{n}": f"openfmri-ds000011/sub-{n}_T1w.nii.gz" for n in ("01", "02", "03")},
}

# Default subject-disjoint split: both sites in training and in testing.
ADULT_SPLIT = {
    "ds002748-sub-01": "train",
    "ds002748-sub-02": "train",
    "ds002748-sub-52": "train",
    "ds000011-sub-01": "train",
    "ds000011-sub-02": "train",
    "ds002748-sub-53": "val",
    "ds002748-sub-03": "test",
    "ds002748-sub-56": "test",
    "ds000011-sub-03": "test",
}


def embedded_volume(subject: str) -> Path:
    """Path of an embedded adult T1 volume by subject id (e.g. ``ds002748-sub-01``)."""
    if subject not in ADULT_T1:
        raise KeyError(f"unknown embedded subject {subject!r}; known: {sorted(ADULT_T1)}")
    return EMBEDDED_ROOT / ADULT_T1[subject]
