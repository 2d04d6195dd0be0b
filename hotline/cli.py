"""The ``hotline`` command.

Exit codes: 0 success; 1 a step failed (the message says which and why); 2 bad configuration,
bad usage, or a database that needs ``hotline db upgrade``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

from hotline.config.settings import Settings, SettingsError, load_settings, unknown_env
from hotline.errors import NotMigrated

T = TypeVar("T")
EXIT_FAILED = 1
EXIT_CONFIG = 2


class CommandError(Exception):
    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def _setup_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log.level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if settings.log.level != "DEBUG":
        logging.getLogger("alembic").setLevel(logging.WARNING)  # one line per migration step


# -- serve / db -------------------------------------------------------------------------------
def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from redis.exceptions import RedisError
    from sqlalchemy.exc import SQLAlchemyError

    from hotline.app import serve
    from hotline.errors import NotMigrated
    from hotline.utility.directory import DirectoryError

    try:
        asyncio.run(serve(settings, exit_when_stuck=True))
    except NotMigrated as exc:
        raise CommandError(f"refusing to start: {exc}", EXIT_CONFIG) from None
    except DirectoryError as exc:  # utility.directory_file does not fit
        raise CommandError(f"refusing to start: {exc}", EXIT_CONFIG) from None
    except SQLAlchemyError as exc:
        raise CommandError(
            f"cannot start: database {_safe_url(settings.database.url)}: {_first_line(exc)}"
        ) from None
    except OSError as exc:  # a port taken, a folder we may not write: the text says which
        raise CommandError(f"cannot start: {_first_line(exc)}") from None
    except RedisError as exc:
        raise CommandError(
            f"cannot start: Redis {_safe_url(settings.redis.url)}: {_first_line(exc)}"
        ) from None
    return 0


def _safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(unparsable URL)"


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def cmd_db(settings: Settings, args: argparse.Namespace) -> int:
    from hotline import db

    async def run() -> str | None:
        engine = db.make_engine(settings.database.url)
        try:
            if args.action == "upgrade":
                await db.upgrade(engine)
            return await db.current_revision(engine)
        finally:
            await engine.dispose()

    from sqlalchemy.exc import SQLAlchemyError

    try:
        revision = asyncio.run(run())
    except (SQLAlchemyError, OSError) as exc:
        raise CommandError(
            f"database {_safe_url(settings.database.url)}: {_first_line(exc)}"
        ) from None
    head = db.head_revision()
    print(f"database revision: {revision or 'none'} (code head: {head})")
    return 0


# -- prompts ----------------------------------------------------------------------------------
def _build_prompts(settings: Settings) -> list[Any]:
    """The prompt texts, and the names of the units in the database (if it is there)."""
    from hotline.ivr.prompts import PromptError, build_prompts, unit_texts
    from hotline.ticketing.users import unit_names

    try:
        units = _with_engine(settings, unit_names)
    except CommandError as exc:
        print(f"hotline: unit names not spoken ({exc})", file=sys.stderr)
        units = {}
    try:
        return build_prompts(settings.prompts, unit_texts(units))
    except PromptError as exc:
        raise CommandError(str(exc)) from None


def cmd_prompts(settings: Settings, args: argparse.Namespace) -> int:
    built = _build_prompts(settings)
    for b in built:
        print(f"{b.source:9} {b.path}")
    if args.lab:
        lab = _lab(settings)
        lab.install_prompts(settings.prompts.build_dir)
        print(f"installed into lab {settings.lab.instance}")
    return 0


# -- lab --------------------------------------------------------------------------------------
def _lab(settings: Settings):  # type: ignore[no-untyped-def]
    from hotline.lab.instance import Lab

    return Lab(settings)


def lab_up(settings: Settings) -> None:
    from hotline.lab.root import LabError, require_root_user

    lab = _lab(settings)
    try:
        require_root_user()
        _build_prompts(settings)
        status = lab.up(settings.prompts.build_dir)
    except LabError as exc:
        raise CommandError(f"lab: {exc}") from None
    print(
        f"lab {settings.lab.instance}: Asterisk {status.version} running (pid {status.pid}); "
        f"SIP udp 127.0.0.1:{settings.lab.sip_port}, ARI {lab.ari_url}, "
        f"AMI 127.0.0.1:{settings.lab.ami_port}"
    )


def cmd_lab(settings: Settings, args: argparse.Namespace) -> int:
    from hotline.lab.root import LabError

    lab = _lab(settings)
    try:
        if args.action == "up":
            lab_up(settings)
        elif args.action == "down":
            was = lab.down()
            print(f"lab {settings.lab.instance}: " + ("stopped" if was else "was not running"))
        elif args.action == "status":
            st = lab.status()
            if not st.running:
                print(f"lab {settings.lab.instance}: not running")
                return 3
            print(
                f"lab {settings.lab.instance}: running, pid {st.pid}, "
                f"{'Asterisk ' + st.version if st.version else st.detail}"
            )
            print(f"root {lab.root}\nhome {lab.home}")
        elif args.action == "logs":
            return _lab_logs(lab, args)
        elif args.action == "call":
            return _lab_call(settings, lab, args)
    except LabError as exc:
        raise CommandError(f"lab: {exc}") from None
    return 0


def _lab_logs(lab, args: argparse.Namespace) -> int:  # type: ignore[no-untyped-def]
    sys.stdout.write(lab.tail(lab.log_file, args.lines))
    if not args.follow:
        return 0
    with open(lab.log_file, errors="replace") as fh:
        fh.seek(0, 2)
        try:
            while True:
                line = fh.readline()
                if line:
                    sys.stdout.write(line)
                    sys.stdout.flush()
                else:
                    time.sleep(0.3)
        except KeyboardInterrupt:
            return 0


def _lab_call(settings: Settings, lab, args: argparse.Namespace) -> int:  # type: ignore[no-untyped-def]
    from hotline.lab.calls import observe_call
    from hotline.lab.sipp import CallPlan

    if not lab.status().running:
        raise CommandError("lab: not running; start it with `hotline lab up`")
    caller = args.caller or "138" + "".join(random.choice("0123456789") for _ in range(8))
    try:
        plan = CallPlan(
            number=args.number, caller=caller, dtmf=args.dtmf or "", hold_ms=args.hold_ms
        )
    except ValueError as exc:
        raise CommandError(str(exc), EXIT_CONFIG) from None
    print(f"calling {plan.number} from {plan.caller}, DTMF {plan.dtmf or '(none)'} …")
    observed = asyncio.run(observe_call(lab, plan))
    for line in observed.summary():
        print(line)
    return 0 if observed.call.ok else EXIT_FAILED


# -- run (the main job) -----------------------------------------------------------------------
def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    args.action = "upgrade"
    cmd_db(settings, args)
    if args.no_lab:
        _build_prompts(settings)
    else:
        lab_up(settings)  # builds the prompts (unit names included) into the lab
        settings = _with_lab_ari(settings)
    http = f"http://{settings.server.http_host}:{settings.server.http_port}"
    print(
        "\n"
        "  12345 hotline backend is starting.\n"
        f"  FastAGI  agi://{settings.server.agi_host}:{settings.server.agi_port}/ivr?secret=…"
        "  (the secret: server.agi_secret; the lab's dialplan has it)\n"
        f"  Health   {http}/healthz\n"
        f"  Console  {http}/console/   (坐席台: sign in with an agent's token and extension)\n"
        "  Place a citizen call into the lab from another terminal:\n"
        "      .venv/bin/hotline lab call 12345 --dtmf 51   (utility emergency: water, to the "
        "queue at priority 9)\n"
        "      .venv/bin/hotline lab call 12345 --dtmf 1    (consultation: with no agent on "
        "duty the IVR offers a voice message)\n"
        "  Put an agent on duty (the console signs in at an extension, or the API does):\n"
        "      T=$(.venv/bin/hotline users add --name 坐席 --role agent | tail -1)\n"
        f'      curl -H "Authorization: Bearer $T" -d \'{{"extension": "8001"}}\' '
        f"{http}/api/v1/agents/me/login\n"
        "  then key 1 reaches the queue and rings PJSIP/8001 (a softphone registered there\n"
        "  with its password from the lab's credentials.json answers; the console pops).\n"
        "  Watch Asterisk:  .venv/bin/hotline lab logs --follow\n"
        "  Ticketing API:   .venv/bin/hotline units add --id water --name 市水务局\n"
        "                   .venv/bin/hotline users add --name 王 --role dispatcher\n"
        f"                   (prints a bearer token; API at {http}/api/v1/, "
        f"OpenAPI at {http}/api/v1/openapi.json)\n"
        "  Stop with Ctrl-C (the lab stops with the backend).\n",
        flush=True,
    )
    try:
        return cmd_serve(settings, args)
    finally:
        if not args.no_lab:
            _lab(settings).down()
            print(f"lab {settings.lab.instance}: stopped")


# -- sla --------------------------------------------------------------------------------------
def cmd_sla(settings: Settings, args: argparse.Namespace) -> int:
    import datetime as dt
    import zoneinfo

    from hotline.bootstrap import sla_engine
    from hotline.errors import CalendarError
    from hotline.ticketing.sla import Stage

    if args.action == "resync":
        return cmd_sla_resync(settings, args)
    try:
        start = dt.datetime.fromisoformat(args.start)
    except ValueError:
        raise CommandError(
            f"--from {args.start!r} is not an ISO-8601 date-time (e.g. 2026-09-30T16:00+08:00)",
            EXIT_CONFIG,
        ) from None
    if start.tzinfo is None:
        start = start.replace(tzinfo=zoneinfo.ZoneInfo(settings.city.timezone))
    try:
        due = sla_engine(settings).due(Stage(args.stage), start)
    except CalendarError as exc:
        raise CommandError(str(exc)) from None
    print(due.isoformat())
    return 0


# -- units, users, api -------------------------------------------------------------------------
def _with_engine(settings: Settings, work: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``work(engine)`` on a migrated database, with one-line errors."""
    from sqlalchemy.exc import SQLAlchemyError

    from hotline import db

    async def run() -> T:
        engine = db.make_engine(settings.database.url)
        try:
            await db.check_migrated(engine)
            return await work(engine)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except NotMigrated as exc:
        raise CommandError(str(exc), EXIT_CONFIG) from None
    except (SQLAlchemyError, OSError) as exc:
        raise CommandError(
            f"database {_safe_url(settings.database.url)}: {_first_line(exc)}"
        ) from None


