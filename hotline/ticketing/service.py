"""The ticketing service: who may do what, to which ticket, in one transaction.

Each call opens a unit of work, loads the ticket, checks the actor's role (the table in
``actions.py``) and unit, runs the aggregate's action, saves ticket and events, and commits —
or rolls everything back. Views mask the citizen's identity for unit roles (rule Y-1); every
look at an identity in clear is written to ``identity_access``.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from hotline.clock import Clock
from hotline.errors import (
    DuplicateIntake,
    Forbidden,
    NotFound,
    PayloadError,
    StaleTicket,
    VersionRequired,
)
from hotline.jobs import Event, Outbox
from hotline.ticketing.actions import (
    ACTIONS,
    OFFICE,
    REGISTER_FIELDS,
    REGISTER_ROLES,
    integral,
)
from hotline.ticketing.model import (
    Actor,
    CallbackResult,
    Channel,
    Citizen,
    Role,
    TicketError,
    TicketEvent,
    TicketState,
    TicketType,
)
from hotline.ticketing.queries import Summary, Task
from hotline.ticketing.repository import TicketRepository, Timers, UnitOfWork, city_day
from hotline.ticketing.sla import SlaEngine
from hotline.ticketing.ticket import Ctx, ThreeWayCall, Ticket

log = logging.getLogger(__name__)

IVR_ACTOR = Actor("ivr", Role.AGENT)  # the IVR registers voice messages on the office's behalf
UTILITY_ACTOR = Actor("three-way-call", Role.DISPATCHER)  # H-6: put through, assigned at once

STAFFED_TTL = 30.0  # seconds a unit found staffed (D-7) is not checked again
EARLIEST, LATEST = 2000, 2100  # years an upstream deadline may name
MAX_TASK_ID = 2**31 - 1  # task ids are 32-bit integers in every database we run on
WITHHELD_NOTE = "来电号码未显示，无法回电：请听录音后按留言内容处理。"  # caller ID withheld
UNKNOWN_NOTE = "来电号码未知（录音名未带号码），无法回电：请听录音后按留言内容处理。"
B3_NOTE = "水电气抢修件：单位已反馈办理结果，请电话回访市民（规则 B-3）。"
VOICE_MESSAGE_LEFT = "VoiceMessageLeft"  # event: a message on the switch for a ticket
CALLBACK_DUE = "CallbackDue"  # event: a ticket is due its satisfaction callback (B-1)
SURVEY_ACTOR = Actor("satisfaction-survey", Role.REVIEWER)  # B-1: the automated callback
SURVEY_NOTE = "市民回访不满意（未说明原因）。"
SURVEYED_NOTE = "已由自动电话回访完成。"
AGAIN_NOTE = "重办后回访仍不满意：请热线办决定（规则 B-2）。"


def callback_due(ticket: Ticket, now: dt.datetime) -> Event:
    """The event that starts a ticket's callback campaign; one per callback cycle."""
    cycle = ticket.rehandled + 1
    deadline = ticket.callback_deadline.due if ticket.callback_deadline else None
    return Event(
        CALLBACK_DUE,
        f"{ticket.id}:{cycle}",
        {
            "ticket_id": ticket.id,
            "number": ticket.number,
            "cycle": cycle,
            "channel": ticket.channel.value,
            "utility": bool(ticket.utility),
            "reachable": bool(ticket.citizen.phone),  # no number: nobody to call or text
            "units": sorted({a.unit_id for a in ticket.assignments if a.state.value == "accepted"}),
            "ready": now.isoformat(),
            "deadline": deadline.isoformat() if deadline else None,
        },
    )


@dataclass(frozen=True, slots=True)
class Registered:
    ticket: Ticket
    created: bool  # False: the same upstream id came again (rule I-2)


def visible_to(actor: Actor, ticket: Ticket) -> bool:
    """The office sees every ticket; a unit only those it holds now (rule Y-1) — not after
    its return was accepted, and an internal transfer only if it is the receiving unit."""
    if actor.role in OFFICE:
        return True
    if not actor.role.in_unit:
        return False
    if ticket.internal is not None:
        return ticket.internal.unit_id == actor.unit_id
    return any(a.unit_id == actor.unit_id and a.live for a in ticket.assignments)


