"""A progress bar on stderr (rich), for large files, only when stderr is a terminal."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn

#: Files smaller than this finish before a bar would tell anyone anything.
LARGE_BYTES = 1 << 20


class ProgressBar:
    """``name ━━━━━━━━━━╺━━━━━━━━━  45% 22,500 rows``, redrawn ten times a second and
    cleared when the file is done, so that its summary line prints on a clean line."""

    def __init__(self, console: Console | None = None, *, min_bytes: int = LARGE_BYTES) -> None:
        self._console = console or Console(stderr=True)
        self._min_bytes = min_bytes
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def start(self, name: str, size: int) -> None:
        """Begin a file; the bar shows only for a large file on a terminal."""
        self.finish()
        if size < self._min_bytes or not self._console.is_terminal:
            return
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
            TextColumn("{task.fields[rows]:,} rows"),
            console=self._console, transient=True, refresh_per_second=10)
        self._task = self._progress.add_task(name, total=1.0, rows=0)
        self._progress.start()

    def update(self, fraction: float, rows: int) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=min(max(fraction, 0.0), 1.0), rows=rows)

    def finish(self) -> None:
        """Stop and clear the bar."""
        if self._progress is not None:
            self._progress.stop()
        self._progress = self._task = None
