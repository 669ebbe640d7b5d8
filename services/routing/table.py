"""The reseller table every router instance holds entirely, followed from ``pn.resellers.v1``.

The topic is compacted (and the embedded broker never compacts), so reading it
from the beginning and keeping the last profile per reseller id restores the
table. ``start`` reads up to the end before returning, so no decision ever runs
on an empty table while profiles exist; ``refresh`` then applies whatever
arrived since, without waiting, before each poll of the lead requests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from hub import logs
from hub.config import Settings
from hub.processor import Inbound
from hub.reader import TopicReader
from schemas import catalog
from services.routing.policy import Reseller


def reseller(datum: Mapping[str, Any]) -> Reseller:
    """The policy's view of a ``ResellerProfile`` datum."""
    return Reseller(
        reseller_id=str(datum["reseller_id"]),
        name=str(datum["name"]),
        departements=frozenset(datum["departements"]),
        categories=frozenset(datum["categories"]),
        capacity=int(datum["capacity"]),
        weight=int(datum["weight"]),
        status=str(datum["status"]),
    )


class ResellerTable:
    """The latest profile of every reseller; ``resellers`` is a live read-only view."""

    def __init__(self, settings: Settings, *, reader: TopicReader | None = None) -> None:
        self._reader = reader or TopicReader(settings, [catalog.RESELLERS])
        self._table: dict[str, Reseller] = {}
        self.resellers: Mapping[str, Reseller] = MappingProxyType(self._table)
        self.log = logs.get().bind(table="resellers")

    def start(self, timeout_s: float = 60.0) -> None:
        """Read the whole topic up to its current end (blocking)."""
        self._reader.start()
        count = self._reader.catch_up(self.apply, timeout_s=timeout_s)
        self.log.info("resellers.loaded", records=count, resellers=len(self._table))

    def refresh(self) -> None:
        """Apply the profiles that arrived since the last call, without waiting for more."""
        batch = self._reader.poll(timeout_ms=0)
        if batch:
            self.apply(batch)
            self.log.debug("resellers.refreshed", records=len(batch), resellers=len(self._table))

    def apply(self, batch: Sequence[Inbound]) -> None:
        """Keep the last profile per reseller id (records of one id share a partition)."""
        for inbound in batch:
            if inbound.record != "ResellerProfile":
                self.log.warning("resellers.unexpected_record", record=inbound.record,
                                 partition=inbound.partition, offset=inbound.offset)
                continue
            try:
                profile = reseller(inbound.datum)
            except (KeyError, TypeError, ValueError) as exc:
                self.log.warning("resellers.bad_profile", partition=inbound.partition,
                                 offset=inbound.offset, error=type(exc).__name__)
                continue
            self._table[profile.reseller_id] = profile

    def close(self) -> None:
        self._reader.close()
