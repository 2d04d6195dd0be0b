"""Units and users: bearer tokens (stored hashed), roles, the unit a unit user belongs to."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from hotline.errors import UserError
from hotline.ticketing.model import Actor, Role
from hotline.ticketing.tables import units, users


@dataclass(frozen=True, slots=True)
class User:
    actor: Actor
    name: str
    may_unmask: bool


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def add_unit(engine: AsyncEngine, unit_id: str, name: str, contact: str = "") -> None:
    if not unit_id.strip() or not name.strip():
        raise UserError("a unit needs an id and a name")
    async with engine.begin() as conn:
        exists = (await conn.execute(sa.select(units.c.id).where(units.c.id == unit_id))).first()
        if exists:
            await conn.execute(
                units.update().where(units.c.id == unit_id).values(name=name, contact=contact)
            )
        else:
            await conn.execute(units.insert().values(id=unit_id, name=name, contact=contact))


async def unit_names(engine: AsyncEngine) -> dict[str, str]:
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(units.c.id, units.c.name))).all()
    return {r.id: r.name for r in rows}


async def add_user(
    engine: AsyncEngine,
    name: str,
    role: Role,
    unit_id: str | None = None,
    may_unmask: bool = False,
    now: dt.datetime | None = None,
    *,
    phone: str = "",
) -> tuple[str, str]:
    """Create a user; returns (user id, bearer token). The token is shown once, stored hashed."""
    if role.in_unit and not unit_id:
        raise UserError(f"a {role.value} belongs to a unit: give --unit")
    if not role.in_unit and unit_id:
        raise UserError(f"a {role.value} works for the hotline office, not for a unit")
    phone = phone.strip()
    if phone and not (phone.lstrip("+").isdigit() and 5 <= len(phone) <= 20):
        raise UserError(f"--phone {phone!r} is not a phone number (digits, an optional +)")
    token = secrets.token_urlsafe(32)
    user_id = f"u-{uuid.uuid4().hex[:12]}"
    async with engine.begin() as conn:
        if unit_id:
            known = (await conn.execute(sa.select(units.c.id).where(units.c.id == unit_id))).first()
            if known is None:
                raise UserError(f"no unit {unit_id!r}; add it with `hotline units add`")
        await conn.execute(
            users.insert().values(
                id=user_id,
                name=name,
                role=role.value,
                unit_id=unit_id,
                token_hash=token_hash(token),
                may_unmask=may_unmask,
                created_at=now or dt.datetime.now(dt.UTC),
                phone=phone,
            )
        )
    return user_id, token


async def authenticate(engine: AsyncEngine, token: str) -> User | None:
    async with engine.connect() as conn:
        row = (
            await conn.execute(sa.select(users).where(users.c.token_hash == token_hash(token)))
        ).first()
    if row is None:
        return None
    return User(Actor(row.id, Role(row.role), row.unit_id), row.name, bool(row.may_unmask))


async def revoke_token(engine: AsyncEngine, user_id: str) -> bool:
    """The user's token stops working (a new one: ``users add``); False: no such user."""
    async with engine.begin() as conn:
        done = await conn.execute(
            users.update()
            .where(users.c.id == user_id)
            .values(token_hash=token_hash(f"revoked:{secrets.token_urlsafe(32)}"))
        )
    return bool(done.rowcount == 1)


async def list_users(engine: AsyncEngine) -> list[tuple[str, str, str, str | None, bool]]:
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(users).order_by(users.c.created_at))).all()
    return [(r.id, r.name, r.role, r.unit_id, bool(r.may_unmask)) for r in rows]
