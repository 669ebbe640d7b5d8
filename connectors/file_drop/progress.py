"""A carriage-return progress bar on stderr, for large files, only when stderr is a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO

#: Files smaller than this finish before a bar would tell anyone anything.
LARGE_BYTES = 1 << 20
_WIDTH = 30


class ProgressBar:
    """``name [#########.........]  45%  22,500 rows``, redrawn at most ten times a second."""

    def __init__(self, stream: TextIO | None = None, *, min_bytes: int = LARGE_BYTES,
                 every_s: float = 0.1) -> None:
        self._stream = stream or sys.stderr
        self._min_bytes = min_bytes
        self._every = every_s
        self._shown = False
        self._last = 0.0
        self._on = False
        self._name = ""

    def start(self, name: str, size: int) -> None:
        """Begin a file; the bar shows only for a large file on a terminal."""
        self._on = size >= self._min_bytes and self._stream.isatty()
        self._name = name
        self._last = 0.0

    def update(self, fraction: float, rows: int) -> None:
        if not self._on:
            return
        now = time.monotonic()
        if now - self._last < self._every:
            return
        self._last = now
        filled = int(_WIDTH * min(max(fraction, 0.0), 1.0))
        bar = "#" * filled + "." * (_WIDTH - filled)
        self._stream.write(f"\r{self._name} [{bar}] {fraction:4.0%} {rows:,} rows")
        self._stream.flush()
        self._shown = True

    def finish(self) -> None:
        """Clear the bar, so that the summary line prints on a clean line."""
        if self._shown:
            self._stream.write("\r\x1b[2K")
            self._stream.flush()
        self._shown = self._on = False
