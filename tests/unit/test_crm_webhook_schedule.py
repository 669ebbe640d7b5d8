"""The retry schedule and the verdict on an attempt's answer (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.crm_webhook.schedule import (
    RETRY_AFTER_CAP_MS,
    RetryPolicy,
    Verdict,
    classify,
    parse_retry_after,
    parse_schedule,
)
from hub.config import Settings
from hub.errors import ConfigError

NOW = 1_741_000_000_000
DAY = 86_400_000
POLICY = RetryPolicy((0, 5_000, 300_000), timeout_ms=15_000, disable_after_ms=5 * DAY)


def test_the_default_schedule_is_svix_s() -> None:
    policy = RetryPolicy.from_settings(Settings())
    assert policy.delays_ms == (0, 5_000, 300_000, 1_800_000, 7_200_000, 18_000_000,
                                36_000_000, 36_000_000)
    assert policy.attempts == 8
    assert policy.timeout_ms == 15_000
    assert policy.disable_after_ms == 5 * DAY


def test_a_schedule_may_have_fractions_of_seconds() -> None:
    assert parse_schedule(" 0, 0.25 ,1.5") == (0, 250, 1_500)
    policy = RetryPolicy.from_settings(Settings(webhook_retry_schedule_s="0.1,0.2",
                                                webhook_timeout_s=0.5))
    assert (policy.delays_ms, policy.timeout_ms) == ((100, 200), 500)


@pytest.mark.parametrize(("text", "bad"), [
    ("", "''"), ("0,five,10", "'five'"), ("0,,5", "''"), ("0,-5", "'-5'"),
    ("nan", "'nan'"), ("0,inf", "'inf'"), ("0;5", "'0;5'"),
])
def test_a_bad_schedule_is_a_config_error_naming_the_setting(text: str, bad: str) -> None:
    with pytest.raises(ConfigError, match="PASSPORT_HUB_WEBHOOK_RETRY_SCHEDULE_S") as caught:
        RetryPolicy.from_settings(Settings(webhook_retry_schedule_s=text))
    assert bad in str(caught.value)


def test_a_policy_needs_a_delay() -> None:
    with pytest.raises(ConfigError):
        RetryPolicy((), timeout_ms=1, disable_after_ms=1)


def test_each_attempt_waits_its_delay() -> None:
    assert POLICY.next_attempt_at(0, NOW, None) == NOW
    assert POLICY.next_attempt_at(1, NOW, None) == NOW + 5_000
    assert POLICY.next_attempt_at(2, NOW, None) == NOW + 300_000


def test_no_attempt_is_left_after_the_last() -> None:
    assert POLICY.next_attempt_at(3, NOW, None) is None
    assert POLICY.next_attempt_at(4, NOW, 1_000) is None


def test_retry_after_is_honoured_when_longer_than_the_schedule() -> None:
    assert POLICY.next_attempt_at(1, NOW, 60_000) == NOW + 60_000
    assert POLICY.next_attempt_at(2, NOW, 60_000) == NOW + 300_000
    assert POLICY.next_attempt_at(1, NOW, 0) == NOW + 5_000
    assert POLICY.next_attempt_at(1, NOW, -9) == NOW + 5_000


def test_retry_after_is_capped_at_a_day() -> None:
    assert POLICY.next_attempt_at(1, NOW, 30 * DAY) == NOW + DAY


def test_attempts_done_is_never_negative() -> None:
    with pytest.raises(ValueError, match="negative"):
        POLICY.next_attempt_at(-1, NOW, None)


def test_an_endpoint_is_disabled_after_failing_long_enough() -> None:
    assert not POLICY.should_disable(None, NOW)
    assert not POLICY.should_disable(NOW - 5 * DAY + 1, NOW)
    assert POLICY.should_disable(NOW - 5 * DAY, NOW)


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_2xx_is_delivered(status: int) -> None:
    assert classify(status, None, "120", NOW) == Verdict("delivered", None, None)


def test_410_is_gone() -> None:
    assert classify(410, None, None, NOW) == Verdict("gone", None, "HTTP 410 Gone")


@pytest.mark.parametrize("status", [429, 503])
def test_throttling_is_retried_after_what_the_receiver_asks(status: int) -> None:
    assert classify(status, None, "120", NOW) == Verdict("retry", 120_000, f"HTTP {status}")
    assert classify(status, None, None, NOW) == Verdict("retry", None, f"HTTP {status}")


def test_retry_after_may_be_an_http_date() -> None:
    later = datetime.fromtimestamp((NOW + 90_000) / 1000, UTC)
    assert classify(429, None, format_datetime(later, usegmt=True), NOW).retry_after_ms == 90_000
    earlier = datetime.fromtimestamp((NOW - 90_000) / 1000, UTC)
    assert classify(503, None, format_datetime(earlier, usegmt=True), NOW).retry_after_ms == 0


@pytest.mark.parametrize("garbage", ["soon", "", "-5", "1.5", "12 s", "Mon, 99 Foo 2015", "٣"])
def test_garbage_retry_after_is_ignored(garbage: str) -> None:
    assert classify(429, None, garbage, NOW) == Verdict("retry", None, "HTTP 429")


def test_retry_after_is_capped_when_read() -> None:
    assert parse_retry_after("999999999", NOW) == RETRY_AFTER_CAP_MS
    assert parse_retry_after("Wed, 01 Jan 2200 00:00:00 GMT", NOW) == RETRY_AFTER_CAP_MS
    assert parse_retry_after(None, NOW) is None


@pytest.mark.parametrize("status", [400, 401, 403, 404, 408, 413, 500, 502, 504])
def test_other_statuses_are_retried_on_the_schedule(status: int) -> None:
    assert classify(status, None, "120", NOW) == Verdict("retry", None, f"HTTP {status}")


def test_a_redirect_is_retried_and_says_it_was_not_followed() -> None:
    assert classify(302, "redirect not followed", None, NOW) == \
        Verdict("retry", None, "redirect not followed")


@pytest.mark.parametrize("error", ["timeout", "connection refused"])
def test_no_answer_is_retried(error: str) -> None:
    assert classify(None, error, None, NOW) == Verdict("retry", None, error)
    assert classify(None, None, None, NOW) == Verdict("retry", None, "no response")


delays = st.lists(st.integers(0, 2 * DAY), min_size=1, max_size=12).map(tuple)


@given(delays, st.integers(0, 15), st.integers(0, 4_102_444_800_000),
       st.none() | st.integers(-DAY, 400 * DAY))
def test_the_next_attempt_is_never_before_now_nor_past_the_schedule(
        delays_ms: tuple[int, ...], done: int, now: int, retry_after: int | None) -> None:
    policy = RetryPolicy(delays_ms, timeout_ms=1_000, disable_after_ms=DAY)
    due = policy.next_attempt_at(done, now, retry_after)
    if done >= len(delays_ms):
        assert due is None
        return
    assert due is not None
    assert now + delays_ms[done] <= due <= now + max(delays_ms[done], RETRY_AFTER_CAP_MS)


@given(delays, st.lists(st.none() | st.integers(0, 3 * DAY), min_size=20, max_size=20))
def test_a_message_gets_exactly_its_attempts_in_time_order(
        delays_ms: tuple[int, ...], waits: list[int | None]) -> None:
    policy = RetryPolicy(delays_ms, timeout_ms=1_000, disable_after_ms=DAY)
    now, times = NOW, []
    for done, wait in enumerate(waits):
        due = policy.next_attempt_at(done, now, wait)
        if due is None:
            break
        times.append(due)
        now = due
    assert len(times) == policy.attempts
    assert times == sorted(times)


@given(st.none() | st.integers(100, 599), st.none() | st.text(max_size=40),
       st.none() | st.text(max_size=40))
def test_every_answer_has_a_verdict(status: int | None, error: str | None,
                                    retry_after: str | None) -> None:
    verdict = classify(status, error, retry_after, NOW)
    assert (verdict.kind == "delivered") == (status is not None and 200 <= status < 300)
    assert (verdict.error is None) == (verdict.kind == "delivered")
    assert verdict.retry_after_ms is None or 0 <= verdict.retry_after_ms <= RETRY_AFTER_CAP_MS
