"""What a service plugs into the processor loop: the records in and out, and ``Processor``.

The contract of every stream processor (docs/architecture.md, How the code is
written): a batch of decoded ``Inbound`` records and a transactional view of
its state in, ``Outbound`` records to emit and ``Rejected`` ones for the dead
letters out. ``hub.processor``
runs it; its names are re-exported there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from hub import deadletter
from hub.store import Txn
from schemas.frozen import frozen

__all__ = ["Emit", "Inbound", "Outbound", "Processor", "Rejected"]


@frozen
class Inbound:
    """One decoded input record."""

    topic: str
    """Catalog (base) topic name, prefix removed."""
    partition: int
    offset: int
    key: bytes | None
    record: str
    """Avro record name of the value."""
    datum: dict[str, Any]
    timestamp_ms: int


@frozen
class Outbound:
    """A record to emit: encoded with the current schema of ``record``."""

    topic: str
    key: str
    record: str
    datum: Mapping[str, Any]


@frozen
class Rejected:
    """An input record the processor refuses; it goes to the dead letters."""

    inbound: Inbound
    error: Exception
    stage: deadletter.Stage = "apply"


Emit = Outbound | Rejected

class Processor(Protocol):
    """The contract every service implements (docs/architecture.md, How the code is written)."""

    name: str
    """Component name: metrics label, log context, consumer group."""
    inputs: tuple[str, ...]
    """Catalog topic names consumed through the group."""

    def apply(self, state: Txn, batch: Sequence[Inbound]) -> Iterable[Emit]:
        """Apply a batch to state; return what to emit. Must not do I/O."""
        ...


@runtime_checkable
class Deferring(Protocol):
    """A processor that may hold output back across batches (coalescing snapshots while
    it catches up) and emits it in ``flush``. The loop calls ``flush`` in each batch's
    transaction, after ``apply``, with ``caught_up=False`` (emit what is overdue), and
    in a transaction of its own with ``caught_up=True`` (emit everything) each time it
    is caught up with its inputs or polled nothing."""

    def flush(self, state: Txn, partitions: frozenset[int], *,
              caught_up: bool = True) -> Iterable[Emit]:
        """Emit what was held back for these input partition numbers (those assigned and
        not being restored: the store may hold others). Must not do I/O."""
        ...
