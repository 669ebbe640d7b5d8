"""Redriving dead letters: re-validate each, publish the valid ones back, record them.

A dead letter goes back only if it is, now, an event the hub accepts: it
decodes, its record is a partner event, its model's checks pass, and the
topic it was read from is the catalog topic that model belongs to. Anything
else is reported and left where it is. Valid ones are published through the
``Publisher`` (the one way partner events reach Kafka) under their own event
ids, then written to the ledger so that a second run does not send them again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from pydantic import ValidationError

from connectors.contract import Sink
from connectors.dlq.ledger import Ledger, Redriven
from connectors.dlq.letters import DeadLetter
from hub.config import Settings
from schemas import catalog
from schemas.codec import Codec
from schemas.errors import ContractError
from schemas.models import MODELS_BY_RECORD, EventModel

Status = Literal["redriven", "would redrive", "already redriven", "left alone"]
#: Events per acknowledged batch (and ledger transaction).
CHUNK = 500
_CATALOG_TOPICS = frozenset(topic.name for topic in catalog.CATALOG)


class NotRedrivable(ValueError):
    """Why a dead letter cannot go back (yet)."""


@dataclass(frozen=True, slots=True)
class Result:
    """What a redrive did with one dead letter."""

    letter: DeadLetter
    status: Status
    detail: str

    def line(self) -> str:
        return f"{self.letter.ref:>9}  {self.status:<16}  {self.detail}"


def revalidate(letter: DeadLetter, settings: Settings, codec: Codec) -> EventModel:
    """The event a dead letter holds, checked as on ingest; ``NotRedrivable`` says why not."""
    if not letter.value:
        raise NotRedrivable("no value (a tombstone)")
    try:
        decoded = codec.decode(letter.value)
    except ContractError as exc:
        raise NotRedrivable(f"does not decode: {type(exc).__name__}: {exc}") from exc
    model = MODELS_BY_RECORD.get(decoded.record)
    if model is None:
        raise NotRedrivable(f"{decoded.record} is not a partner event "
                            "(its service re-emits it from its own state)")
    try:
        event = model.from_avro(decoded.datum)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in error['loc']) or decoded.record}: "
                             f"{str(error['msg']).removeprefix('Value error, ')}"
                             for error in exc.errors(include_input=False, include_url=False))
        raise NotRedrivable(f"still invalid: {problems}") from exc
    source = letter.source_topic
    if not source:
        raise NotRedrivable("no dlq.source.topic header: nowhere to send it back")
    prefix = settings.topic_prefix
    base = source[len(prefix):] if source.startswith(prefix) else ""
    if base not in _CATALOG_TOPICS or base == catalog.DLQ:
        raise NotRedrivable(f"source topic {source!r} is not a catalog topic of this hub")
    if base != event.TOPIC:
        raise NotRedrivable(f"a {decoded.record} belongs on {event.TOPIC}, not {base}")
    return event


def redrive(letters: Sequence[DeadLetter], *, sink: Sink, ledger: Ledger, settings: Settings,
            codec: Codec | None = None, dry_run: bool = False,
            clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> list[Result]:
    """Redrive ``letters``; one result each, in their order.

    Raises ``BrokerUnavailable`` if a batch is not acknowledged: the batches
    before it are recorded, the rest is not (a new run sends it again).
    """
    codec = codec or Codec.default()
    results: dict[int, Result] = {}
    valid: list[tuple[int, DeadLetter, EventModel]] = []
    for index, letter in enumerate(letters):
        done = ledger.get(letter)
        if done is not None:
            results[index] = Result(letter, "already redriven",
                                    f"at {done.at} to {done.topic} (event {done.event_id})")
            continue
        try:
            event = revalidate(letter, settings, codec)
        except NotRedrivable as exc:
            results[index] = Result(letter, "left alone", str(exc))
            continue
        valid.append((index, letter, event))
    for start in range(0, len(valid), CHUNK):
        batch = valid[start:start + CHUNK]
        if not dry_run:
            sink.publish_many([event for _, _, event in batch])
            at = clock().isoformat()
            ledger.record([(letter, Redriven(at, settings.topic(event.TOPIC), str(event.event_id)))
                           for _, letter, event in batch])
        for index, letter, event in batch:
            results[index] = Result(letter, "would redrive" if dry_run else "redriven",
                                    f"{event.RECORD} {event.event_id} to "
                                    f"{settings.topic(event.TOPIC)}")
    return [results[index] for index in range(len(letters))]
