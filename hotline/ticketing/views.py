"""What leaves the core: the office/unit view of a ticket, and the public view (P-1, P-2, Y-1).

The public view is built field by field from what may be published — never by deleting fields
from the internal view — and the text that goes out is scrubbed of the citizen's name, phone
and identity number even where an agent typed them into the request. A masked view scrubs
every string but those of a few structural keys, so a free text added to the aggregate later is
scrubbed without anyone remembering to. The one scrubber is :class:`hotline.privacy.Scrubber`.
"""

from __future__ import annotations

from typing import Any

from hotline.privacy import Scrubber, mask_name, mask_phone
from hotline.ticketing import codec
from hotline.ticketing.model import AssignmentState, Citizen, TicketEvent, TicketState
from hotline.ticketing.queries import Summary
from hotline.ticketing.ticket import Ticket

# Keys whose strings are structure, never free text: ids, numbers, states, times, unit ids.
_IDS = ("id", "number", "upstream_id", "repeat_of", "recordings", "knowledge_id", "assignment")
_CALL = ("call_id", "ivr_path")  # the call a ticket was registered on
_UNITS_STATES = ("unit_id", "unit", "units", "return_refused_units", "state", "previous_state")
_EMERGENCY = ("ground", "level", "response_kind", "marked_at", "finished_at")  # E-1 … E-4
_ACTORS = ("registered_by", "drafted_by", "approved_by", "requested_by", "decided_by", "by")
_SIGNED = ("marked_by", "signed_by")
_TIMES = ("registered_at", "assigned_at", "drafted_at", "approved_at", "requested_at", "at")
_DEADLINES = ("decided_at", "closed_at", "upstream_due", "handle_due", "due", "done", "stage")
STRUCTURAL = frozenset(
    (*_IDS, *_CALL, *_UNITS_STATES, *_EMERGENCY, *_ACTORS, *_SIGNED, *_TIMES, *_DEADLINES, "rule")
)


def masked_citizen(citizen: Citizen) -> dict[str, str]:
    return {
        "name": mask_name(citizen.name),
        "phone": mask_phone(citizen.phone),
        "id_number": "*" * len(citizen.id_number),
    }


def ticket_view(ticket: Ticket, *, masked: bool, unit: str | None = None) -> dict[str, Any]:
    """The working view: the office's (identity in clear) or masked (rule Y-1) — then the
    citizen's name, phone and identity number are also scrubbed from every free text. For a
    unit (``unit``), only its own assignments."""
    view: dict[str, Any] = codec.to_json(ticket)
    if masked:
        view = Scrubber(ticket.citizen).tree(view, STRUCTURAL)
        view["citizen"] = masked_citizen(ticket.citizen)
    if unit is not None:
        view["assignments"] = [a for a in view["assignments"] if a["unit_id"] == unit]
    view["masked"] = masked
    return view


def event_views(events: list[TicketEvent], citizen: Citizen, masked: bool) -> list[dict[str, Any]]:
    """The event log as JSON; masked (rule Y-1), every string in each event's ``data`` is
    scrubbed — notes travel there (``rehandle``, ``approve_reply``) — but structural keys."""
    out: list[dict[str, Any]] = [codec.to_json(e) for e in events]
    if masked:
        scrubber = Scrubber(citizen)
        for view in out:
            view["data"] = scrubber.tree(view["data"], STRUCTURAL)
    return out


def summary_view(summary: Summary) -> dict[str, Any]:
    out: dict[str, Any] = codec.to_json(summary)
    return out


def scrub(text: str, citizen: Citizen) -> str:
    """Rule P-2: no name, phone or identity number in published text (the one scrubber)."""
    return Scrubber(citizen)(text)


def publishable(ticket: Ticket) -> bool:
    """Rules P-1, T-5: closed, and the office decided to publish it."""
    return ticket.state is TicketState.CLOSED and ticket.published and ticket.internal is None


def public_view(ticket: Ticket, unit_names: dict[str, str]) -> dict[str, Any]:
    c = Scrubber(ticket.citizen)
    replies = [
        {
            "unit": unit_names.get(a.unit_id, a.unit_id),
            "lead": a.lead,
            "text": c(a.reply.text),
        }
        for a in ticket.assignments
        if a.reply is not None
        and a.state in (AssignmentState.ACCEPTED, AssignmentState.WITHDRAWN)
        and a.reply.approved_by
    ]
    return {
        "number": ticket.number,
        "type": ticket.type.value,
        "subject": c(ticket.subject),
        "content": c(ticket.content),
        "registered_at": ticket.registered_at.isoformat(),
        "closed_at": ticket.closed_at.isoformat() if ticket.closed_at else None,
        "answer": c(ticket.answer) if ticket.answer else None,
        "replies": replies,
    }


STATUS_OPEN311 = {TicketState.CLOSED: "closed", TicketState.REJECTED: "closed"}


def open311_view(ticket: Ticket, unit_names: dict[str, str]) -> dict[str, Any]:
    """One Open311 GeoReport v2 service request (no identity; rule P-2). The request's text
    and address go out only once the office has decided to publish it (P-1): an open request
    has not been checked against I-3(3) or T-1 yet."""
    published, c = publishable(ticket), Scrubber(ticket.citizen)
    live = [a for a in ticket.assignments if a.live] or ticket.assignments
    lead = next((a for a in live if a.lead), live[0] if live else None)
    updated = max([e for e in (ticket.closed_at, ticket.registered_at) if e is not None])
    return {
        "service_request_id": ticket.number,
        "status": STATUS_OPEN311.get(ticket.state, "open"),
        "status_notes": ticket.closed_how or ticket.state.value,
        "service_name": ticket.type.value,
        "service_code": ticket.type.value,
        "description": c(ticket.content) if published else None,
        "agency_responsible": unit_names.get(lead.unit_id, lead.unit_id) if lead else None,
        "service_notice": None,
        "requested_datetime": ticket.registered_at.isoformat(),
        "updated_datetime": updated.isoformat(),
        "expected_datetime": lead.handle.due.isoformat() if lead and lead.handle.due else None,
        "address": (c(ticket.address) or None) if published else None,
        "address_id": None,
        "zipcode": None,
        "lat": None,
        "long": None,
        "media_url": None,
    }


def open311_listed(ticket: Ticket) -> bool:
    """Open requests and published closed ones; never internal, opted-out or rejected."""
    if ticket.internal is not None or not ticket.publish_consent:
        return False
    if ticket.state is TicketState.REJECTED:
        return False
    return ticket.state is not TicketState.CLOSED or publishable(ticket)
