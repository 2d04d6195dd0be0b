"""The console protocol's pure parts: what a console may send, the numbered outbox a resume
reads, and PROTOCOL.md naming every type and close code the code has."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from hotline.softphone_bridge import protocol
from hotline.softphone_bridge.outbox import MemoryOutbox
from hotline.softphone_bridge.protocol import ProtocolError, parse

DOC = Path(protocol.__file__).with_name("PROTOCOL.md").read_text(encoding="utf-8")
BRIDGE = Path(protocol.__file__).with_name("bridge.py").read_text(encoding="utf-8")
WS = Path(protocol.__file__).with_name("ws.py").read_text(encoding="utf-8")


def test_a_command_is_checked_and_its_id_kept() -> None:
    command = parse(json.dumps({"type": "pause", "reason": "lunch", "after_call": True, "id": 3}))
    assert (command.type, command.fields, command.ref) == (
        "pause",
        {"reason": "lunch", "after_call": True},
        3,
    )
    assert command.flag("after_call")


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("{", "not_json"),
        ("null", "not_json"),
        ('"ready"', "not_json"),
        ('{"type": 5}', "unknown_type"),
        ('{"type": "__class__"}', "unknown_type"),
        ('{"type": "ready", "extra": 1}', "bad_field"),
        ('{"type": "ready", "id": true}', "bad_field"),
        ('{"type": "ready", "id": {"a": 1}}', "bad_field"),
        ('{"type": "pause"}', "bad_field"),
        ('{"type": "pause", "reason": "午饭"}', "bad_field"),
        ('{"type": "pause", "reason": "lunch", "after_call": "yes"}', "bad_field"),
        ('{"type": "hello"}', "bad_field"),
        ('{"type": "hello", "token": "t", "last_seq": -1}', "bad_field"),
        ('{"type": "hello", "token": "t", "last_seq": true}', "bad_field"),
        ('{"type": "hang_up", "call": "a/b"}', "bad_field"),
        ('{"type": "ping", "pad": "' + "x" * protocol.MAX_TEXT + '"}', "too_big"),
    ],
)
def test_what_a_console_may_not_send_has_a_code(text: str, code: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse(text)
    assert caught.value.code == code


async def test_the_outbox_numbers_per_agent_and_resumes_from_what_it_keeps() -> None:
    outbox = MemoryOutbox(keep=3)
    heard: list[int] = []
    cancel = outbox.subscribe("a1", lambda m: heard.append(m["seq"]))
    for n in range(5):
        await outbox.publish("a1", {"type": "agent_state", "n": n})
    await outbox.publish("a2", {"type": "agent_state"})
    cancel()
    await outbox.publish("a1", {"type": "agent_state", "n": 5})
    assert heard == [1, 2, 3, 4, 5]  # a2's own numbers; nothing after the cancel
    assert await outbox.last("a1") == 6 and await outbox.last("a2") == 1
    assert [m["n"] for m in await outbox.since("a1", 3) or []] == [3, 4, 5]
    assert await outbox.since("a1", 2) is None  # message 3 is no longer kept
    assert [m["seq"] for m in await outbox.kept("a1")] == [4, 5, 6]  # what is, all the same
    assert await outbox.since("a1", 6) == [] and await outbox.since("a1", 60) == []


def test_protocol_md_names_every_type_error_and_close_code() -> None:
    for kind in protocol.COMMANDS:
        assert f"| `{kind}` |" in DOC, kind
    sent = set(re.findall(r'"type": "([a-z_]+)"', BRIDGE + WS))
    assert sent >= {"welcome", "state", "agent_state", "pop", "ok", "pong", "error", "taken_over"}
    for kind in sent:
        assert f"| `{kind}` |" in DOC, kind
    codes = set(
        re.findall(
            r'ProtocolError\(\s*"([a-z_]+)"',
            BRIDGE + WS + Path(protocol.__file__).read_text(encoding="utf-8"),
        )
    )
    codes |= set(re.findall(r'"code": "([a-z_]+)"', BRIDGE + WS))
    for code in codes:
        assert f"`{code}`" in DOC, code
    names = ("UNAUTHORIZED", "FORBIDDEN", "NO_HELLO", "TAKEN_OVER", "TOO_SLOW", "GOING_AWAY")
    for name in (*names, "TRY_AGAIN"):
        assert f"| {getattr(protocol, name)} |" in DOC, name
