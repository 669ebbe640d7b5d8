"""The hub's error hierarchy: one root, a subclass where a caller acts differently.

Contract errors (a record that does not decode, an unknown schema) are raised by
``schemas.errors.ContractError``: ``schemas`` sits beneath ``hub`` in the import
order, so it cannot subclass ``HubError``; callers catch both where both apply.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal


class HubError(Exception):
    """Root of every error the hub raises on purpose."""


class ConfigError(HubError):
    """The configuration is invalid or incomplete."""


class BrokerUnavailable(HubError):
    """The Kafka broker could not be reached or did not acknowledge in time."""


class BrokerStartError(HubError):
    """The embedded broker could not be started."""


class StoreError(HubError):
    """The local state store is unusable (corrupt, wrong owner, wrong version)."""


class StoreUnwritable(StoreError):
    """A store cannot take a write: its disk or its size cap is full, or it is read-only.

    Not a fault of the data, and nothing is half-written (the transaction rolled
    back): retrying in place would fail the same way, so the process stops, with
    ``exit_code``, and resumes where it stopped once restarted with room.
    """

    exit_code = 75
    """EX_TEMPFAIL (sysexits.h): a condition outside the program; try again later. Distinct
    from a crash (1) and a configuration error (2), so a supervisor or an alert tells them
    apart."""

    def __init__(self, path: Path, reason: Literal["full", "read_only"], detail: str) -> None:
        self.path = path
        self.reason = reason
        self.detail = detail
        """What SQLite or the system said."""
        state = "full" if reason == "full" else "read-only"
        super().__init__(f"store {path} is {state}: {detail}")

    @property
    def event(self) -> str:
        """The log event naming the condition: ``store.full`` or ``store.read_only``."""
        return f"store.{self.reason}"

    def fields(self) -> dict[str, str]:
        """The context its log line carries (with ``event`` as the event name)."""
        return {"path": str(self.path), "error": self.detail, "hint": self.hint}

    @property
    def hint(self) -> str:
        """What the operator does about it (docs/operations.md, Store full or read-only)."""
        if self.reason == "full":
            return ("free space on the data directory's disk, or raise "
                    "PASSPORT_HUB_STORE_MAX_MB; then restart the component (the API resumes "
                    "by itself): nothing was lost, it goes on where it stopped")
        return ("make the data directory and its files writable again (a filesystem remounted "
                "read-only: fix it and remount it read-write); then restart the component (the "
                "API resumes by itself): nothing was lost, it goes on where it stopped")


class Fenced(HubError):
    """The broker refused this instance's transaction: the group gave its partitions to
    another member (or another producer took its transactional id). What it applied and
    did not publish is stale, and must never reach a topic (hub.relay)."""
