"""The passport benchmark's event mix: interleaved business stories, produced once."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from connectors.publish import Publisher, Record
from connectors.synthetic.generator import Expected, Synthetic
from hub import kafka
from hub.config import Settings
from schemas.models import EventModel, ModuleCompleted, TrainingFeedback, TrainingSessionAttended

#: Businesses whose stories interleave on the topics at any moment (they train for weeks).
_ACTIVE = 2000
_FEEDBACK_RATE = 0.5
_REDELIVERY_RATE = 0.03
"""Share of records a partner sends twice (same event, same bytes)."""

T = TypeVar("T")


def new_uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def story(synthetic: Synthetic, rng: random.Random) -> list[EventModel]:
    """One business's events: the synthetic source's (enrolment, completions, maybe an
    offer request), each completion preceded by the session attended, often followed by
    feedback, and a few records sent twice."""
    events: list[EventModel] = []
    for event in synthetic.business():
        if not isinstance(event, ModuleCompleted):
            events.append(event)
            continue
        at, common = event.occurred_at, {"source": event.source, "siren": event.siren,
                                         "module_id": event.module_id,
                                         "trainer_org": event.trainer_org}
        events.append(TrainingSessionAttended(event_id=new_uuid(rng),
                                              occurred_at=at - timedelta(hours=2),
                                              session_id=f"{event.module_id}-{at:%Y%m%d}",
                                              **common))
        events.append(event)
        if rng.random() < _FEEDBACK_RATE:
            events.append(TrainingFeedback(event_id=new_uuid(rng),
                                           occurred_at=at + timedelta(minutes=20),
                                           score=rng.randint(1, 5), **common))
    told = list(events)
    for index, event in enumerate(events):
        if rng.random() < _REDELIVERY_RATE:
            told.insert(rng.randint(index + 1, len(told)), event)
    return told


def interleave(stories: Iterable[list[T]], active: int, rng: random.Random) -> Iterator[T]:
    """The stories told side by side, ``active`` at a time, each one in its own order."""
    pending = iter(stories)
    pool: list[list[T]] = []
    while True:
        while len(pool) < active and (told := next(pending, None)) is not None:
            if told:
                pool.append(told[::-1])  # reversed: pop() gives the next event
        if not pool:
            return
        index = rng.randrange(len(pool))
        yield pool[index].pop()
        if not pool[index]:
            pool[index] = pool[-1]
            pool.pop()


def event_mix(settings: Settings, businesses: int,
              seed: int) -> tuple[list[Record], Counter[str], Expected]:
    """The records of ``businesses`` interleaved stories, Avro-encoded; counts by record, and
    the passports and leads the synthetic source says a correct hub makes of them."""
    rng = random.Random(seed)
    # A day ago: the synthetic stories end "now", and feedback comes 20 minutes later.
    now = datetime.now(UTC) - timedelta(days=1)
    synthetic = Synthetic(seed=seed, clock=lambda: now, resellers=0)
    publisher = Publisher(settings)
    records: list[Record] = []
    kinds: Counter[str] = Counter()
    seen: set[uuid.UUID] = set()
    for event in interleave((story(synthetic, rng) for _ in range(businesses)), _ACTIVE, rng):
        kinds["(sent twice)" if event.event_id in seen else event.RECORD] += 1
        seen.add(event.event_id)
        records.append(publisher.record(event))
    return records, kinds, synthetic.expected


def produce(settings: Settings, records: Sequence[Record]) -> None:
    """Write the records with the hub's producer and wait for every acknowledgement."""
    producer = kafka.producer(settings, metrics_enabled=False)
    try:
        futures = [producer.send(r.topic, key=r.key, value=r.value) for r in records]
        producer.flush()
        for future in futures:
            future.get(timeout=60)
    finally:
        producer.close(timeout=10)
