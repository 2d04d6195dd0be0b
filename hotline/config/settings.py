"""One typed, frozen settings object: defaults <- optional TOML file <- ``HOTLINE_*`` environment.

Every setting has a dotted key ``section.name``; its environment variable is
``HOTLINE_SECTION_NAME`` (so ``database.url`` is ``HOTLINE_DATABASE_URL``). A value that does
not fit raises :class:`SettingsError` naming the key, where it came from and the expected form;
the CLI turns that into a one-line message and exit code 2.

With nothing set, the backend runs embedded: SQLite under ``./var/``, in-process shared state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import math
import os
import re
import tomllib
import urllib.parse
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

ENV_PREFIX = "HOTLINE_"
CONFIG_ENV = "HOTLINE_CONFIG"  # path of the TOML file, same as --config


class SettingsError(Exception):
    """A setting has a value that does not fit; names the key and the expected form."""

    def __init__(self, key: str, source: str, expected: str, got: object) -> None:
        self.key = key
        self.source = source
        self.expected = expected
        self.got = got
        super().__init__(f"invalid setting {key} (from {source}): expected {expected}, got {got!r}")


Check = Callable[[Any], str | None]  # returns the expected form when the value is wrong


def _port(v: int) -> str | None:
    return None if 1 <= v <= 65535 else "an integer between 1 and 65535"


def _positive(v: float) -> str | None:
    return None if v > 0 else "a number greater than 0"


def _url(*schemes: str) -> Check:
    def check(v: str) -> str | None:
        scheme = v.split("://", 1)[0] if "://" in v else ""
        if v == "" and "" in schemes:
            return None
        shown = " or ".join(f"{s}://…" for s in schemes if s)
        shown += " or empty" if "" in schemes else ""
        if scheme not in schemes:
            return f"a URL like {shown}"
        try:
            port = urllib.parse.urlsplit(v).port  # raises on a port that is not a number
        except ValueError:
            return f"a URL like {shown} with a numeric port"
        return None if port is None or 0 < port < 65536 else f"a URL like {shown}"

    return check


def _name(v: str) -> str | None:
    ok = re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,31}", v) is not None
    return None if ok else "a short name of a-z, 0-9, _ and - (it is used in paths)"


def _one_of(*allowed: str) -> Check:
    return lambda v: None if v in allowed else "one of " + ", ".join(allowed)


def _timezone(v: str) -> str | None:
    try:
        zoneinfo.ZoneInfo(v)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return "an IANA time zone such as Asia/Shanghai"
    return None


def _digit_map(v: dict[str, str]) -> str | None:
    for digit, route in v.items():
        if len(digit) != 1 or digit not in "0123456789*#" or not route.isidentifier():
            return "a table of single DTMF keys (0-9, *, #) to route names (letters, _)"
    return None


def _has_prompts(v: dict[str, str]) -> str | None:
    missing = sorted(k for k in DEFAULT_TEXTS if not v.get(k, "").strip())
    return (
        f"a text for every prompt the flows play (missing: {', '.join(missing)})"
        if missing
        else None
    )


def setting(
    default: Any, check: Check | None = None, doc: str = "", *, secret: bool = False
) -> Any:
    """A settings field; a ``secret`` one is never echoed (errors, ``hotline config show``)."""
    meta = {"check": check, "doc": doc, "secret": secret}
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=meta)
    return field(default=default, metadata=meta)


HIDDEN = "<hidden>"


def shown(f: dataclasses.Field[Any], value: Any) -> Any:
    """The value as messages may show it: a secret only says whether it is set."""
    if f.metadata.get("secret"):
        return f"{HIDDEN} (set)" if value else ""
    return value


def _peers(v: str) -> str | None:
    """A comma-separated list of IP addresses or CIDR networks (host bits unset)."""
    expected = "a comma-separated list of IP addresses or networks like 127.0.0.0/8,::1"
    items = [item.strip() for item in v.split(",")]
    if not all(items):
        return expected
    try:
        for item in items:
            ipaddress.ip_network(item, strict=True)
    except ValueError:
        return expected
    return None


def _agi_secret(v: str) -> str | None:
    # empty: refuse every session (the server says so at start); otherwise it goes into the
    # dialplan's AGI URL as it is, so only characters a URL carries unencoded
    ok = v == "" or re.fullmatch(r"[A-Za-z0-9._~-]{16,256}", v) is not None
    return None if ok else "16 to 256 characters of A-Z, a-z, 0-9, '.', '_', '~', '-'"


@dataclass(frozen=True, slots=True)
class ServerSettings:
    http_host: str = setting("127.0.0.1", doc="HTTP API / agent console bind address")
    http_port: int = setting(8080, _port)
    agi_host: str = setting("127.0.0.1", doc="FastAGI bind address (Asterisk connects here)")
    agi_port: int = setting(4573, _port)
    agi_idle_timeout: float = setting(30.0, _positive, "seconds without a reply from Asterisk")
    agi_max_connections: int = setting(1000, _positive, "concurrent AGI sessions per node")
    agi_allowed_peers: str = setting(
        "127.0.0.0/8,::1", _peers, "IP addresses / networks FastAGI accepts connections from"
    )
    agi_secret: str = setting(
        "",
        _agi_secret,
        "the dialplan's agi://…/ivr?secret=…; empty: every session is refused. A secret: set "
        "it in the environment, not in a file",
        secret=True,
    )
    shutdown_grace: float = setting(10.0, _positive, "seconds running calls get on shutdown")
    node_id: str = setting("", doc="name of this backend node; empty: host name and pid")
    spool_dir: Path = setting(
        Path("var/spool"), doc="journal rows kept on local disk until the database has them"
    )
    auth_max_failures: int = setting(
        10, _positive, "failed authentications per source address before it gets 429"
    )
    auth_window: float = setting(
        60.0, _positive, "seconds over which failed authentications are counted"
    )
    console_token_recheck: float = setting(
        30.0, _positive, "seconds between checks that a console socket's token is still valid"
    )


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    url: str = setting(
        "sqlite+aiosqlite:///var/hotline.db",
        _url("sqlite+aiosqlite", "postgresql+asyncpg"),
    )
    timeout: float = setting(
        2.0, _positive, "seconds for a connect, a statement or a pool checkout; then: unavailable"
    )


@dataclass(frozen=True, slots=True)
class AriSettings:
    """Asterisk's REST interface: stored recordings (voice messages), and the Stasis IVR."""

    url: str = setting("", _url("", "http", "https"), "e.g. http://127.0.0.1:8088/ari; empty: off")
    user: str = setting("")
    password: str = setting("", doc="secret: set it in the environment, not in a file", secret=True)
    app: str = setting("hotline", _name, "the Stasis application name")
    max_connections: int = setting(
        50, _positive, "HTTP connections to ARI per node (Asterisk's http.conf sessionlimit: 100)"
    )
    recordings_dir: Path = setting(Path("var/recordings"), doc="voice messages fetched here")
    sweep_interval: float = setting(
        60.0, _positive, "seconds between sweeps of voice messages left on the switch"
    )