def cmd_units(settings: Settings, args: argparse.Namespace) -> int:
    from hotline.errors import UserError
    from hotline.ticketing.users import add_unit, unit_names

    if args.action == "add":
        try:
            _with_engine(settings, lambda e: add_unit(e, args.id, args.name, args.contact))
        except UserError as exc:
            raise CommandError(str(exc), EXIT_CONFIG) from None
        print(f"unit {args.id}: {args.name}")
    else:
        for unit_id, name in sorted(_with_engine(settings, unit_names).items()):
            print(f"{unit_id}\t{name}")
    return 0


def cmd_users(settings: Settings, args: argparse.Namespace) -> int:
    from hotline.errors import UserError
    from hotline.ticketing.model import Role
    from hotline.ticketing.users import add_user, list_users, revoke_token

    if args.action == "revoke":
        if not _with_engine(settings, lambda e: revoke_token(e, args.id)):
            raise CommandError(f"no user {args.id!r}", EXIT_CONFIG)
        print(
            f"user {args.id}: token revoked (open consoles are closed within "
            f"{settings.server.console_token_recheck:.0f} s)"
        )
        return 0
    if args.action == "list":
        for user_id, name, role, unit, may_unmask in _with_engine(settings, list_users):
            print(f"{user_id}\t{role}\t{unit or '-'}\t{'may-unmask' if may_unmask else ''}\t{name}")
        return 0
    try:
        user_id, token = _with_engine(
            settings,
            lambda e: add_user(
                e, args.name, Role(args.role), args.unit or None, args.may_unmask, phone=args.phone
            ),
        )
    except UserError as exc:
        raise CommandError(str(exc), EXIT_CONFIG) from None
    print(f"user {user_id} ({args.role}{' of ' + args.unit if args.unit else ''}): {args.name}")
    print(f"token (shown once; send as 'Authorization: Bearer <token>'):\n{token}")
    return 0


