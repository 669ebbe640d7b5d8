"""The read model's dead letters: produced straight to ``pn.dlq.v1``, each once per ledger.

The processors write their dead letters through their outbox (hub/processor.py);
the read model has none: its file is a cache rebuilt from the topics at every
start. So a letter is produced here, with the same shape as the loop's: the
original key; the original bytes of a record that did not decode, else the record
encoded again (nothing if it cannot be); the cause in hub/deadletter.py's headers,
component ``readmodel``. The materialiser reads on only once the broker
acknowledged it (``send`` blocks, retrying, until it did or the model stops).

A rebuild meets the same poison again: the ledger, a small SQLite file beside the
read model's that outlives the rebuilds, holds what was acknowledged (by source
topic, partition, offset and a digest of the bytes), so each poison record is
dead-lettered once per API instance's data directory. The choice is at least
once: a crash between the acknowledgement and the ledger's commit, or a fresh
data directory, sends a letter again (same source and cause headers: ops see it
is the same record).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from kafka import KafkaProducer
from kafka.errors import KafkaError
from prometheus_client import CollectorRegistry, Counter

from hub import deadletter, kafka, logs
from hub.config import Settings
from hub.contract import Rejected
from hub.errors import BrokerUnavailable
from hub.sqlite import connect
from schemas import catalog
from schemas.codec import Codec
from schemas.errors import ContractError

COMPONENT = "readmodel"
#: Seconds to wait for the broker's acknowledgement of one round of letters.
ACK_TIMEOUT_S = 10.0
#: Seconds between two rounds while the broker does not acknowledge.
RETRY_S = 1.0

_LEDGER = "CREATE TABLE IF NOT EXISTS sent (letter TEXT PRIMARY KEY) WITHOUT ROWID;"


def dead_letters_counter(registry: CollectorRegistry) -> Counter:
    """``passport_hub_dead_letters_total`` as every processor has it (hub/metrics.py), for
    the process the read model runs in."""
    return Counter("passport_hub_dead_letters",
                   "Records sent to the dead-letter topic, by stage and by the error's class.",
                   ["component", "topic", "stage", "reason"], registry=registry)


class StopRequestedError(Exception):
    """``send`` gave up waiting because the model is stopping (the letters were not all
    acknowledged: the next start sends them)."""


def ledger_path(path: Path) -> Path:
    """Where the ledger of a read model file is: beside it, kept across rebuilds."""
    return path.with_name(f"{path.stem}-dead-letters.sqlite")


def letter(settings: Settings, codec: Codec,
           rejected: Rejected) -> tuple[bytes | None, bytes, list[tuple[str, bytes]]]:
    """The key, value and headers of ``rejected``'s dead letter, as hub/processor.py has them."""
    inbound = rejected.inbound
    cause = deadletter.Cause(COMPONENT, rejected.stage, rejected.error,
                             settings.topic(inbound.topic), inbound.partition, inbound.offset)
    raw = inbound.datum.get("__raw__") if rejected.stage == "decode" else None
    if isinstance(raw, bytes):
        return inbound.key, raw, cause.headers()
    try:
        value = codec.encode(inbound.record, inbound.datum)
    except ContractError:
        # A datum the codec decoded encodes again; one that does not (a bug) still gets its
        # letter: the headers say where the original is.
        value = b""
    return inbound.key, value, cause.headers()


class DeadLetters:
    """Sends the read model's dead letters and remembers which were acknowledged."""

    def __init__(self, settings: Settings, ledger: Path, *, stop: threading.Event,
                 codec: Codec | None = None, counter: Counter | None = None,
                 producer: Callable[[], KafkaProducer] | None = None) -> None:
        """``counter``: ``dead_letters_counter``'s, counted as letters are acknowledged."""
        self.settings = settings
        self.codec = codec or Codec.default()
        self._stop = stop
        self._conn = connect(ledger, durable=True, schema=_LEDGER, what="dead-letter ledger")
        self._make = producer or (lambda: kafka.producer(settings))
        self._producer: KafkaProducer | None = None
        self.sent = 0
        """Letters the broker acknowledged since start (the ledger's repeats not counted)."""
        self._counter = counter
        self.log = logs.get().bind(component=COMPONENT)

    def send(self, rejected: Sequence[Rejected]) -> int:
        """Dead-letter each record not in the ledger; return when the broker acknowledged
        them all (``StopRequestedError`` if the model stops first). Returns how many went."""
        todo = []
        for item in rejected:
            key, value, headers = letter(self.settings, self.codec, item)
            ref = self._ref(item, value)
            if self._conn.execute("SELECT 1 FROM sent WHERE letter = ?", (ref,)).fetchone():
                continue
            todo.append((item, ref, key, value, headers))
        while todo:
            try:
                self._produce([(key, value, headers) for _, _, key, value, headers in todo])
            except (KafkaError, BrokerUnavailable) as exc:
                self.log.warning("readmodel.dead_letter_unacknowledged", letters=len(todo),
                                 error=type(exc).__name__)
                self._drop_producer()
                if self._stop.wait(RETRY_S):
                    raise StopRequestedError from exc
                continue
            with self._conn:
                self._conn.executemany("INSERT OR IGNORE INTO sent (letter) VALUES (?)",
                                       [(ref,) for _, ref, _, _, _ in todo])
            for item, _, _, _, _ in todo:
                self._record(item)
            self.sent += len(todo)
            return len(todo)
        return 0

    def _produce(self, letters: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]]) -> None:
        if self._producer is None:
            self._producer = self._make()
        topic = self.settings.topic(catalog.DLQ)
        futures = [self._producer.send(topic, key=key, value=value, headers=headers)
                   for key, value, headers in letters]
        self._producer.flush(timeout=ACK_TIMEOUT_S)
        for future in futures:
            future.get(timeout=ACK_TIMEOUT_S)

    def _drop_producer(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=1)
            self._producer = None

    def _record(self, item: Rejected) -> None:
        inbound = item.inbound
        reason = type(item.error).__name__
        if self._counter is not None:
            self._counter.labels(COMPONENT, inbound.topic, item.stage, reason).inc()
        self.log.warning("record.dead_lettered", topic=inbound.topic,
                         partition=inbound.partition, offset=inbound.offset, stage=item.stage,
                         error=reason)

    def _ref(self, item: Rejected, value: bytes) -> str:
        inbound = item.inbound
        digest = hashlib.sha256(value).hexdigest()[:16]
        return (f"{self.settings.topic(inbound.topic)}/{inbound.partition}/{inbound.offset}/"
                f"{digest}")

    def close(self) -> None:
        self._drop_producer()
        self._conn.close()
