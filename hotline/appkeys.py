"""Typed keys of what the aiohttp application owns (set up in :mod:`hotline.app`)."""

from __future__ import annotations

from aiohttp import web
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from hotline.agi.fastagi import FastAGIServer
from hotline.clock import Clock
from hotline.config.settings import Settings
from hotline.health import Dependencies
from hotline.ivr.fallback import SwitchMessages
from hotline.ivr.inbound import JournalWriter
from hotline.ivr.journal import CallJournal
from hotline.ivr.services import BackendIvrServices, Recordings
from hotline.jobs import Worker
from hotline.queue.presence import AgentPresence
from hotline.queue.service import QueueService
from hotline.softphone_bridge.outbox import Outbox
from hotline.state import AppBeats, LiveCalls

SETTINGS = web.AppKey("settings", Settings)
CLOCK = web.AppKey("clock", Clock)
ENGINE = web.AppKey("engine", AsyncEngine)
JOURNAL = web.AppKey("journal", CallJournal)
LIVE = web.AppKey("live", LiveCalls)
AGI = web.AppKey("agi", FastAGIServer)
NODE = web.AppKey("node", str)
CALENDAR_UNTIL = web.AppKey("calendar_until", str)  # last day the working calendar knows
PRESENCE = web.AppKey("presence", AgentPresence)
RECORDINGS = web.AppKey("recordings", Recordings)
HEALTH = web.AppKey("health", Dependencies)
IVR = web.AppKey("ivr", BackendIvrServices)
WRITER = web.AppKey("journal_writer", JournalWriter)
MESSAGES_KEY: web.AppKey[SwitchMessages | None] = web.AppKey("switch_messages")  # None: no ARI
WORKER = web.AppKey("worker", Worker)
QUEUE = web.AppKey("queue", QueueService)
BEATS: web.AppKey[AppBeats | None] = web.AppKey("app_beats")  # None: no Redis, one node
CONSOLE_OUTBOX: web.AppKey[Outbox] = web.AppKey("console_outbox")  # in memory, or in Redis
REDIS: web.AppKey[Redis | None] = web.AppKey("redis")  # None: no Redis, one node
