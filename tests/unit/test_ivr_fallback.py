"""Names and lengths of the voice messages left on the switch, and taking them in (over the
fake Asterisk)."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import pytest

from hotline.agi.fake_ari import FakeAsterisk
from hotline.errors import AriError
from hotline.ivr.fallback import (
    FallbackMessage,
    FallbackSweeper,
    SwitchMessages,
    UnreadableName,
    fallback_key,
    parse,
    seal,
    wav_seconds,
)
from hotline.ticketing.model import TicketType

KEY = "0123456789abcdef"
# What Asterisk 22's func_aes made in the lab: AES_ENCRYPT(KEY,<call id>|<digits>) (over AMI
# Getvar), base64 with +/=, as the dialplan gets it before it makes it file-name-safe
FROM_ASTERISK = {
    ("hotline-lab-e2eb-1796157005.0", "13912340249"): (
        "B1hUrJB7+hXIrAC4wtoWw4jXu5EylRlH8gaHvHlF9McFALmzX4Iw2ku3ke2+XpCc"
    ),
    ("pbx-east-2-1795785805.17", ""): "LCPC8q08HBMr0IxtOC6PaRlOOqL4Cb3i54CnlH5iiJs=",
}


def dialplan_name(aes_output: str) -> str:
    """The dialplan's REPLACE steps: + -> -, / -> _, no =."""
    return "hotline-fb-e" + aes_output.replace("+", "-").replace("/", "_").replace("=", "")


@pytest.mark.parametrize(("call", "caller"), list(FROM_ASTERISK))
def test_a_name_sealed_by_asterisk_opens_to_its_call_and_caller(call: str, caller: str) -> None:
    name = dialplan_name(FROM_ASTERISK[call, caller])
    assert parse(name, KEY) == FallbackMessage(name, call, caller)
    assert seal(KEY, call, caller) == name  # we seal exactly as func_aes does


def test_the_number_is_nowhere_in_the_name_nor_in_our_copy_s_name() -> None:
    name = seal(KEY, "1700000000.12", "13800138000")
    assert "13800138000" not in name and "38001" not in name  # rule Y-1
    message = parse(name, KEY)
    assert message == FallbackMessage(name, "1700000000.12", "13800138000")
    assert message.name == "hotline-fb-1700000000-12"  # our copy: the call, not the number


def test_a_call_id_with_the_switch_s_system_name_keeps_it() -> None:
    # Asterisk prefixes unique ids with its systemname (asterisk.conf), dashes and all
    message = parse(seal(KEY, "pbx-east-2-1795785805.0", "02512345678"), KEY)
    assert message is not None
    assert (message.call_id, message.caller) == ("pbx-east-2-1795785805.0", "02512345678")
    assert message.name == "hotline-fb-pbx-east-2-1795785805-0"


def test_a_withheld_number_is_no_number() -> None:
    message = parse(seal(KEY, "1700000000.3", ""), KEY)
    assert message is not None and message.caller == ""


@pytest.mark.parametrize(
    "name",
    [
        seal("fedcba9876543210", "1700000000.12", "13800138000"),  # another key
        seal(KEY, "1700000000.12", "13800138000")[:-1],  # cut short
        seal(KEY, "1700000000.12", "13800138000") + "AA",  # not whole blocks
        "hotline-fb-e",  # AES_ENCRYPT failed in the dialplan: no sealed part
        "hotline-fb-e" + "A" * 22,  # a block of zeros: opens to nothing we wrote
        "hotline-fb-e" + "%" * 22,
    ],
)
def test_a_sealed_name_that_does_not_open_is_unreadable_not_someone_else_s(name: str) -> None:
    with pytest.raises(UnreadableName):
        parse(name, KEY)


def test_the_key_is_derived_from_the_ari_password_as_16_dialplan_safe_characters() -> None:
    key = fallback_key("ari-password")
    assert key == fallback_key("ari-password") != fallback_key("another password")
    assert len(key) == 16 and key.replace("-", "").replace("_", "").isalnum()
    assert parse(seal(key, "1700000000.1", "13800138000"), key) is not None


def test_the_older_names_with_the_number_in_clear_are_still_taken_in() -> None:
    # recorded before the number was sealed: still messages to call back
    message = parse("hotline-fb-1700000000-12-c13800138000", KEY)
    assert message == FallbackMessage(
        "hotline-fb-1700000000-12-c13800138000", "1700000000.12", "13800138000"
    )
    assert message.name == "hotline-fb-1700000000-12"  # rule Y-1: our copy has no number
    withheld = parse("hotline-fb-pbx-east-2-1795785805-0-c", KEY)
    assert withheld is not None and (withheld.call_id, withheld.caller) == (
        "pbx-east-2-1795785805.0",
        "",
    )


@pytest.mark.parametrize(
    "name",
    [
        "hotline-fb-c13800138000",  # no call id
        "hotline-fb-1700000000-12-c138x",  # the dialplan keeps digits only
        "hotline-fb-1700000000-12-c13800138000/../x",
        "other",
    ],
)
def test_other_recordings_are_left_alone(name: str) -> None:
    assert parse(name, KEY) is None


