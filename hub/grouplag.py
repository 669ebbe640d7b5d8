"""Consumer lag as the broker sees it, and whether the broker answers at all.

The loop's own lag (``passport_hub_consumer_lag_records``) is what one member sees
of the partitions it holds, and says nothing once the process is stuck or gone.
What operators alert on is the group's lag on the broker: the log end offset of
every input partition against the offset the group committed there (the loop
mirrors its store's positions to the group after every batch). A partition the
group never committed counts from the log's start. Kafka's own
``kafka-consumer-groups --describe`` reports the same figure.

A daemon thread asks every ``interval_s`` (two cheap admin requests); the gauges
hold the last answer, so a scrape never waits for the broker. A failed check sets
``passport_hub_broker_up`` to 0 and leaves the lag as last seen.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterable, Mapping

from kafka import KafkaAdminClient, TopicPartition
from kafka.admin import OffsetSpec
from prometheus_client import CollectorRegistry, Gauge

from hub import kafka, logs
from hub.config import Settings
from schemas import catalog


def group_lag(ends: Mapping[TopicPartition, int], starts: Mapping[TopicPartition, int],
              committed: Mapping[TopicPartition, int]) -> dict[TopicPartition, int]:
    """Records behind per partition: log end minus the committed offset (or the log start)."""
    return {tp: max(0, end - committed.get(tp, starts.get(tp, 0))) for tp, end in ends.items()}


class BrokerWatch:
    """Keeps ``passport_hub_consumer_group_lag_records`` and ``passport_hub_broker_up`` current."""

    def __init__(self, settings: Settings, *, component: str, group: str,
                 topics: Iterable[str], registry: CollectorRegistry,
                 interval_s: float = 10.0,
                 admin: Callable[[Settings], KafkaAdminClient] | None = None) -> None:
        """``topics``: the catalog (base) names the group reads."""
        self._settings = settings
        self._group = group
        self._interval_s = interval_s
        # A check waits no longer than its interval for a broker that does not answer.
        bootstrap_ms = int(min(interval_s, settings.request_timeout_ms / 1000) * 1000)
        self._admin_factory = admin or functools.partial(kafka.admin,
                                                         bootstrap_timeout_ms=bootstrap_ms)
        self._client: KafkaAdminClient | None = None
        self._base = {settings.topic(name): name for name in topics}
        self._partitions = [TopicPartition(physical, p) for physical, base in self._base.items()
                            for p in range(catalog.topic(base).partitions)]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.log = logs.get().bind(component=component)
        self.up: bool | None = None
        """The last check's answer (None before the first)."""
        self.last_check: float | None = None
        self.lag = Gauge("passport_hub_consumer_group_lag_records",
                         "Records between a group's committed offset and the log end, as the "
                         "broker reports them (partition: bounded by the topic's count).",
                         ["group", "topic", "partition"], registry=registry)
        broker_up = Gauge("passport_hub_broker_up",
                          "1 when the broker answered the component's last check, 0 otherwise.",
                          ["component"], registry=registry)
        broker_up.labels(component).set_function(lambda: float(bool(self.up)))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="broker-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._client is not None:
            self._client.close()
            self._client = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self.check()
            self._stop.wait(self._interval_s)

    def check(self) -> bool:
        """Ask the broker once; update the gauges; return whether it answered."""
        try:
            client = self._client or self._admin_factory(self._settings)
            self._client = client
            committed = client.list_group_offsets({self._group: None}).get(self._group, {})
            ends = client.list_partition_offsets(
                dict.fromkeys(self._partitions, OffsetSpec.LATEST))
            starts = client.list_partition_offsets(
                dict.fromkeys(self._partitions, OffsetSpec.EARLIEST))
        except Exception as exc:  # any failure means "the broker did not answer"
            if self.up is not False:
                self.log.warning("broker.unreachable", error=type(exc).__name__)
            self.up = False
            self._discard()
            return False
        lag = group_lag({tp: o.offset for tp, o in ends.items()},
                        {tp: o.offset for tp, o in starts.items()},
                        {tp: o.offset for tp, o in committed.items() if o.offset >= 0})
        for tp, records in lag.items():
            self.lag.labels(self._group, self._base[tp.topic], str(tp.partition)).set(records)
        if self.up is False:
            self.log.info("broker.reachable")
        self.up = True
        self.last_check = time.monotonic()
        return True

    def _discard(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except Exception as exc:  # closing a broken client: nothing more to do
                self.log.debug("broker.close_failed", error=type(exc).__name__)
            self._client = None
