"""An agent's desk phone in the lab: SIPp registered on ``PJSIP/80xx`` that rings and answers.

Two SIPp processes make one phone. The *handset* is a SIPp server (UAS) on a port of its own:
for each INVITE it sends 180 Ringing and then, as told, answers after ``answer_after_ms`` and
holds the call for ``hold_ms`` before hanging up itself (or takes the caller's BYE first) — or
never answers and takes the CANCEL (``answer=False``: ring-no-answer). The *registrar client*
registers the extension with digest auth, its Contact pointing at the handset, and unregisters
when the phone is put away. The handset counts the calls it saw in its statistics; ``rung``
parses them.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from hotline.lab.sipp import free_udp_port

HANDSET_HEAD = """<?xml version="1.0" encoding="UTF-8" ?>
<scenario name="hotline agent handset">
  <recv request="INVITE" rrs="true">{remember}</recv>
  <send>
    <![CDATA[
      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:{ext}@[local_ip]:[local_port]>
      Content-Length: 0
    ]]>
  </send>
"""

REMEMBER_FROM = """
    <action>
      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="remote"/>
    </action>
  """

HANDSET_ANSWER = """\
  <recv request="CANCEL" timeout="{answer_after_ms}" ontimeout="answer" next="cancelled"/>
  <label id="answer"/>
  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:{ext}@[local_ip]:[local_port]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=agent 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 8 0 101
      a=rtpmap:8 PCMA/8000
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a=sendrecv
    ]]>
  </send>
  <recv request="ACK" crlf="true"/>
  <recv request="BYE" timeout="{hold_ms}" ontimeout="hangup" next="remote_bye"/>
  <label id="hangup"/>
  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:{ext}@[local_ip]:[local_port]>;tag=[pid]SIPpTag01[call_number]
      To: [$remote]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Contact: <sip:{ext}@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200" crlf="true" next="done"/>
  <label id="remote_bye"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
  <nop next="done"/>
"""

HANDSET_RING = """  <recv request="CANCEL" next="cancelled"/>
"""

HANDSET_TAIL = """  <label id="cancelled"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
  <send>
    <![CDATA[
      SIP/2.0 487 Request Terminated
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      CSeq: [cseq] INVITE
      Content-Length: 0
    ]]>
  </send>
  <recv request="ACK" optional="false"/>
  <label id="done"/>
