"""When to try a message again, and what an attempt's answer means (pure).

The retry schedule is Svix's by default (``webhook_retry_schedule_s``): the
delay before each attempt, the first included, so its length is the number of
attempts a message gets. A receiver that says when to come back (429 or 503
with ``Retry-After``) is heard, up to a day: a longer wait would outlive the
schedule and the endpoint's disabling, so it reads as a misconfiguration, not
a request.
"""

from __future__ import annotations

import math
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Literal

from hub.config import Settings
from hub.errors import ConfigError
from schemas.frozen import frozen

#: The longest ``Retry-After`` honoured.
RETRY_AFTER_CAP_MS = 24 * 3600 * 1000
#: Statuses whose ``Retry-After`` the schedule honours (RFC 9110 names both).
_THROTTLED = frozenset({429, 503})
_GONE = 410

VerdictKind = Literal["delivered", "retry", "gone"]


@frozen
class RetryPolicy:
    """How often and how long a message is tried, and when its endpoint gives up."""

    delays_ms: tuple[int, ...]
    """Delay before each attempt, the first one included."""
    timeout_ms: int
    """An attempt without a 2xx within this time has failed."""
    disable_after_ms: int
    """An endpoint failing this long without a success is disabled."""

    def __post_init__(self) -> None:
        if not self.delays_ms or any(d < 0 for d in self.delays_ms):
            raise ConfigError("a retry schedule needs at least one delay, none negative")

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        """The policy of ``webhook_retry_schedule_s``, ``_timeout_s``, ``_disable_after_s``."""
        return cls(parse_schedule(settings.webhook_retry_schedule_s),
                   round(settings.webhook_timeout_s * 1000),
                   round(settings.webhook_disable_after_s * 1000))

    @property
    def attempts(self) -> int:
        """How many attempts a message gets."""
        return len(self.delays_ms)

    def next_attempt_at(self, attempts_done: int, now_ms: int,
                        retry_after_ms: int | None) -> int | None:
        """When the next attempt is due after ``attempts_done`` of them; None when none is left.

        ``retry_after_ms``, the receiver's own wait (``Verdict.retry_after_ms``), is honoured
        when longer than the schedule's, up to ``RETRY_AFTER_CAP_MS``.
        """
        if attempts_done < 0:
            raise ValueError(f"attempts_done must not be negative, not {attempts_done}")
        if attempts_done >= self.attempts:
            return None
        asked = min(max(retry_after_ms or 0, 0), RETRY_AFTER_CAP_MS)
        return now_ms + max(self.delays_ms[attempts_done], asked)

    def should_disable(self, failing_since_ms: int | None, now_ms: int) -> bool:
        """Whether an endpoint failing since ``failing_since_ms`` (None: it is not) is disabled."""
        return failing_since_ms is not None and now_ms - failing_since_ms >= self.disable_after_ms


@frozen
class Verdict:
    """What one attempt's answer means for its message."""

    kind: VerdictKind
    retry_after_ms: int | None
    """The receiver's ``Retry-After`` as a wait from now (429 and 503 only)."""
    error: str | None
    """Why the attempt did not deliver, short (never a body)."""


def classify(status: int | None, error: str | None, retry_after: str | None,
             now_ms: int) -> Verdict:
    """The verdict on an attempt: ``status`` None when no answer came (``error`` says why).

    2xx delivered; 410 gone (the receiver asks for no more); anything else is
    tried again: 429 and 503 after their ``Retry-After`` if given, other
    statuses (a redirect among them: not followed), timeouts and connection
    errors on the schedule.
    """
    if status is None:
        return Verdict("retry", None, error or "no response")
    if 200 <= status < 300:
        return Verdict("delivered", None, None)
    if status == _GONE:
        return Verdict("gone", None, error or "HTTP 410 Gone")
    wait = parse_retry_after(retry_after, now_ms) if status in _THROTTLED else None
    return Verdict("retry", wait, error or f"HTTP {status}")


def parse_retry_after(value: str | None, now_ms: int) -> int | None:
    """A ``Retry-After`` header (delta-seconds or HTTP-date) as ms from now; None if unusable."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return min(int(text), RETRY_AFTER_CAP_MS // 1000) * 1000
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; "-0000" parses as naive
        when = when.replace(tzinfo=UTC)
    return min(max(round(when.timestamp() * 1000) - now_ms, 0), RETRY_AFTER_CAP_MS)


def parse_schedule(text: str) -> tuple[int, ...]:
    """``webhook_retry_schedule_s`` ("0,5,300": seconds) as milliseconds; ``ConfigError`` if bad."""
    delays: list[int] = []
    for item in text.split(","):
        try:
            seconds = float(item.strip())
        except ValueError:
            raise ConfigError(
                f"PASSPORT_HUB_WEBHOOK_RETRY_SCHEDULE_S: {item.strip()!r} is not a number of "
                "seconds (expected a comma-separated list such as 0,5,300)") from None
        if not math.isfinite(seconds) or seconds < 0:
            raise ConfigError(f"PASSPORT_HUB_WEBHOOK_RETRY_SCHEDULE_S: {item.strip()!r} is not "
                              "a finite, non-negative number of seconds")
        delays.append(round(seconds * 1000))
    return tuple(delays)
