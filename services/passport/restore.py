"""Rebuilding the passport state of assigned partitions from ``pn.passports.v1``.

The passport topic is compacted and every snapshot is a business's whole state
(services/passport/outputs.py), so the latest snapshot per SIREN is the state.
On assignment of partition ``p`` its inputs stay paused while the store is
checked: it is trusted if the last snapshot on ``pn.passports.v1/p`` is the last
one this store emitted (nobody else wrote there since); otherwise the state of
``p`` is dropped and restored. The check and the restore both run in steps of
about a second that the loop takes between its polls (``hub.restoring``: a
large partition, or a broker that does not answer, no longer costs the member
its place in the group):

1. read ``pn.passports.v1/p`` from the beginning to its end, each snapshot
   overwriting the one before for its SIREN (one record in memory at a time);
2. set the input positions of ``p`` to the LAST snapshot's ``replay_from``,
   where its window's first batch began (services/passport/window.py). The
   relay writes a window's snapshots only after the leads of its batches and
   after every earlier record, so what is on the topic is a prefix of what the
   previous owner emitted, cut at worst inside the last window (or with a window
   never sent): replaying from there re-applies the events whose effects are
   missing, and the applied event ids make the rest no-ops. A lead re-derived
   this way has the same id as the first time.

Both input topics and the passport topic have the same partition count and key
(the SIREN), so ``pn.passports.v1/p`` holds exactly the businesses of inputs ``p``.
"""

from __future__ import annotations

from collections.abc import Sequence

from hub import logs
from hub.checkpoint import CheckpointRestore, Converted, Converter, decode_chunk
from hub.config import Settings
from hub.restoring import restore_all
from hub.store import Store, Txn, dumps
from schemas import catalog
from schemas.codec import Codec
from services.passport import outputs
from services.passport.processor import (
    LAST_SNAPSHOT_NS,
    OFFSETS_NS,
    PARKED_NS,
    PASSPORTS_NS,
)


class PassportRestorer:
    """The passport service's ``hub.restoring.Restorer``."""

    checkpoints: tuple[str, ...] = (catalog.PASSPORTS,)

    def __init__(self, settings: Settings, *, codec: Codec | None = None,
                 timeout_s: float = 300.0) -> None:
        """``timeout_s``: how long a partition's restore may keep failing (its broker
        unreachable) before the service gives up with ``BrokerUnavailable``."""
        self.settings = settings
        self.codec = codec or Codec.default()
        self.timeout_s = timeout_s
        self.log = logs.get().bind(component="passport")
        self.last_restore: dict[int, int] = {}
        """Partition -> passports restored by the last restore (for tests and the bench)."""

    def begin(self, store: Store, partition: int) -> _PartitionRestore:
        """The task that checks ``partition`` and restores it if the store is not current.

        No broker call here: this runs in the rebalance callback, where a broker
        that does not answer (a leader just lost) once held the member for minutes,
        past its poll interval and deaf to SIGTERM. The check is the task's first step.
        """
        return _PartitionRestore(self, store, partition)

    def restore(self, store: Store, partitions: Sequence[int]) -> None:
        """Restore ``partitions`` to completion (the benchmark; the loop steps the tasks)."""
        restore_all(self, store, partitions)


Row = tuple[str, str, int | None]
"""A passport as restored: its SIREN, its stored JSON (``hub.store.dumps``), and the time
of its oldest parked event (None if none is parked)."""
Tail = tuple[str, dict[str, int]]
"""The last snapshot of a chunk: its event id and where to replay the inputs from."""


def convert(chunk: list[tuple[int, bytes]]) -> Converted:
    """A chunk of raw snapshots as passport rows and the last one's tail (the
    ``hub.checkpoint`` converter: it may run in a helper process, hence the default
    codec, the one every snapshot is written with)."""
    datums, errors = decode_chunk(Codec.default(), chunk)
    rows: list[Row] = []
    for datum in datums:
        value, parked_since = outputs.stored(datum)
        rows.append((str(datum["siren"]), dumps(value), parked_since))
    tail: Tail | None = None
    if datums:
        last = datums[-1]
        tail = (str(last["event_id"]), dict(last["replay_from"] or last["input_offsets"]))
    return Converted((rows, tail), errors)


class _PartitionRestore(CheckpointRestore):
    """One partition's check, then (if need be) its restore (hub.checkpoint): each
    snapshot overwrites the one before for its SIREN; the last one's ``replay_from``
    gives the positions."""

    def __init__(self, restorer: PassportRestorer, store: Store, partition: int) -> None:
        super().__init__(settings=restorer.settings, codec=restorer.codec, store=store,
                         topic=catalog.PASSPORTS, partition=partition, log=restorer.log,
                         timeout_s=restorer.timeout_s)
        self.restorer = restorer
        self._restored: set[str] = set()
        self._last: Tail | None = None

    def marker(self, txn: Txn) -> str | None:
        mine = txn.get(LAST_SNAPSHOT_NS, str(self.tp.partition))
        return None if mine is None else str(mine)

    def begin(self, txn: Txn) -> None:
        self._restored.clear()
        self._last = None
        txn.drop_partition(self.tp.partition)

    def converter(self) -> Converter:
        return convert

    def absorb(self, txn: Txn, items: tuple[list[Row], Tail | None]) -> None:
        rows, tail = items
        partition = self.tp.partition
        for siren, _, parked_since in rows:  # the parked index: rare, and kept in order
            if parked_since is not None:
                txn.put(PARKED_NS, siren, {"at": parked_since, "partition": partition},
                        partition=partition)
            elif siren in self._restored:
                txn.delete(PARKED_NS, siren)
            self._restored.add(siren)
        txn.put_many_json(PASSPORTS_NS, ((siren, text, partition) for siren, text, _ in rows))
        if tail is not None:
            self._last = tail

    def finish(self, txn: Txn, seconds: float) -> None:
        last, partition = self._last, self.tp.partition
        self.restorer.last_restore[partition] = len(self._restored)
        self.log.info("partition.restored", partition=partition,
                      passports=len(self._restored), seconds=round(seconds, 3))
        if last is None:
            return
        event_id, replay_from = last
        txn.put(OFFSETS_NS, str(partition), replay_from, partition=partition)
        for where, offset in replay_from.items():  # "pn.training.v1/3" -> 1042
            name, _, number = where.rpartition("/")
            txn.set_position(self.restorer.settings.topic(name), int(number), offset)
        txn.put(LAST_SNAPSHOT_NS, str(partition), event_id, partition=partition)
