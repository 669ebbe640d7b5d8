"""What the file drop records: files by outcome, rows by outcome, and the events ingested.

- ``passport_hub_file_drop_files_total{outcome}``: ``done``, ``rejected``,
  ``duplicate``, ``interrupted`` (a stop between two chunks: the file stays in the
  inbox), ``unavailable`` (the broker did not acknowledge a chunk: the file stays,
  the next poll tries again);
- ``passport_hub_file_drop_rows_total{outcome}``: ``produced`` (acknowledged by the
  broker), ``rejected`` (in the report);
- ``passport_hub_events_ingested_total{channel="file_drop",partner,type,outcome}``
  (connectors/api/observe.py): a produced row is ``accepted``, a refused one
  ``rejected``; a file dropped again after it was settled is a ``duplicate`` *file*
  (its rows are not read again, so not counted as events). ``partner`` is the kind
  that sends the row's type (``observe.sender_kind``): a file names no key.

A row is counted by the run that reads it past the checkpoint: a file resumed
after a crash or a stop counts only the rows after it, and the one chunk that
may have been in flight at a crash is counted again, as it is sent again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from prometheus_client import CollectorRegistry, Counter

from connectors.api.ingested import IngestMetrics, IngestOutcome, sender_kind, type_label
from schemas.models import EventModel

FileOutcome = Literal["done", "rejected", "duplicate", "interrupted", "unavailable"]
FILE_OUTCOMES: tuple[FileOutcome, ...] = ("done", "rejected", "duplicate", "interrupted",
                                          "unavailable")
ROW_OUTCOMES = ("produced", "rejected")


@dataclass(frozen=True, slots=True)
class FileDropMetrics:
    """The file drop's counters on one registry, their children bound once."""

    files: dict[str, Counter]
    rows: dict[str, Counter]
    events: IngestMetrics

    @classmethod
    def create(cls, registry: CollectorRegistry) -> FileDropMetrics:
        files = Counter("passport_hub_file_drop_files",
                        f"Dropped files read, by outcome ({', '.join(FILE_OUTCOMES)}).",
                        ["outcome"], registry=registry)
        rows = Counter("passport_hub_file_drop_rows",
                       f"Rows of dropped files, by outcome ({', '.join(ROW_OUTCOMES)}).",
                       ["outcome"], registry=registry)
        return cls({o: files.labels(o) for o in FILE_OUTCOMES},
                   {o: rows.labels(o) for o in ROW_OUTCOMES},
                   IngestMetrics.create(registry, "file_drop"))

    def file(self, outcome: FileOutcome) -> None:
        self.files[outcome].inc()

    def produced(self, events: Sequence[EventModel]) -> None:
        """An acknowledged chunk: its rows produced, its events accepted (by type)."""
        self.rows["produced"].inc(len(events))
        self._events((event.__dict__["type"] for event in events), "accepted")

    def rejected(self, event_types: Iterable[str | None]) -> None:
        """Refused rows, each by the type it claimed (None: none known)."""
        types = list(event_types)
        if types:
            self.rows["rejected"].inc(len(types))
            self._events(types, "rejected")

    def _events(self, event_types: Iterable[object], outcome: IngestOutcome) -> None:
        tally: dict[str, int] = {}
        for event_type in event_types:
            label = type_label(event_type)
            tally[label] = tally.get(label, 0) + 1
        for label, n in tally.items():
            self.events.count(sender_kind(label), label, outcome, n)
