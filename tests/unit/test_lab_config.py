"""The lab's pure parts: apt sources, the root's stamp, rendered Asterisk configuration."""

from __future__ import annotations

import dataclasses
import os
import re
import stat
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hotline.config.settings import load_settings
from hotline.ivr.fallback import fallback_key
from hotline.lab import render
from hotline.lab.instance import _write, add_configuration, complete_credentials, private
from hotline.lab.root import LabError, find_mirror, stamp
from hotline.lab.sipp import CallPlan, scenario

DEB822 = """\
Types: deb
# http://snapshot.example/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
"""


def sources(tmp_path: Path, files: dict[str, str]) -> tuple[Path, ...]:
    d = tmp_path / "sources.list.d"
    d.mkdir()
    for name, text in files.items():
        (d / name).write_text(text)
    return (tmp_path / "sources.list", d)


def test_mirror_comes_from_a_deb822_sources_file(tmp_path: Path) -> None:
    assert (
        find_mirror(sources(tmp_path, {"debian.sources": DEB822})) == "http://mirror.example/debian"
    )


def test_mirror_from_one_line_format_skips_security_and_third_party(tmp_path: Path) -> None:
    text = (
        "deb [signed-by=/k.gpg] https://packages.example.com/apt stable main\n"
        "deb http://mirror.example/debian-security bookworm-security main\n"
        "# deb http://commented.example/debian bookworm main\n"
        "deb [arch=amd64] http://mirror.example/debian/ bookworm main\n"
    )
    assert find_mirror(sources(tmp_path, {"x.list": text})) == "http://mirror.example/debian"


def test_disabled_files_and_deb_src_are_ignored(tmp_path: Path) -> None:
    files = {
        "a.list.disabled-by-farm": "deb http://nope.example/debian sid main\n",
        "b.sources": "Types: deb-src\nURIs: http://src.example/debian\n",
    }
    with pytest.raises(LabError, match="HOTLINE_LAB_MIRROR"):
        find_mirror(sources(tmp_path, files))


def test_stamp_is_stable_and_keyed_by_suite() -> None:
    assert stamp("sid") == stamp("sid")
    assert stamp("sid") != stamp("trixie")
    assert re.fullmatch(r"[0-9a-f]{12}", stamp("sid"))


def test_render_refuses_missing_values() -> None:
    with pytest.raises(KeyError, match="sip_port"):
        render.render("bind = 127.0.0.1:{{sip_port}}", {})


AGENTS = {str(ext): f"agent-pw-{ext}" for ext in render.AGENT_EXTENSIONS}
CREDS = render.Credentials("ari", "pw1", "ami", "pw2", "agi-secret-0123456789", AGENTS)


def rendered(env: dict[str, str] | None = None) -> dict[str, str]:
    settings = load_settings(env=env or {})
    values = render.instance_values(settings, "/var/lib/hotline-lab/t", "/usr/lib/x/modules", CREDS)
    return render.render_all(values)


def test_every_template_renders_without_leftover_placeholders() -> None:
    confs = rendered()
    assert {
        "asterisk.conf",
        "pjsip.conf",
        "extensions.conf",
        "http.conf",
        "ari.conf",
        "manager.conf",
        "modules.conf",
    } <= set(confs)
    for name, text in confs.items():
        assert "{{" not in text, name


def test_everything_listens_on_loopback_only() -> None:
    confs = rendered({"HOTLINE_LAB_SIP_PORT": "15060", "HOTLINE_LAB_HTTP_PORT": "18088"})
    assert "bind = 127.0.0.1:15060" in confs["pjsip.conf"]
    assert "bindaddr = 127.0.0.1" in confs["http.conf"] and "bindport = 18088" in confs["http.conf"]
    assert "bindaddr = 127.0.0.1" in confs["manager.conf"]
    assert "media_address = 127.0.0.1" in confs["pjsip.conf"]
    assert "bind_rtp_to_media_address = yes" in confs["pjsip.conf"]


def test_agent_phones_8001_to_8099_and_utilities_exist() -> None:
    pjsip = rendered()["pjsip.conf"]
    agents = re.findall(r"^\[(80\d\d)\]\(lab-endpoint\)$", pjsip, re.M)
    assert agents[0] == "8001" and agents[-1] == "8099" and len(agents) == 99
    for unit in ("water", "power", "gas"):
        assert f"[utility-{unit}](lab-endpoint)" in pjsip


def test_every_agent_phone_has_its_own_password() -> None:
    pjsip = rendered()["pjsip.conf"]
    auths = re.findall(r"^username = (80\d\d)\npassword = (\S+)$", pjsip, re.M)
    assert len(auths) == 99 and all(pw == f"agent-pw-{ext}" for ext, pw in auths)


def test_credentials_are_generated_once_and_an_older_file_gets_what_it_lacks() -> None:
    fresh = complete_credentials({})
    assert len(fresh.agent_passwords) == 99 and len(set(fresh.agent_passwords.values())) == 99
    assert len(fresh.agi_secret) >= 16 and fresh.ari_password != fresh.ami_password
    assert complete_credentials(dataclasses.asdict(fresh)) == fresh  # stable once written
    older = {  # before the AGI secret, with one password for every agent phone
        "ari_user": "hotline",
        "ari_password": "ari-pw",
        "ami_user": "hotline",
        "ami_password": "ami-pw",
        "agent_password": "shared",
    }
    upgraded = complete_credentials(older)
    assert (upgraded.ari_password, upgraded.ami_password) == ("ari-pw", "ami-pw")
    assert upgraded.agi_secret and "shared" not in upgraded.agent_passwords.values()
    assert not hasattr(upgraded, "agent_password")


