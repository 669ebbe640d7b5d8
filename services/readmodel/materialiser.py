"""The read model: follows the state topics in a daemon thread into SQLite, and answers queries.

The topics are the truth and the file a cache of them: every start deletes the
file and rebuilds it by reading its topics from the beginning (the whole
topics, every partition, no consumer group). The lead-event feed's positions
come from the leads topic's offsets, so they too are the same after a rebuild.

Poison never stops it (docs/architecture.md, "Bad input never blocks a
partition"): a record that does not decode (stage ``decode``), one of a record
type its topic does not carry (``validate``), and one the store cannot apply
(``apply``: store.py, checks.py) go to ``pn.dlq.v1`` with their cause
(letters.py), and the records after them are applied. The thread reads on past
a batch only once the broker acknowledged its dead letters.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from hub import logs
from hub.config import Settings
from hub.errors import BrokerUnavailable, HubError, StoreError
from hub.processor import Inbound, Rejected
from hub.reader import TopicReader
from schemas import catalog
from schemas.errors import ContractError
from services.readmodel import letters, store
from services.readmodel.consistency import Token
from services.readmodel.queries import Queries

#: The topics the read model materialises (the resellers' for their names on the KPI page).
TOPICS = (catalog.PASSPORTS, catalog.LEADS, catalog.WEBHOOK_ENDPOINTS, catalog.DELIVERIES,
          catalog.RESELLERS)


class _StopRequestedError(Exception):
    """Raised inside a catch-up batch to abandon it when stop() was called."""


class UnexpectedRecordError(HubError):
    """A record of a type its topic does not carry (schemas/catalog.py): dead-lettered."""


#: The record types each topic carries; any other on it is poison.
_CARRIED = {name: frozenset(catalog.topic(name).records) for name in TOPICS}


class ReadModel:
    """Materialises ``TOPICS`` into a SQLite file and serves read-only queries."""

    def __init__(self, settings: Settings, path: Path, *, poll_timeout_ms: int = 500,
                 registry: CollectorRegistry | None = None) -> None:
        """``registry``: where ``passport_hub_dead_letters_total{component="readmodel"}``
        is counted (the API process's /metrics), if anywhere."""
        self.settings = settings
        self.path = path
        self._poll_timeout_ms = poll_timeout_ms
        self._counter = None if registry is None else letters.dead_letters_counter(registry)
        self._queries = Queries(path)
        self._stop = threading.Event()
        self._caught_up = threading.Event()
        self._thread: threading.Thread | None = None
        # Notified after every batch the writer commits (wait_for_change).
        self._changed = threading.Condition()
        self._batches = 0
        self._reader: TopicReader | None = None
        self._writer: store.Writer | None = None
        self._letters: letters.DeadLetters | None = None
        self._undecodable: list[Rejected] = []
        self.records_read = 0
        """State records read from the topics since start (duplicates included)."""
        self.log = logs.get().bind(component="readmodel")

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, timeout_s: float = 30.0) -> None:
        """Rebuild from scratch: delete the file, assign the topics, follow them in a thread.

        Raises ``BrokerUnavailable`` when the topics cannot be assigned in ``timeout_s``.
        """
        if self._thread is not None:
            raise RuntimeError("read model already started")
        store.remove(self.path)
        self._writer = store.Writer(self.path)
        self._letters = letters.DeadLetters(self.settings, letters.ledger_path(self.path),
                                            stop=self._stop, counter=self._counter)
        self._undecodable = []
        reader = TopicReader(self.settings, TOPICS, on_undecodable=self._set_aside)
        try:
            reader.start(timeout_s=timeout_s)
        except BaseException:
            self._writer.close()
            self._letters.close()
            raise
        self._reader = reader
        self._stop.clear()
        self.records_read = 0
        self._thread = threading.Thread(target=self._run,
                                        args=(reader, self._writer, self._letters),
                                        name="readmodel", daemon=True)
        self._thread.start()
        self.log.info("readmodel.started", path=str(self.path))

    @property
    def caught_up(self) -> bool:
        """True once the model has read up to the end offsets the topics had at start."""
        return self._caught_up.is_set()

    def wait_caught_up(self, timeout_s: float) -> bool:
        """Block until caught up (or ``timeout_s``); return ``caught_up``."""
        return self._caught_up.wait(timeout_s)

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop following and close the reader and the file; idempotent."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout_s)
            if thread.is_alive():
                self.log.warning("readmodel.stop_timeout", timeout_s=timeout_s)
                return  # the daemon thread still owns the reader and writer; leave them to it
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._letters is not None:
            self._letters.close()
            self._letters = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self.log.info("readmodel.stopped")

    # -- queries ---------------------------------------------------------------------------

    def passport(self, siren: str) -> dict[str, Any] | None:
        """The latest passport of a business, or None."""
        return self._queries.passport(siren)

    def leads_for(self, reseller_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """The leads a reseller holds, most recent first (``limit`` capped at 1000)."""
        return self._queries.leads_for(reseller_id, limit)

    def lead(self, lead_id: str) -> dict[str, Any] | None:
        """A lead's full view, trace and history included (``Queries.lead``), or None."""
        return self._queries.lead(lead_id)

    def lead_holder(self, lead_id: str) -> tuple[bool, str | None]:
        """Whether the lead is known, and the reseller that holds it now (None: nobody)."""
        return self._queries.lead_holder(lead_id)

    def passports_in(self, departement: str, *, state: str | None = None,
                     after: str | None = None, limit: int = 100) -> dict[str, Any]:
        """One page of a département's enrolled businesses (``Queries.passports_in``)."""
        return self._queries.passports_in(departement, state=state, after=after, limit=limit)

    def stats(self) -> dict[str, Any]:
        """The programme figures: passports against target, modules, quality referential."""
        return self._queries.stats()

    def kpi(self) -> dict[str, Any]:
        """The KPI page's figures: the stats, passports per day, resellers (``Queries.kpi``)."""
        return self._queries.kpi()

    def counts(self) -> dict[str, int]:
        """Businesses, passports issued, leads assigned and unassigned."""
        return self._queries.counts()

    def webhook_endpoint(self, reseller_id: str) -> dict[str, Any] | None:
        """A reseller's webhook endpoint state (``Queries.webhook_endpoint``), or None."""
        return self._queries.webhook_endpoint(reseller_id)

    def deliveries(self, reseller_id: str, *, limit: int = 100,
                   message_id: str | None = None) -> list[dict[str, Any]]:
        """A reseller's delivery attempts, newest first (``Queries.deliveries``)."""
        return self._queries.deliveries(reseller_id, limit=limit, message_id=message_id)

    def lead_feed(self, reseller_id: str | None, *, cursor: str | None,
                  limit: int = 100) -> dict[str, Any]:
        """The lead events after ``cursor`` and the next cursor (``Queries.lead_feed``)."""
        return self._queries.lead_feed(reseller_id, cursor=cursor, limit=limit)

    def reflects_passport(self, siren: str, token: Token) -> bool:
        """Whether the passports reflect the write ``token`` names (consistency.py's rules)."""
        return self._queries.reflects_passport(siren, token)

    def reflects_lead(self, lead_id: str, token: Token) -> bool:
        """Whether the lead is known and reflects the write ``token`` names."""
        return self._queries.reflects_lead(lead_id, token)

    def wait_for_change(self, timeout_s: float) -> bool:
        """Block until the writer commits its next batch, or ``timeout_s``; whether it did.

        For long polls: check, wait, check again (a batch committed between the
        first check and the wait is missed by the wait, not by the second check).
        """
        with self._changed:
            seen = self._batches
            return self._changed.wait_for(lambda: self._batches != seen, timeout_s)

    # -- the thread ------------------------------------------------------------------------

    @property
    def dead_letters(self) -> int:
        """Dead letters the broker acknowledged since start (tests, status)."""
        return 0 if self._letters is None else self._letters.sent

    def _run(self, reader: TopicReader, writer: store.Writer,
             dead: letters.DeadLetters) -> None:
        try:
            self._catch_up(reader, writer, dead)
            while not self._stop.is_set():
                batch = reader.poll(timeout_ms=self._poll_timeout_ms)
                if batch or self._undecodable:
                    self._apply(writer, dead, batch)
        except (_StopRequestedError, letters.StopRequestedError):
            pass
        except (StoreError, OSError, sqlite3.Error, ValueError, KeyError, TypeError) as exc:
            # A record that cannot be applied is dead-lettered (store.py): what reaches here
            # is the file's or the ledger's failure (disk full, I/O), or a bug, to see at
            # once (readyz stays or turns red), not to retry forever.
            self._caught_up.clear()
            self.log.error("readmodel.failed", error=repr(exc))

    def _catch_up(self, reader: TopicReader, writer: store.Writer,
                  dead: letters.DeadLetters) -> None:
        started = time.monotonic()
        while not self._stop.is_set():
            try:
                reader.catch_up(lambda batch: self._apply(writer, dead, batch, checked=True),
                                timeout_s=5.0)
                if self._undecodable:  # the last batch read held nothing but poison
                    self._apply(writer, dead, [])
            except BrokerUnavailable as exc:
                # Progress is kept (the consumer's positions); try again from there.
                self.log.warning("readmodel.catch_up_slow", error=str(exc))
                continue
            self._caught_up.set()
            self.log.info("readmodel.caught_up", records=self.records_read,
                          seconds=round(time.monotonic() - started, 3))
            return

    def _set_aside(self, inbound: Inbound, error: ContractError) -> None:
        """The reader's undecodable records: dead-lettered with the batch they came in."""
        self._undecodable.append(Rejected(inbound, error, "decode"))

    def _apply(self, writer: store.Writer, dead: letters.DeadLetters,
               batch: Sequence[Inbound], *, checked: bool = False) -> None:
        if checked and self._stop.is_set():
            raise _StopRequestedError
        good: list[Inbound] = []
        rejected, self._undecodable = self._undecodable, []
        for inbound in batch:
            if inbound.record in _CARRIED[inbound.topic]:
                good.append(inbound)
            else:
                rejected.append(Rejected(inbound, UnexpectedRecordError(
                    f"{inbound.topic} carries {', '.join(sorted(_CARRIED[inbound.topic]))} "
                    f"records, not {inbound.record}"), "validate"))
        writer.apply(good)
        rejected.extend(writer.take_rejected())
        if rejected:
            # Read on only once they are acknowledged: what is not, the next start sends.
            rejected.sort(key=lambda r: (r.inbound.topic, r.inbound.partition, r.inbound.offset))
            dead.send(rejected)
        self.records_read += len(batch)
        with self._changed:
            self._batches += 1
            self._changed.notify_all()