def cmd_queue_log(settings: Settings, args: argparse.Namespace) -> int:
    """The queue log as Asterisk's queue_log lines, for call-centre reporting tools."""
    import datetime as dt

    from hotline.queue.log import queue_log_line, read

    def day(text: str | None, key: str) -> dt.datetime | None:
        if text is None:
            return None
        try:
            parsed = dt.datetime.fromisoformat(text)
        except ValueError:
            raise CommandError(f"--{key}: not a date or time: {text!r}", EXIT_CONFIG) from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)

    since, until = day(args.since, "since"), day(args.until, "until")
    rows = _with_engine(settings, lambda e: read(e, call_id=args.call, since=since, until=until))
    for row in rows:
        print(queue_log_line(row))
    return 0


def cmd_sla_resync(settings: Settings, args: argparse.Namespace) -> int:
    """``hotline sla resync``: every open ticket's reminders and overdue marks in step."""
    from hotline import bootstrap
    from hotline.clock import SystemClock
    from hotline.ticketing.sla_watch import resync

    count = _with_engine(
        settings, lambda e: resync(bootstrap.ticket_service(settings, e, SystemClock()))
    )
    print(f"SLA timers in step for {count} open tickets")
    return 0


def cmd_api(settings: Settings, args: argparse.Namespace) -> int:
    from hotline.ticketing import openapi
    from hotline.ticketing.transitions import mermaid

    if args.action == "diagram":  # the README's state diagrams, drawn from the table
        sys.stdout.write(mermaid())
        return 0
    text = openapi.render()
    if args.write:
        openapi.FILE.write_text(text, encoding="utf-8")
        print(f"wrote {openapi.FILE}")
    else:
        sys.stdout.write(text)
    return 0


