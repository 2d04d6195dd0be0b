"""The AGI entry point of the IVR: one handler per script path, the journal writer.

The flows themselves are in :mod:`hotline.ivr.flows`, over the `CallChannel` port; here they
run over the AGI adapter, and each call's journal row is written after the caller has left the
AGI session.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import fcntl
import json
import logging
import os
import re
import uuid
from collections.abc import Callable
from pathlib import Path

from hotline.agi.fastagi import AGISession, Handler
from hotline.background import Background
from hotline.config.settings import Settings
from hotline.errors import CallerHungUp
from hotline.ivr import flows
from hotline.ivr.agi_channel import AgiCallChannel
from hotline.ivr.ari_channel import AriCallChannel, CallHandler
from hotline.ivr.flows import IvrConfig, IvrServices
from hotline.ivr.journal import CallJournal, CallRecord
from hotline.ivr.port import CallChannel

log = logging.getLogger(__name__)

SPOOL_NAME = re.compile(r"[^A-Za-z0-9._-]")


class JournalWriter:
    """Journal rows that survive a database outage and a killed backend.

    A call's row goes to the local spool when the call starts (one small file, no database:
    nothing a caller waits on) and again when it ends; then it is written to the database in
    the background, and its spool file removed once the database has it. What the database
    did not take — it was away, or the process was killed with calls up — is written by
    :meth:`flush` (at start, every 30 s, and when the database is back): a row left
    "in-progress" by a killed process is stored as ``interrupted``. Writing a row is
    idempotent on the call id, so a row is never stored twice.

    Each process writes into a folder of its own under ``spool`` and holds a lock on it while
    it lives, so processes sharing the spool never take each other's calls that are still up:
    a folder whose lock can be taken belongs to a process that has ended, and is flushed whole.
    """

    def __init__(self, journal: CallJournal, spool: Path | None = None) -> None:
        self.journal = journal
        self.root = spool
        self.spool: Path | None = None
        self.background = Background("journal")
        self.failures = 0
        self._live: set[str] = set()  # calls of this process still up: not flushed
        self._lock: int | None = None
        if spool is not None:
            spool.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.spool = spool / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
            self.spool.mkdir(mode=0o700)
            self._lock = _locked(self.spool)
            assert self._lock is not None  # a folder just made is nobody else's

    def _file(self, call_id: str) -> Path:
        assert self.spool is not None
        return self.spool / f"{SPOOL_NAME.sub('_', call_id)[:100]}.json"

    def _keep(self, call: CallRecord) -> None:
        if self.spool is None:
            return
        try:
            path = self._file(call.call_id)
            tmp = path.with_suffix(".part")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # caller in clear
            with os.fdopen(fd, "w") as f:
                json.dump(to_json(call), f)
            tmp.replace(path)
        except OSError as exc:  # a full or read-only disk: the row still goes to the database
            log.warning("journal spool: %s", exc)

    def begin(self, call: CallRecord) -> None:
        self._live.add(call.call_id)
        call.observer = self._keep  # each step too: a kill leaves the row as far as it got
        self._keep(call)

    def submit(self, call: CallRecord) -> None:
        self._live.discard(call.call_id)
        call.observer = None
        self._keep(call)
        self.background.submit(self._write(call), f"journal row {call.call_id}")

    async def _write(self, call: CallRecord) -> None:
        try:
            await self.journal.record(call)
        except Exception as exc:
            self.failures += 1
            kept = "kept in the spool" if self.spool is not None else "lost"
            log.warning(
                "journal row for call %s not written (%s); %s",
                call.call_id,
                type(exc).__name__,
                kept,
            )
            return
        if self.spool is not None:
            self._file(call.call_id).unlink(missing_ok=True)

    def pending(self) -> int:
        return len(list(self.root.glob("*/*.json"))) if self.root is not None else 0

    async def flush(self) -> int:
        """Write what the spool holds for calls no longer up (this process's ended calls, and
        every call of a process that has ended); how many."""
        if self.root is None or self.spool is None:
            return 0
        written = await self._flush(self.spool, self._live)
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir() and p != self.spool):
            lock = _locked(folder)
            if lock is None:
                continue  # its process is alive
            try:
                written += await self._flush(folder, set())
                for leftover in folder.iterdir():
                    if leftover.name != LOCK:
                        break
                else:
                    (folder / LOCK).unlink(missing_ok=True)
                    folder.rmdir()
            finally:
                os.close(lock)
        if written:
            log.info("journal spool: %d rows written to the database", written)
        return written

    async def _flush(self, folder: Path, live: set[str]) -> int:
        written = 0
        for path in sorted(folder.glob("*.json")):
            try:
                call = from_json(json.loads(path.read_text()))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.error("journal spool: %s unreadable (%s); moved aside", path.name, exc)
                path.replace(path.with_suffix(".bad"))
                continue
            if call.call_id in live:
                continue
            if call.outcome == "in-progress":  # its process ended with the call up
                call.outcome = "interrupted"
            await self.journal.record(call)  # raises while the database is away: next time
            path.unlink(missing_ok=True)
            written += 1
        return written

    async def drain(self) -> None:
        await self.background.drain()

    def close(self) -> None:
        """Let go of this process's spool folder (what is left in it is flushed by the next)."""
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None


