"""Masking of citizen identity (rule Y-1): never log or show a number or name in clear."""

from __future__ import annotations


def mask_phone(number: str) -> str:
    """Hide at least half of a number: ``13812345678`` -> ``138****5678`` (mobile, 11+ digits),
    ``62345678`` -> ``****5678`` (landline), ``867530`` -> ``****30``.

    Service numbers of up to five digits (12345, 110, extensions) are not personal.
    """
    if not number or number == "unknown" or len(number) <= 5:
        return number
    if len(number) >= 11:
        return number[:3] + "*" * (len(number) - 7) + number[-4:]
    if len(number) >= 8:
        return "*" * (len(number) - 4) + number[-4:]
    return "*" * (len(number) - 2) + number[-2:]


def mask_name(name: str) -> str:
    """``张三丰`` -> ``张**``: the family name stays, the rest is hidden."""
    if not name or name == "unknown":
        return name
    return name[0] + "*" * (len(name) - 1)