</scenario>
"""

REGISTER = """<?xml version="1.0" encoding="UTF-8" ?>
<scenario name="hotline agent register">
  <send retrans="500">
    <![CDATA[
      REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:{ext}@[remote_ip]>;tag=[pid]SIPpTag02[call_number]
      To: <sip:{ext}@[remote_ip]>
      Call-ID: [call_id]
      CSeq: 1 REGISTER
      Contact: <sip:{ext}@127.0.0.1:{handset_port}>
      Expires: {expires}
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="401" auth="true"/>
  <send retrans="500">
    <![CDATA[
      REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:{ext}@[remote_ip]>;tag=[pid]SIPpTag02[call_number]
      To: <sip:{ext}@[remote_ip]>
      Call-ID: [call_id]
      CSeq: 2 REGISTER
      Contact: <sip:{ext}@127.0.0.1:{handset_port}>
      Expires: {expires}
      [authentication username={ext} password={password}]
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200"/>
</scenario>
"""


async def listening(
    proc: asyncio.subprocess.Process | None, port: int, timeout: float = 10.0
) -> bool:
    """Until SIPp holds its UDP port (our own bind of it fails); False when it never does."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if proc is not None and proc.returncode is not None:
            return False
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return True
        await asyncio.sleep(0.05)
    return False


async def stopped(proc: asyncio.subprocess.Process) -> str:
    """Stop a SIPp process (if it still runs); what it printed."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
    out, _ = await proc.communicate()
    return out.decode(errors="replace")


@dataclass
class AgentPhone:
    """``async with AgentPhone(root, workdir, sip_port, "8001", password) as phone: …``"""

    root: Path
    workdir_in_root: str
    sip_port: int
    extension: str
    password: str
    answer: bool = True
    answer_after_ms: int = 1000
    hold_ms: int = 4000
    calls: int = 1  # the handset takes this many calls, then stops
    handset_port: int = field(default_factory=free_udp_port)
    output: str = ""
    _proc: asyncio.subprocess.Process | None = None

    @property
    def workdir(self) -> Path:
        return self.root / self.workdir_in_root.lstrip("/")

    def handset(self) -> str:
        """The scenario; only a handset that answers (and may hang up) keeps the caller's From
        header — SIPp refuses a scenario with a variable set and never used."""
        names = {"ext": self.extension}
        remember = REMEMBER_FROM if self.answer else ""
        body = (
            HANDSET_ANSWER.format(
                answer_after_ms=self.answer_after_ms, hold_ms=self.hold_ms, **names
            )
            if self.answer
            else HANDSET_RING
        )
        return HANDSET_HEAD.format(remember=remember, **names) + body + HANDSET_TAIL

    async def __aenter__(self) -> AgentPhone:
        self.workdir.mkdir(parents=True, exist_ok=True)
        name = f"phone-{self.handset_port}"
        (self.workdir / f"{name}.xml").write_text(self.handset())
        self._proc = await asyncio.create_subprocess_exec(
            *self._sipp(name, self.handset_port, server=True),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL,
        )
        try:
            await self._listening()  # the handset listens before its contact is registered
            await self.register(expires=300)
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        with contextlib.suppress(Exception):
            await self.register(expires=0)
        await self.stop()

    async def _listening(self, timeout: float = 10.0) -> None:
        """Until SIPp holds the handset's UDP port (our own bind of it fails)."""
        if not await listening(self._proc, self.handset_port, timeout):
            raise RuntimeError(f"the {self.extension} handset does not listen: {await self.stop()}")

    async def stop(self) -> str:
        proc, self._proc = self._proc, None
        self.output = await stopped(proc) if proc is not None else self.output
        return self.output

    async def wait(self, timeout: float) -> bool:
        """Until the handset has taken its calls (True), or ``timeout`` seconds (False)."""
        if self._proc is None:
            return True
        try:
            await asyncio.wait_for(self._proc.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def register(self, expires: int) -> None:
        port = free_udp_port()
        name = f"register-{port}"
        text = REGISTER.format(
            ext=self.extension,
            password=self.password,
            handset_port=self.handset_port,
            expires=expires,
        )
        (self.workdir / f"{name}.xml").write_text(text)
        proc = await asyncio.create_subprocess_exec(
            *self._sipp(name, port, server=False),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL,
        )
        out, _ = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"{self.extension} did not register: {out.decode()[-800:]}")

    def _sipp(self, name: str, port: int, *, server: bool) -> list[str]:
        cmd = ["chroot", str(self.root), "/usr/bin/env", "-C", self.workdir_in_root, "sipp"]
        if not server:
            cmd += [f"127.0.0.1:{self.sip_port}", "-m", "1", "-timeout", "10s", "-timeout_error"]
        else:
            cmd += ["-m", str(self.calls)]
        return [
            *cmd,
            "-sf",
            f"{name}.xml",
            "-i",
            "127.0.0.1",
            "-p",
            str(port),
            "-mi",
            "127.0.0.1",
            "-mp",
            str(free_udp_port()),
            "-nostdin",
            "-trace_err",
            "-error_file",
            f"{name}.errors",
        ]


DUTY_HEAD = """<?xml version="1.0" encoding="UTF-8" ?>
<scenario name="hotline utility duty line">
  <recv request="INVITE" rrs="true">{remember}</recv>
"""

DUTY_REFUSE = """  <send>
    <![CDATA[
      SIP/2.0 {code} {reason}
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
  <recv request="ACK"/>
</scenario>
"""

DUTY_KEY = """  <pause milliseconds="{after_ms}"/>
  <nop><action><exec play_pcap_audio="/usr/share/sip-tester/dtmf_2833_{key}.pcap"/></action></nop>
"""
DUTY_SPEAK = """  <pause milliseconds="{after_ms}"/>
  <nop><action><exec play_pcap_audio="/usr/share/sip-tester/g711a.pcap"/></action></nop>
"""


@dataclass
class DutyLine:
    """A utility's duty line in the lab (rule H-6): SIPp as a UAS on the port the lab's PJSIP
    endpoint ``utility-<name>`` points at (:func:`hotline.lab.render.utility_port`), no
    registration — a citizen's phone for the survey calls too. ``mode``: ``answer`` (after
    ``answer_after_ms``; presses ``key`` ``key_after_ms`` after the answer, ``speak_after_ms``
    later speaks — SIPp's G.711 sample — and then stays ``hold_ms`` unless hung up), ``drop``
    (answers and hangs up at once), ``ring`` (never answers; takes the CANCEL), ``busy`` (486)
    or ``decline`` (603)."""

    root: Path
    workdir_in_root: str
    port: int
    name: str = "water"
    mode: str = "answer"
    answer_after_ms: int = 500
    key_after_ms: int = 1500
    key: str = "1"  # the key it presses (a citizen answering the survey: 1, 2 or 3)
    # after the key, then speaks SIPp's 7 s sample (once: Asterisk drops a replay's RTP, whose
    # sequence numbers start again)
    speak_after_ms: int = 1500
    hold_ms: int = 60000
    calls: int = 1
    output: str = ""
    _proc: asyncio.subprocess.Process | None = None

    @property
    def workdir(self) -> Path:
        return self.root / self.workdir_in_root.lstrip("/")

    def scenario(self) -> str:
        names = {"ext": self.name}
        if self.mode in ("busy", "decline"):
            code, reason = (486, "Busy Here") if self.mode == "busy" else (603, "Decline")
            return DUTY_HEAD.format(remember="") + DUTY_REFUSE.format(code=code, reason=reason)
        ring = HANDSET_HEAD.split("\n", 3)[3]  # the 180 of the agent handset, after its INVITE
        if self.mode == "ring":
            return DUTY_HEAD.format(remember="") + ring + HANDSET_RING + HANDSET_TAIL
        if self.mode == "drop":  # answers and hangs up at once
            dropped = HANDSET_ANSWER.format(
                answer_after_ms=self.answer_after_ms, hold_ms=200, **names
            )
            return DUTY_HEAD.format(remember=REMEMBER_FROM) + ring + dropped + HANDSET_TAIL
        answer = HANDSET_ANSWER.format(
            answer_after_ms=self.answer_after_ms, hold_ms=self.hold_ms, **names
        )
        head, ack, rest = answer.partition('  <recv request="ACK" crlf="true"/>\n')
        speech = DUTY_SPEAK.format(after_ms=self.speak_after_ms)
        key = DUTY_KEY.format(after_ms=self.key_after_ms, key=self.key)
        keyed = head + ack + key + speech + rest
        return DUTY_HEAD.format(remember=REMEMBER_FROM) + ring + keyed + HANDSET_TAIL

    async def __aenter__(self) -> DutyLine:
        self.workdir.mkdir(parents=True, exist_ok=True)
        name = f"duty-{self.port}"
        (self.workdir / f"{name}.xml").write_text(self.scenario().format(ext=self.name))
        cmd = ["chroot", str(self.root), "/usr/bin/env", "-C", self.workdir_in_root, "sipp"]
        self._proc = await asyncio.create_subprocess_exec(
            *cmd,
            "-m",
            str(self.calls),
            "-sf",
            f"{name}.xml",
            "-i",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-mi",
            "127.0.0.1",
            "-mp",
            str(free_udp_port()),
            "-nostdin",
            "-trace_err",
            "-error_file",
            f"{name}.errors",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL,
        )
        if await listening(self._proc, self.port):
            return self
        out = await self.stop()
        raise RuntimeError(f"the {self.name} duty line does not listen: {out[-800:]}")

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def stop(self) -> str:
        proc, self._proc = self._proc, None
        self.output = await stopped(proc) if proc is not None else self.output
        return self.output
