"""SQLite files as the hub opens them: WAL, secure delete, a size cap, and a write that
cannot be made told apart (a full disk or a reached cap, a read-only file or filesystem)
from any other failure, so a service stops saying which (docs/operations.md, runbook).

Every SQLite file of the hub is opened here: the processors' stores (``hub.store``), the
read model, the API's idempotency ledger, the dead-letter index.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from hub.errors import StoreError, StoreUnwritable

#: The size cap of every store this process opens, in MiB (0: none): ``set_size_cap``.
_size_cap_mb = 0


def set_size_cap(max_mb: int) -> None:
    """Cap every SQLite file this process opens from now on at ``max_mb`` MiB (0: no cap).

    Set once per process, in its wiring place (``settings.store_max_mb``), like the
    log format: the cap is the operator's for the whole process, and the files are
    opened by modules that take no settings (the read model, checkpoints, ledgers).
    """
    global _size_cap_mb  # noqa: PLW0603 - one process-wide policy, set at start (see above)
    _size_cap_mb = max(0, int(max_mb))


def connect(path: Path, *, durable: bool, schema: str = "", what: str = "database",
            max_mb: int | None = None) -> sqlite3.Connection:
    """An autocommit WAL connection to ``path``, its schema applied; ``StoreError`` if
    unusable (``StoreUnwritable`` if its disk is full or it is read-only).

    ``durable=False`` (synchronous=OFF) is for files rebuilt from the topics, where a
    lost last commit costs nothing. check_same_thread is off: the owners hand the
    connection between threads, and sqlite3 serialises access with its own mutex.
    ``max_mb``: the file's size cap (``PRAGMA max_page_count``; default: the process's,
    ``set_size_cap``): a write past it fails as a full disk would, with SQLITE_FULL.
    """
    conn: sqlite3.Connection | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)
        conn.execute("PRAGMA journal_mode=WAL")
        # Deleted rows are overwritten, not left in free pages: an erased business's contact
        # must not stay readable in the file (Debian's SQLite does it by default; not all do).
        conn.execute("PRAGMA secure_delete = ON")
        conn.execute("PRAGMA synchronous=NORMAL" if durable else "PRAGMA synchronous=OFF")
        cap_size(conn, _size_cap_mb if max_mb is None else max_mb)
        if schema:
            conn.executescript(schema)
    except (OSError, sqlite3.Error) as exc:
        if conn is not None:
            conn.close()
        raise failure(exc, path, f"cannot open {what} {path}") from exc
    return conn


def cap_size(conn: sqlite3.Connection, max_mb: int) -> None:
    """Let the file of ``conn`` grow to ``max_mb`` MiB at most (0: no cap).

    SQLite never sets the cap below the pages the file has: a file already past it
    takes no new page, and its next growth fails at once.
    """
    if max_mb <= 0:
        return
    page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
    conn.execute(f"PRAGMA max_page_count = {max(1, max_mb * 1024 * 1024 // page_size)}")


# -- a write that cannot be made -------------------------------------------------------------

#: What the system says of a file or directory that cannot be written.
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_READ_ONLY_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})
#: Below this much free space, an I/O error is taken for the disk being full.
_NEARLY_FULL_BYTES = 1 << 20


def unwritable(exc: BaseException, path: Path, *,
               statvfs: Callable[[Path], os.statvfs_result] = os.statvfs,
               ) -> StoreUnwritable | None:
    """The ``StoreUnwritable`` that ``exc``, raised by a write to the store at ``path``,
    means; None when it is another failure (a corrupt file, a bug).

    SQLite says SQLITE_FULL for a full disk or a reached cap, and SQLITE_READONLY (and
    its extended codes) for a file it could only open read-only. An I/O error (a
    filesystem remounted read-only under an open file gives SQLITE_IOERR) or a file
    that cannot be opened says nothing of why: the filesystem is asked (``statvfs``).
    """
    reason = _reason(exc)
    if reason == "ask":
        return _judged_by_filesystem(path, str(exc), statvfs)
    return None if reason is None else StoreUnwritable(path, reason, str(exc))


def _reason(exc: BaseException) -> Literal["full", "read_only", "ask"] | None:
    if isinstance(exc, sqlite3.Error):
        name = getattr(exc, "sqlite_errorname", "") or ""
        if name == "SQLITE_FULL":
            return "full"
        if name.startswith("SQLITE_READONLY"):
            return "read_only"
        return "ask" if name.startswith(("SQLITE_IOERR", "SQLITE_CANTOPEN")) else None
    if isinstance(exc, OSError):
        return ("full" if exc.errno in _FULL_ERRNOS
                else "read_only" if exc.errno in _READ_ONLY_ERRNOS else "ask")
    return None


def _judged_by_filesystem(path: Path, detail: str,
                          statvfs: Callable[[Path], os.statvfs_result]) -> StoreUnwritable | None:
    # The nearest directory that exists: the store's own may be what could not be made.
    where = next((d for d in (path.parent, *path.parent.parents) if d.is_dir()), path.parent)
    try:
        fs = statvfs(where)
    except OSError:
        return None
    if fs.f_flag & os.ST_RDONLY:
        return StoreUnwritable(path, "read_only", f"{detail} (the filesystem is read-only)")
    if not os.access(where, os.W_OK):  # immutable, or not ours (even root is refused then)
        return StoreUnwritable(path, "read_only", f"{detail} ({where} is not writable)")
    if fs.f_bavail * fs.f_frsize < _NEARLY_FULL_BYTES:
        return StoreUnwritable(path, "full", f"{detail} (the filesystem is full)")
    return None


def failure(exc: BaseException, path: Path, what: str) -> StoreError:
    """``exc`` as the store error to raise: ``StoreUnwritable`` when it means the store
    cannot be written, else a ``StoreError`` saying ``what`` failed."""
    return unwritable(exc, path) or StoreError(f"{what}: {exc}")


def rollback(conn: sqlite3.Connection, cause: BaseException) -> None:
    """Undo the open transaction of ``conn``, which ``cause`` interrupted, if SQLite has
    not already (it does on SQLITE_FULL, and a ROLLBACK then fails with "no transaction
    is active", hiding the cause)."""
    if not conn.in_transaction:
        return
    try:
        conn.execute("ROLLBACK")
    except sqlite3.Error:
        # Nothing committed either way: a write-ahead log's uncommitted frames are ignored
        # when the file is next opened. The file's own failure is the error worth raising.
        if not isinstance(cause, sqlite3.Error | OSError):
            raise
