"""RFC 2833 DTMF for SIPp, from the `.pcap` files sip-tester ships, renumbered per call.

Each shipped file (``dtmf_2833_<key>.pcap``) carries fixed RTP timestamps — and they grow with
the key (1 < 2 < … < 9). Asterisk drops an RFC 2833 event whose timestamp is not after the last
one's as a duplicate or out of order, so "52" or "999" played from the files as they are loses
keys. For a call's key sequence we copy each file with its RTP sequence numbers and timestamps
moved to follow the previous key's; SIPp replays the copies.
"""

from __future__ import annotations

import struct
from pathlib import Path

PCAP_HEADER = 24
RECORD_HEADER = 16
ETHERNET = 14
STEP_TIMESTAMP = 16_000  # 2 s at 8 kHz between keys' events
STEP_SEQUENCE = 100


class PcapError(Exception):
    pass


def renumber(pcap: bytes, sequence: int, timestamp: int) -> bytes:
    """The same packets with RTP sequence numbers from ``sequence`` and one ``timestamp``
    (all packets of one RFC 2833 event share its timestamp)."""
    if len(pcap) < PCAP_HEADER or pcap[:4] != b"\xd4\xc3\xb2\xa1":
        raise PcapError("not a little-endian pcap file")
    out = bytearray(pcap[:PCAP_HEADER])
    offset, n = PCAP_HEADER, 0
    while offset < len(pcap):
        _, _, incl, _ = struct.unpack("<IIII", pcap[offset : offset + RECORD_HEADER])
        packet = bytearray(pcap[offset + RECORD_HEADER : offset + RECORD_HEADER + incl])
        ip = ETHERNET
        udp = ip + (packet[ip] & 0x0F) * 4
        rtp = udp + 8
        if len(packet) < rtp + 12 or packet[rtp] >> 6 != 2:
            raise PcapError(f"packet {n} is not RTP over IPv4/UDP")
        struct.pack_into(">HI", packet, rtp + 2, (sequence + n) & 0xFFFF, timestamp & 0xFFFFFFFF)
        struct.pack_into(">H", packet, udp + 6, 0)  # UDP checksum: none (allowed on IPv4)
        out += pcap[offset : offset + RECORD_HEADER] + packet
        offset += RECORD_HEADER + incl
        n += 1
    return bytes(out)


def key_files(shipped: Path, keys: str, folder: Path, tag: str) -> list[Path]:
    """One renumbered pcap per key, in order; returns their paths."""
    names = {"*": "star", "#": "pound"}
    out = []
    for i, key in enumerate(keys):
        source = shipped / f"dtmf_2833_{names.get(key, key)}.pcap"
        target = folder / f"{tag}-{i}-{names.get(key, key)}.pcap"
        target.write_bytes(
            renumber(source.read_bytes(), 1000 + i * STEP_SEQUENCE, 160_000 + i * STEP_TIMESTAMP)
        )
        out.append(target)
    return out
