"""An agent's extension is ASCII digits: ``\\d`` would let ``８００１`` or ``٨٠٠١`` through to
the dialplan (found by review)."""

from __future__ import annotations

import pytest

from hotline.queue.http import EXTENSION


@pytest.mark.parametrize("extension", ["8001", "801", "80019999"])
def test_an_extension_of_ascii_digits_is_taken(extension: str) -> None:
    assert EXTENSION.fullmatch(extension)


@pytest.mark.parametrize("extension", ["８００１", "٨٠٠١", "80", "800199999", "80a1", "8001\n"])
def test_anything_else_is_refused(extension: str) -> None:
    assert not EXTENSION.fullmatch(extension)
