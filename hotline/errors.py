"""Every exception hotline raises, in one tree (after httpx's ``_exceptions.py``).

::

    HotlineError
    ├── RequestError                 the caller's fault: an HTTP edge answers 4xx with ``code``
    │   ├── PayloadError             400 bad_payload — a field (named) does not fit
    │   ├── Unauthorized             401 unauthorized — no or unknown bearer token
    │   ├── CodedError               raised as E(code, message, rule)
    │   │   ├── Forbidden            403 role_forbidden / unmask_forbidden — role or unit may not
    │   │   ├── TicketError          409 (also a Conflict): a rule refuses the action
    │   │   └── AgentStateError      409 (also a Conflict): the ACD refuses (hotline.queue.agent)
    │   ├── NotFound                 404 not_found — also for what a unit may not know exists
    │   ├── Conflict                 409
    │   │   └── StaleTicket          stale_version — somebody else changed the ticket first
    │   ├── VersionRequired          428 version_required — optimistic locking needs the version
    │   └── Throttled                429 too_many_requests — too many failed authentications
    ├── Unavailable                  503 + Retry-After — a part we depend on cannot answer now
    │   ├── CalendarError            the working calendar has no data (rule C-2)
    │   ├── DatabaseUnavailable      database_unavailable — down, frozen or over its time bound
    │   │   └── OutcomeUnknown       outcome_unknown — the commit was sent, its answer never came
    │   └── SharedStateUnavailable   shared_state_unavailable — Redis cannot answer
    ├── StorageError                 persistence, not the caller's fault
    │   ├── DuplicateIntake          the (channel, upstream id) pair is a ticket already (I-2)
    │   └── NotMigrated              the database is behind the code's migrations
    ├── TelephonyError               Asterisk and live calls
    │   ├── AGIError                 FastAGI / process AGI
    │   │   ├── AGIProtocolError     raised by the sans-I/O core
    │   │   │   ├── RemoteProtocolError   the peer sent something that is not AGI
    │   │   │   └── LocalProtocolError    we tried to send what AGI cannot carry
    │   │   ├── AGIHangup            the channel hung up or the stream closed
    │   │   ├── AGICommandError      Asterisk refused or failed a command
    │   │   └── AGITimeout           no reply within the idle timeout
    │   ├── AriError                 ARI answered an error status (``status``)
    │   ├── CallerHungUp             the caller is gone; the flow ends where it is
    │   └── ChannelError             a step failed on a live call
    └── ConfigError                  operator input outside the settings loader
        └── UserError                a unit or user cannot be added as asked

Settings errors (:class:`hotline.config.settings.SettingsError`) stay with the loader: they end
start-up with exit code 2 before anything else runs. HTTP edges map errors by base class:
every :class:`RequestError` carries its ``status`` and ``code``; :class:`Unavailable` is 503;
anything else is a 500 that is logged.
"""

from __future__ import annotations

from typing import ClassVar


class HotlineError(Exception):
    """Base of every error hotline raises on purpose."""


# -- the caller's fault -------------------------------------------------------------------------
class RequestError(HotlineError):
    status: ClassVar[int] = 400
    code: str = "bad_request"
    rule: str | None = None

    def __init__(self, message: str, *, code: str | None = None, rule: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if rule is not None:
            self.rule = rule


class PayloadError(RequestError):
    status = 400
    code = "bad_payload"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class Unauthorized(RequestError):
    status = 401
    code = "unauthorized"


class CodedError(RequestError):
    """Raised as ``E(code, message, rule)``: the code names the case, the rule its rule id."""

    def __init__(self, code: str, message: str, rule: str | None = None) -> None:
        super().__init__(message, code=code, rule=rule)


class Forbidden(CodedError):
    status = 403
    code = "role_forbidden"


class NotFound(RequestError):
    status = 404
    code = "not_found"

    def __init__(self, what: str) -> None:
        super().__init__(f"no {what}")
        self.what = what

    def __str__(self) -> str:
        return self.what


class Conflict(RequestError):
    status = 409
    code = "conflict"


class TicketError(CodedError, Conflict):
    """An action the rules do not allow; ``code`` is machine-readable, ``rule`` its rule id."""


class StaleTicket(Conflict):
    """Somebody else changed the ticket since it was loaded."""

    code = "stale_version"


class VersionRequired(RequestError):
    status = 428
    code = "version_required"


class Throttled(RequestError):
    status = 429
    code = "too_many_requests"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# -- a part we depend on cannot answer -----------------------------------------------------------
class Unavailable(HotlineError):
    status: ClassVar[int] = 503
    code: str = "unavailable"
    rule: str | None = None


class CalendarError(Unavailable):
    """The calendar cannot answer (a year with no data, a broken override file)."""

    code = "calendar_unavailable"
    rule = "C-2"


class DatabaseUnavailable(Unavailable):
    """The database refused, failed or did not answer within its bound (``database.timeout``)."""

    code = "database_unavailable"


class OutcomeUnknown(DatabaseUnavailable):
    """The commit was sent but its answer was lost: the change may or may not be stored. A
    client repeats an intake with the same upstream id (idempotent, rule I-2) or reads first."""

    code = "outcome_unknown"


class SharedStateUnavailable(Unavailable):
    """Redis refused or did not answer within its bound (``redis.timeout``)."""

    code = "shared_state_unavailable"


# -- persistence ----------------------------------------------------------------------------------
class StorageError(HotlineError):
    pass


class DuplicateIntake(StorageError):
    """The (channel, upstream id) pair is already a ticket (rule I-2)."""


class NotMigrated(StorageError):
    """The database is behind the code's migrations."""


# -- telephony ------------------------------------------------------------------------------------
class TelephonyError(HotlineError):
    pass


class AGIError(TelephonyError):
    """Base of every AGI error in hotline."""


class AGIProtocolError(AGIError):
    """Base of every error the protocol core raises."""


class RemoteProtocolError(AGIProtocolError):
    """Asterisk (or whatever is on the other end) sent something that is not AGI."""


class LocalProtocolError(AGIProtocolError):
    """We tried to send something AGI cannot carry, or at the wrong time."""


class AGIHangup(AGIError):
    """The channel hung up or the stream closed; no further command will reach the caller."""


class AGICommandError(AGIError):
    """Asterisk refused or failed a command on a live channel."""


class AGITimeout(AGIError):
    """No reply from Asterisk within the idle timeout."""


class AriError(TelephonyError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"ARI {status}: {message}")
        self.status = status


class CallerHungUp(TelephonyError):
    """The caller is gone; the flow ends where it is."""


class ChannelError(TelephonyError):
    """A step failed on a live call (a missing prompt, a refused command)."""


# -- operator input ---------------------------------------------------------------------------
class ConfigError(HotlineError):
    pass


class UserError(ConfigError):
    pass
