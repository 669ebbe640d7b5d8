"""Kafka client factories with the hub's defaults, and topic creation from the catalog.

Producers are idempotent with acks=all (kafka-python 3's default, stated here so
it survives a library change) and batch with a short linger. Consumers never
auto-commit: the processor's SQLite store is the truth about positions, and the
group commit is only a mirror for lag monitoring.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError
from kafka.partitioner.default import DefaultPartitioner, murmur2

import hub.kafka_fixes  # noqa: F401  - patches kafka-python's bugs on import
from hub import logs
from hub.config import Settings
from hub.errors import BrokerUnavailable
from schemas.catalog import CATALOG, Topic

_T = TypeVar("_T")


class KeyHashPartitioner(DefaultPartitioner):  # type: ignore[misc]  # kafka-python is untyped
    """kafka-python's default partitioner (the Java client's murmur2 of the key, so
    keyed records land where Kafka Streams and every other client put them), with
    each key's hash remembered: murmur2 runs in pure Python, and a passport snapshot
    goes out under the same SIREN again and again (~7 µs of the ~35 a send costs)."""

    def __init__(self, remembered: int = 100_000) -> None:
        self.remembered = remembered
        self._hashes: dict[bytes, int] = {}

    def partition(self, topic: str, key: Any, serialized_key: bytes | None, value: Any,  # noqa: PLR0917 - kafka-python calls it so
                  serialized_value: bytes | None, cluster: Any) -> int:
        partitions = cluster.partitions_for_topic(topic)
        if serialized_key is None or not partitions:  # random pick, or its error
            return int(super().partition(topic, key, serialized_key, value, serialized_value,
                                         cluster))
        hashed = self._hashes.get(serialized_key)
        if hashed is None:
            if len(self._hashes) >= self.remembered:
                self._hashes.clear()
            hashed = self._hashes[serialized_key] = murmur2(serialized_key) & 0x7FFFFFFF
        return int(sorted(partitions)[hashed % len(partitions)])


def producer(settings: Settings, **overrides: Any) -> KafkaProducer:
    """An idempotent, acks=all producer that batches."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "batch_size": 256 * 1024,
        "max_request_size": 2 * 1024 * 1024,
        "request_timeout_ms": settings.request_timeout_ms,
        "retry_backoff_ms": 100,
        "client_id": "passport-hub",
        # kafka-python's own statistics cost µs per record on the relay's hot path,
        # and nothing reads them (the hub exports its own metrics).
        "metrics_enabled": False,
        "partitioner": KeyHashPartitioner(),
    }
    options.update(overrides)
    try:
        return KafkaProducer(**options)
    except KafkaError as exc:
        raise BrokerUnavailable(f"cannot reach {settings.bootstrap}: {exc}") from exc


def consumer(settings: Settings, *, group: str | None, **overrides: Any) -> KafkaConsumer:
    """A consumer that never auto-commits, tuned for fast group formation in dev."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap,
        "group_id": group,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_poll_records": settings.poll_max_records,
        "max_poll_interval_ms": settings.max_poll_interval_ms,
        "session_timeout_ms": settings.session_timeout_ms,
        "heartbeat_interval_ms": settings.heartbeat_interval_ms,
        "request_timeout_ms": max(settings.request_timeout_ms, settings.session_timeout_ms + 1000),
        "fetch_max_bytes": 16 * 1024 * 1024,
        "max_partition_fetch_bytes": 4 * 1024 * 1024,
        "client_id": "passport-hub",
        "metrics_enabled": False,  # as for the producer: per-fetch statistics nobody reads
        # What a fenced relay wrote and aborted is never read (hub.relay); the embedded
        # broker fences nothing, and is read as it always was.
        "isolation_level": "read_committed" if settings.transactional else "read_uncommitted",
    }
    options.update(overrides)
    try:
        return KafkaConsumer(**options)
    except KafkaError as exc:
        raise BrokerUnavailable(f"cannot reach {settings.bootstrap}: {exc}") from exc


def retrying(call: Callable[[], _T], *, what: str, timeout_s: float) -> _T:
    """``call()``, asked again while it raises a ``KafkaError``, until ``timeout_s``.

    kafka-python 3.0.12 sends a metadata or admin request to one broker its
    metadata lists, and raises if that one is down, where a later attempt goes to
    another. A component starting while one broker of three is dead must start
    all the same: the API, the passport service and this project's readers did not.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return call()
        except KafkaError as exc:
            if time.monotonic() > deadline:
                raise BrokerUnavailable(f"{what} failed for {timeout_s}s: {exc}") from exc
            time.sleep(0.2)


