"""What was redriven: one entry per dead letter (topic, partition, offset), in SQLite.

A redrive records each letter once the broker acknowledged its event, so a
second run leaves it alone. A crash between the ack and the record re-sends
the event under its own event id, which readers drop as a repeat.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors.dlq.letters import DeadLetter
from hub.config import Settings
from hub.store import Store

_NS = "redriven"
_PARTITION = 0  # the store's ownership partition; ledger entries belong to no input


def ledger_path(settings: Settings) -> Path:
    return settings.data_dir / "dlq-redrive.sqlite"


@dataclass(frozen=True, slots=True)
class Redriven:
    """One ledger entry."""

    at: str
    """When (UTC, ISO 8601)."""
    topic: str
    """Where the event went."""
    event_id: str


def _key(letter: DeadLetter) -> str:
    return f"{letter.topic}:{letter.partition}:{letter.offset}"


class Ledger:
    """The redrive ledger of one data directory."""

    def __init__(self, path: Path) -> None:
        self._store = Store(path)

    def get(self, letter: DeadLetter) -> Redriven | None:
        with self._store.transaction() as txn:
            value: dict[str, Any] | None = txn.get(_NS, _key(letter))
        return None if value is None else Redriven(**value)

    def record(self, entries: list[tuple[DeadLetter, Redriven]]) -> None:
        """Record letters as redriven, all in one transaction."""
        with self._store.transaction() as txn:
            for letter, entry in entries:
                txn.put(_NS, _key(letter), {"at": entry.at, "topic": entry.topic,
                                            "event_id": entry.event_id}, partition=_PARTITION)

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