@dataclass(frozen=True, slots=True)
class RedisSettings:
    url: str = setting("", _url("", "redis", "rediss", "unix"), "empty: in-process state")
    key_prefix: str = setting("hotline:")
    timeout: float = setting(1.0, _positive, "seconds for a connect or a command; then: down")


_PERIODS = re.compile(r"\d{2}:\d{2}-\d{2}:\d{2}(,\d{2}:\d{2}-\d{2}:\d{2})*")


def _office_hours(v: str) -> str | None:
    expected = "periods like 08:30-12:00,13:30-17:30 (ascending, not overlapping)"
    if not _PERIODS.fullmatch(v):
        return expected
    bounds = [b for period in v.split(",") for b in period.split("-")]
    if any(not ("00:00" <= b <= "23:59" and b[3:] < "60") for b in bounds):
        return expected
    return None if bounds == sorted(bounds) and len(set(bounds)) == len(bounds) else expected


@dataclass(frozen=True, slots=True)
class CitySettings:
    timezone: str = setting("Asia/Shanghai", _timezone)
    office_hours: str = setting("08:30-12:00,13:30-17:30", _office_hours, "rule C-2")
    calendar_file: str = setting(
        "", doc="TOML with holidays/make-up days the holiday library lacks (rule C-2)"
    )


def _hours(v: float) -> str | None:
    return None if 0 < v <= 24 * 30 else "a positive number of hours"


