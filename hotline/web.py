"""What every HTTP edge shares: authentication, JSON bodies and query values within limits,
errors mapped from the exception tree, and a response encoder that cannot fail.

Theory of operation. Every edge (ticketing, agents, operations) reads its caller with
:func:`current_user`, its body with :func:`json_body` and its numbers with :func:`query_int`;
:func:`json_errors` turns whatever a handler raises into ``{"error": {"code", "message",
"rule"}}`` by the exception's base class (:mod:`hotline.errors`): a :class:`RequestError`
answers its own status, :class:`Unavailable` 503, anything else 500 (logged, never echoed).
Input is checked at the edge, before it reaches the core or the database: bodies are at most
``MAX_BODY_BYTES``, integers in a body at most ``MAX_INT_DIGITS`` digits, query integers at
most ``MAX_QUERY_DIGITS``, and no text anywhere — body, path or query — may hold a NUL or a
lone surrogate (PostgreSQL refuses the one, UTF-8 cannot carry the other). Responses are
encoded with any unencodable character replaced, so data already stored can never make a
reply fail. Failed authentication is counted per source address: past ``failures`` in
``window`` seconds the source gets 429 until the window has passed, and each failure is
logged (the source, never the token).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any

from aiohttp import web
from redis.exceptions import RedisError
from sqlalchemy.exc import DataError

from hotline.db import database_down
from hotline.errors import (
    Forbidden,
    PayloadError,
    RequestError,
    Throttled,
    Unauthorized,
    Unavailable,
)
from hotline.ticketing.actions import MAX_DIGITS
from hotline.ticketing.model import Role
from hotline.ticketing.users import User, token_hash

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024  # a ticket's texts are 20,000 characters at most
MAX_INT_DIGITS = MAX_DIGITS  # integers in a body: versions, days (beyond: no number we use)
MAX_QUERY_DIGITS = 12  # limit, offset, page, page_size (each is capped below that)
API_PREFIXES = ("/api/", "/public/", "/open311/", "/healthz", "/readyz", "/metrics")
RETRY = {"Retry-After": "5"}  # seconds a client waits before trying a 503 again
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Lookup = Callable[[str], Awaitable[User | None]]


# -- responses ------------------------------------------------------------------------------------
def encode(value: Any) -> bytes:
    """JSON as UTF-8; a character UTF-8 cannot carry (a stored lone surrogate) becomes ``?``."""
    return json.dumps(value, ensure_ascii=False).encode("utf-8", errors="replace")


def ok(value: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=encode(value), status=status, content_type="application/json", charset="utf-8"
    )


def error(
    status: int,
    code: str,
    message: str,
    rule: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    response = ok({"error": {"code": code, "message": message, "rule": rule}}, status)
    response.headers.update(headers or {})
    return response


def _from_exception(exc: Exception) -> web.Response | None:
    """The JSON error for an exception a client or a dependency caused, else None."""
    if isinstance(exc, Throttled):
        retry = {"Retry-After": str(max(1, round(exc.retry_after)))}
        return error(exc.status, exc.code, exc.message, headers=retry)
    if isinstance(exc, Unauthorized):
        realm = {"WWW-Authenticate": 'Bearer realm="hotline"'}
        return error(exc.status, exc.code, exc.message, headers=realm)
    if isinstance(exc, RequestError):
        return error(exc.status, exc.code, exc.message, exc.rule)
    if isinstance(exc, Unavailable):
        log.error("unavailable (%s): %s", exc.code, exc)
        return error(exc.status, exc.code, str(exc), exc.rule, headers=RETRY)
    if isinstance(exc, DataError):  # a value the database cannot store; its text is not echoed
        return error(400, "bad_payload", "a value does not fit its field")
    if isinstance(exc, RedisError):
        log.error("shared state unavailable: %s", type(exc).__name__)
        return error(503, "shared_state_unavailable", "shared state cannot answer", headers=RETRY)
    if database_down(exc):
        log.error("database unavailable: %s", type(exc).__name__)
        return error(
            503, "database_unavailable", "the database cannot answer; try again", headers=RETRY
        )
    return None


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith(API_PREFIXES):
        return await handler(request)
    try:
        _check_url(request)
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        kept = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
        code = exc.reason.lower().replace(" ", "_")
        return error(exc.status, code, exc.reason, headers=kept)  # 405 keeps its Allow header
    except Exception as exc:
        response = _from_exception(exc)
        if response is not None:
            return response
        log.exception("unexpected error on %s %s", request.method, request.path)
        return error(500, "internal", "unexpected error (logged)")


def _check_url(request: web.Request) -> None:
    if _BAD_TEXT.search(request.path):
        raise PayloadError("path", "holds a NUL or an invalid character")
    for key, value in request.query.items():
        if _BAD_TEXT.search(key) or _BAD_TEXT.search(value):
            raise PayloadError(key[:40].replace("\x00", ""), "holds a NUL or invalid character")


# -- request input --------------------------------------------------------------------------------
def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise PayloadError("body", f"an integer has more than {MAX_INT_DIGITS} digits")
    return int(text)


def _no_constants(name: str) -> Any:
    raise PayloadError("body", f"{name} is not a JSON number")


def check_texts(value: Any, where: str = "body", depth: int = 0) -> None:
    """No NUL and no lone surrogate in any string (keys too), however deep."""
    if depth > 32:
        raise PayloadError(where, "is nested too deeply")
    if isinstance(value, str):
        if _BAD_TEXT.search(value):
            raise PayloadError(where, "holds a NUL or a lone surrogate")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_texts(key, where, depth + 1)
            check_texts(item, str(key)[:40] if depth == 0 else where, depth + 1)
    elif isinstance(value, list):
        for item in value:
            check_texts(item, where, depth + 1)


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object, within the limits above (400 bad_payload otherwise)."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise PayloadError("body", f"is larger than {MAX_BODY_BYTES} bytes")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadError("body", f"is larger than {MAX_BODY_BYTES} bytes") from None
    try:
        body = json.loads(raw.decode("utf-8"), parse_int=_bounded_int, parse_constant=_no_constants)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise PayloadError("body", "is not JSON") from None
    except RecursionError:
        raise PayloadError("body", "is nested too deeply") from None
    if not isinstance(body, dict):
        raise PayloadError("body", "must be a JSON object")
    check_texts(body)
    return body


def query_int(request: web.Request, name: str, default: int, top: int, least: int = 0) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > MAX_QUERY_DIGITS:
        raise PayloadError(name, f"must be an integer from {least} to {top}")
    value = int(raw)
    if value < least:
        raise PayloadError(name, f"must be an integer from {least} to {top}")
    return min(value, top)


# -- who is calling -------------------------------------------------------------------------------
class Authenticator:
    """Bearer tokens → users, with a short cache and a throttle on failures per source."""

    def __init__(
        self,
        lookup: Lookup,
        *,
        ttl: float = 30.0,
        failures: int = 10,
        window: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lookup = lookup
        self.ttl, self.failures, self.window = ttl, failures, window
        self.monotonic = monotonic
        self._cache: dict[str, tuple[User, float]] = {}  # token hash -> user, valid until
        self._failed: dict[str, tuple[float, int]] = {}  # source -> window start, failures
        self.refused = 0  # failed attempts, throttled or not (for /healthz and tests)

    async def user(self, request: web.Request) -> User:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        bearer = scheme.lower() == "bearer"
        return await self.token_user(token if bearer else "", request.remote or "unknown")

    async def token_user(self, token: str, source: str, fresh: bool = False) -> User:
        """The user of a bearer token (from ``source``, for the throttle); ``fresh``: asked
        of the database, not the cache (a long-lived socket checks its token is still good)."""
        now = self.monotonic()
        well_formed = bool(token) and token.isascii()
        if fresh and well_formed:
            self._cache.pop(token_hash(token), None)
        if well_formed:  # a token checked within the TTL is served even from a throttled
            cached = self._cache.get(token_hash(token))  # source: one bad client behind an
            if cached is not None and cached[1] > now:  # office's NAT address locks nobody out
                return cached[0]
        self._check_throttle(source, now)
        if not well_formed:  # tokens are ASCII
            self._fail(source, now, "no bearer token")
            raise Unauthorized("send Authorization: Bearer <token>")
        user = await self.lookup(token)
        if user is None:
            self._fail(source, now, "unknown token")
            raise Unauthorized("unknown token")
        _trim(self._cache, lambda cached: cached[1] <= now)
        self._cache[token_hash(token)] = (user, now + self.ttl)
        return user

    def _check_throttle(self, source: str, now: float) -> None:
        start, count = self._failed.get(source, (now, 0))
        if now - start >= self.window:
            self._failed.pop(source, None)
        elif count >= self.failures:
            self.refused += 1
            raise Throttled("too many failed authentications; wait", start + self.window - now)

    def _fail(self, source: str, now: float, why: str) -> None:
        self.refused += 1
        start, count = self._failed.get(source, (now, 0))
        if now - start >= self.window:
            start, count = now, 0
        _trim(
            self._failed,
            lambda entry: now - entry[0] >= self.window,
            precious=lambda entry: entry[1] >= self.failures,  # throttled: kept to the last
        )
        self._failed[source] = (start, count + 1)
        log.warning(
            "authentication failed from %s: %s (%d in %.0f s)", source, why, count + 1, self.window
        )
        if count + 1 == self.failures:
            log.warning("throttling %s for up to %.0f s", source, self.window)


MAX_ENTRIES = 10_000  # tokens cached, sources counted


def _trim(
    entries: dict[str, Any],
    expired: Callable[[Any], bool],
    precious: Callable[[Any], bool] = lambda _: False,
) -> None:
    """Keep a map under MAX_ENTRIES: drop what has expired, then the oldest of the rest, the
    precious last — never all of it (clearing the failure counts, or dropping the throttled
    first, would let a spray from many addresses lift every throttle)."""
    if len(entries) < MAX_ENTRIES:
        return
    for key in [k for k, v in entries.items() if expired(v)]:
        del entries[key]
    excess = len(entries) - MAX_ENTRIES + 1
    plain = [k for k, v in entries.items() if not precious(v)]  # insertion order: oldest first
    for key in (plain + [k for k in entries if k not in set(plain)])[: max(0, excess)]:
        del entries[key]


AUTH = web.AppKey("authenticator", Authenticator)


async def current_user(request: web.Request, roles: Collection[Role] | None = None) -> User:
    """The caller (401 without a valid token); 403 unless its role is one of ``roles``."""
    user = await request.app[AUTH].user(request)
    if roles is not None and user.actor.role not in roles:
        raise Forbidden("role_forbidden", f"the {user.actor.role.value} role may not do this")
    return user


def setup(app: web.Application) -> None:
    app.middlewares.append(json_errors)
