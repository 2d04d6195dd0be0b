"""Rule Y-1: identity is masked wherever it leaves the core."""

from __future__ import annotations

import pytest

from hotline.privacy import mask_name, mask_phone


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("13812345678", "138****5678"),  # rule Y-1
        ("051086001234", "051*****1234"),
        ("62345678", "****5678"),  # an 8-digit landline: no more than half shows
        ("0510862345", "******2345"),
        ("8675309", "*****09"),
        ("12345", "12345"),  # a service number is not personal
        ("", ""),
        ("unknown", "unknown"),
    ],
)
def test_phone_numbers_are_masked(number: str, masked: str) -> None:
    assert mask_phone(number) == masked
    if len(number) > 5:
        shown = sum(c.isdigit() for c in masked)
        assert shown * 2 <= len(number) + 3  # at most half, give or take the mobile prefix


def test_names_keep_only_the_family_name() -> None:
    assert mask_name("张三丰") == "张**"  # rule Y-1
    assert mask_name("") == ""
