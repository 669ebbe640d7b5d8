"""``hub.kafka.retrying``: a broker call asked again while a broker is down, then given up."""

from __future__ import annotations

import pytest
from kafka.errors import KafkaConnectionError, KafkaTimeoutError

from hub.errors import BrokerUnavailable
from hub.kafka import retrying


class Flaky:
    """Raises the given errors in turn, then answers."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "answer"


def test_a_call_that_fails_then_answers_is_asked_again() -> None:
    call = Flaky(KafkaConnectionError("111 ECONNREFUSED"), KafkaTimeoutError("no leader"))
    assert retrying(call, what="listing topics", timeout_s=30) == "answer"
    assert call.calls == 3


def test_a_call_that_keeps_failing_ends_in_broker_unavailable_naming_it() -> None:
    call = Flaky(*[KafkaConnectionError("111 ECONNREFUSED")] * 100)
    with pytest.raises(BrokerUnavailable, match=r"listing topics failed for 0.3s: .*ECONNREFUSED"):
        retrying(call, what="listing topics", timeout_s=0.3)
    assert 2 <= call.calls < 100


def test_an_error_that_is_not_the_broker_s_is_not_retried() -> None:
    call = Flaky(ValueError("a bug"))
    with pytest.raises(ValueError, match="a bug"):
        retrying(call, what="listing topics", timeout_s=30)
    assert call.calls == 1
