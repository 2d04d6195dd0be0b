"""Rule Y-1: identity is masked wherever it leaves the core."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from hotline.privacy import Scrubber, mask_name, mask_phone, normalise, scrub


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


@dataclass(frozen=True)
class Person:
    name: str = ""
    phone: str = ""
    id_number: str = ""


CALLER = Person("王小明", "13912340249", "32028119900101123X")


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        # rule Y-1: the citizen's own number in any spelling, the separators kept
        ("电话139 1234 0249", "电话*** **** ****"),
        ("电话139-1234-0249", "电话***-****-****"),
        ("电话+86 139 1234 0249", "电话+** *** **** ****"),
        ("电话+8613912340249", "电话+*************"),
        ("电话0086 13912340249", "电话**** ***********"),
        ("电话１３９１２３４０２４９", "电话***********"),
        ("电话（139）1234－0249", "电话（***）****－****"),
        ("前七位1391234", "前七位*******"),  # a partial number
        ("尾号340249", "尾号340249"),  # six digits: fewer than the window (WINDOW = 7)
        ("编号913912340249", "编号9***********"),  # glued to another digit
        # anybody's numbers
        ("邻居138 0000 1111", "邻居*** **** ****"),
        ("物业(0510)8600 1234", "物业(****)**** ****"),
        ("物业８６００－１２３４", "物业****－****"),
        ("身份证 110101 19851231 0018", "身份证 ****** ******** ****"),
        ("身份证110101-19851231-0018", "身份证******-********-****"),  # the date inside
        # found by review: separators the scrubber did not join digits across
        ("电话139/1234/0249", "电话***/****/****"),
        ("电话139、1234、0249", "电话***、****、****"),
        ("电话139，1234，0249", "电话***，****，****"),
        ("电话139_1234_0249", "电话***_****_****"),
        ("电话139~1234~0249", "电话***~****~****"),
        ("电话139·1234·0249", "电话***·****·****"),
        ("电话139ー1234ー0249", "电话***ー****ー****"),
        ("电话139\u200b1234\u200b0249", "电话***\u200b****\u200b****"),
        ("邻居138/0000/1111", "邻居***/****/****"),
        ("约2026/11/27上门", None),  # a date with slashes stays
        # the citizen's name and identity number verbatim, any case
        ("王小明来电，证件32028119900101123x", "***来电，证件******************"),
        # what is not identity stays
        ("工单20261127-0042，2026-11-27前修好，补偿300 元，3栋201室", None),
        ("拨12345，时间09:00-17:30，v1.2.3", None),
    ],
)
def test_the_scrubber_masks_identity_in_every_spelling(text: str, clean: str | None) -> None:
    assert scrub(text, CALLER) == (text if clean is None else clean)


def test_the_citizens_landline_is_found_without_and_with_its_area_code() -> None:
    # rule Y-1
    person = Person(phone="0510-86123456")
    for text in ("(0510)86123456", "0510 8612 3456", "+86 510 8612 3456", "本地8612-3456"):
        assert sum(c.isdigit() for c in scrub(text, person)) <= 2, text  # +86 may stay


def test_an_other_persons_identity_document_is_masked_verbatim() -> None:
    person = Person("李雷", "", "E12345678")  # a passport: letters too
    assert scrub("护照E12345678，李雷本人", person) == "护照*********，**本人"


def test_without_a_person_only_anybodys_numbers_are_masked() -> None:
    assert scrub("邻居13800001111，工单20261127-0042") == "邻居***********，工单20261127-0042"
    assert scrub("") == ""


def test_normalising_keeps_every_position() -> None:
    text = "电话１３９－１２３４　０２４９（Ｘ）"
    flat = normalise(text)
    assert len(flat) == len(text) and flat == "电话139-1234 0249(X)"


def test_a_tree_is_scrubbed_except_under_the_structural_keys() -> None:
    scrubber = Scrubber(CALLER)
    value = {
        "id": "13912340249",
        "note": "王小明 139 1234 0249",
        "items": [{"text": "13912340249"}, 3, None, ("王小明",)],
    }
    assert scrubber.tree(value, keep={"id"}) == {
        "id": "13912340249",
        "note": "*** *** **** ****",
        "items": [{"text": "***********"}, 3, None, ["***"]],
    }
