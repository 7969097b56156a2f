"""Seeded subject-disjoint splits: every scan of one person gets the same role.

Used by the sources that have no published split (IXI, OpenNeuro) and by
``rrlsrn data sheet`` when it drafts a sample sheet from a folder.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

VAL_FRACTION = 0.1
TEST_FRACTION = 0.2


def person_split(
    persons: Mapping[str, str],
    *,
    val_fraction: float = VAL_FRACTION,
    test_fraction: float = TEST_FRACTION,
    seed: int = 0,
) -> dict[str, str]:
    """``{unit: role}`` for ``{unit: person}``: persons drawn into test and val by
    ``random.Random(seed)`` (``round(fraction * persons)``, at least one when the fraction
    is above zero), the rest train; a person's units share a role.

    The draw depends only on the sorted set of persons and the seed, so adding scans of
    persons already drawn never moves anyone.  Raises ``ValueError`` when the fractions
    are out of range or leave no training person.
    """
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= value < 1:
            raise ValueError(f"{name} must be in [0, 1), got {value}")
    people = sorted(set(persons.values()))
    count = {
        role: max(1, round(fraction * len(people))) if fraction > 0 else 0
        for role, fraction in (("test", test_fraction), ("val", val_fraction))
    }
    if count["test"] + count["val"] >= len(people):
        raise ValueError(
            f"{len(people)} person{'s' if len(people) != 1 else ''} cannot be split into "
            f"{count['test']} test, {count['val']} val and at least one training person; "
            "lower test_fraction / val_fraction or add scans"
        )
    order = random.Random(seed).sample(people, len(people))
    role_of = dict.fromkeys(order[: count["test"]], "test")
    role_of.update(dict.fromkeys(order[count["test"] : count["test"] + count["val"]], "val"))
    return {unit: role_of.get(person, "train") for unit, person in persons.items()}