def _with_lab_ari(settings: Settings) -> Settings:
    """The lab's ARI for the backend (voice messages, the Stasis IVR) and the secret its
    dialplan puts in the AGI URL (server.agi_secret), each unless set already."""
    import dataclasses

    lab = _lab(settings)
    creds = lab.credentials()
    if not settings.server.agi_secret:
        server = dataclasses.replace(settings.server, agi_secret=creds.agi_secret)
        settings = dataclasses.replace(settings, server=server)
    elif settings.server.agi_secret != creds.agi_secret:
        print(
            f"hotline: warning: server.agi_secret is not the secret lab {settings.lab.instance} "
            f"puts in its AGI URL ({lab.home / 'credentials.json'}): its calls will be refused",
            file=sys.stderr,
        )
    if settings.ari.url:
        return settings
    ari = dataclasses.replace(
        settings.ari, url=lab.ari_url, user=creds.ari_user, password=creds.ari_password
    )
    return dataclasses.replace(settings, ari=ari)


def cmd_config(settings: Settings, args: argparse.Namespace) -> int:
    from hotline.config.settings import shown

    for section in fields(settings):
        part = getattr(settings, section.name)
        print(f"[{section.name}]")
        for f in fields(part):
            value = shown(f, getattr(part, f.name))
            value = dict(value) if isinstance(value, dict) else value
            print(f"{f.name} = {str(value) if isinstance(value, Path) else value!r}")
        print()
    return 0


