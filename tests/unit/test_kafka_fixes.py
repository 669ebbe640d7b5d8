"""``hub.kafka_fixes`` and ``hub.kafka.transaction_step``: a transactional request is not
lost when its coordinator's broker was just killed, and no transaction step waits forever.

The broker-level proof is ``tests/faults/test_rolling_broker_faults.py`` (a relay that hung
for good there); these pin the two mechanisms on kafka-python's own classes.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from kafka.errors import KafkaConnectionError, KafkaTimeoutError, ProducerFencedError
from kafka.producer.sender import Sender
from kafka.producer.transaction_manager import TransactionalRequestResult

import hub.kafka_fixes
from hub.kafka import transaction_step


class Handler:
    """A transactional request bound for the transaction coordinator."""

    coordinator_type, coordinator_key, is_retry, request = "transaction", "hub.tx", False, None

    def needs_coordinator(self) -> bool:
        return True


class Transactions:
    """The sender's view of the transaction manager: one request pending, to coordinator 1."""

    def __init__(self) -> None:
        self.pending: list[Handler] = [Handler()]
        self.lookups = 0

    def is_completing(self) -> bool:
        return False

    def next_request_handler(self, _has_incomplete: bool) -> Handler | None:
        return self.pending.pop(0) if self.pending else None

    def coordinator(self, _kind: str) -> int:
        return 1

    def lookup_coordinator_for_request(self, _handler: Handler) -> None:
        self.lookups += 1

    def retry(self, handler: Handler) -> None:
        self.pending.append(handler)


class KilledCoordinator:
    """A network client whose coordinator connection was just refused."""

    def await_ready(self, _node: int, timeout_ms: int = 30_000) -> bool:
        raise KafkaConnectionError("111 ECONNREFUSED")


def _sender(transactions: Transactions) -> Any:
    sender: Any = Sender.__new__(Sender)  # the real method, on the state it reads
    sender._transaction_manager = transactions
    sender._client = KilledCoordinator()
    sender._accumulator = type("Accumulator", (), {"has_incomplete": False})()
    sender._running, sender._force_close = True, False
    sender.config = {"request_timeout_ms": 1000, "retry_backoff_ms": 10, "client_id": "hub",
                     "transactional_id": "hub.tx"}
    return sender


def test_a_request_whose_coordinator_refuses_the_connection_is_queued_again() -> None:
    transactions = Transactions()
    sender = _sender(transactions)
    assert sender._maybe_send_pending_request() is True
    # Unpatched, the request was dropped here: nothing pending, its caller waiting forever.
    assert len(transactions.pending) == 1
    assert transactions.lookups == 1
    assert sender._client.__class__ is KilledCoordinator  # the real client is back in place


def test_the_patch_applies_once() -> None:
    patched = Sender._maybe_send_pending_request
    hub.kafka_fixes._retry_dropped_transactional_requests()
    assert Sender._maybe_send_pending_request is patched


class Producer:
    """What transaction_step touches of a KafkaProducer."""

    def __init__(self) -> None:
        self._transaction_manager = object()
        self.woken = 0
        self._sender = self

    def wakeup(self) -> None:
        self.woken += 1


def test_a_step_nobody_answers_ends_in_a_timeout_naming_it() -> None:
    producer, started = Producer(), time.monotonic()
    with pytest.raises(KafkaTimeoutError, match=r"committing: .* did not answer in 0.2 s"):
        transaction_step(producer, lambda _tm: TransactionalRequestResult(), what="committing",
                         timeout_s=0.2)
    assert 0.15 <= time.monotonic() - started < 5
    assert producer.woken == 1


def test_a_step_that_fails_raises_its_own_error() -> None:
    result = TransactionalRequestResult()
    result.done(ProducerFencedError())
    with pytest.raises(ProducerFencedError):
        transaction_step(Producer(), lambda _tm: result, what="committing", timeout_s=5)


def test_a_step_that_succeeds_returns() -> None:
    result, producer, seen = TransactionalRequestResult(), Producer(), []

    def step(manager: object) -> TransactionalRequestResult:
        seen.append(manager)
        result.done()
        return result

    transaction_step(producer, step, what="committing", timeout_s=5)
    assert seen == [producer._transaction_manager]
