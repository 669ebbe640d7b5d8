"""The reseller table every router instance holds entirely, followed from ``pn.resellers.v1``.

The topic is compacted (and the embedded broker never compacts), so reading it
from the beginning and keeping the last valid profile per reseller id restores
the table. ``start`` reads up to the end before returning, so no decision ever
runs on an empty table while profiles exist; ``refresh`` then applies whatever
arrived since, without waiting, before each poll of the lead requests. A
profile that fails validation (stage "validate"), and a record that does not
decode at all (stage "decode": garbage, an unknown schema fingerprint, a
tombstone), leaves the reseller's previous profile in place and waits in
``rejected`` until the router dead-letters it (the active instance only, each
once per store: services/routing/processor.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from hub import logs
from hub.config import Settings
from hub.processor import Inbound, Rejected
from hub.reader import TopicReader
from schemas import catalog
from schemas.errors import ContractError
from services.routing.registry import InvalidProfileError, Registry, parse_profile

#: What the table reads: every router instance reads the whole of it.
TOPICS = (catalog.RESELLERS,)


class ResellerTable:
    """The latest valid profile of every reseller, as a live ``Registry``."""

    def __init__(self, settings: Settings, *, reader: TopicReader | None = None) -> None:
        self._reader = reader or TopicReader(settings, TOPICS,
                                             on_undecodable=self.undecodable)
        self.registry = Registry()
        self.rejected: list[Rejected] = []
        """Invalid profiles and undecodable records not dead-lettered yet (``take_rejected``)."""
        self.log = logs.get().bind(table="resellers")

    def start(self, timeout_s: float = 60.0) -> None:
        """Read the whole topic up to its current end (blocking)."""
        self._reader.start()
        count = self._reader.catch_up(self.apply, timeout_s=timeout_s)
        self.log.info("resellers.loaded", records=count, resellers=len(self.registry))

    def refresh(self) -> None:
        """Apply the profiles that arrived since the last call, without waiting for more."""
        batch = self._reader.poll(timeout_ms=0)
        if batch:
            self.apply(batch)
            self.log.debug("resellers.refreshed", records=len(batch),
                           resellers=len(self.registry))

    def apply(self, batch: Sequence[Inbound]) -> None:
        """Keep the last valid profile per reseller id (records of one id share a partition)."""
        for inbound in batch:
            try:
                if inbound.record != "ResellerProfile":
                    raise InvalidProfileError(f"{inbound.topic} carries ResellerProfile "
                                              f"records, not {inbound.record or 'nothing'}")
                profile = parse_profile(inbound.datum)
            except InvalidProfileError as exc:
                self.log.warning("resellers.bad_profile", partition=inbound.partition,
                                 offset=inbound.offset, error=str(exc))
                self.rejected.append(Rejected(inbound, exc, "validate"))
                continue
            self.registry.put(profile)

    def undecodable(self, inbound: Inbound, error: ContractError) -> None:
        """A record of the topic that did not decode (the reader's ``on_undecodable``)."""
        self.log.warning("resellers.undecodable", partition=inbound.partition,
                         offset=inbound.offset, error=type(error).__name__)
        self.rejected.append(Rejected(inbound, error, "decode"))

    def take_rejected(self) -> list[Rejected]:
        """What to dead-letter, in the order it was read; the list starts afresh."""
        rejected, self.rejected = self.rejected, []
        return rejected

    def close(self) -> None:
        self._reader.close()