LOCK = "owner.lock"


def _locked(folder: Path) -> int | None:
    """An exclusive lock on the folder's lock file, or None when its owner still holds it."""
    fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def to_json(call: CallRecord) -> dict[str, object]:
    data = {f.name: getattr(call, f.name) for f in dataclasses.fields(call) if f.name != "observer"}
    data["steps"] = list(call.steps)
    data["started_at"] = call.started_at.isoformat()
    data["ended_at"] = call.ended_at.isoformat() if call.ended_at else None
    return data


def from_json(data: dict[str, object]) -> CallRecord:
    started, ended = data.pop("started_at"), data.pop("ended_at")
    return CallRecord(
        **data,  # type: ignore[arg-type]
        started_at=dt.datetime.fromisoformat(str(started)),
        ended_at=dt.datetime.fromisoformat(str(ended)) if ended else None,
    )


async def journaled(
    ch: CallChannel,
    script: str,
    channel: str,
    cfg: IvrConfig,
    services: IvrServices,
    writer: JournalWriter,
    now: Callable[[], dt.datetime],
) -> None:
    """Run the IVR for one call on any adapter; its journal row says how it went."""
    call = CallRecord(
        call_id=ch.call_id,
        script=script,
        caller=ch.caller,  # "" when withheld
        channel=channel,
        started_at=now(),
    )
    writer.begin(call)
    try:
        await flows.inbound(ch, cfg, services, call, now())
        call.outcome = "routed"
    except CallerHungUp:
        call.outcome = "hangup"
    except asyncio.CancelledError:
        call.outcome = "cancelled"
        raise
    except Exception as exc:
        call.outcome = "error"
        call.error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        call.ended_at = now()
        writer.submit(call)


def inbound_handler(
    cfg: IvrConfig, services: IvrServices, writer: JournalWriter, now: Callable[[], dt.datetime]
) -> Handler:
    """The FastAGI / process AGI handler for ``…/ivr``: the flows over the AGI adapter."""

    async def handle(session: AGISession) -> None:
        env = session.env
        await journaled(
            AgiCallChannel(session.channel), env.script, env.channel, cfg, services, writer, now
        )

    return handle


def stasis_handler(
    cfg: IvrConfig, services: IvrServices, writer: JournalWriter, now: Callable[[], dt.datetime]
) -> CallHandler:
    """The same flows for calls that enter the Stasis application (ARI)."""

    async def handle(call: AriCallChannel) -> None:
        await journaled(call, "ari", f"ari:{call.id}", cfg, services, writer, now)

    return handle


def ivr_config(settings: Settings) -> IvrConfig:
    ivr = settings.ivr
    return IvrConfig(
        menu=ivr.menu,
        utility_menu=ivr.utility_menu,
        timeout_ms=ivr.digit_timeout_ms,
        attempts=ivr.attempts,
        max_wait_seconds=ivr.max_wait_seconds,
        record_max_seconds=ivr.record_max_seconds,
        record_silence_seconds=ivr.record_silence_seconds,
        repeat_days=ivr.repeat_days,
        timezone=settings.city.timezone,
    )


def scripts(
    settings: Settings,
    services: IvrServices,
    writer: JournalWriter,
    now: Callable[[], dt.datetime],
) -> dict[str, Handler]:
    """The AGI scripts the backend serves, by path (FastAGI and process AGI alike)."""
    return {"ivr": inbound_handler(ivr_config(settings), services, writer, now)}
