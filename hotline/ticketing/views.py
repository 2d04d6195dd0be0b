"""What leaves the core: the office/unit view of a ticket, and the public view (P-1, P-2, Y-1).

The public view is built field by field from what may be published — never by deleting fields
from the internal view — and the text that goes out is scrubbed of the citizen's name, phone
and identity number even where an agent typed them into the request.
"""

from __future__ import annotations

import re
from typing import Any

from hotline.privacy import mask_name, mask_phone
from hotline.ticketing import codec
from hotline.ticketing.model import AssignmentState, Citizen, TicketState
from hotline.ticketing.repository import Summary
from hotline.ticketing.ticket import Ticket

_PHONE = re.compile(r"(?<!\d)(1[3-9]\d{9}|0\d{2,3}-?\d{7,8}|\d{7,8})(?!\d)")
_ID_NUMBER = re.compile(r"(?<![0-9Xx])\d{17}[\dXx](?![0-9Xx])")


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
        view["citizen"] = masked_citizen(ticket.citizen)
        _scrub_texts(view, ticket.citizen)
    if unit is not None:
        view["assignments"] = [a for a in view["assignments"] if a["unit_id"] == unit]
    view["masked"] = masked
    return view


_TICKET_TEXTS = ("subject", "content", "address", "answer", "decision")
_ASSIGNMENT_TEXTS = ("review_note", "no_publication")


def _scrub_texts(view: dict[str, Any], citizen: Citizen) -> None:
    def clean(node: dict[str, Any] | None, keys: tuple[str, ...]) -> None:
        for key in keys:
            if node and isinstance(node.get(key), str):
                node[key] = scrub(node[key], citizen)

    clean(view, _TICKET_TEXTS)
    if view.get("rejection"):
        view["rejection"] = [view["rejection"][0], scrub(view["rejection"][1], citizen)]
    clean(view.get("internal"), ("result",))
    for callback in view["callbacks"]:
        clean(callback, ("note",))
    for a in view["assignments"]:
        clean(a, _ASSIGNMENT_TEXTS)
        clean(a.get("reply"), ("text",))
        clean(a.get("return_request"), ("reason", "basis", "note"))
        for ext in a["extensions"]:
            clean(ext, ("reason", "progress", "plan", "note"))


def summary_view(summary: Summary) -> dict[str, Any]:
    out: dict[str, Any] = codec.to_json(summary)
    return out


def scrub(text: str, citizen: Citizen) -> str:
    """Rule P-2: no name, phone or identity number in published text."""
    for value in (citizen.id_number, citizen.phone, citizen.name):
        if value and len(value) >= 2:
            text = text.replace(value, "*" * len(value))
    text = _ID_NUMBER.sub(lambda m: "*" * len(m.group()), text)
    return _PHONE.sub(lambda m: "*" * len(m.group()), text)


def publishable(ticket: Ticket) -> bool:
    """Rules P-1, T-5: closed, and the office decided to publish it."""
    return ticket.state is TicketState.CLOSED and ticket.published and ticket.internal is None


def public_view(ticket: Ticket, unit_names: dict[str, str]) -> dict[str, Any]:
    c = ticket.citizen
    replies = [
        {
            "unit": unit_names.get(a.unit_id, a.unit_id),
            "lead": a.lead,
            "text": scrub(a.reply.text, c),
        }
        for a in ticket.assignments
        if a.reply is not None
        and a.state in (AssignmentState.ACCEPTED, AssignmentState.WITHDRAWN)
        and a.reply.approved_by
    ]
    return {
        "number": ticket.number,
        "type": ticket.type.value,
        "subject": scrub(ticket.subject, c),
        "content": scrub(ticket.content, c),
        "registered_at": ticket.registered_at.isoformat(),
        "closed_at": ticket.closed_at.isoformat() if ticket.closed_at else None,
        "answer": scrub(ticket.answer, c) if ticket.answer else None,
        "replies": replies,
    }


STATUS_OPEN311 = {TicketState.CLOSED: "closed", TicketState.REJECTED: "closed"}


def open311_view(ticket: Ticket, unit_names: dict[str, str]) -> dict[str, Any]:
    """One Open311 GeoReport v2 service request (no identity; rule P-2). The request's text
    and address go out only once the office has decided to publish it (P-1): an open request
    has not been checked against I-3(3) or T-1 yet."""
    published = publishable(ticket)
    live = [a for a in ticket.assignments if a.live] or ticket.assignments
    lead = next((a for a in live if a.lead), live[0] if live else None)
    updated = max([e for e in (ticket.closed_at, ticket.registered_at) if e is not None])
    return {
        "service_request_id": ticket.number,
        "status": STATUS_OPEN311.get(ticket.state, "open"),
        "status_notes": ticket.closed_how or ticket.state.value,
        "service_name": ticket.type.value,
        "service_code": ticket.type.value,
        "description": scrub(ticket.content, ticket.citizen) if published else None,
        "agency_responsible": unit_names.get(lead.unit_id, lead.unit_id) if lead else None,
        "service_notice": None,
        "requested_datetime": ticket.registered_at.isoformat(),
        "updated_datetime": updated.isoformat(),
        "expected_datetime": lead.handle.due.isoformat() if lead and lead.handle.due else None,
        "address": (scrub(ticket.address, ticket.citizen) or None) if published else None,
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
