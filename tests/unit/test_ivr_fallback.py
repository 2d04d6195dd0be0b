"""Names and lengths of the voice messages the safe path leaves on the switch."""

from __future__ import annotations

import io
import wave

import pytest

from hotline.ivr.fallback import FallbackMessage, parse, wav_seconds


def test_a_safe_path_recording_names_its_call_and_caller() -> None:
    message = parse("hotline-fb-1700000000-12-c13800138000")
    assert message == FallbackMessage(
        "hotline-fb-1700000000-12-c13800138000", "1700000000.12", "13800138000"
    )
    assert message.name == "hotline-fb-1700000000-12"  # rule Y-1: our copy has no number


def test_a_call_id_with_the_switch_s_system_name_keeps_it() -> None:
    # Asterisk prefixes unique ids with its systemname (asterisk.conf), dashes and all
    message = parse("hotline-fb-pbx-east-2-1795785805-0-c02512345678")
    assert message is not None
    assert (message.call_id, message.caller) == ("pbx-east-2-1795785805.0", "02512345678")
    assert message.name == "hotline-fb-pbx-east-2-1795785805-0"


def test_a_withheld_number_is_no_number() -> None:
    message = parse("hotline-fb-1700000000-3-c")
    assert message is not None and message.caller == ""


@pytest.mark.parametrize(
    "name",
    [
        "hotline-vm-1700000000-12",  # the IVR's own messages are registered by the flow
        "hotline-fb-c13800138000",  # no call id
        "hotline-fb-1700000000-12-c138x",  # the dialplan keeps digits only
        "hotline-fb-1700000000-12-c13800138000/../x",
        "other",
    ],
)
def test_other_recordings_are_left_alone(name: str) -> None:
    assert parse(name) is None


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