def event_visible_to(actor: Actor, event: TicketEvent) -> bool:
    """A unit reads the events about its own part of the ticket and the registration."""
    if not actor.role.in_unit:
        return True
    data = event.data
    return (
        event.action == "register"
        or data.get("unit") == actor.unit_id
        or actor.unit_id in (data.get("units") or [])
    )


class TicketService:
    def __init__(
        self,
        engine: AsyncEngine,
        sla: SlaEngine,
        clock: Clock,
        timezone: str,
        routing: Mapping[str, str] | None = None,
        outbox: Outbox | None = None,
        watch: Timers | None = None,
    ) -> None:
        self.engine = engine
        self.outbox = outbox  # domain events and follow-up jobs commit with the change
        self.watch = watch  # the SLA timers commit with the change too
        self.sla = sla
        self.clock = clock
        self.timezone = timezone
        self.routing = dict(routing or {})
        self._staffed: dict[str, float] = {}  # unit -> monotonic time until which it is known

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.engine, self.outbox, self.watch)

    def _ctx(self, actor: Actor) -> Ctx:
        return Ctx(actor, self.clock.now(), self.sla)

    # -- intake -------------------------------------------------------------------------------
    async def register(self, actor: Actor, payload: Mapping[str, Any]) -> Registered:
        if actor.role not in REGISTER_ROLES:
            raise Forbidden("role_forbidden", f"the {actor.role.value} role does not register")
        unknown = set(payload) - set(REGISTER_FIELDS)
        if unknown:
            raise PayloadError(sorted(unknown)[0], "is not a field of register")
        p = {name: f.parse(name, payload.get(name)) for name, f in REGISTER_FIELDS.items()}
        upstream_due = _parse_instant(p["upstream_due"], "upstream_due")
        ctx = self._ctx(actor)
        async with self.uow() as uow:
            channel: Channel = p["channel"]
            if p["upstream_id"]:  # rule I-2: re-delivery returns the ticket it made
                existing = await uow.tickets.by_upstream(channel, p["upstream_id"])
                if existing is not None:
                    return Registered(existing, created=False)
            repeat_of = await self._repeat_id(uow.tickets, p["repeat_of"])
            number = await uow.tickets.next_number(city_day(ctx.now, self.timezone))
            ticket = Ticket.register(
                ctx,
                id=str(uuid.uuid4()),
                number=number,
                type=p["type"],
                channel=channel,
                citizen=Citizen(p["citizen_name"], p["citizen_phone"], p["citizen_id_number"]),
                subject=p["subject"],
                content=p["content"],
                upstream_id=p["upstream_id"],
                upstream_due=upstream_due,
                category=p["category"],
                address=p["address"],
                publish_consent=p["publish_consent"],
                repeat_of=repeat_of,
                utility=p["utility"],
                call_id=p["call_id"],
                ivr_path=p["ivr_path"],
            )
            try:
                await uow.tickets.add(ticket)
            except DuplicateIntake:  # a concurrent delivery of the same upstream id won
                await uow.rollback()
                async with self.uow() as again:
                    found = await again.tickets.by_upstream(channel, p["upstream_id"])
                if found is None:
                    raise
                return Registered(found, created=False)
            await uow.commit()
        return Registered(ticket, created=True)

    async def register_voice_message(
        self,
        call_id: str,
        phone: str | None,
        recording: str,
        seconds: float,
        request_type: TicketType,
        *,
        stored: str = "",
    ) -> Ticket:
        """A voice message left at the IVR: a ticket on the phone channel with the recording
        attached, and a call-back task for the office — once per call (keyed by the call id).
        ``stored``: the message's name on the switch, taken in by a durable job that commits
        with the ticket. ``phone`` None: the number is not known (an older recording name)."""
        upstream = f"voicemail:{call_id}"
        try:
            return await self._register_voice_message(
                upstream, phone, recording, seconds, request_type, stored
            )
        except DuplicateIntake:  # another node or job registered this call just now
            async with self.uow() as uow:
                existing = await uow.tickets.by_upstream(Channel.PHONE, upstream)
            if existing is None:
                raise
            return existing

    async def _register_voice_message(
        self,
        upstream: str,
        phone: str | None,
        recording: str,
        seconds: float,
        request_type: TicketType,
        stored: str,
    ) -> Ticket:
        ctx = self._ctx(IVR_ACTOR)
        async with self.uow() as uow:
            existing = await uow.tickets.by_upstream(Channel.PHONE, upstream)
            if existing is not None:
                return existing
            number = await uow.tickets.next_number(city_day(ctx.now, self.timezone))
            ticket = Ticket.register(
                ctx,
                id=str(uuid.uuid4()),
                number=number,
                type=request_type,
                channel=Channel.PHONE,
                citizen=Citizen("", phone or "", ""),
                subject="语音留言",
                content=(
                    f"语音留言（{seconds:.0f} 秒），请听录音后回电。"
                    if phone
                    else f"语音留言（{seconds:.0f} 秒），来电号码未显示，无法回电；请听录音后处理。"
                ),
                upstream_id=upstream,
                recordings=(recording,),
            )
            await uow.tickets.add(ticket)
            # the task says what the office can do: call back, or not (withheld number)
            note = "" if phone else (UNKNOWN_NOTE if phone is None else WITHHELD_NOTE)
            await uow.tickets.add_task("voicemail_callback", ticket.id, ctx.now, note)
            if stored:  # the recording is taken in from the switch after the commit, durably
                uow.publish(Event(VOICE_MESSAGE_LEFT, stored, {"stored": stored}))
            await uow.commit()
        return ticket

    async def tasks(self, actor: Actor, open_only: bool = True) -> list[Task]:
        if actor.role not in OFFICE:
            raise Forbidden("role_forbidden", f"the {actor.role.value} role sees no office tasks")
        async with self.uow() as uow:
            return await uow.queries.tasks(open_only)

    async def complete_task(self, actor: Actor, task_id: int, note: str) -> None:
        if actor.role not in OFFICE:
            raise Forbidden("role_forbidden", f"the {actor.role.value} role has no office tasks")
        if not 0 < task_id <= MAX_TASK_ID:
            raise NotFound(f"open task {task_id}")
        async with self.uow() as uow:
            if not await uow.tickets.complete_task(task_id, actor.user_id, self.clock.now(), note):
                raise NotFound(f"open task {task_id}")
            await uow.commit()

    async def _repeat_id(self, repo: TicketRepository, number: str | None) -> str | None:
        if not number:
            return None
        try:
            return (await repo.get_by_number(number)).id
        except NotFound:
            raise TicketError("unknown_repeat", f"repeat_of: no ticket {number}", "D-6") from None

    # -- actions ------------------------------------------------------------------------------
    async def act(self, actor: Actor, ref: str, name: str, payload: Mapping[str, Any]) -> Ticket:
        action = ACTIONS.get(name)
        if action is None:
            raise NotFound(f"action {name}")
        raw = payload.get("version")
        if raw is None:
            raise VersionRequired("send the ticket's version you acted on (optimistic locking)")
        version = integral(raw)
        if version is None:  # 1.5, "3", true: a version, but not one a ticket ever had
            raise PayloadError("version", "must be an integer")
        if actor.role not in action.roles:
            raise Forbidden("role_forbidden", f"a {actor.role.value} may not {name}", action.rule)
        args = action.parse(payload)
        async with self.uow() as uow:
            ticket = await self._load(uow.tickets, ref)
            if not visible_to(actor, ticket):
                raise NotFound(ref)  # a unit does not learn other units' tickets exist
            if ticket.version != version:
                raise StaleTicket(f"ticket is at version {ticket.version}, not {version}")
            if name == "stop_repeat":
                args["timely_replies"] = await self._timely_replies(uow, ticket)
            named = args.get("units") or args.get("reassign_to") or []
            if name == "emergency_decision" and args.get("unit"):
                named = [args["unit"]]  # rule E-3: the unit whose handler is told
            await self._check_units(uow, named)
            action.call(ticket, self._ctx(actor), args)
            _log_calendar_gaps(ticket)
            await self._callback_due(uow, ticket)
            await uow.tickets.save(ticket)
            await uow.commit()
        return ticket

    async def _callback_due(self, uow: UnitOfWork, ticket: Ticket) -> None:
        """The ticket entered CALLBACK: the campaign starts (B-1); a utility emergency is
        also the office's telephone task (B-3)."""
        entered = any(
            e.action == "settle"
            and e.after == TicketState.CALLBACK.value
            and e.before != TicketState.CALLBACK.value
            for e in ticket.pending
        )
        if not entered:
            return
        if ticket.utility:
            await uow.tickets.add_task("phone_callback", ticket.id, self.clock.now(), B3_NOTE)
        uow.publish(callback_due(ticket, self.clock.now()))

    async def _check_units(self, uow: UnitOfWork, wanted: list[str]) -> None:
        """Rules D-2, D-7: only linked units, each with a responsible leader and a handler."""
        now = self.clock.monotonic()
        unknown = [u for u in wanted if u not in self._staffed or self._staffed[u] < now]
        if not unknown:
            return
        roles = await uow.queries.unit_roles(unknown)
        for unit in unknown:
            if unit not in roles:
                raise TicketError("unknown_unit", f"{unit} is not a linked unit", "D-2")
            missing = {"unit_leader", "unit_handler"} - roles[unit]
            if missing:
                raise TicketError(
                    "unit_unstaffed",
                    f"{unit} names no {' and no '.join(sorted(missing))} yet",
                    "D-7",
                )
            self._staffed[unit] = now + STAFFED_TTL  # a staffed unit is not asked again soon

    def suggested_units(self, ticket: Ticket) -> list[str]:
        """Rule D-2: the routing table's units for the ticket's category."""
        units_text = self.routing.get(ticket.category, "")
        return [u.strip() for u in units_text.split(",") if u.strip()]

    async def _timely_replies(self, uow: UnitOfWork, ticket: Ticket) -> int:
        """Rule D-6: the most replies one unit gave in time to the same request, over every
        ticket linked to it (however the links were made: a chain or a star)."""
        root, seen = ticket, {ticket.id}
        while root.repeat_of and root.repeat_of not in seen and len(seen) < 500:
            seen.add(root.repeat_of)
            root = await uow.tickets.get(root.repeat_of)
        family: dict[str, Ticket] = {root.id: root}
        frontier = [root.id]
        while frontier and len(family) < 500:
            children = await uow.queries.linked(frontier)
            frontier = [c.id for c in children if c.id not in family]
            family.update((c.id, c) for c in children)
        per_unit: dict[str, int] = {}
        for earlier in family.values():
            if earlier.id == ticket.id:
                continue
            for a in earlier.assignments:
                if a.handle.late is False:
                    per_unit[a.unit_id] = per_unit.get(a.unit_id, 0) + 1
        return max(per_unit.values(), default=0)

    # -- reading ------------------------------------------------------------------------------
    async def _load(self, repo: TicketRepository, ref: str) -> Ticket:
        try:
            return await repo.get(ref)
        except NotFound:
            return await repo.get_by_number(ref)

    async def get(self, actor: Actor, ref: str) -> Ticket:
        async with self.uow() as uow:
            ticket = await self._load(uow.tickets, ref)
            if not visible_to(actor, ticket):
                raise NotFound(ref)
            if actor.role in OFFICE:  # rule Y-1: the office's view shows identity; on record
                await self._log_access(uow, actor, ticket, "office view")
                await uow.commit()
        return ticket

    async def events(self, actor: Actor, ref: str) -> tuple[Ticket, list[TicketEvent]]:
        """The ticket and the events the actor may read (the ticket's citizen is what a
        masked view scrubs from them)."""
        async with self.uow() as uow:
            ticket = await self._load(uow.tickets, ref)
            if not visible_to(actor, ticket):
                raise NotFound(ref)
            events = await uow.tickets.events(ticket.id)
        return ticket, [e for e in events if event_visible_to(actor, e)]

    async def identity(self, actor: Actor, ref: str, why: str, may_unmask: bool) -> Citizen:
        """Rule Y-1: a unit sees identity only with the permission, and says why."""
        if actor.role.in_unit and not may_unmask:
            raise Forbidden("unmask_forbidden", "this user may not see citizens' identity", "Y-1")
        if actor.role not in OFFICE and not actor.role.in_unit:
            raise Forbidden("role_forbidden", f"the {actor.role.value} role sees no tickets", "Y-1")
        if not why.strip():
            raise PayloadError("why", "say why the identity is needed (it is logged)")
        async with self.uow() as uow:
            ticket = await self._load(uow.tickets, ref)
            if not visible_to(actor, ticket):
                raise NotFound(ref)
            await self._log_access(uow, actor, ticket, why)
            await uow.commit()
        return ticket.citizen

    async def recording_access(
        self, actor: Actor, ref: str, name: str, available: Callable[[], bool]
    ) -> None:
        """Rule Y-1: a voice message carries the caller's voice and number — the office's
        only, only as part of its ticket, and every listen is on record."""
        if actor.role not in OFFICE:
            raise Forbidden("role_forbidden", "voice messages are for the office", "Y-1")
        async with self.uow() as uow:
            ticket = await self._load(uow.tickets, ref)
            if not visible_to(actor, ticket) or name not in ticket.recordings:
                raise NotFound(f"recording {name} of {ref}")
            if not available():
                raise NotFound(f"recording {name} (not fetched from the switch yet)")
            await self._log_access(uow, actor, ticket, f"voice message {name}")
            await uow.commit()

    async def _log_access(self, uow: UnitOfWork, actor: Actor, ticket: Ticket, why: str) -> None:
        await uow.tickets.log_identity_access(
            ticket.id, actor.user_id, actor.role.value, self.clock.now(), why
        )

    async def three_way_call(self, call: ThreeWayCall) -> Ticket | None:
        """Rule H-6: a conference with a utility, put on the ticket registered on the call
        (None: no ticket on it yet). Connected, the ticket goes to the utility's unit."""
        async with self.uow() as uow:
            ticket = await uow.queries.by_call(call.call_id)
            if ticket is None:
                return None
            ticket = await uow.tickets.get(ticket.id)  # with its version, for the save
            if call.connected is not None and ticket.state is TicketState.REGISTERED:
                await self._check_units(uow, [call.unit])
            ticket.put_through(self._ctx(UTILITY_ACTOR), call)
            await uow.tickets.save(ticket)
            await uow.commit()
        return ticket

    async def survey_result(
        self,
        ticket_id: str,
        cycle: int,
        result: CallbackResult,
        *,
        method: str = "phone",
        reason: str = "",
        recording: str = "",
    ) -> Ticket | None:
        """Rules B-1, B-2: the satisfaction callback's answer onto the ticket, for the cycle it
        was asked in (None: the ticket has moved on — the answer came twice, or the office
        answered first). Unsatisfied goes back to the unit(s) with the reason; unsatisfied
        again after re-handling is the office's to decide (a task)."""
        async with self.uow() as uow:
            ticket = await uow.tickets.get(ticket_id)
            if ticket.state is not TicketState.CALLBACK or ticket.rehandled + 1 != cycle:
                return None
            ctx = self._ctx(SURVEY_ACTOR)
            if recording:
                ticket.attach_recording(ctx, recording, "satisfaction survey")
            note = reason or ("" if result is not CallbackResult.UNSATISFIED else SURVEY_NOTE)
            ticket.callback(ctx, result, note, method)
            if ticket.utility and method == "phone":  # B-3 done by the survey call
                await uow.tickets.complete_tasks_of(
                    ticket.id, "phone_callback", SURVEY_ACTOR.user_id, ctx.now, SURVEYED_NOTE
                )
            if result is CallbackResult.UNSATISFIED and ticket.rehandled == 0:
                ticket.rehandle(ctx, None, note)
            elif result is CallbackResult.UNSATISFIED:
                await uow.tickets.add_task("office_decision", ticket.id, ctx.now, AGAIN_NOTE)
            await uow.tickets.save(ticket)
            await uow.commit()
        return ticket

    async def callback_contact(self, ticket_id: str, cycle: int, why: str) -> tuple[str, str]:
        """The citizen's phone and the ticket's type, for the satisfaction callback's call or
        message — a look at the identity in clear, on record (Y-1). ("", "") when the ticket
        no longer waits for this callback (the office recorded it, or it was re-handled)."""
        async with self.uow() as uow:
            ticket = await uow.tickets.get(ticket_id)
            if ticket.state is not TicketState.CALLBACK or ticket.rehandled + 1 != cycle:
                return "", ""
            await self._log_access(uow, SURVEY_ACTOR, ticket, why)
            await uow.commit()
        return ticket.citizen.phone, ticket.type.value

    async def unreached(self, ticket_id: str, cycle: int, note: str) -> None:
        """The citizen was never reached and left no evaluation: the office's to decide."""
        async with self.uow() as uow:
            ticket = await uow.tickets.get(ticket_id)
            if ticket.state is TicketState.CALLBACK and ticket.rehandled + 1 == cycle:
                await uow.tickets.add_task("callback_unreached", ticket.id, self.clock.now(), note)
                await uow.commit()

    async def attach_call_recording(self, call_id: str, name: str) -> Ticket | None:
        """The conference recording of a call onto the ticket registered on it (None: none)."""
        async with self.uow() as uow:
            found = await uow.queries.by_call(call_id)
            if found is None:
                return None
            ticket = await uow.tickets.get(found.id)
            if ticket.attach_recording(self._ctx(UTILITY_ACTOR), name, "three-way call"):
                await uow.tickets.save(ticket)
                await uow.commit()
        return ticket

    async def screen_pop(self, actor: Actor, call_id: str, phone: str) -> list[Summary]:
        """The caller's tickets for an agent's screen pop, newest first; the number shown is
        an identity access on record (rule Y-1), in the same transaction."""
        if actor.role not in OFFICE:
            raise Forbidden("role_forbidden", "only the office sees a caller's number", "Y-1")
        async with self.uow() as uow:
            found = await uow.queries.search(phone=phone, limit=20) if phone else []
            await uow.tickets.log_call_identity_access(
                call_id, actor.user_id, actor.role.value, self.clock.now(), "screen pop"
            )
            await uow.commit()
        return found

    async def search(
        self,
        actor: Actor,
        *,
        state: str | None = None,
        phone: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Summary]:
        if state and state not in {s.value for s in TicketState}:
            raise PayloadError("state", "is not a ticket state")
        if phone and actor.role not in OFFICE:  # rule Y-1: units cannot search by a number
            raise Forbidden("role_forbidden", "only the office searches by phone", "Y-1")
        unit = actor.unit_id if actor.role.in_unit else None
        if actor.role not in OFFICE and unit is None:
            raise Forbidden("role_forbidden", f"the {actor.role.value} role sees no tickets")
        async with self.uow() as uow:
            return await uow.queries.search(
                state=state, phone=phone, unit=unit, limit=limit, offset=offset
            )


