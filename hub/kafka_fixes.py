"""Workarounds for kafka-python 3.0.12 bugs the hub's tests found, applied on import.

Each one names the bug, where it showed, and the test that holds it; each patch is
idempotent and changes nothing but the faulty path. ``hub.kafka`` imports this
module, so every client the hub builds has them.
"""

from __future__ import annotations

from typing import Any

from kafka.consumer.fetcher import Fetcher
from kafka.coordinator.base import BaseCoordinator
from kafka.coordinator.consumer import ConsumerCoordinator
from kafka.errors import KafkaConnectionError
from kafka.producer.sender import Sender


def _keep_finished_joins() -> None:
    """Work around a kafka-python 3.0.12 race that can keep a consumer out of its group.

    ``BaseCoordinator.join_group_async`` runs JoinGroup then SyncGroup as one task
    and, when a ``poll`` gives up waiting, re-awaits the task at the next poll.
    But the task keeps running on the client's IO thread between polls; if it
    finishes there, the next poll sees a *done* task, throws its assignment away
    and starts another JoinGroup. On a broker whose joins take a fixed time (the
    embedded one: 3 s) a caller with a steady poll rhythm can lose every round:
    joins of 60 s and more, or never, were measured (CI, and
    ``tests/integration/test_group_join.py``). Here a task that finished with an
    assignment is handed back as a fresh, pending task that yields the same
    result, so the library's own success path consumes it; and a round under way
    counts as a rejoin needed until it is taken (below).
    """
    original = BaseCoordinator.join_group_async
    if getattr(original, "_keeps_finished_joins", False):
        return

    async def join_group_async(self: Any, timeout_ms: int | None = None) -> Any:
        task = self._join_task
        if task is not None and task.is_done and task.exception is None \
                and self._generation.protocol is None:
            # The generation that round joined was reset since (a heartbeat found it
            # stale): its assignment is void, and replayed it crashed the join ("invalid
            # assignment protocol: None"; seen after a member died, with
            # tests/integration/test_passport_crash.py). A fresh round starts instead.
            self._join_task = None
        elif task is not None and task.is_done and task.exception is None:
            assignment = task.value

            async def replay() -> Any:
                return assignment

            self._join_task = self._manager.call_soon(replay)
        return await original(self, timeout_ms)

    join_group_async._keeps_finished_joins = True  # type: ignore[attr-defined]
    BaseCoordinator.join_group_async = join_group_async

    # A round started by a metadata change (ConsumerCoordinator.need_rejoin compares
    # the assigned and the current partitions) clears its own cause as the leader
    # assigns, half-way. If the round finishes between polls, need_rejoin() is False
    # at the next one, join_group_async is not even called, and the round's
    # assignment is never taken: no partitions, for good (seen on Apache Kafka with
    # polls of timeout 0; tests/integration/test_processor_loop.py). A round under
    # way, or finished and not taken yet, is a rejoin still needed.
    need_rejoin = ConsumerCoordinator.need_rejoin

    def needs_rejoin(self: Any) -> bool:
        return self._join_task is not None or bool(need_rejoin(self))

    ConsumerCoordinator.need_rejoin = needs_rejoin


_keep_finished_joins()


def _resume_parked_records() -> None:
    """Work around a kafka-python 3.0.12 bug that starves a resumed partition for good.

    When ``poll`` meets fetched records of a paused partition it parks them, and
    gives them back once the partition is resumed, but only if no other
    partition's records are in hand (``_next_partition_records is None``). Once
    drained, those are an *exhausted* object, falsy but never reset to None: the
    parked records stay parked, and the partition, still counted as having data
    buffered, is never fetched again. Found by ``hub.align``'s pauses on Apache
    Kafka (a catch-up that stopped for good half-way); held by
    ``tests/integration/test_pause_resume.py``. Resetting an exhausted slot to
    None changes nothing else: every other reader of it tests its truth value.
    """
    original = Fetcher.fetched_records
    if getattr(original, "_resumes_parked", False):
        return

    def fetched_records(self: Any, max_records: int | None = None,
                        update_offsets: bool = True) -> Any:
        if self._next_partition_records is not None and not self._next_partition_records:
            self._next_partition_records = None
        return original(self, max_records, update_offsets)

    fetched_records._resumes_parked = True  # type: ignore[attr-defined]
    Fetcher.fetched_records = fetched_records


_resume_parked_records()


class _NotReadyOnConnectionError:
    """A client whose ``await_ready`` answers "not ready" where the real one raises."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def await_ready(self, node_id: Any, timeout_ms: int = 30_000) -> bool:
        try:
            return bool(self._client.await_ready(node_id, timeout_ms=timeout_ms))
        except KafkaConnectionError:
            return False


def _retry_dropped_transactional_requests() -> None:
    """Work around a kafka-python 3.0.12 bug that loses a transactional request for good.

    ``Sender._maybe_send_pending_request`` sends AddOffsetsToTxn, TxnOffsetCommit,
    EndTxn and the like to the transaction coordinator. When the coordinator's
    broker was just killed, ``await_ready`` *raises* KafkaConnectionError instead
    of returning False; the handler's ``except`` then looks the coordinator up
    again but, the target node being already set, never re-enqueues the request.
    Nothing answers it: ``send_offsets_to_transaction`` or ``commit_transaction``
    waits forever, and the relay with it (found by
    ``tests/faults/test_rolling_broker_faults.py`` with fencing on). Answering
    "not ready" instead takes the library's own path for an unready coordinator:
    look it up again, and retry the request.
    """
    original = Sender._maybe_send_pending_request
    if getattr(original, "_retries_dropped", False):
        return

    def maybe_send_pending_request(self: Any) -> Any:
        client = self._client
        self._client = _NotReadyOnConnectionError(client)
        try:
            return original(self)
        finally:
            self._client = client

    maybe_send_pending_request._retries_dropped = True  # type: ignore[attr-defined]
    Sender._maybe_send_pending_request = maybe_send_pending_request


_retry_dropped_transactional_requests()