def _routes(v: dict[str, str]) -> str | None:
    for category, units in v.items():
        if not category.strip() or not all(u.strip() for u in units.split(",")):
            return 'a table of category = "unit_id[,unit_id…]"'
    return None


@dataclass(frozen=True, slots=True)
class RoutingSettings:
    """Rule D-2: which units a category of request usually goes to (the office decides)."""

    categories: dict[str, str] = setting({}, _routes, "category -> comma-separated unit ids")


@dataclass(frozen=True, slots=True)
class RulesSettings:
    """Every number of the rule book (RULES.md); cities and upper platforms override them."""

    assign_hours: float = setting(2.0, _hours, "D-1: working hours to assign")
    assign_multi_days: float = setting(1.0, _positive, "D-1: working days, several units + lead")
    sign_hours: float = setting(4.0, _hours, "D-3: working hours to sign")
    return_days: float = setting(1.0, _positive, "D-4: working days to return")
    handle_consultation_days: float = setting(3.0, _positive, "H-1: consultation")
    handle_other_days: float = setting(5.0, _positive, "H-1: help, suggestion, complaint")
    callback_days: float = setting(2.0, _positive, "B-1: working days to call back")
    extension_window_hours: float = setting(24.0, _hours, "H-3: window before the deadline")
    extension_window: str = setting(
        "within", _one_of("within", "before"), "H-3: within the last N hours, or before them"
    )
    extension_max_cycles: float = setting(1.0, _positive, "H-3: at most one original cycle")
    repeat_reply_limit: int = setting(3, _positive, "D-6: more than N timely replies")
    emergency_assign_minutes: float = setting(10.0, _positive, "E-3: wall-clock minutes")
    emergency_response_minutes: float = setting(30.0, _positive, "E-4: wall-clock minutes")
    emergency_result_days: float = setting(1.0, _positive, "E-4: working days after finishing")


def _at_least_zero(v: float) -> str | None:
    return None if v >= 0 else "a number of 0 or more"


@dataclass(frozen=True, slots=True)
class WatchSettings:
    """The SLA watch (hotline/ticketing/watch.py): reminders before each deadline (0: none),
    and the SMS gateway the emergency plan's alerts also go through."""

    remind_assign_hours: float = setting(1.0, _at_least_zero, "D-1: working hours before")
    remind_sign_hours: float = setting(1.0, _at_least_zero, "D-3: working hours before")
    remind_handle_days: float = setting(1.0, _at_least_zero, "H-1: working days before")
    remind_callback_hours: float = setting(2.0, _at_least_zero, "B-1: working hours before")
    remind_emergency_assign_minutes: float = setting(3.0, _at_least_zero, "E-3: minutes before")
    remind_emergency_response_minutes: float = setting(
        10.0, _at_least_zero, "E-4: minutes before the first response is due"
    )
    remind_emergency_result_hours: float = setting(
        2.0, _at_least_zero, "E-4: working hours before the result is due"
    )
    sms: str = setting(
        "log", _one_of("log", "http", "off"), "log: write each SMS to the log; http: sms_url"
    )
    sms_url: str = setting("", _url("", "http", "https"), "a generic SMS gateway: POST JSON")
    sms_timeout: float = setting(5.0, _positive, "seconds the SMS gateway may take")


@dataclass(frozen=True, slots=True)
class UtilitySettings:
    """Utility emergencies on a three-way call (rule H-6; hotline/utility/)."""

    directory_file: str = setting(
        "", doc="the duty directory (TOML: units, categories, numbers, hours); empty: the lab's"
    )
    ring_timeout: float = setting(20.0, _positive, "seconds a duty number rings, then the next")
    caller_id: str = setting("12345", doc="the hotline's number the duty line sees")


def _window(v: str) -> str | None:
    expected = "a period like 09:00-20:00 (24:00 for midnight), start before end"
    m = re.fullmatch(r"(\d\d):(\d\d)-(\d\d):(\d\d)", v)
    if not m:
        return expected
    h1, m1, h2, m2 = (int(x) for x in m.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2):
        return expected
    return None if (h1, m1) < (h2, m2) else expected


def _weekdays(v: str) -> str | None:
    ok = v and set(v) <= set("1234567") and len(set(v)) == len(v)
    return None if ok else "ISO weekdays as digits, e.g. 1234567 (1 = Monday)"


