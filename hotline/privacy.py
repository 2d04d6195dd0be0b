"""Masking of citizen identity (rule Y-1): never log or show a number or name in clear."""

from __future__ import annotations


def mask_phone(number: str) -> str:
    """``13812345678`` -> ``138****5678``; short numbers keep only their last two digits.

    Service numbers such as 12345 or 110 are not personal and stay readable.
    """
    if not number or number == "unknown":
        return number
    if len(number) <= 5:
        return number
    if len(number) < 8:
        return "*" * (len(number) - 2) + number[-2:]
    return number[:3] + "*" * (len(number) - 7) + number[-4:]


def mask_name(name: str) -> str:
    """``张三丰`` -> ``张**``: the family name stays, the rest is hidden."""
    if not name or name == "unknown":
        return name
    return name[0] + "*" * (len(name) - 1)