# -- argument parsing -------------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hotline", description="12345 hotline backend")
    p.add_argument("--config", metavar="FILE", help="TOML settings file (or HOTLINE_CONFIG)")
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("serve", help="run the backend (HTTP + FastAGI)")
    run = sub.add_parser("run", help="the main job: prompts, database, lab, backend")
    run.add_argument("--no-lab", action="store_true", help="do not start the Asterisk lab")

    dbp = sub.add_parser("db", help="database migrations")
    dbp.add_argument("action", choices=["upgrade", "current"])

    pr = sub.add_parser("prompts", help="IVR prompts")
    pr.add_argument("action", choices=["build"])
    pr.add_argument("--lab", action="store_true", help="also install them into the lab")

    lab = sub.add_parser("lab", help="the Asterisk lab (real Asterisk + SIPp on loopback)")
    lab_sub = lab.add_subparsers(dest="action", required=True)
    lab_sub.add_parser("up", help="build the root if needed, render config, start Asterisk")
    lab_sub.add_parser("down", help="stop Asterisk")
    lab_sub.add_parser("status", help="is it running (exit 3 when not)")
    logs = lab_sub.add_parser("logs", help="Asterisk's messages log")
    logs.add_argument("-n", "--lines", type=int, default=40)
    logs.add_argument("-f", "--follow", action="store_true")
    call = lab_sub.add_parser("call", help="place a citizen call with SIPp")
    call.add_argument("number", help="number to dial, e.g. 12345")
    call.add_argument("--dtmf", default="", help="keys to press after the answer (RFC 2833)")
    call.add_argument("--caller", default="", help="caller number (default: random 138…)")
    call.add_argument("--hold-ms", type=int, default=12000, help="listen after the last key (ms)")

    from hotline.config.settings import RulesSettings
    from hotline.ticketing.sla import Stage, limits

    stage_help = "\n".join(
        f"  {stage.value:<20} {limit.describe()}"
        for stage, limit in limits(RulesSettings()).items()
    )
    sla = sub.add_parser("sla", help="deadlines on the working calendar; the SLA watch's timers")
    sla_sub = sla.add_subparsers(dest="action", required=True)
    sla_sub.add_parser(
        "resync", help="bring every open ticket's timers in step (after an upgrade, or [watch])"
    )
    due = sla_sub.add_parser(
        "due",
        help="print the deadline of a stage",
        description="Print the deadline of STAGE started at --from, as ISO-8601 in the city's "
        "time zone. Defaults from RULES.md; [rules] in the settings overrides them.",
        epilog="stages:\n" + stage_help,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    due.add_argument("--stage", required=True, choices=[s.value for s in Stage], metavar="STAGE")
    due.add_argument(
        "--from",
        dest="start",
        required=True,
        metavar="ISO-8601",
        help="start instant, e.g. 2026-09-30T16:00+08:00 (no offset: the city's time zone)",
    )

    from hotline.ticketing.model import Role

    units = sub.add_parser("units", help="the linked units (the unit directory)")
    units_sub = units.add_subparsers(dest="action", required=True)
    unit_add = units_sub.add_parser("add", help="add or rename a unit")
    unit_add.add_argument("--id", required=True, help="short id, e.g. water")
    unit_add.add_argument("--name", required=True, help="e.g. 市水务局")
    unit_add.add_argument("--contact", default="", help="phone of the unit (internal notices)")
    units_sub.add_parser("list")

    users = sub.add_parser("users", help="API users and their bearer tokens")
    users_sub = users.add_subparsers(dest="action", required=True)
    user_add = users_sub.add_parser("add", help="create a user and print its token once")
    user_add.add_argument("--name", required=True)
    user_add.add_argument("--role", required=True, choices=[r.value for r in Role])
    user_add.add_argument("--unit", default="", help="the unit of a unit_handler/unit_leader")
    user_add.add_argument(
        "--may-unmask",
        action="store_true",
        help="a unit user who may see citizens' identity, logged (rule Y-1)",
    )
    user_add.add_argument(
        "--phone", default="", help="mobile number for the emergency plan's SMS alerts (E-2)"
    )
    users_sub.add_parser("list")
    revoke = users_sub.add_parser("revoke", help="revoke a user's token (its consoles close)")
    revoke.add_argument("--id", required=True, help="the user id (users list)")

    qlog = sub.add_parser("queue-log", help="the queue log as Asterisk queue_log lines")
    qlog.add_argument("--since", help="from this date or time (ISO 8601; UTC unless given)")
    qlog.add_argument("--until", help="up to (not including) this date or time")
    qlog.add_argument("--call", help="one call's records (its call id)")

    api = sub.add_parser("api", help="the HTTP API's documents")
    api_sub = api.add_subparsers(dest="action", required=True)
    spec = api_sub.add_parser("openapi", help="print the OpenAPI 3.1 document")
    spec.add_argument("--write", action="store_true", help="refresh the served file")
    api_sub.add_parser("diagram", help="the ticket and assignment state diagrams (Mermaid)")

    cfg = sub.add_parser("config", help="settings")
    cfg.add_argument("action", choices=["show"])
    return p


COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
    "serve": cmd_serve,
    "run": cmd_run,
    "db": cmd_db,
    "prompts": cmd_prompts,
    "lab": cmd_lab,
    "config": cmd_config,
    "sla": cmd_sla,
    "units": cmd_units,
    "users": cmd_users,
    "api": cmd_api,
    "queue-log": cmd_queue_log,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
    except SettingsError as exc:
        print(f"hotline: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    for name in unknown_env():
        print(f"hotline: warning: {name} names no setting (ignored)", file=sys.stderr)
    _setup_logging(settings)
    try:
        return COMMANDS[args.command](settings, args)
    except CommandError as exc:
        print(f"hotline: {exc}", file=sys.stderr)
        return exc.code
    except OSError as exc:  # a file, port or directory we cannot use: say which, no traceback
        print(f"hotline: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