def test_dialplan_calls_the_backend_and_falls_back_when_it_cannot() -> None:
    dialplan = rendered({"HOTLINE_SERVER_AGI_PORT": "14573"})["extensions.conf"]
    assert "HOTLINE_AGI = agi://127.0.0.1:14573/ivr?secret=agi-secret-0123456789\n" in dialplan
    assert '$["${AGISTATUS}" != "SUCCESS"]?hotline-fallback,s,1' in dialplan
    assert '$["${HOTLINE_ROUTE}" = ""]?hotline-fallback,s,1' in dialplan
    for route in ("queue", "utility", "operator", "hangup"):
        assert f"exten => {route},1," in dialplan
    assert "exten => i,1,Goto(hotline-fallback,s,1)" in dialplan
    assert "[hotline-queue]" in dialplan and "HotlineHandoff" in dialplan
    assert "HOTLINE_RECORDING_DIR = /var/lib/hotline-lab/t/spool/recording" in dialplan
    assert "StasisBroadcast(2000,^hotline-)" in dialplan  # the same IVR over ARI, any node
    assert "StasisBroadcast(2000,^hotline-,queue)" in dialplan  # the queue, any node


def test_citizen_scenario_plays_one_pcap_per_key_and_is_valid_xml() -> None:
    xml = scenario(CallPlan(caller="13900000001", dtmf="1*#"))
    root = ET.fromstring(xml)
    pcaps = [e.get("play_pcap_audio") for e in root.iter("exec")]
    assert pcaps == [
        "/usr/share/sip-tester/dtmf_2833_1.pcap",
        "/usr/share/sip-tester/dtmf_2833_star.pcap",
        "/usr/share/sip-tester/dtmf_2833_pound.pcap",
    ]
    assert "a=rtpmap:101 telephone-event/8000" in xml
    assert "sip:13900000001@" in xml


@pytest.mark.parametrize("plan", [{"dtmf": "1a"}, {"caller": "13800;evil"}, {"number": "12345<x>"}])
def test_call_plans_refuse_what_could_break_the_scenario(plan: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        CallPlan(**plan)  # type: ignore[arg-type]


def test_the_safe_path_seals_the_number_before_any_logged_argument_sees_it() -> None:
    dialplan = rendered()["extensions.conf"]
    lines = [line for line in dialplan.splitlines() if not line.startswith(";")]
    # the caller's number is read in one place only: inside AES_ENCRYPT, under the key
    (reads,) = [line for line in lines if "CALLERID" in line]
    key = fallback_key("pw1")
    assert f"Set(HOTLINE_FB=${{AES_ENCRYPT({key},${{UNIQUEID}}|" in reads
    assert "${FILTER(0-9,${CALLERID(num)})}" in reads
    (record,) = [line for line in lines if "Record(" in line]
    assert "hotline-fb-e${HOTLINE_FB}.wav" in record
    assert key not in "".join(line for line in lines if line != reads)  # written once, there
    assert "require => func_aes.so" in rendered()["modules.conf"]


def test_lab_files_are_written_for_root_alone(tmp_path: Path) -> None:
    path = tmp_path / "ari.conf"
    path.write_text("old")
    path.chmod(0o644)
    old = os.umask(0)
    try:
        _write(path, "password = x\n", 0o640)
        _write(tmp_path / "credentials.json", "{}", 0o600)
    finally:
        os.umask(old)
    assert path.read_text() == "password = x\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "credentials.json").stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_what_an_older_lab_left_readable_is_made_private(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "spool" / "recording").mkdir(parents=True)
    wav = home / "spool" / "recording" / "hotline-fb-x.wav"
    wav.write_bytes(b"RIFF")
    for p, mode in ((home, 0o755), (home / "spool", 0o777), (wav, 0o666)):
        p.chmod(mode)
    outside = tmp_path / "outside"
    outside.write_text("")
    outside.chmod(0o644)
    (home / "link").symlink_to(outside)
    private(home)
    assert stat.S_IMODE(home.stat().st_mode) == 0o750
    assert stat.S_IMODE((home / "spool").stat().st_mode) == 0o750
    assert stat.S_IMODE(wav.stat().st_mode) == 0o640
    assert stat.S_IMODE(outside.stat().st_mode) == 0o644  # a link is not followed


def test_a_bench_adds_configuration_to_a_rendered_file_or_a_new_one(tmp_path: Path) -> None:
    (tmp_path / "pjsip.conf").write_text("[trunk]\ntype=endpoint\n", encoding="utf-8")
    add_configuration(tmp_path, {"pjsip.conf": "[7001]\ntype=endpoint\n", "queues.conf": "[q]\n"})
    pjsip = (tmp_path / "pjsip.conf").read_text(encoding="utf-8")
    assert pjsip.startswith("[trunk]\ntype=endpoint\n")  # the rendered file is kept
    assert pjsip.endswith("; -- added for this run\n[7001]\ntype=endpoint\n")
    assert (tmp_path / "queues.conf").read_text(encoding="utf-8").endswith("[q]\n")
    for name in ("../asterisk.conf", "queues", ".conf"):
        with pytest.raises(LabError, match=r"a file name ending in \.conf"):
            add_configuration(tmp_path, {name: "x"})
