"""A reader of the run's topics, from their beginning, in a thread: what the hub wrote.

The campaign waits on it between phases (a phase is over when its effects are on the
topics) and reads the results from it at the end. It keeps every record of the outputs
(``pn.passports.v1``, ``pn.lead-requests.v1``, ``pn.leads.v1``) with its offset, so
a record written twice after a crash is seen twice, and the event ids of the inputs, so
an event the API acknowledged but never wrote would show.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from kafka import TopicPartition
from kafka.admin import OffsetSpec

from hub import kafka
from hub.config import Settings
from hub.errors import BrokerUnavailable
from hub.grouplag import group_lag
from hub.reader import TopicReader
from schemas import catalog

#: The partner-input topics: every acknowledged event must be on one of them.
INPUTS = (catalog.ENROLMENTS, catalog.TRAINING, catalog.OFFER_REQUESTS, catalog.RESELLERS,
          catalog.LEAD_RESPONSES, catalog.WEBHOOK_COMMANDS)
OUTPUTS = (catalog.PASSPORTS, catalog.LEAD_REQUESTS, catalog.LEADS)
#: The consumer groups of the processors, and what each reads (a drained hub: none behind).
GROUPS = {"passport": (catalog.ENROLMENTS, catalog.TRAINING, catalog.OFFER_REQUESTS),
          "routing": (catalog.LEAD_REQUESTS, catalog.LEAD_RESPONSES),
          "crm_webhook": (catalog.LEADS, catalog.WEBHOOK_COMMANDS)}
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Written:
    """One output record as the topic holds it."""

    topic: str
    offset: int
    record: str
    datum: dict[str, Any]


class Tap:
    """Follows the inputs and outputs of one run; see the module's docstring."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._reader = TopicReader(settings, (*INPUTS, *OUTPUTS))
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.inputs: dict[str, Counter[str]] = {name: Counter() for name in INPUTS}
        """Per input topic: event id → how many times it is there."""
        self.outputs: dict[str, list[Written]] = {name: [] for name in OUTPUTS}
        self.passports: dict[str, dict[str, Any]] = {}
        """The latest snapshot of each business."""
        self.leads: dict[str, dict[str, Any]] = {}
        """The change of each lead with the highest version."""
        self.lead_requests: set[str] = set()
        """Lead ids requested."""
        self.last_write = time.monotonic()

    def start(self) -> None:
        self._reader.start()
        self._thread = threading.Thread(target=self._run, name="tap", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._reader.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                batch = self._reader.poll(timeout_ms=200)
            except BrokerUnavailable:
                time.sleep(0.5)
                continue
            if not batch:
                continue
            with self._changed:
                for inbound in batch:
                    self._take(inbound.topic, inbound.offset, inbound.record,
                               dict(inbound.datum))
                self.last_write = time.monotonic()
                self._changed.notify_all()

    def _take(self, topic: str, offset: int, record: str, datum: dict[str, Any]) -> None:
        if topic in self.inputs:
            self.inputs[topic][str(datum.get("event_id"))] += 1
            return
        self.outputs[topic].append(Written(topic, offset, record, datum))
        if topic == catalog.PASSPORTS:
            self.passports[str(datum["siren"])] = datum
        elif topic == catalog.LEAD_REQUESTS and record == "LeadRequested":
            self.lead_requests.add(str(datum["lead_id"]))
        elif topic == catalog.LEADS:
            lead = str(datum["lead_id"])
            before = self.leads.get(lead)
            if before is None or int(datum.get("version", 1)) > int(before.get("version", 1)):
                self.leads[lead] = datum

    def read(self, look: Callable[[Tap], _T]) -> _T:
        """``look(self)`` under the tap's lock (a consistent view of what was read)."""
        with self._changed:
            return look(self)

    def wait(self, done: Callable[[Tap], bool], timeout_s: float,
             stop: threading.Event | None = None) -> bool:
        """Wait until ``done(self)`` holds; False after ``timeout_s`` (or a stop)."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not done(self):
                left = deadline - time.monotonic()
                if left <= 0 or (stop is not None and stop.is_set()):
                    return False
                self._changed.wait(min(left, 0.5))
        return True

    def quiet_for(self) -> float:
        """Seconds since the last record arrived."""
        with self._changed:
            return time.monotonic() - self.last_write

    def behind(self) -> int | None:
        """Records the processors' groups have not consumed yet, as the broker sees it (the
        offsets each loop commits after its batch; hub/grouplag.py); None: no answer."""
        settings = self.settings
        try:
            client = kafka.admin(settings)
        except Exception:  # the broker did not answer: ask again later
            return None
        try:
            total = 0
            for component, topics in GROUPS.items():
                partitions = [TopicPartition(settings.topic(t), p) for t in topics
                              for p in range(catalog.topic(t).partitions)]
                group = settings.group(component)
                committed = client.list_group_offsets({group: None}).get(group, {})
                ends = client.list_partition_offsets(dict.fromkeys(partitions, OffsetSpec.LATEST))
                starts = client.list_partition_offsets(
                    dict.fromkeys(partitions, OffsetSpec.EARLIEST))
                total += sum(group_lag({tp: o.offset for tp, o in ends.items()},
                                       {tp: o.offset for tp, o in starts.items()},
                                       {tp: o.offset for tp, o in committed.items()
                                        if o.offset >= 0}).values())
            return total
        except Exception:  # as above: a drain asks again
            return None
        finally:
            client.close()