def wav(seconds: float, rate: int = 8000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\0\0" * int(seconds * rate))
    return out.getvalue()


def test_a_message_lasts_as_long_as_its_audio() -> None:
    assert wav_seconds(wav(2.5)) == 2.5
    assert wav_seconds(wav(0)) == 0


def test_what_is_not_a_wav_file_is_refused() -> None:
    with pytest.raises(ValueError, match="not a WAV file"):
        wav_seconds(b"RIFF\0\0")


def switch(names: list[str], channels: tuple[str, ...] = ()) -> FakeAsterisk:
    """The fake Asterisk with these stored recordings (2 s of audio each) and calls up."""
    return FakeAsterisk(
        password="the-ari-password",
        stored={n: wav(2.0) for n in names},
        channels={c: {"id": c} for c in channels},
    )


def deleted(fake: FakeAsterisk) -> list[str]:
    return [r.path for r in fake.requests if r.method == "DELETE"]


class FakeService:
    """Registration keyed by the call id, as the ticketing service does it."""

    def __init__(self) -> None:
        self.registered: list[tuple[str, str | None, str]] = []
        self.kinds: list[TicketType] = []
        self.tickets: dict[str, str] = {}

    async def register_voice_message(self, call_id, phone, recording, seconds, kind, **kw):  # type: ignore[no-untyped-def]
        if call_id not in self.tickets:
            self.registered.append((call_id, phone, recording))
            self.kinds.append(kind)
            self.tickets[call_id] = f"20261201-{len(self.registered):04d}"
        return type("T", (), {"number": self.tickets[call_id]})()


async def test_the_sweeper_opens_names_with_the_key_from_the_ari_password_and_leaves_the_rest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key = fallback_key("the-ari-password")
    good = seal(key, "hotline-lab-t-1796157005.4", "13912340249")
    other_key = seal(KEY, "hotline-lab-t-1796157005.5", "13912340250")
    fake, service = switch([good, other_key, "not-ours"]), FakeService()
    sweeper = FallbackSweeper(fake, service, tmp_path)
    assert await sweeper.sweep() == ["20261201-0001"]
    assert service.registered == [
        ("hotline-lab-t-1796157005.4", "13912340249", "hotline-fb-hotline-lab-t-1796157005-4")
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["hotline-fb-hotline-lab-t-1796157005-4.wav"]
    assert deleted(fake) == [f"/recordings/stored/{good}"]  # the unreadable one stays
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert "1 on the switch do not open" in warning
    for record in caplog.records:  # neither number, nor a sealed name, is logged
        text = record.getMessage()
        assert "1391234025" not in text and good not in text and other_key not in text


async def test_a_message_the_ivr_recorded_but_never_registered_is_swept_in_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # the backend was killed mid-message, or the database was away: only the switch has it
    key = fallback_key("the-ari-password")
    left = seal(key, "1796157005.7", "13912340249", "complaint")
    up = seal(key, "1796157005.8", "13912340250", "help")  # that caller is still recording
    fake, service = switch([left, up], channels=("1796157005.8",)), FakeService()
    messages = SwitchMessages(fake, service, tmp_path)
    assert await messages.sweep() == ["20261201-0001"]
    assert service.registered == [("1796157005.7", "13912340249", "hotline-vm-1796157005-7")]
    assert service.kinds == [TicketType.COMPLAINT]  # the type the caller chose
    assert (tmp_path / "hotline-vm-1796157005-7.wav").exists()
    assert list(fake.stored) == [up]  # taken off the switch once ours; the live one waits
    fake.channels.clear()
    assert await messages.sweep() == ["20261201-0002"]
    assert await messages.sweep() == []  # nothing twice
    assert "1391234025" not in caplog.text and left not in caplog.text


async def test_taking_a_message_in_again_is_harmless(tmp_path: Path) -> None:
    # the IVR's durable job and a sweep (of this node or another) may both get to it
    key = fallback_key("the-ari-password")
    stored = seal(key, "1796157005.9", "13912340249", "help")
    fake, service = switch([stored]), FakeService()
    messages = SwitchMessages(fake, service, tmp_path)
    assert await messages.take_stored(stored) == "20261201-0001"
    assert await messages.take_stored(stored) == ""  # gone from the switch, ours already
    assert len(service.registered) == 1 and deleted(fake) == [f"/recordings/stored/{stored}"]


async def test_a_message_neither_on_the_switch_nor_ours_fails_and_is_retried(
    tmp_path: Path,
) -> None:
    key = fallback_key("the-ari-password")
    messages = SwitchMessages(switch([]), FakeService(), tmp_path)
    with pytest.raises(AriError):
        await messages.take_stored(seal(key, "1796157005.10", "139", "help"))


def test_the_ivr_s_older_names_carry_no_number_and_are_still_taken_in() -> None:
    message = parse("hotline-vm-hotline-lab-e2e-1796157005-4", KEY)
    assert message is not None
    assert (message.call_id, message.caller, message.ivr) == (
        "hotline-lab-e2e-1796157005.4",
        None,
        True,
    )
    assert message.name == "hotline-vm-hotline-lab-e2e-1796157005-4"


def test_a_sealed_ivr_name_needs_its_request_type() -> None:
    safe_path = seal(KEY, "1700000000.12", "13800138000")
    with pytest.raises(UnreadableName):  # a safe-path payload under the IVR's prefix
        parse("hotline-vm-e" + safe_path.removeprefix("hotline-fb-e"), KEY)
