"""One dropped file, end to end: validate every row, produce the good ones, report the rest.

Good rows go to the sink in chunks; after each acknowledged chunk the
checkpoint moves to the chunk's last line. A crash anywhere leaves the file in
the inbox, and the next run re-reads it, skips what the checkpoint covers, and
re-sends at most the chunk that was in flight, under the same derived event
ids. Bad rows never stop a file: they go to its report, and so do the rows its
inbox's key may not send (connectors/file_drop/scopes.py). The file is settled
(moved) last, then marked finished, so a file is never lost between the two.
Files, rows and events are counted as they go (connectors/file_drop/metrics.py).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from prometheus_client import CollectorRegistry

from connectors.contract import Sink
from connectors.file_drop import headers, inbox, rows
from connectors.file_drop.checkpoint import Checkpoints, Progress
from connectors.file_drop.formats import Line, Reader, UnreadableFile
from connectors.file_drop.metrics import FileDropMetrics
from connectors.file_drop.progress import ProgressBar
from connectors.file_drop.rows import Defaults, FieldError, TypeUnknown
from connectors.file_drop.scopes import Inboxes, Scope, ScopeUnavailable
from hub import ids, logs
from hub.errors import BrokerUnavailable
from schemas.models import EventModel

Status = Literal["done", "rejected", "duplicate", "interrupted"]
#: Events per acknowledged chunk: one checkpoint write per chunk.
CHUNK = 500
#: The purpose of derived event ids (``hub.ids.derive``): part of every file-drop id.
ID_PURPOSE = "file-drop"
_SOURCE_MAX = 64  # the models' limit on ``source``


def row_event_id(sha256: str, line: int) -> str:
    """The event id of a row that brings none: the same for the same bytes and line."""
    return ids.derive(f"{sha256}:{line}", ID_PURPOSE)


@dataclass(frozen=True, slots=True)
class Options:
    """How files are read: what their rows do not say, and how they are produced."""

    type: str | None = None
    """Type tag of rows without a type (else inferred from a CSV's headers)."""
    source: str | None = None
    """``source`` of rows without one (else the file's name without its suffix)."""
    chunk: int = CHUNK
    attempts: int = 5
    """Tries per chunk while the broker does not acknowledge."""
    backoff_s: float = 1.0
    """Wait before the second try; doubled for each next one, up to 10 s."""
    now: datetime | None = None
    """Replaces the clock of the future-timestamp check (tests)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one file."""

    name: str
    status: Status
    rows: int = 0
    produced: int = 0
    """Good rows, all acknowledged by now (some by an earlier, interrupted run)."""
    sent: int = 0
    """Events this run sent (more than its share of ``produced`` if a chunk was re-sent)."""
    rejected: int = 0
    """Bad rows, each with its fields in the report."""
    seconds: float = 0.0
    resumed_after: int = 0
    """The checkpoint's line this run started after (0: from the top)."""
    settled: Path | None = None
    note: str = ""

    def summary(self) -> str:
        """The one line printed per file."""
        where = f" → {self.settled.parent.name}/{self.settled.name}" if self.settled else ""
        if self.status == "duplicate":
            return f"{self.name}: duplicate ({self.note}), nothing produced{where}"
        if self.status == "interrupted":
            return f"{self.name}: interrupted at line {self.resumed_after}; stays in the inbox"
        line = (f"{self.name}: {self.rows} rows, {self.produced} produced, "
                f"{self.rejected} rejected, {self.seconds:.2f} s{where}")
        if self.note:
            line += f" ({self.note})"
        if self.resumed_after:
            line += f" (resumed after line {self.resumed_after})"
        return line


@dataclass(frozen=True, slots=True)
class _Plan:
    """How the lines of one file become events."""

    build: Callable[[Line], rows.Outcome]
    notes: list[FieldError]
    claims: Callable[[Line], Any]
    """The type a line claims, for counting it when it is refused (None: unknown)."""
    scope: Scope | None = None
    """The inbox key's checks (None: none, every row trusted)."""

    @property
    def remembered(self) -> bool:
        """Whether the file is remembered once settled (a copy then is a duplicate): not
        when its key refused it whole (unknown, revoked, expired), so that the same file
        dropped again once the key is put right is read again."""
        return self.scope is None or self.scope.caller is not None


class _Interrupted(Exception):
    """A stop was asked for between two chunks; the checkpoint stands at ``line``."""

    def __init__(self, line: int) -> None:
        super().__init__(f"interrupted at line {line}")
        self.line = line


class FileDrop:
    """Reads dropped files into a sink, behind a checkpoint."""

    def __init__(self, sink: Sink, checkpoints: Checkpoints, *, options: Options | None = None,
                 stop: threading.Event | None = None, progress: ProgressBar | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 metrics: FileDropMetrics | None = None,
                 beat: Callable[[], None] = lambda: None,
                 inboxes: Inboxes | None = None) -> None:
        """``beat``: called at each acknowledged chunk, so a watcher busy with a large file
        stays alive on its probes (hub.probes.Probes.beat). ``inboxes``: the keys a file's
        rows are checked against (the command always gives them); None trusts every row,
        for a caller that is the operator itself (tests, tools)."""
        self.sink = sink
        self.metrics = metrics or FileDropMetrics.create(CollectorRegistry())
        self.beat = beat
        self.checkpoints = checkpoints
        self.options = options or Options()
        self.stop = stop or threading.Event()
        self.progress = progress or ProgressBar()
        self.clock = clock
        self.inboxes = inboxes
        self.log = logs.get().bind(component="file_drop")

    def ingest(self, path: Path, folder: Path | None = None, *,
               key_id: str | None = None) -> Outcome:
        """Read one file of the inbox of key ``key_id`` (None: bound to no key) and settle
        it under ``folder`` (default: the file's own folder).

        Raises ``BrokerUnavailable`` when a chunk is not acknowledged after
        ``options.attempts`` tries, and ``ScopeUnavailable`` when a row cannot be
        checked yet (the read model catching up); the file then stays where it is.
        """
        try:
            outcome = self._ingest(path, folder or path.parent, key_id)
        except (BrokerUnavailable, ScopeUnavailable):
            self.metrics.file("unavailable")
            raise
        self.metrics.file(outcome.status)
        return outcome

    def _scope(self, key_id: str | None) -> Scope | None:
        return None if self.inboxes is None else self.inboxes.scope(key_id)

    def _ingest(self, path: Path, folder: Path, key_id: str | None) -> Outcome:
        started = time.monotonic()
        data = path.read_bytes()
        sha256 = hashlib.sha256(data).hexdigest()
        prior = self.checkpoints.get(sha256)
        if prior is not None and prior.finished:
            note = f"same content as {prior.name}, settled {prior.finished_at}"
            settled = self._reject(path, folder, [FieldError(0, "file", f"duplicate: {note}")])
            self.log.info("file_drop.duplicate", file=path.name, sha256=sha256)
            return Outcome(path.name, "duplicate", settled=settled, note=note)
        try:
            reader = Reader(path.name, data)
            plan = self._plan(reader, path, sha256, self._scope(key_id))
        except UnreadableFile as exc:
            settled = self._reject(path, folder, [FieldError(0, "file", f"unreadable: {exc}")])
            self.log.info("file_drop.unreadable", file=path.name, sha256=sha256)
            return Outcome(path.name, "rejected", settled=settled, note=f"unreadable: {exc}",
                           seconds=time.monotonic() - started)
        except TypeUnknown as exc:
            reason = f"cannot tell the event type: {exc}; add a Type column or use --type"
            settled = self._reject(path, folder, [FieldError(1, "type", reason)])
            return Outcome(path.name, "rejected", settled=settled, note="no event type",
                           seconds=time.monotonic() - started)
        resume = prior.line if prior is not None else 0
        self.progress.start(path.name, len(data))
        try:
            counts = self._produce(reader, plan, path.name, sha256, resume)
        except _Interrupted as stopped:
            self.log.info("file_drop.interrupted", file=path.name, sha256=sha256,
                          line=stopped.line)
            return Outcome(path.name, "interrupted", resumed_after=stopped.line)
        finally:
            self.progress.finish()
        total, produced, sent, errors = counts
        rejected = len({error.line for error in errors})
        inbox.write_report(path, sorted([*plan.notes, *errors], key=lambda e: e.line))
        settled = inbox.settle(path, folder, "done" if produced else "rejected")
        if plan.remembered:
            self.checkpoints.finish(Progress(sha256, path.name, total.line,
                                             self.clock().isoformat(), total.rows, produced,
                                             rejected))
        outcome = Outcome(path.name, "done" if produced else "rejected", total.rows, produced,
                          sent, rejected, time.monotonic() - started, resume, settled,
                          "" if produced else "no good row")
        self.log.info("file_drop.settled", file=path.name, sha256=sha256, status=outcome.status,
                      rows=total.rows, produced=produced, rejected=rejected, sent=sent,
                      resumed_after=resume, encoding=reader.encoding,
                      key_id=key_id, remembered=plan.remembered)
        return outcome

    def _plan(self, reader: Reader, path: Path, sha256: str, scope: Scope | None) -> _Plan:
        tag = self.options.type
        source = (self.options.source or path.stem)[:_SOURCE_MAX]
        if reader.kind == "jsonl":
            defaults = Defaults(source, lambda line: row_event_id(sha256, line), tag,
                                self.options.now)
            return _Plan(_scoped(lambda line: _json_line(line, defaults), scope), [],
                         lambda line: _json_type(line, tag), scope)
        columns = headers.columns(reader.header)
        if tag is None:
            try:
                tag = rows.infer_type(columns.present())
            except TypeUnknown:
                if "type" not in columns.present():
                    raise  # with a Type column, rows that say nothing fail on their own
        defaults = Defaults(source, lambda line: row_event_id(sha256, line), tag,
                            self.options.now)
        notes = [FieldError(1, header, "unknown column, ignored") for header in columns.unknown]
        notes += [FieldError(1, header, "a second column for the same field, ignored")
                  for header in columns.repeated]
        return _Plan(_scoped(lambda line: _csv_line(line, columns, defaults), scope), notes,
                     lambda _line: tag, scope)

    def _produce(self, reader: Reader, plan: _Plan, name: str, sha256: str,
                 resume: int) -> tuple[_Total, int, int, list[FieldError]]:
        total = _Total()
        errors: list[FieldError] = []
        produced = sent = 0
        chunk: list[EventModel] = []
        refused: list[Any] = []  # the types refused rows past the checkpoint claim
        for line, outcome in _built(reader, plan, total):
            self.progress.update(reader.fraction(), total.rows)
            if isinstance(outcome, list):
                errors.extend(outcome)
                if line.number > resume:
                    refused.append(plan.claims(line))
                continue
            produced += 1
            if line.number <= resume:
                continue  # acknowledged before the crash or stop that interrupted the file
            chunk.append(outcome)
            if len(chunk) >= self.options.chunk:
                sent += self._send(chunk, sha256, name, line.number, resume)
                chunk = []
                # The checkpoint is past them now: a resumed run will not count them again.
                self.metrics.rejected(refused)
                refused = []
        if chunk:
            sent += self._send(chunk, sha256, name, total.line, resume)
        self.metrics.rejected(refused)
        return total, produced, sent, errors

    def _send(self, chunk: list[EventModel], sha256: str, name: str, line: int,
              resume: int) -> int:
        """Produce one chunk (retrying while the broker is away), then checkpoint ``line``."""
        if self.stop.is_set():
            progress = self.checkpoints.get(sha256)
            raise _Interrupted(progress.line if progress else resume)
        for attempt in range(1, self.options.attempts + 1):
            try:
                self.sink.publish_many(chunk)
                break
            except BrokerUnavailable as exc:
                if attempt == self.options.attempts or self.stop.is_set():
                    raise
                self.log.warning("file_drop.retry", file=name, attempt=attempt, error=str(exc))
                self.stop.wait(min(self.options.backoff_s * 2 ** (attempt - 1), 10.0))
        self.checkpoints.advance(sha256, name, line)
        self.metrics.produced(chunk)
        self.beat()
        return len(chunk)

    def _reject(self, path: Path, folder: Path, errors: list[FieldError]) -> Path:
        inbox.write_report(path, errors)
        return inbox.settle(path, folder, "rejected")


@dataclass(slots=True)
class _Total:
    rows: int = 0
    line: int = 0
    """The last line read."""


def _built(reader: Reader, plan: _Plan, total: _Total) -> Iterator[tuple[Line, rows.Outcome]]:
    for line in reader:
        total.rows += 1
        total.line = line.number
        yield line, plan.build(line)


def _scoped(build: Callable[[Line], rows.Outcome],
            scope: Scope | None) -> Callable[[Line], rows.Outcome]:
    """``build``, then the inbox key's checks on the rows it makes events of.

    Every line is checked, those before a resumed file's checkpoint too: they are
    not sent again, but the report and the counts then say of each what the
    interrupted run said (unless the key or the read model changed in between).
    """
    if scope is None:
        return build

    def checked(line: Line) -> rows.Outcome:
        outcome = build(line)
        return outcome if isinstance(outcome, list) else scope.check(line.number, outcome)

    return checked


def _csv_line(line: Line, columns: headers.Columns, defaults: Defaults) -> rows.Outcome:
    if line.error is not None:
        return [FieldError(line.number, "line", line.error)]
    return rows.from_cells(line.number, columns.values(line.cells), defaults)


def _json_type(line: Line, tag: str | None) -> Any:
    """The type a JSON line claims: its own ``type`` member, else the file's."""
    own = line.obj.get("type") if isinstance(line.obj, dict) else None
    return own if own is not None else tag


def _json_line(line: Line, defaults: Defaults) -> rows.Outcome:
    if line.error is not None:
        return [FieldError(line.number, "line", line.error)]
    return rows.from_json(line.number, line.obj, defaults)