CALLBACK_OUTCOMES = ("busy", "no_answer", "rejected", "hung_up", "no_key", "failed")
DEFAULT_SPACING = {
    "busy": "600",
    "no_answer": "3600",
    "hung_up": "3600",
    "no_key": "7200",
    "rejected": "7200",
    "failed": "1800",
}


def _spacing(v: dict[str, str]) -> str | None:
    expected = f"seconds for each outcome: {', '.join(CALLBACK_OUTCOMES)}"
    if set(v) != set(CALLBACK_OUTCOMES):
        return expected
    try:
        return None if all(float(x) > 0 for x in v.values()) else expected
    except ValueError:
        return expected


@dataclass(frozen=True, slots=True)
class CallbackSettings:
    """Satisfaction callbacks (rules B-1 … B-3; hotline/callbacks/): the campaign's calls."""

    window: str = setting("09:00-20:00", _window, "city time a citizen may be called")
    days: str = setting("1234567", _weekdays, "ISO weekdays calls are placed on")
    attempts: int = setting(3, _positive, "survey calls before self-evaluation")
    spacing: dict[str, str] = setting(DEFAULT_SPACING, _spacing, "outcome -> seconds to wait")
    call_seconds: float = setting(180.0, _positive, "a survey call's length, ringing included")
    evaluation_hours: float = setting(
        4.0, _positive, "the least time a self-evaluation code has before the deadline"
    )
    max_calls: int = setting(10, _positive, "survey calls at once, across nodes")
    ring_timeout: float = setting(30.0, _positive, "seconds the citizen's phone rings")
    key_timeout: float = setting(8.0, _positive, "seconds to press 1/2/3 after the question")
    reason_seconds: int = setting(60, _positive, "the longest reason said for key 3")
    endpoint: str = setting(
        "PJSIP/{number}@citizen-trunk", doc="the dial string; {number} is the citizen's"
    )
    caller_id: str = setting("12345", doc="the hotline's number the citizen sees")
    unreached: str = setting(
        "no_objection",
        _one_of("no_objection", "office"),
        "never reached and no self-evaluation by the deadline: closed as no objection, or "
        "left to the office",
    )
    evaluate_url: str = setting(
        "http://127.0.0.1:8080/evaluate/", doc="the public page's address in the message"
    )
    poll: float = setting(1.0, _positive, "seconds between looks for due callbacks")


@dataclass(frozen=True, slots=True)
class LogSettings:
    level: str = setting("INFO", _one_of("DEBUG", "INFO", "WARNING", "ERROR"))


DEFAULT_MENU = {
    "1": "consultation",
    "2": "help",
    "3": "complaint",
    "4": "suggestion",
    "5": "utility",
    "6": "progress",
    "7": "voicemail",
    "0": "operator",
}
# What a main-menu key can lead to: a request type (to the queue), a sub-flow, or the operator.
MENU_ROUTES = (
    "consultation",
    "help",
    "complaint",
    "suggestion",
    "utility",
    "progress",
    "voicemail",
    "operator",
)
DEFAULT_UTILITY_MENU = {"1": "water", "2": "power", "3": "gas"}


def _menu(allowed: tuple[str, ...]) -> Check:
    def check(v: dict[str, str]) -> str | None:
        problem = _digit_map(v)
        if problem:
            return problem
        wrong = sorted(set(v.values()) - set(allowed))
        return f"routes among {', '.join(allowed)} (not {', '.join(wrong)})" if wrong else None

    return check


@dataclass(frozen=True, slots=True)
class IvrSettings:
    menu: dict[str, str] = setting(DEFAULT_MENU, _menu(MENU_ROUTES), "DTMF key -> route")
    backend_timeout: float = setting(
        2.0, _positive, "seconds a caller waits on the database or Redis; then the flow goes on"
    )
    utility_menu: dict[str, str] = setting(
        DEFAULT_UTILITY_MENU, _menu(("water", "power", "gas")), "DTMF key -> utility (H-6)"
    )
    digit_timeout_ms: int = setting(5000, _positive)
    attempts: int = setting(3, _positive, "menu tries before the operator")
    max_wait_seconds: int = setting(120, _positive, "longer estimated wait: offer a message")
    record_max_seconds: int = setting(120, _positive, "longest voice message")
    record_silence_seconds: int = setting(5, _positive, "this much silence ends a message")
    repeat_days: int = setting(30, _positive, "a caller with an open ticket this recent")


