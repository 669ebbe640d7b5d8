"""What a replay takes: reseller profiles, lead requests, recorded answers (and their readers).

Three sources give the same ``Inputs``: the synthetic year (``population``), a
JSONL recording (``read_jsonl``, format below) and a running hub's topics
(``read_topics``). Times are epoch milliseconds throughout.

JSONL format: one JSON object a line, ``type`` says which; blank lines and lines
starting with ``#`` are skipped; order does not matter (inputs are replayed in
time order). Times (``occurred_at``) are epoch milliseconds or ISO-8601 strings
(naive ones are Europe/Paris).

- ``{"type": "reseller_profile", "reseller_id", "name", "departements": [...],
  "categories": [...], "capacity", "weight", "status"?, "absences"?: [{"start", "end"}]}``
  — a ResellerProfile; the last one per id counts.
- ``{"type": "lead_requested", "lead_id", "siren", "name", "departement",
  "region"?, "category", "contact_email"?, "occurred_at"}`` — a LeadRequested
  (the région defaults to the département's).
- ``{"type": "lead_answered", "lead_id", "reseller_id", "answer", "reason"?,
  "occurred_at"}`` — a LeadAnswered: accepted | rejected (with a reason code) | won | lost.
- ``{"type": "lead_withdrawn", "lead_id", "reason", "occurred_at"}`` — consent withdrawn.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from hub.config import Settings
from hub.errors import HubError
from schemas.reference import region_of
from services.routing import records
from services.routing.registry import InvalidProfileError, Reseller, parse_profile
from services.routing.router import LeadRequest
from services.routing.sla import PARIS


class InputError(HubError):
    """A recording the simulator cannot read (the message names the line)."""


@dataclass(frozen=True, slots=True)
class RecordedAnswer:
    """An answer as it was given: by whom, to which lead, when."""

    lead_id: str
    reseller_id: str
    answer: str
    reason: str | None
    at: int


@dataclass(frozen=True, slots=True)
class Withdrawal:
    lead_id: str
    reason: str
    at: int


@dataclass(slots=True)
class Inputs:
    """Everything one replay runs on; every policy replays the same inputs."""

    resellers: list[Reseller]
    requests: list[LeadRequest]
    """In time order."""
    answers: list[RecordedAnswer] = field(default_factory=list)
    withdrawals: list[Withdrawal] = field(default_factory=list)
    source: str = ""
    skipped: int = 0
    """Records left out (invalid profiles, undecodable lines)."""

    def sort(self) -> Inputs:
        self.requests.sort(key=lambda r: (r.requested_at, r.lead_id))
        self.answers.sort(key=lambda a: (a.at, a.lead_id))
        self.withdrawals.sort(key=lambda w: (w.at, w.lead_id))
        return self


def epoch_ms(value: Any) -> int:
    """Epoch ms of an int, an aware datetime or an ISO-8601 string (naive: Europe/Paris)."""
    if isinstance(value, bool):
        raise TypeError("a time, not a boolean")
    if isinstance(value, int | float):
        return int(value)
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=PARIS)
    return int(moment.timestamp() * 1000)


class _Collector:
    """Folds typed records into ``Inputs`` (JSONL lines and topic records alike)."""

    def __init__(self, source: str) -> None:
        self.profiles: dict[str, Reseller] = {}
        self.inputs = Inputs([], [], source=source)

    def add(self, kind: str, datum: Mapping[str, Any]) -> None:
        if kind == "reseller_profile":
            profile = parse_profile(datum)
            self.profiles[profile.reseller_id] = profile
        elif kind == "lead_requested":
            departement = str(datum["departement"])
            self.inputs.requests.append(records.request_of(
                {**datum, "region": datum.get("region") or region_of(departement),
                 "occurred_at": epoch_ms(datum["occurred_at"])}))
        elif kind == "lead_answered":
            self.inputs.answers.append(RecordedAnswer(
                str(datum["lead_id"]), str(datum["reseller_id"]), str(datum["answer"]),
                datum.get("reason"), epoch_ms(datum["occurred_at"])))
        elif kind == "lead_withdrawn":
            self.inputs.withdrawals.append(Withdrawal(
                str(datum["lead_id"]), str(datum["reason"]), epoch_ms(datum["occurred_at"])))
        else:
            raise InputError(f"unknown record type {kind!r}")

    def done(self) -> Inputs:
        self.inputs.resellers = [self.profiles[i] for i in sorted(self.profiles)]
        return self.inputs.sort()


def parse_jsonl(lines: Iterable[str], source: str = "jsonl") -> Inputs:
    """The inputs of a JSONL recording; ``InputError`` names the first bad line."""
    collector = _Collector(source)
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            datum = orjson.loads(text)
            collector.add(str(datum.get("type")), datum)
        except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError,
                InvalidProfileError, InputError) as exc:
            raise InputError(f"{source}:{number}: {type(exc).__name__}: {exc}") from exc
    return collector.done()


def read_jsonl(path: Path) -> Inputs:
    with path.open(encoding="utf-8") as lines:
        return parse_jsonl(lines, source=str(path))


#: Topic record names -> the JSONL type they feed.
_RECORDS = {"ResellerProfile": "reseller_profile", "LeadRequested": "lead_requested",
            "LeadAnswered": "lead_answered", "LeadWithdrawn": "lead_withdrawn"}


def collect_records(batch: Sequence[tuple[str | None, Mapping[str, Any]]],
                    source: str) -> Inputs:
    """The inputs of decoded topic records ``(record name, datum)``; bad ones are skipped."""
    collector = _Collector(source)
    for record, datum in batch:
        kind = _RECORDS.get(record or "")
        try:
            if kind is None:
                raise InputError(f"no use for {record!r} records")
            collector.add(kind, datum)
        except (KeyError, TypeError, ValueError, InvalidProfileError, InputError):
            collector.inputs.skipped += 1
    return collector.done()


def read_topics(settings: Settings | None = None, timeout_s: float = 120.0) -> Inputs:
    """The resellers, lead requests and answers of a running hub (``KAFKA_BOOTSTRAP_SERVERS``
    and the ``PASSPORT_HUB_*`` settings name it), read up to their current ends."""
    from hub.processor import Inbound  # noqa: PLC0415 - the broker client only for this source
    from hub.reader import TopicReader  # noqa: PLC0415
    from schemas import catalog  # noqa: PLC0415

    settings = settings or Settings()
    reader = TopicReader(settings, [catalog.RESELLERS, catalog.LEAD_REQUESTS,
                                    catalog.LEAD_RESPONSES])
    seen: list[tuple[str | None, Mapping[str, Any]]] = []

    def keep(batch: list[Inbound]) -> None:
        seen.extend((inbound.record, inbound.datum) for inbound in batch)

    reader.start(timeout_s=timeout_s)
    try:
        reader.catch_up(keep, timeout_s=timeout_s)
    finally:
        reader.close()
    return collect_records(seen, source=f"topics at {settings.kafka_bootstrap_servers}")
