"""DTMF files for SIPp: the shipped RFC 2833 captures, renumbered so every key counts."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from hotline.lab.dtmf import PcapError, key_files, renumber


def pcap(packets: int, sequence: int, timestamp: int) -> bytes:
    """A capture like sip-tester's: Ethernet, IPv4, UDP, RTP with a telephone-event payload."""
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    for n in range(packets):
        rtp = struct.pack(">BBHII", 0x80, 101, sequence + n, timestamp, 0xE05384E) + bytes(4)
        udp = struct.pack(">HHHH", 6000, 6000, 8 + len(rtp), 0xBEEF) + rtp
        ip = bytes([0x45]) + bytes(19) + udp
        frame = bytes(14) + ip
        out += struct.pack("<IIII", 1, n * 20000, len(frame), len(frame)) + frame
    return out


def rtp_fields(data: bytes) -> list[tuple[int, int, int]]:
    out, offset = [], 24
    while offset < len(data):
        incl = struct.unpack("<I", data[offset + 8 : offset + 12])[0]
        packet = data[offset + 16 : offset + 16 + incl]
        seq, ts = struct.unpack(">HI", packet[14 + 20 + 8 + 2 : 14 + 20 + 8 + 8])
        checksum = struct.unpack(">H", packet[14 + 20 + 6 : 14 + 20 + 8])[0]
        out.append((seq, ts, checksum))
        offset += 16 + incl
    return out


def test_sequence_numbers_and_timestamps_are_moved_and_nothing_else() -> None:
    original = pcap(3, sequence=8155, timestamp=43200)
    moved = renumber(original, sequence=1000, timestamp=160000)
    assert len(moved) == len(original)
    assert rtp_fields(moved) == [(1000, 160000, 0), (1001, 160000, 0), (1002, 160000, 0)]


def test_keys_follow_each_other_whatever_their_digits(tmp_path: Path) -> None:
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    for key in ("5", "2", "9", "pound"):  # shipped timestamps grow with the digit
        (shipped / f"dtmf_2833_{key}.pcap").write_bytes(pcap(2, 8000, 10000 * (len(key))))
    files = key_files(shipped, "5299#", tmp_path, "call-1")
    stamps = [rtp_fields(f.read_bytes())[0][1] for f in files]
    assert stamps == sorted(set(stamps)) and len(stamps) == 5  # strictly growing: none dropped
    assert [f.name for f in files][-1] == "call-1-4-pound.pcap"


def test_anything_but_a_pcap_of_rtp_is_refused() -> None:
    with pytest.raises(PcapError):
        renumber(b"not a pcap at all, sorry", 0, 0)
    bad = bytearray(pcap(1, 1, 1))
    bad[24 + 16 + 14 + 20 + 8] = 0x00  # RTP version 0
    with pytest.raises(PcapError):
        renumber(bytes(bad), 0, 0)