DEFAULT_TEXTS = {
    "welcome": "您好，欢迎致电幺二三四五政务服务便民热线。",
    "emergency_notice": "如遇匪警、火警、医疗急救，请直接拨打幺幺零、幺幺九、幺二零。",
    "menu": "咨询请按1，求助请按2，投诉举报请按3，建议请按4，水电气抢修请按5，"
    "查询办理进度请按6，留言请按7，人工服务请按0。",
    "utility_menu": "供水抢修请按1，供电抢修请按2，燃气抢修请按3。",
    "progress_enter": "请输入工单编号，以井号键结束；查询本机号码的诉求，请直接按井号键。",
    "progress_none": "没有查到正在办理的诉求。",
    "progress_unavailable": "抱歉，暂时无法查询工单进度，请稍候，由人工为您服务。",
    "progress_intro": "您的诉求，编号",
    "progress_unit": "承办单位是",
    "progress_due": "预计办结时间为",
    "repeat_offer": "您有正在办理的诉求，查询办理进度请按1，其他服务请按2。",
    "voicemail_saved": "您的留言已收到，我们会尽快给您回电。",
    "voicemail_empty": "没有听到您的留言。需要帮助请再次拨打幺二三四五。",
    "goodbye": "感谢您的来电，再见。",
    "month": "月",
    "day": "日",
    "state_registered": "已受理，正在等待交办。",
    "state_assigned": "正在办理中。",
    "state_review": "已答复，正在审核。",
    "state_callback": "已办理，等待回访。",
    "state_dissatisfied": "正在重新办理。",
    "state_internal": "已转有关部门办理。",
    "state_closed": "已办结。",
    "state_rejected": "未予受理。",
    "invalid": "您的输入有误，请重新选择。",
    "transfer": "正在为您转接，请稍候。",
    "queue_ahead": "您前面还有",
    "queue_callers": "位来电在等候。",
    "queue_next": "您是下一位，坐席马上为您服务。",
    # the utility's duty line on a three-way call (rule H-6): never who called
    "utility_notice": "这里是幺二三四五政务服务热线，有一起紧急报修需要您立即处理。",
    "utility_ticket": "工单编号",
    "utility_accept": "请按1，与市民和热线坐席通话。",
    "recording_notice": "正在为您接通抢修单位，为便于处理，本次三方通话将被录音。",
    "queue_many": "您前面等候的来电较多，请耐心等待。",
    "queue_wait": "预计等待",
    "queue_minutes": "分钟。",
    "fallback": "系统繁忙，正在为您转接人工服务，请稍候。",
    "voicemail": "现在无人接听，请在提示音后留言，留言后请挂机，我们会尽快回复您。",
    # the satisfaction survey when the hotline calls back (rule B-1): the ticket, not the person
    "survey_intro": "您好，这里是幺二三四五政务服务热线，现对您反映的诉求进行满意度回访。",
    "survey_ticket": "工单编号",
    "survey_type_consultation": "诉求类型，咨询。",
    "survey_type_help": "诉求类型，求助。",
    "survey_type_suggestion": "诉求类型，建议。",
    "survey_type_complaint": "诉求类型，投诉举报。",
    "survey_menu": "满意请按1，基本满意请按2，不满意请按3。",
    "survey_reason": "请在提示音后说明不满意的原因，说完请按井号键。",
    "survey_thanks": "感谢您的评价，我们会认真处理。再见。",
    # Spoken numbers: digits of ticket numbers, and the days and months of dates.
    **{f"digit_{d}": w for d, w in zip("0123456789", "零幺二三四五六七八九", strict=True)},
    **{
        f"n_{n}": w
        for n, w in enumerate(
            [
                "一",
                "二",
                "三",
                "四",
                "五",
                "六",
                "七",
                "八",
                "九",
                "十",
                "十一",
                "十二",
                "十三",
                "十四",
                "十五",
                "十六",
                "十七",
                "十八",
                "十九",
                "二十",
                "二十一",
                "二十二",
                "二十三",
                "二十四",
                "二十五",
                "二十六",
                "二十七",
                "二十八",
                "二十九",
                "三十",
                "三十一",
            ],
            start=1,
        )
    },
}