def _parse_instant(value: str | None, field: str) -> dt.datetime | None:
    if not value:
        return None
    text = value.upper()  # RFC 3339 allows "t" and "z"
    if text[17:19] == "60":  # a leap second: the deadline is the second before
        text = text[:17] + "59" + text[19:]
    try:
        instant = dt.datetime.fromisoformat(text)
    except ValueError:
        raise PayloadError(field, "must be an ISO-8601 date-time") from None
    if instant.tzinfo is None:
        raise PayloadError(field, "needs a UTC offset")
    if not EARLIEST <= instant.year <= LATEST:  # rule H-1's deadlines are near, and the
        raise PayloadError(field, f"must lie between {EARLIEST} and {LATEST}")  # databases
    return instant  # and the calendar's sums end at year 9999


def _log_calendar_gaps(ticket: Ticket) -> None:
    """Rule C-2: a deadline the calendar cannot give is on record in the ticket; say it loudly."""
    deadlines = [ticket.assign_deadline, ticket.callback_deadline]
    for a in ticket.live_assignments():
        deadlines += [a.sign, a.return_window, a.handle]
    if any(d is not None and d.due is None and d.done is None for d in deadlines):
        log.error(
            "ticket %s: a deadline is unknown, the working calendar lacks its year; add it "
            "to city.calendar_file",
            ticket.number,
        )
