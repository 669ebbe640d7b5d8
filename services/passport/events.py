"""The passport's input events, parsed and checked from their Avro datums (pure).

A datum that cannot become an event is bad data, not a bug: ``parse`` raises
``InvalidEventError`` and the processor dead-letters the record. Checks here are the
ones the passport's own rules depend on (a SIREN keys the state; a département
must have a région; modules and categories come from the catalogue).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, ClassVar

from hub.errors import HubError
from schemas import catalog
from schemas.frozen import frozen
from schemas.identifiers import is_valid_siren
from schemas.reference import CATEGORIES, DEPARTEMENTS, MODULES, region_of

#: The records each input topic carries (the catalog is the truth); anything else is rejected.
EXPECTED: Mapping[str, frozenset[str]] = {
    name: frozenset(catalog.topic(name).records)
    for name in (catalog.ENROLMENTS, catalog.TRAINING, catalog.OFFER_REQUESTS)
}


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: A business sends many events: its SIREN's Luhn check is done once, not per event.
_valid_siren = lru_cache(maxsize=65_536)(is_valid_siren)


class InvalidEventError(HubError):
    """A record whose content the passport cannot apply (dead-lettered, stage "validate")."""


@frozen
class Enrolled:
    """A business opened (or updated) its passport."""

    record: ClassVar[str] = "BusinessEnrolled"
    event_id: str
    occurred_at: int
    siren: str
    name: str
    departement: str
    region: str
    naf: str | None
    contact_email: str | None
    consent: bool


@frozen
class ModuleDone:
    """A business completed one training module."""

    record: ClassVar[str] = "ModuleCompleted"
    event_id: str
    occurred_at: int
    siren: str
    module_id: str


@frozen
class OfferAsked:
    """A business asked for an offer in one category."""

    record: ClassVar[str] = "OfferRequested"
    event_id: str
    occurred_at: int
    siren: str
    category: str


@frozen
class Attended:
    """A business attended a training session (counts for nothing toward the passport)."""

    record: ClassVar[str] = "TrainingSessionAttended"
    event_id: str
    occurred_at: int
    siren: str
    module_id: str


@frozen
class Feedback:
    """A trainee rated a module (raw material of the quality referential)."""

    record: ClassVar[str] = "TrainingFeedback"
    event_id: str
    occurred_at: int
    siren: str
    module_id: str
    score: int
    trainer_org: str | None = None
    delegation: str | None = None


@frozen
class ConsentOff:
    """The business withdrew its consent to share its contact data with resellers."""

    record: ClassVar[str] = "ConsentWithdrawn"
    event_id: str
    occurred_at: int
    siren: str


@frozen
class Erasure:
    """The business asked for its personal data to be erased."""

    record: ClassVar[str] = "ErasureRequested"
    event_id: str
    occurred_at: int
    siren: str


Event = Enrolled | ModuleDone | OfferAsked | Attended | Feedback | ConsentOff | Erasure


def millis(value: datetime | int) -> int:
    """Epoch milliseconds of a decoded timestamp (aware datetime) or of stored millis."""
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise InvalidEventError("timestamp without a time zone")
        # Integer arithmetic: float seconds would drift by a millisecond on some values.
        delta = value - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
    return value


def from_millis(value: int) -> datetime:
    """The aware UTC datetime the codec encodes a ``timestamp-millis`` field from."""
    return _EPOCH + timedelta(milliseconds=value)


def to_json(datum: Mapping[str, Any]) -> dict[str, Any]:
    """A datum as JSON-serialisable data (timestamps as epoch millis), for parking in state."""
    return {key: millis(value) if isinstance(value, datetime) else value
            for key, value in datum.items()}


def parse(record: str, datum: Mapping[str, Any]) -> Event:
    """The event a datum of ``record`` carries; ``InvalidEventError`` if it cannot be applied."""
    build = _BUILDERS.get(record)
    if build is None:
        raise InvalidEventError(f"the passport does not apply {record} records")
    try:
        siren = datum["siren"]
        if not _valid_siren(siren):
            raise InvalidEventError(f"{record}: invalid SIREN {siren!r}")
        return build(record, datum, str(datum["event_id"]), millis(datum["occurred_at"]), siren)
    except (KeyError, TypeError) as exc:
        # The codec resolved the datum to its schema, so this is a parked datum
        # from an older state or a hand-made record: still bad data, not a crash.
        raise InvalidEventError(f"{record}: incomplete datum ({exc!r})") from exc


def _category(datum: Mapping[str, Any]) -> str:
    category = str(datum["category"])
    if category not in CATEGORIES:
        raise InvalidEventError(f"OfferRequested: unknown category {category!r}")
    return category


_Builder = Callable[[str, Mapping[str, Any], str, int, str], Event]

#: How each input record becomes an event: (record, datum, event_id, occurred_at, siren).
_BUILDERS: Mapping[str, _Builder] = {
    "BusinessEnrolled": lambda r, d, i, t, s: _enrolled(d, i, t, s),
    "ModuleCompleted": lambda r, d, i, t, s: ModuleDone(i, t, s, _module(r, d)),
    "OfferRequested": lambda r, d, i, t, s: OfferAsked(i, t, s, _category(d)),
    "TrainingSessionAttended": lambda r, d, i, t, s: Attended(i, t, s, _module(r, d)),
    "TrainingFeedback": lambda r, d, i, t, s: Feedback(i, t, s, _module(r, d), int(d["score"]),
                                                       d.get("trainer_org"), d.get("delegation")),
    "ConsentWithdrawn": lambda r, d, i, t, s: ConsentOff(i, t, s),
    "ErasureRequested": lambda r, d, i, t, s: Erasure(i, t, s),
}


def _module(record: str, datum: Mapping[str, Any]) -> str:
    module_id = str(datum["module_id"])
    if module_id not in MODULES:
        raise InvalidEventError(f"{record}: unknown module {module_id!r}")
    return module_id


def _enrolled(datum: Mapping[str, Any], event_id: str, occurred_at: int,
              siren: str) -> Enrolled:
    departement = str(datum["departement"])
    if departement not in DEPARTEMENTS:
        raise InvalidEventError(f"BusinessEnrolled: unknown département {departement!r}")
    return Enrolled(
        event_id=event_id,
        occurred_at=occurred_at,
        siren=siren,
        name=str(datum["name"]),
        departement=departement,
        region=region_of(departement),
        naf=datum.get("naf"),
        contact_email=datum.get("contact_email"),
        consent=bool(datum.get("consent_share_with_resellers", False)),
    )


def parse_inbound(topic: str, record: str, key: bytes | None,
                  datum: Mapping[str, Any]) -> Event:
    """Parse a record read from ``topic``, checking it is that topic's record and key."""
    expected = EXPECTED.get(topic, frozenset())
    if record not in expected:
        raise InvalidEventError(
            f"{topic} carries {', '.join(sorted(expected))} records, not {record or 'nothing'}")
    event = parse(record, datum)
    # The inputs are co-partitioned by SIREN: a record keyed otherwise may sit in
    # another instance's partition, and the business's state would split in two.
    if key != event.siren.encode():
        raise InvalidEventError(f"{topic}: record key is not the SIREN of its value")
    return event
