"""The Stasis router: the one place ARI events arrive (after wazo-calld's ``stasis.py``).

Each node has an application of its own (``hotline-<node>``: only one socket may hold a name);
the dialplan broadcasts a call to the family (``StasisBroadcast(2000,^hotline-,queue)``) and the
first node to claim it (``POST /events/claim``) gets it. A channel that enters the application
starts the handler its role names — the first of its ``appArgs`` (none: ``ivr``, the inbound
IVR). Originated channels
carry their role in the ``appArgs`` they were created with (``agent``, later ``survey``,
``utility``), so they never land in the inbound IVR. Every other event goes to whoever owns the
id it is about — a channel, a bridge, a playback or a recording — as registered with
:meth:`Stasis.own`; an event nobody owns is dropped (logged at DEBUG).

A handler that raises is logged with the call's id, and the channel is sent back to the dialplan
(``continue``), whose safe path takes the caller: never silence. On shutdown running handlers
get a grace period, then the same. Asterisk replays no events: on every (re)connect each owner
is told (:data:`RESYNC`) to check what it was waiting for, and channels found in the application
that nobody here owns — left by a node that died, or by this one before a restart — are
adopted: sent back to the dialplan's safe path, so a restart releases every caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from hotline.agi.ari import AriPort, hold_timeout
from hotline.background import Background
from hotline.clock import Clock, SystemClock
from hotline.errors import AriError, CallerHungUp

log = logging.getLogger(__name__)

Event = dict[str, Any]
RESYNC = "HotlineResync"  # a synthetic event: the socket was down, look again
DEFAULT_ROLE = "ivr"
ORIGINATED = frozenset({"agent", "survey", "utility"})  # legs the backend dials out
ORIGINATED_PREFIXES = ("offer-", "survey-", "utility-")  # their fixed channel ids
SNOOP_PREFIX = "snoop-"  # a call's recording channel (hotline/queue/conference.py)
QUEUE_CONTEXT = "hotline-queue"  # the dialplan context of callers handed to the queue
ADOPTED = "adopted"
ADOPT_SETTLE = 0.5  # seconds between listing the channels and adopting the unowned ones


class Owner(Protocol):
    def deliver(self, event: Event) -> None: ...


RoleHandler = Callable[["Stasis", Event, list[str]], Awaitable[None]]  # router, channel, args


def owner_of(event: Event) -> str | None:
    """The id an event is about: its channel, bridge, playback or recording."""
    channel = event.get("channel") or event.get("peer") or {}  # a Dial event: the dialled leg
    if channel.get("id"):
        return str(channel["id"])
    for key in ("playback", "recording"):
        item = event.get(key) or {}
        uri = str(item.get("target_uri", ""))
        if uri.startswith(("channel:", "bridge:")):  # what it plays to or records
            return uri.split(":", 1)[1]
        if item.get("id") or item.get("name"):
            return str(item.get("id") or item.get("name"))
    bridge = event.get("bridge") or {}
    return str(bridge["id"]) if bridge.get("id") else None


class Stasis:
    """Routes one application's events; ``roles`` maps a role to the handler of its calls."""

    def __init__(
        self,
        ari: AriPort,
        app: str,
        roles: Mapping[str, RoleHandler],
        clock: Clock | None = None,
        originated: frozenset[str] = ORIGINATED,
        family: str = "",
        peers: Callable[[], Awaitable[set[str]]] | None = None,
    ) -> None:
        self.ari, self.app, self.roles = ari, app, dict(roles)
        # ``family``: the prefix of every node's application name (``hotline-``): calls are
        # broadcast to the family and claimed (StasisBroadcast); ``peers``: the applications
        # of the nodes alive (None: this node is the only one)
        self.family, self.peers = family, peers
        self.originated = originated  # roles of channels we created: their safe path is hang-up
        self.clock = clock or SystemClock()
        self.owners: dict[str, Owner] = {}
        self.running: dict[str, asyncio.Task[Any]] = {}  # channel id -> its handler
        self.background = Background("stasis")
        self.connected = asyncio.Event()
        self.adopted = 0  # channels found unowned on a (re)connect and sent to the safe path
        self.on_connect: list[Callable[[], Awaitable[object]]] = []  # rebuild after a gap

    # -- ownership ------------------------------------------------------------------------
    def own(self, ident: str, owner: Owner) -> None:
        self.owners[ident] = owner

    def release(self, ident: str) -> None:
        self.owners.pop(ident, None)

    # -- the event stream -----------------------------------------------------------------
    async def run(self) -> None:
        """Listen until cancelled, reconnecting with a growing pause (on the clock)."""
        pause = 0.5
        while True:
            try:
                async for event in self.ari.events(self.app, self._opened):
                    pause = 0.5
                    self.dispatch(event)
            except (TimeoutError, AriError, OSError) as exc:
                log.warning("ARI events: %s; reconnecting in %.1fs", exc, pause)
            except Exception:
                log.exception("ARI events failed; reconnecting in %.1fs", pause)
            self.connected.clear()
            await self.clock.sleep(pause)
            pause = min(pause * 2, 10.0)

    def _opened(self) -> None:
        """The socket is (back) up: owners may have missed events; unowned calls are adopted."""
        self.connected.set()
        for owner in list(self.owners.values()):
            owner.deliver({"type": RESYNC})
        self.background.submit(self.adopt(), "adopt unowned channels")
        for rebuild in self.on_connect:
            self.background.submit(_logged(rebuild), "rebuild after a (re)connect")

    async def adopt(self) -> int:
        """Channels left in an application of the family that nobody runs — this node's own
        after a restart, or a stopped node's: a caller waiting in the queue is taken over (it
        keeps its place: moved here, its role started with ``adopted``), an agent leg is hung
        up, any other caller goes back to the dialplan's safe path — except channels talking in
        a mixing bridge with another: that call goes on. How many were taken."""
        apps = await self.ari.get("/applications") or []
        alive = await self.peers() if self.peers is not None else set()
        talking = {  # a call in progress goes on, whoever started it
            str(c)
            for b in await self.ari.get("/bridges") or []
            if b.get("bridge_type") == "mixing" and len(b.get("channels") or []) >= 2
            for c in b["channels"]
        }
        # a channel that entered just as the socket opened has its StasisStart on the way
        await self.clock.sleep(ADOPT_SETTLE)
        adopted = 0
        for app in apps:
            name = str(app.get("name", ""))
            ours = name == self.app
            stopped = bool(self.family) and name.startswith(self.family) and name not in alive
            if not ours and not stopped:
                continue
            for ident in app.get("channel_ids") or []:
                if ident in self.running or ident in self.owners or ident in talking:
                    continue
                if str(ident).startswith(SNOOP_PREFIX):  # a recording: it ends with its call
                    continue
                with contextlib.suppress(AriError):
                    await self._take(str(ident), here=ours)
                    adopted += 1
        self.adopted += adopted
        return adopted

    async def run_by_live_nodes(self) -> set[str]:
        """The channels in this node's application and in those of live nodes of the family:
        calls someone runs (their bridges are theirs, even empty for a moment)."""
        apps = await self.ari.get("/applications") or []
        alive = await self.peers() if self.peers is not None else set()
        return {
            str(ident)
            for app in apps
            if (name := str(app.get("name", ""))) == self.app or name in alive
            for ident in app.get("channel_ids") or []
        }

    async def _take(self, ident: str, here: bool) -> None:
        if ident.startswith(ORIGINATED_PREFIXES):  # a leg we dialled: nobody can bridge it now
            log.warning("ARI channel %s left behind in %s: hung up", ident, self.app)
            await self.ari.delete(f"/channels/{ident}")
            return
        channel = await self.ari.get(f"/channels/{ident}") or {}
        if (channel.get("dialplan") or {}).get("context") == QUEUE_CONTEXT:
            log.warning("ARI caller %s waiting with no node: taken over by %s", ident, self.app)
            if here:
                self._start({"type": "StasisStart", "channel": channel, "args": ["queue", ADOPTED]})
            else:
                await self.ari.post(
                    f"/channels/{ident}/move", app=self.app, appArgs="queue,adopted"
                )
            return
        log.warning("ARI channel %s is in %s with no handler: to the safe path", ident, self.app)
        await self._continue(ident)

    async def watch_peers(self, interval: float = 2.0) -> None:
        """Look for stopped nodes' callers every ``interval`` seconds (not only on connect)."""
        while True:
            await self.clock.sleep(interval)
            if self.connected.is_set():
                try:
                    await self.adopt()
                except Exception as exc:
                    log.warning("ARI: looking for stopped nodes' callers failed (%s)", exc)

    async def claim(self, channel_id: str) -> bool:
        """Claim a broadcast call for this node (the first claim wins; 409: another node's)."""
        try:
            await self.ari.post("/events/claim", channelId=channel_id, application=self.app)
        except AriError as exc:
            if exc.status in (404, 409):
                return False
            raise
        return True

    def dispatch(self, event: Event) -> None:
        if event.get("type") == "StasisStart":
            self._start(event)
            return
        if event.get("type") == "CallBroadcast":
            offered = str((event.get("channel") or {}).get("id", ""))
            if offered:
                self.background.submit(self.claim(offered), f"claim {offered}")
            return
        ident = owner_of(event)
        owner = self.owners.get(ident or "")
        if owner is not None:
            owner.deliver(event)
        else:
            log.debug("ARI %s for %s: nobody owns it", event.get("type"), ident)

    def _start(self, event: Event) -> None:
        channel = event.get("channel") or {}
        ident = str(channel.get("id", ""))
        args = [str(a) for a in event.get("args") or []]
        role = args[0] if args else DEFAULT_ROLE
        handler = self.roles.get(role)
        if not ident:
            return
        if handler is None:
            log.error("ARI channel %s entered with role %r, which nobody handles", ident, role)
            self.background.submit(self._safe_path(ident), f"call {ident}: unknown role")
            return
        task = self.background.submit(
            self._run(handler, channel, args[1:], ident, hang_up=role in self.originated),
            f"call {ident}",
        )
        self.running[ident] = task

    async def _run(
        self, handler: RoleHandler, channel: Event, args: list[str], ident: str, hang_up: bool
    ) -> None:
        try:
            await handler(self, channel, args)
        except CallerHungUp:
            log.info("ARI call %s: caller gone", ident)
        except asyncio.CancelledError:  # shutting down: the dialplan's safe path takes it
            log.warning("ARI call %s: stopped by shutdown; back to the dialplan", ident)
            await self._safe_path(ident, hang_up)
            raise
        except Exception:
            log.exception("ARI call %s failed; back to the dialplan", ident)
            await self._safe_path(ident, hang_up)
        finally:
            self.running.pop(ident, None)
            self.release(ident)

    async def _safe_path(self, ident: str, hang_up: bool = False) -> None:
        """Back to the dialplan after ``Stasis()``; a leg we dialled out has no dialplan to go
        back to, and is hung up."""
        with contextlib.suppress(Exception):
            if hang_up:
                await self.ari.delete(f"/channels/{ident}")
            else:
                await self._continue(ident)

    async def _continue(self, ident: str) -> None:
        """Back to the dialplan, the dead-man time-out cleared first (else it would cut the
        safe path short)."""
        with contextlib.suppress(AriError):
            await hold_timeout(self.ari, ident, 0)
        await self.ari.post(f"/channels/{ident}/continue")

    async def close(self, grace: float = 0.0) -> None:
        """Let running calls finish for up to ``grace`` seconds, then send the rest back to
        the dialplan."""
        await self.background.close(grace)


async def _logged(rebuild: Callable[[], Awaitable[object]]) -> None:
    try:
        await rebuild()
    except Exception:
        log.exception("ARI: rebuilding after a (re)connect failed")
