"""Dead letters as ops see them: the record as it was refused, and the cause in its headers.

The dead-letter topic is read whole, every partition from the beginning to
the end offsets seen at the start, without a consumer group: inspecting it
must not move anyone's position, nor need one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from kafka import TopicPartition
from kafka.errors import KafkaError

from hub import deadletter, kafka
from hub.config import Settings
from hub.errors import BrokerUnavailable, HubError
from schemas import catalog


class UnknownLetter(HubError):
    """An OFFSET that names no dead letter (or names several)."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One record of the dead-letter topic."""

    topic: str
    """The dead-letter topic's physical name."""
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    @property
    def ref(self) -> str:
        """How ops name it: ``partition:offset`` of the dead-letter topic."""
        return f"{self.partition}:{self.offset}"

    @property
    def time(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)

    def header(self, name: str) -> str:
        """A header's text ("" when absent)."""
        for key, value in self.headers:
            if key == name:
                return (value or b"").decode("utf-8", errors="replace")
        return ""

    @property
    def source_topic(self) -> str:
        return self.header(deadletter.SOURCE_TOPIC)

    @property
    def source(self) -> str:
        """Where it was read: ``topic[partition]@offset``."""
        return (f"{self.source_topic or '?'}[{self.header(deadletter.SOURCE_PARTITION) or '?'}]"
                f"@{self.header(deadletter.SOURCE_OFFSET) or '?'}")

    @property
    def stage(self) -> str:
        return self.header(deadletter.STAGE)

    @property
    def error_class(self) -> str:
        return self.header(deadletter.ERROR_CLASS)

    @property
    def error_message(self) -> str:
        return self.header(deadletter.ERROR_MESSAGE)


#: What the dead-letter tool reads (``passport-hub dlq``).
TOPICS = (catalog.DLQ,)


def read_all(settings: Settings, *, timeout_s: float = 30.0) -> list[DeadLetter]:
    """Every dead letter, in (partition, offset) order."""
    physical = settings.topic(TOPICS[0])
    consumer = kafka.consumer(settings, group=None)
    try:
        deadline = time.monotonic() + timeout_s
        ids = kafka.await_partitions(consumer, [physical], timeout_s)[physical]
        partitions = [TopicPartition(physical, p) for p in sorted(ids)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        listed = kafka.retrying(lambda: consumer.end_offsets(partitions),
                                what=f"the end offsets of {physical}", timeout_s=timeout_s)
        letters: list[DeadLetter] = []

        def end(tp: TopicPartition) -> int:
            # The listed end can lag the records there (the embedded broker's does):
            # the highwater the fetches report counts too, once known.
            return int(max(listed[tp], consumer.highwater(tp) or 0))

        while any(consumer.position(tp) < end(tp) for tp in partitions):
            if time.monotonic() > deadline:
                raise BrokerUnavailable(f"could not read {physical} to its end in {timeout_s}s")
            for tp, records in consumer.poll(timeout_ms=200).items():
                letters.extend(
                    DeadLetter(physical, tp.partition, rec.offset, rec.timestamp, rec.key,
                               rec.value, tuple(rec.headers or ()))
                    for rec in records if rec.offset < end(tp))
    except KafkaError as exc:
        raise BrokerUnavailable(f"cannot read {physical}: {exc}") from exc
    finally:
        consumer.close(autocommit=False)
    return sorted(letters, key=lambda letter: (letter.partition, letter.offset))


def find(letters: list[DeadLetter], ref: str) -> DeadLetter:
    """The dead letter at ``partition:offset``, or at a bare offset found in one partition only."""
    partition_text, _, offset_text = ref.rpartition(":")
    try:
        offset = int(offset_text)
        partition = int(partition_text) if partition_text else None
    except ValueError:
        raise UnknownLetter(f"{ref!r}: an OFFSET reads PARTITION:OFFSET, e.g. 1:42") from None
    found = [letter for letter in letters if letter.offset == offset
             and (partition is None or letter.partition == partition)]
    if len(found) > 1:
        raise UnknownLetter(f"offset {offset} is in partitions "
                            f"{', '.join(str(f.partition) for f in found)}: say PARTITION:OFFSET")
    if not found:
        raise UnknownLetter(f"no dead letter at {ref}")
    return found[0]