def await_partitions(consumer: KafkaConsumer, topics: Iterable[str],
                     timeout_s: float = 30.0) -> dict[str, set[int]]:
    """The partitions of each topic, once the consumer's metadata knows every one of them.

    Subscribing before that is a trap on Apache Kafka: a group leader that does not
    see a just-created topic assigns nobody its partitions, and kafka-python only
    notices at its next metadata refresh, minutes later.
    """
    deadline = time.monotonic() + timeout_s
    found: dict[str, set[int]] = {}
    for topic in topics:
        while not (ids := retrying(functools.partial(consumer.partitions_for_topic, topic),
                                   what=f"metadata of {topic}", timeout_s=timeout_s)):
            if time.monotonic() > deadline:
                raise BrokerUnavailable(f"topic {topic} has no partitions after {timeout_s}s")
            time.sleep(0.1)
        found[topic] = set(ids)
    return found


def transaction_step(producer: KafkaProducer, step: Callable[[Any], Any], *, what: str,
                     timeout_s: float) -> None:
    """One step of a producer's transaction (``step`` gets its transaction manager:
    ``lambda tm: tm.begin_commit()``), as ``KafkaProducer.commit_transaction`` and its
    siblings run it, but waiting ``timeout_s`` at most: they wait forever, and a
    request the sender lost (``hub.kafka_fixes``) then hangs the caller for good,
    deaf to SIGTERM. Raises the step's own error, or KafkaTimeoutError."""
    result = step(producer._transaction_manager)  # no public API waits in bounds
    producer._sender.wakeup()
    if not result.wait(timeout_ms=int(timeout_s * 1000)):
        raise KafkaTimeoutError(f"{what}: the transaction coordinator did not answer "
                                f"in {timeout_s:g} s")


def admin(settings: Settings, **overrides: Any) -> KafkaAdminClient:
    """An admin client (``overrides``: kafka-python settings, e.g. a short
    ``bootstrap_timeout_ms`` for a probe that must not wait 30 s on a down broker)."""
    try:
        return KafkaAdminClient(
            bootstrap_servers=settings.bootstrap,
            request_timeout_ms=settings.request_timeout_ms,
            client_id="passport-hub-admin",
            **overrides,
        )
    except KafkaError as exc:
        raise BrokerUnavailable(f"cannot reach {settings.bootstrap}: {exc}") from exc


def new_topic(topic: Topic, settings: Settings) -> NewTopic:
    """The creation request for one catalog topic."""
    configs = {"cleanup.policy": "compact"} if topic.compacted else {}
    if topic.retained:
        configs["retention.ms"] = "-1"
    if settings.replication_factor > 1:
        configs["min.insync.replicas"] = str(min(2, settings.replication_factor))
    return NewTopic(
        settings.topic(topic.name),
        num_partitions=topic.partitions,
        replication_factor=settings.replication_factor,
        topic_configs=configs,
    )


def ensure_topics(settings: Settings, topics: Iterable[Topic] = CATALOG,
                  *, timeout_s: float = 30.0) -> list[str]:
    """Create the catalog's topics that do not exist yet; return the names created.

    Idempotent: every component may call it at start, whichever starts first.
    """
    wanted = {settings.topic(t.name): t for t in topics}
    client = admin(settings)
    try:
        existing = _listed(client, timeout_s)
        missing = [name for name in wanted if name not in existing]
        if missing:
            retrying(lambda: _create(client, [new_topic(wanted[n], settings) for n in missing]),
                     what="creating topics", timeout_s=timeout_s)
            _wait_for_metadata(client, missing, timeout_s)
            logs.get().info("topics.created", topics=missing)
        return missing
    finally:
        client.close()


def _listed(client: KafkaAdminClient, timeout_s: float) -> set[str]:
    """The topics the cluster lists (asked again while a broker does not answer)."""
    return retrying(lambda: set(client.list_topics()), what="listing topics",
                    timeout_s=timeout_s)


def _create(client: KafkaAdminClient, requests: list[NewTopic]) -> None:
    # Another component may win the race (or an attempt cut short by a broker's death
    # may have created some): the topics then exist, which is the point.
    with contextlib.suppress(TopicAlreadyExistsError):
        client.create_topics(requests)


def _wait_for_metadata(client: KafkaAdminClient, names: list[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if set(names) <= _listed(client, timeout_s):
            return
        time.sleep(0.1)
    raise BrokerUnavailable(f"topics {names} not visible after {timeout_s}s")
