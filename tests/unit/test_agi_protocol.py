"""The sans-I/O AGI core: what Asterisk sends, what we send, and hostile input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotline.agi.protocol import (
    MAX_COMMAND_BYTES,
    MAX_LINE_BYTES,
    NEED_DATA,
    AGIConnection,
    AGIProtocolError,
    Closed,
    Command,
    DeadChannel,
    Environment,
    HangupNotice,
    InvalidCommand,
    LocalProtocolError,
    RemoteProtocolError,
    Response,
    State,
    Trying,
    UsageError,
    parse_response,
)
from hotline.agi.testing import DEFAULT_ENV, env_block

# An environment block as Asterisk 22 sends it for AGI(agi://127.0.0.1:4573/ivr?lang=zh,a b,)
ASTERISK_ENV = (
    b"agi_network: yes\n"
    b"agi_network_script: ivr?lang=zh&x=1\n"
    b"agi_request: agi://127.0.0.1:4573/ivr?lang=zh&x=1\n"
    b"agi_channel: PJSIP/citizen-trunk-00000000\n"
    b"agi_language: zh\n"
    b"agi_type: PJSIP\n"
    b"agi_uniqueid: hotline-lab-main-1795767671.0\n"
    b"agi_version: 22.10.1\n"
    b"agi_callerid: 13912345678\n"
    b"agi_calleridname: citizen\n"
    b"agi_callingpres: 0\n"
    b"agi_dnid: 12345\n"
    b"agi_rdnis: unknown\n"
    b"agi_context: citizen-inbound\n"
    b"agi_extension: 12345\n"
    b"agi_priority: 5\n"
    b"agi_enhanced: 0.0\n"
    b"agi_accountcode: \n"
    b"agi_threadid: 140018236458688\n"
    b"agi_arg_1: a b\n"
    b"agi_arg_2: \n"
    b"\n"
)


def events(conn: AGIConnection) -> list[object]:
    out = []
    while (event := conn.next_event()) is not NEED_DATA:
        out.append(event)
        if isinstance(event, Closed):
            break
    return out


def ready(env: bytes = ASTERISK_ENV) -> AGIConnection:
    conn = AGIConnection()
    conn.receive_data(env)
    (event,) = events(conn)
    assert isinstance(event, Environment)
    return conn


def reply(conn: AGIConnection, command: Command, data: bytes) -> list[object]:
    conn.send(command)
    conn.receive_data(data)
    return events(conn)


# -- environment -------------------------------------------------------------------------------
def test_environment_block_gives_script_query_and_arguments() -> None:
    conn = AGIConnection()
    conn.receive_data(ASTERISK_ENV)
    (env,) = events(conn)
    assert isinstance(env, Environment)
    assert env.script == "ivr"
    assert dict(env.params) == {"lang": "zh", "x": "1"}
    assert env.args == ("a b", "")
    assert env.caller_number == "13912345678"
    assert env.unique_id == "hotline-lab-main-1795767671.0"
    assert env.get("agi_accountcode") == ""
    assert conn.state is State.IDLE


def test_environment_split_into_single_bytes_parses_the_same() -> None:
    conn = AGIConnection()
    for i in range(len(ASTERISK_ENV)):
        conn.receive_data(ASTERISK_ENV[i : i + 1])
        if i < len(ASTERISK_ENV) - 1:
            assert conn.next_event() is NEED_DATA
    (env,) = events(conn)
    assert isinstance(env, Environment) and env.script == "ivr"


def test_script_path_without_query_and_with_slashes() -> None:
    env = Environment({"agi_network_script": "/ivr/progress/"})
    assert env.script == "ivr/progress"
    assert dict(env.params) == {}


def test_truncated_environment_is_a_remote_error() -> None:
    conn = AGIConnection()
    conn.receive_data(b"agi_network: yes\nagi_channel: PJSIP/x\n")
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="environment"):
        conn.next_event()


def test_stream_closed_before_anything_is_a_clean_close() -> None:
    conn = AGIConnection()
    conn.receive_data(b"")
    assert isinstance(conn.next_event(), Closed)


def test_empty_environment_is_refused() -> None:
    conn = AGIConnection()
    conn.receive_data(b"\n")
    with pytest.raises(RemoteProtocolError, match="empty environment"):
        conn.next_event()


@pytest.mark.parametrize(
    "line",
    [b"no colon here\n", b"HANGUP\n", b"200 result=0\n", b"x_agi: 1\n", b"agi_a b: 1\n"],
)
def test_garbage_in_the_environment_is_refused(line: bytes) -> None:
    conn = AGIConnection()
    conn.receive_data(b"agi_network: yes\n" + line)
    with pytest.raises(RemoteProtocolError):
        events(conn)


def test_environment_with_too_many_lines_is_refused() -> None:
    conn = AGIConnection()
    conn.receive_data(b"".join(b"agi_k%d: v\n" % i for i in range(600)))
    with pytest.raises(RemoteProtocolError, match="over 512 lines"):
        events(conn)


# -- responses ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "result", "data", "endpos"),
    [
        ("result=0", "0", None, None),
        ("result=-1", "-1", None, None),
        ("result=49 endpos=11200", "49", None, 11200),
        ("result=-1 endpos=0", "-1", None, 0),
        ("result= (timeout)", "", "timeout", None),
        ("result=12 (timeout)", "12", "timeout", None),
        ("result=", "", None, None),
        ("result=1 (value with spaces (and parens))", "1", "value with spaces (and parens)", None),
        ("result=0 Gosub complete", "0", "Gosub complete", None),
        ("result=1 (dtmf) endpos=4000", "1", "dtmf", 4000),
    ],
)
def test_200_replies_parse_result_data_and_endpos(
    line: str, result: str, data: str | None, endpos: int | None
) -> None:
    response = parse_response(line)
    assert (response.result, response.data, response.endpos) == (result, data, endpos)


def test_200_without_result_is_a_remote_error() -> None:
    with pytest.raises(RemoteProtocolError):
        parse_response("Success")


def test_trying_then_final_reply() -> None:
    conn = ready()
    got = reply(
        conn,
        Command("GOSUB", ("sub", "s", "1")),
        b"100 result=0 Trying...\n200 result=0 Gosub complete\n",
    )
    assert isinstance(got[0], Trying)
    assert isinstance(got[1], Response) and got[1].data == "Gosub complete"
    assert conn.state is State.IDLE


def test_510_and_511_are_their_own_events() -> None:
    conn = ready()
    (got,) = reply(conn, Command("FOO"), b"510 Invalid or unknown command\n")
    assert isinstance(got, InvalidCommand)
    (got,) = reply(
        conn,
        Command("ANSWER"),
        b"511 Command Not Permitted on a dead channel or intercept routine\n",
    )
    assert isinstance(got, DeadChannel)
    assert conn.state is State.IDLE


def test_520_usage_block_is_collected_into_one_event() -> None:
    conn = ready()
    block = (
        b"520-Invalid command syntax.  Proper usage follows:\n"
        b" Usage: STREAM FILE <filename> <escape_digits> [sample offset]\n"
        b"\n"
        b"  Send the given file, allowing playback to be interrupted.\n"
        b"520 End of proper usage.\n"
    )
    (got,) = reply(conn, Command("STREAM FILE"), block)
    assert isinstance(got, UsageError)
    assert got.lines[0].startswith("520-Invalid") and got.lines[-1] == "520 End of proper usage."
    assert "" in got.lines  # blank lines inside the usage text are kept
    assert conn.state is State.IDLE


def test_520_single_line_form() -> None:
    conn = ready()
    (got,) = reply(
        conn, Command("X"), b"520 Invalid command syntax.  Proper usage not available.\n"
    )
    assert isinstance(got, UsageError) and len(got.lines) == 1


def test_hangup_in_the_middle_of_a_command_then_its_reply() -> None:
    conn = ready()
    conn.send(Command("STREAM FILE", ("hotline/welcome", "")))
    conn.receive_data(b"HANG")
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"UP\n200 result=-1 endpos=1200\n")
    first, second = events(conn)
    assert isinstance(first, HangupNotice)
    assert isinstance(second, Response) and second.result == "-1"
    assert conn.hung_up


def test_hangup_while_idle_is_reported_and_does_not_break_the_next_command() -> None:
    conn = ready()
    conn.receive_data(b"HANGUP\n")
    assert isinstance(conn.next_event(), HangupNotice)
    got = reply(conn, Command("GET VARIABLE", ("X",)), b"200 result=0\nHANGUP\n")
    assert isinstance(got[0], Response)
    assert isinstance(got[1], HangupNotice)


def test_stream_closed_while_awaiting_a_reply() -> None:
    conn = ready()
    conn.send(Command("ANSWER"))
    conn.receive_data(b"")
    assert isinstance(conn.next_event(), Closed)
    assert isinstance(conn.next_event(), Closed)  # stays closed


def test_stream_closed_mid_line_is_a_remote_error() -> None:
    conn = ready()
    conn.send(Command("ANSWER"))
    conn.receive_data(b"200 res")
    conn.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="inside a line"):
        conn.next_event()


@pytest.mark.parametrize(
    "garbage",
    [
        b"hello\n",
        b"2000 result=0\n",
        b"200result=0\n",
        b"abc result=1\n",
        b"200-x\n",
        b"404 Not Found\n",
        b"\x00\xff\xfe\n",
    ],
)
def test_garbage_status_lines_are_remote_errors(garbage: bytes) -> None:
    conn = ready()
    conn.send(Command("ANSWER"))
    conn.receive_data(garbage)
    with pytest.raises(RemoteProtocolError):
        conn.next_event()


def test_unsolicited_line_while_idle_is_a_remote_error() -> None:
    conn = ready()
    conn.receive_data(b"200 result=0\n")
    with pytest.raises(RemoteProtocolError, match="unsolicited"):
        conn.next_event()


def test_overlong_line_without_newline_is_refused_before_it_grows() -> None:
    conn = ready()
    conn.send(Command("GET VARIABLE", ("X",)))
    conn.receive_data(b"200 result=1 (" + b"x" * MAX_LINE_BYTES)
    with pytest.raises(RemoteProtocolError, match="longer than"):
        conn.next_event()


def test_overlong_line_with_newline_is_refused() -> None:
    conn = ready()
    conn.send(Command("GET VARIABLE", ("X",)))
    conn.receive_data(b"200 result=1 (" + b"x" * (MAX_LINE_BYTES + 10) + b")\n")
    with pytest.raises(RemoteProtocolError, match="longer than"):
        conn.next_event()


def test_endless_usage_block_is_refused() -> None:
    conn = ready()
    conn.send(Command("X"))
    conn.receive_data(b"520-Invalid\n" + b"more\n" * 300)
    with pytest.raises(RemoteProtocolError, match="usage block"):
        events(conn)


def test_data_after_end_of_stream_is_refused() -> None:
    conn = ready()
    conn.receive_data(b"")
    with pytest.raises(RemoteProtocolError):
        conn.receive_data(b"200 result=0\n")


def test_crlf_line_endings_are_accepted() -> None:
    conn = ready(env_block(DEFAULT_ENV).replace(b"\n", b"\r\n"))
    (got,) = reply(conn, Command("ANSWER"), b"200 result=0\r\n")
    assert isinstance(got, Response) and got.result == "0"


# -- commands ----------------------------------------------------------------------------------
def test_command_encoding_quotes_what_asterisk_would_split() -> None:
    assert Command("ANSWER").encode() == b"ANSWER\n"
    assert Command("STREAM FILE", ("hotline/welcome", "0123")).encode() == (
        b"STREAM FILE hotline/welcome 0123\n"
    )
    assert Command("STREAM FILE", ("hotline/welcome", "")).encode() == (
        b'STREAM FILE hotline/welcome ""\n'
    )
    assert Command("SET VARIABLE", ("X", 'a "b" \\c')).encode() == (
        b'SET VARIABLE X "a \\"b\\" \\\\c"\n'
    )
    assert Command("VERBOSE", ("您好 12345",)).encode() == 'VERBOSE "您好 12345"\n'.encode()


@pytest.mark.parametrize("bad", ["a\nHANGUP", "a\rb", "nul\0"])
def test_arguments_that_would_inject_a_command_are_refused(bad: str) -> None:
    with pytest.raises(LocalProtocolError, match="line break or NUL"):
        Command("SET VARIABLE", ("X", bad)).encode()


def test_command_over_asterisks_buffer_is_refused() -> None:
    with pytest.raises(LocalProtocolError, match="buffer"):
        Command("SET VARIABLE", ("X", "y" * MAX_COMMAND_BYTES)).encode()


def test_too_many_arguments_are_refused() -> None:
    with pytest.raises(LocalProtocolError, match="too many"):
        Command("EXEC", ("x",) * 130).encode()


@pytest.mark.parametrize("verb", ["answer", "STREAM  FILE", "", "ANSWER\n", "GET-DATA"])
def test_bad_verbs_are_refused(verb: str) -> None:
    with pytest.raises(LocalProtocolError):
        Command(verb).encode()


def test_only_one_command_at_a_time() -> None:
    conn = ready()
    conn.send(Command("ANSWER"))
    with pytest.raises(LocalProtocolError, match="awaiting"):
        conn.send(Command("ANSWER"))


def test_no_command_before_the_environment() -> None:
    with pytest.raises(LocalProtocolError, match="environment"):
        AGIConnection().send(Command("ANSWER"))


# -- properties --------------------------------------------------------------------------------
def asterisk_parse_args(line: str) -> list[str]:
    """A model of res_agi.c parse_args: spaces/tabs split, quotes group, backslash escapes."""
    args: list[str] = []
    cur: list[str] | None = None
    quoted = escaped = False
    for ch in line:
        if escaped:
            cur = (cur or []) + [ch]
            escaped = False
        elif ch == "\\":
            escaped = True
            cur = cur or []
        elif ch == '"':
            quoted = not quoted
            cur = cur or []
        elif ch in " \t" and not quoted:
            if cur is not None:
                args.append("".join(cur))
            cur = None
        else:
            cur = (cur or []) + [ch]
    if cur is not None:
        args.append("".join(cur))
    return args


arg_text = st.text(
    alphabet=st.characters(blacklist_characters="\r\n\0", blacklist_categories=("Cs",)),
    max_size=40,
)


@given(st.lists(arg_text, max_size=8))
def test_quoted_arguments_read_back_identically_by_asterisks_rules(args: list[str]) -> None:
    line = Command("SET VARIABLE", tuple(args)).encode().decode()[:-1]
    assert asterisk_parse_args(line) == ["SET", "VARIABLE", *args]


@settings(max_examples=400)
@given(st.binary(max_size=3000), st.lists(st.integers(1, 64), max_size=50), st.booleans())
def test_parser_never_raises_anything_but_its_own_protocol_error(
    data: bytes, cuts: list[int], after_env: bool
) -> None:
    conn = ready() if after_env else AGIConnection()
    if after_env:
        conn.send(Command("ANSWER"))
    pos = 0
    try:
        for cut in [*cuts, len(data)]:
            conn.receive_data(data[pos : pos + cut])
            pos += cut
            while (event := conn.next_event()) is not NEED_DATA:
                if isinstance(event, Closed):
                    return
                if conn.state is State.IDLE:
                    conn.send(Command("ANSWER"))
        conn.receive_data(b"")
        while not isinstance(conn.next_event(), Closed):
            if conn.state is State.IDLE:
                conn.send(Command("ANSWER"))
    except AGIProtocolError:
        pass


_reply_lines = st.sampled_from(
    [
        b"200 result=0\n",
        b"200 result=49 endpos=100\n",
        b"HANGUP\n",
        b"100 result=0 Trying...\n",
        b"510 Invalid or unknown command\n",
        b"511 Command Not Permitted\n",
        b"520-Invalid command syntax.  Proper usage follows:\nUsage: X\n520 End of proper usage.\n",
        b"200 result= (timeout)\n",
    ]
)


@given(st.lists(_reply_lines, min_size=1, max_size=20), st.integers(1, 17))
def test_chunking_never_changes_the_events(lines: list[bytes], size: int) -> None:
    stream = b"".join(lines)

    def run(chunk: int) -> list[object]:
        conn = ready()
        conn.send(Command("ANSWER"))
        seen: list[object] = []
        for i in range(0, len(stream), chunk):
            conn.receive_data(stream[i : i + chunk])
            try:
                while (event := conn.next_event()) is not NEED_DATA:
                    seen.append(event)
                    if conn.state is State.IDLE:
                        conn.send(Command("ANSWER"))
            except AGIProtocolError as exc:
                seen.append(type(exc))
                return seen
        return seen

    assert run(size) == run(len(stream))


def test_a_flood_of_bytes_is_refused_before_it_is_buffered() -> None:
    conn = ready()
    conn.send(Command("ANSWER"))
    with pytest.raises(RemoteProtocolError, match="unread"):
        for _ in range(100):
            conn.receive_data(b"200 result=0\n" * 1000)  # nobody reads while a handler works
    with pytest.raises(RemoteProtocolError):
        conn.next_event()  # the connection stays broken


def test_error_messages_do_not_carry_a_phone_number_in_clear() -> None:
    conn = AGIConnection()
    conn.receive_data(b"agi_callerid 13800138000\n")
    with pytest.raises(RemoteProtocolError) as info:
        conn.next_event()
    assert "13800138000" not in str(info.value) and "8000" in str(info.value)  # rule Y-1


_env_values = st.text(
    alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)),
    max_size=30,
) | st.just("长" * 6000)  # 18 KB of UTF-8 in one value: over the line limit in bytes


@settings(max_examples=60, deadline=None)
@given(st.lists(_env_values, min_size=1, max_size=6), st.integers(7, 700))
def test_chunking_never_changes_how_the_environment_is_read(values: list[str], size: int) -> None:
    block = "".join(f"agi_k{i}: {v}\n" for i, v in enumerate(values)).encode() + b"\n"

    def run(chunk: int) -> object:
        conn = AGIConnection()
        try:
            for i in range(0, len(block), chunk):
                conn.receive_data(block[i : i + chunk])
                event = conn.next_event()
                if event is not NEED_DATA:
                    return dict(event.variables)  # type: ignore[union-attr]
        except AGIProtocolError as exc:
            return type(exc)
        return NEED_DATA

    assert run(size) == run(len(block))
