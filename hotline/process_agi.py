"""``hotline-agi <script> [args…]``: classic process AGI, one process per call.

Asterisk starts this program for every ``AGI(/path/to/hotline-agi,ivr)``; it speaks AGI on
stdin/stdout through :class:`hotline.agi.process.Pyst2Runner` (the Asterisk layer) and runs
the same IVR as FastAGI, built by :mod:`hotline.bootstrap`. Without a server process it cannot
see who is logged in, nor fetch recordings after the call (it ends with the call): agents are
assumed available and voice messages stay on the switch for the backend's sweeper.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Sequence

from hotline import bootstrap, db
from hotline.agi.channel import AGIChannel
from hotline.agi.fastagi import ERROR_VARIABLE, AGISession, run_safely
from hotline.agi.process import Pyst2Runner
from hotline.clock import SystemClock
from hotline.config.settings import Settings, SettingsError, load_settings
from hotline.ivr.inbound import JournalWriter
from hotline.ivr.journal_sql import SqlCallJournal
from hotline.queue.presence import AssumeAvailable

log = logging.getLogger(__name__)

JOURNAL_GRACE = 2.0  # seconds the journal may hold the call at the end (Asterisk waits on us)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one call's script, then exit."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"hotline-agi: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log.level,
        stream=sys.stderr,
        format="hotline-agi %(levelname)s %(name)s: %(message)s",
    )
    try:
        runner = Pyst2Runner(script=args[0] if args else "", debug=settings.log.level == "DEBUG")
    except Exception as exc:  # no environment: not started by Asterisk
        log.error("no AGI environment on stdin: %s", exc)
        return 1
    session = AGISession(env=runner.env, channel=AGIChannel(runner))
    asyncio.run(_run(settings, runner.env.script, session))
    return 0


async def _run(settings: Settings, script: str, session: AGISession) -> None:
    engine = db.make_engine(settings.database.url, pool_size=1, timeout=settings.database.timeout)
    writer = JournalWriter(SqlCallJournal(engine))
    clock = SystemClock()
    try:
        tickets = bootstrap.ticket_service(settings, engine, clock)
        services = bootstrap.ivr_services(settings, tickets, AssumeAvailable())
        handler = bootstrap.agi_scripts(settings, services, writer, clock).get(script.strip("/"))
        if handler is None:
            log.warning("unknown script %r", script)
            await session.channel.set_variable(ERROR_VARIABLE, "unknown-script")
            return
        await run_safely(handler, session)
        # Asterisk waits for this process before the dialplan goes on: a slow database must
        # not become silence on the line, so the journal row gets a short grace, then is lost.
        try:
            await asyncio.wait_for(writer.drain(), JOURNAL_GRACE)
        except TimeoutError:
            log.warning(
                "call %s: journal row dropped (database slower than %.0fs)",
                session.call_id,
                JOURNAL_GRACE,
            )
    except Exception as exc:  # the last line of defence: never a traceback at the caller
        log.warning("call %s ended with %s", session.call_id, exc)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(engine.dispose(), JOURNAL_GRACE)


if __name__ == "__main__":
    sys.exit(main())