def _proficiency(v: int) -> str | None:
    return None if 1 <= v <= 5 else "an integer from 1 to 5"


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """The ACD (hotline/queue/acd.py): one queue, skills do what several queues would."""

    ring_timeout: float = setting(15.0, _positive, "seconds an agent's phone rings, then the next")
    max_misses: int = setting(2, _positive, "missed offers in a row before the agent is paused")
    wrap_up_seconds: float = setting(10.0, _at_least_zero, "after-call work, then ready")
    min_proficiency: int = setting(3, _proficiency, "a call first needs its skills at this level")
    widen_after: float = setting(30.0, _at_least_zero, "seconds, then any proficiency")
    widen_all_after: float = setting(90.0, _at_least_zero, "seconds, then any agent")
    max_wait_seconds: float = setting(300.0, _positive, "then the caller is offered a message")
    announce_interval: float = setting(30.0, _positive, "seconds between position prompts")
    moh_class: str = setting("default", doc="Asterisk's music-on-hold class while waiting")
    store: str = setting(
        "memory", _one_of("memory", "redis"), "the ACD's state: this node, or Redis for several"
    )
    dead_man_seconds: int = setting(
        20, _positive, "Asterisk takes a caller to the safe path this long after the node stops"
    )


@dataclass(frozen=True, slots=True)
class PromptSettings:
    build_dir: Path = setting(Path("var/prompts"), doc="generated WAV files")
    recorded_dir: Path = setting(Path("prompts"), doc="recorded WAVs that replace generated ones")
    # espeak-ng 1.51's plain `cmn` voice spells the pinyin of its own dictionary as English
    # letters; `cmn-latn-pinyin` reads the same Chinese text as Mandarin.
    voice: str = setting("cmn-latn-pinyin", doc="espeak-ng voice")
    speed: int = setting(170, _positive, "espeak-ng words per minute")
    texts: dict[str, str] = setting(
        DEFAULT_TEXTS, _has_prompts, "merged over the defaults: change one, keep the rest"
    )


@dataclass(frozen=True, slots=True)
class LabSettings:
    cache_dir: Path = setting(Path("/var/cache/hotline-lab"), doc="built roots, outside the repo")
    mirror: str = setting("", _url("", "http", "https"), "empty: read the host's apt sources")
    suite: str = setting("sid", _name)
    instance: str = setting("main", _name, doc="name of this Asterisk instance inside the root")
    sip_port: int = setting(5060, _port)
    http_port: int = setting(8088, _port)
    ami_port: int = setting(5038, _port)
    rtp_start: int = setting(10000, _port)
    rtp_end: int = setting(10999, _port)
    start_timeout: float = setting(60.0, _positive)


