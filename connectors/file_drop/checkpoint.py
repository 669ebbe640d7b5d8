"""Where each dropped file got to: the last line produced and acknowledged, per sha256.

The file drop's exactly-once rests on two things: this checkpoint, advanced
only after the broker acknowledged a chunk, and event ids derived from
(sha256, line), so a chunk re-sent after a crash between the ack and the
checkpoint carries the ids it had the first time and readers drop it. A
file is known by its content, not its name: the same bytes dropped again
after they completed are a duplicate.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hub.config import Settings
from hub.store import Store

_NS = "file"
# The store partitions state by input partition; files have none.
_PARTITION = 0


def checkpoint_path(settings: Settings) -> Path:
    """The file drop's SQLite checkpoint."""
    return settings.data_dir / "file-drop.sqlite"


@dataclass(frozen=True, slots=True)
class Progress:
    """What is known of one file's content."""

    sha256: str
    name: str
    """The file's name when it was (last) read."""
    line: int
    """Every good row up to and including this line was produced and acknowledged."""
    finished_at: str | None = None
    """When the file was settled (moved to done/ or rejected/); None while it is not."""
    rows: int = 0
    produced: int = 0
    rejected: int = 0

    @property
    def finished(self) -> bool:
        return self.finished_at is not None


class Checkpoints:
    """The checkpoints of every file the drop has read (one SQLite file, WAL)."""

    def __init__(self, path: Path) -> None:
        self._store = Store(path)

    def get(self, sha256: str) -> Progress | None:
        with self._store.transaction() as txn:
            value = txn.get(_NS, sha256)
        return None if value is None else Progress(sha256=sha256, **value)

    def advance(self, sha256: str, name: str, line: int) -> None:
        """Record that every good row up to ``line`` is acknowledged by the broker."""
        self._put(Progress(sha256, name, line))

    def finish(self, progress: Progress) -> None:
        """Record a file as settled, with its counts (``progress.finished_at`` set)."""
        assert progress.finished
        self._put(progress)

    def _put(self, progress: Progress) -> None:
        value = {"name": progress.name, "line": progress.line,
                 "finished_at": progress.finished_at, "rows": progress.rows,
                 "produced": progress.produced, "rejected": progress.rejected}
        with self._store.transaction() as txn:
            txn.put(_NS, progress.sha256, value, partition=_PARTITION)

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> Checkpoints:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
