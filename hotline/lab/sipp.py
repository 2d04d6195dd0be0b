"""Citizen calls with SIPp, run from the lab root.

A call is one SIPp scenario rendered for it: INVITE to the number with an SDP offering A-law,
µ-law and telephone-event/8000 (payload 101, as in the RFC 2833 ``.pcap`` files ``sip-tester``
ships in ``/usr/share/sip-tester/``, renumbered per call by :mod:`hotline.lab.dtmf`); after
the answer it waits, plays one ``.pcap`` per DTMF key, listens, and hangs up — or accepts
Asterisk's BYE whenever Asterisk ends the call first. SIPp runs in the foreground with
``-nostdin``; its exit code says whether the call succeeded.
"""

from __future__ import annotations

import asyncio
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from hotline.lab.dtmf import key_files

PCAP_DIR = "/usr/share/sip-tester"
_PCAP_NAMES = {"*": "star", "#": "pound"}

SCENARIO_HEAD = """<?xml version="1.0" encoding="UTF-8" ?>
<scenario name="hotline citizen call">
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "{caller_name}" <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:{caller}@[local_ip]:[local_port]>
      Max-Forwards: 70
      User-Agent: hotline-lab-citizen
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=citizen 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 8 0 101
      a=rtpmap:8 PCMA/8000
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-15
      a=sendrecv
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true" rrs="true"/>
  <send>
    <![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "{caller_name}" <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: <sip:{caller}@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv request="BYE" timeout="{answer_wait_ms}" ontimeout="key1" next="remote_bye"/>
  <label id="key1"/>
"""

# Every wait is a BYE that may come (Asterisk may hang up at any time) or a timeout that
# moves on; a plain <pause> would count Asterisk's BYE as an unexpected message.
SCENARIO_KEY = """  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>
  <recv request="BYE" timeout="{gap_ms}" ontimeout="key{next}" next="remote_bye"/>
  <label id="key{next}"/>
"""

SCENARIO_SPEAK = """  <recv request="BYE" timeout="{wait_ms}" ontimeout="speak" next="remote_bye"/>
  <label id="speak"/>
  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>
"""

SCENARIO_TAIL = """  <recv request="BYE" timeout="{hold_ms}" ontimeout="hangup"/>
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
  <label id="hangup"/>
  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "{caller_name}" <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Contact: <sip:{caller}@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200" crlf="true"/>
  <label id="done"/>
</scenario>
"""

DIGITS = re.compile(r"[0-9*#]*")


@dataclass(frozen=True, slots=True)
class CallPlan:
    number: str = "12345"
    caller: str = "13800000000"
    caller_name: str = "citizen"
    dtmf: str = ""
    answer_wait_ms: int = 1500  # after the answer, before the first key
    gap_ms: int = 1200  # after each key
    hold_ms: int = 12000  # after the last key: the notice (I-6) and the transfer prompt
    speak_after_ms: int | None = None  # after the keys, wait this long, then speak (7 s audio)

    def __post_init__(self) -> None:
        if not DIGITS.fullmatch(self.dtmf):
            raise ValueError(f"DTMF keys must be 0-9, * or #: {self.dtmf!r}")
        if not re.fullmatch(r"[0-9A-Za-z+*#]+", self.number):
            raise ValueError(f"not a dialable number: {self.number!r}")
        if not re.fullmatch(r"\+?[0-9]{1,20}", self.caller):
            raise ValueError(f"caller must be a phone number: {self.caller!r}")


def scenario(plan: CallPlan, key_pcaps: list[str] | None = None) -> str:
    """The call's SIPp scenario; ``key_pcaps`` are the (renumbered) DTMF files, one per key."""
    names = {"caller": plan.caller, "caller_name": escape(plan.caller_name)}
    text = SCENARIO_HEAD.format(answer_wait_ms=plan.answer_wait_ms, **names)
    pcaps = key_pcaps or [f"{PCAP_DIR}/dtmf_2833_{_PCAP_NAMES.get(k, k)}.pcap" for k in plan.dtmf]
    for n, pcap in enumerate(pcaps, start=2):
        text += SCENARIO_KEY.format(pcap=pcap, gap_ms=plan.gap_ms, next=n)
    if plan.speak_after_ms is not None:
        text += SCENARIO_SPEAK.format(wait_ms=plan.speak_after_ms, pcap=f"{PCAP_DIR}/g711a.pcap")
    return text + SCENARIO_TAIL.format(hold_ms=plan.hold_ms, **names)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True, slots=True)
class CallResult:
    ok: bool
    exit_code: int
    output: str


async def place_call(
    root: Path, workdir_in_root: str, sip_port: int, plan: CallPlan, timeout_s: float = 60.0
) -> CallResult:
    """Run one SIPp call from the lab root against Asterisk on 127.0.0.1:``sip_port``."""
    workdir = root / workdir_in_root.lstrip("/")
    workdir.mkdir(parents=True, exist_ok=True)
    local_port = free_udp_port()
    name = f"call-{local_port}"
    keys = key_files(root / PCAP_DIR.lstrip("/"), plan.dtmf, workdir, name)
    in_root = [f"{workdir_in_root}/{k.name}" for k in keys]
    (workdir / f"{name}.xml").write_text(scenario(plan, in_root))
    return await run_scenario(root, workdir_in_root, sip_port, plan.number, local_port, timeout_s)


async def run_scenario(
    root: Path,
    workdir_in_root: str,
    sip_port: int,
    number: str,
    local_port: int,
    timeout_s: float,
) -> CallResult:
    """Run the scenario ``call-<local_port>.xml`` of ``workdir_in_root`` (written by the caller)
    as one SIPp call to ``number`` from the lab root."""
    workdir = root / workdir_in_root.lstrip("/")
    name = f"call-{local_port}"
    cmd = [
        "chroot",
        str(root),
        "/usr/bin/env",
        "-C",
        workdir_in_root,
        "sipp",
        f"127.0.0.1:{sip_port}",
        "-sf",
        f"{name}.xml",
        "-s",
        number,
        "-i",
        "127.0.0.1",
        "-p",
        str(local_port),
        "-mi",
        "127.0.0.1",
        "-mp",
        str(free_udp_port()),
        "-m",
        "1",
        "-l",
        "1",
        "-nostdin",
        "-timeout",
        f"{int(timeout_s)}s",
        "-timeout_error",
        "-trace_err",
        "-error_file",
        f"{name}.errors",
    ]
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        stdin=asyncio.subprocess.DEVNULL,
    )
    out, _ = await proc.communicate()
    text = out.decode(errors="replace")
    errors = workdir / f"{name}.errors"
    if errors.exists():
        text += errors.read_text(errors="replace")
    code = proc.returncode if proc.returncode is not None else -1
    return CallResult(ok=code == 0, exit_code=code, output=text)