@dataclass(frozen=True, slots=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    city: CitySettings = field(default_factory=CitySettings)
    log: LogSettings = field(default_factory=LogSettings)
    ivr: IvrSettings = field(default_factory=IvrSettings)
    queue: QueueSettings = field(default_factory=QueueSettings)
    prompts: PromptSettings = field(default_factory=PromptSettings)
    lab: LabSettings = field(default_factory=LabSettings)
    rules: RulesSettings = field(default_factory=RulesSettings)
    watch: WatchSettings = field(default_factory=WatchSettings)
    utility: UtilitySettings = field(default_factory=UtilitySettings)
    callback: CallbackSettings = field(default_factory=CallbackSettings)
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    ari: AriSettings = field(default_factory=AriSettings)


T = TypeVar("T")


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _to_bool(raw: Any, from_env: bool) -> bool:
    if isinstance(raw, bool):
        return raw
    if from_env and str(raw).lower() in _TRUE + _FALSE:
        return str(raw).lower() in _TRUE
    raise ValueError("true or false")


def _to_int(raw: Any, from_env: bool) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    text = str(raw).strip()
    if from_env and text.isascii() and text.lstrip("-").isdecimal():
        return int(text)
    raise ValueError("an integer")


def _to_float(raw: Any, from_env: bool) -> float:
    value: float | None = None
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        value = float(raw)
    elif from_env and str(raw).strip().isascii():
        with contextlib.suppress(ValueError):
            value = float(str(raw))
    if value is None or not math.isfinite(value):
        raise ValueError("a finite number")
    return value


def _to_str(raw: Any, from_env: bool) -> str:
    if isinstance(raw, str):
        return raw
    raise ValueError("a string")


def _to_path(raw: Any, from_env: bool) -> Path:
    if isinstance(raw, str) and raw:
        return Path(raw)
    raise ValueError("a path")


def _to_table(raw: Any, from_env: bool) -> dict[str, str]:
    if isinstance(raw, dict) and all(isinstance(v, str) for v in raw.values()):
        return {str(k): v for k, v in raw.items()}
    if from_env and isinstance(raw, str):  # key=value,key=value
        pairs = [p.partition("=") for p in raw.split(",") if p.strip()]
        if pairs and all(sep and k.strip() for k, sep, _ in pairs):
            return {k.strip(): v.strip() for k, _, v in pairs}
    raise ValueError("a table of strings (in the TOML file, or key=value,key=value)")


_COERCE: dict[Any, Callable[[Any, bool], Any]] = {
    bool: _to_bool,
    int: _to_int,
    float: _to_float,
    str: _to_str,
    Path: _to_path,
    dict[str, str]: _to_table,
}


def _build_section(
    cls: type[T], name: str, file_values: Mapping[str, Any], env: Mapping[str, str], origin: str
) -> T:
    hints = get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in file_values:
        if key not in known:
            expected = "a known setting: " + ", ".join(sorted(known))
            raise SettingsError(f"{name}.{key}", origin, expected, key)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        key = f"{name}.{f.name}"
        env_name = f"{ENV_PREFIX}{name}_{f.name}".upper()
        if env_name in env:
            raw, source, from_env = env[env_name], env_name, True
        elif f.name in file_values:
            raw, source, from_env = file_values[f.name], origin, False
        else:
            continue
        try:
            value = _COERCE[hints[f.name]](raw, from_env)
        except ValueError as exc:
            raise SettingsError(key, source, str(exc), shown(f, raw)) from None
        if f.name == "texts":  # prompt texts are merged over the defaults
            value = {**DEFAULT_TEXTS, **value}
        check: Check | None = f.metadata.get("check")
        problem = check(value) if check else None
        if problem:
            raise SettingsError(key, source, problem, shown(f, raw))
        values[f.name] = value
    return cls(**values)


def load_settings(
    config_file: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """Defaults <- TOML file <- environment. Raises SettingsError on any unfit value."""
    env = dict(os.environ) if env is None else dict(env)
    path = config_file if config_file is not None else env.get(CONFIG_ENV) or None
    data: dict[str, Any] = {}
    origin = "defaults"
    if path is not None:
        origin = str(path)
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise SettingsError("--config", str(path), "an existing TOML file", str(path)) from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise SettingsError(
                "--config", str(path), f"valid UTF-8 TOML ({exc})", str(path)
            ) from None
        except OSError as exc:
            raise SettingsError(
                "--config", str(path), f"a readable file ({exc.strerror})", str(path)
            ) from None
    sections = {f.name: f for f in dataclasses.fields(Settings)}
    for name, value in data.items():
        if name not in sections:
            raise SettingsError(name, origin, "a known section: " + ", ".join(sections), name)
        if not isinstance(value, dict):
            raise SettingsError(name, origin, "a [section] table", value)
    hints = get_type_hints(Settings)
    built = {
        name: _build_section(hints[name], name, data.get(name, {}), env, origin)
        for name in sections
    }
    settings = Settings(**built)
    if settings.queue.store == "redis" and not settings.redis.url:
        raise SettingsError(
            "queue.store", origin, "memory, or redis with redis.url set", settings.queue.store
        )
    if settings.watch.sms == "http" and not settings.watch.sms_url:
        raise SettingsError("watch.sms_url", origin, "the gateway's URL when watch.sms is http", "")
    return settings


def unknown_env(env: Mapping[str, str] | None = None) -> list[str]:
    """HOTLINE_* variables that name no setting (likely typos); the CLI warns about them."""
    env = dict(os.environ) if env is None else env
    known = {CONFIG_ENV}
    hints = get_type_hints(Settings)
    for section in dataclasses.fields(Settings):
        for f in dataclasses.fields(hints[section.name]):
            known.add(f"{ENV_PREFIX}{section.name}_{f.name}".upper())
    return sorted(k for k in env if k.startswith(ENV_PREFIX) and k not in known)
