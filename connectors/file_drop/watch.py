"""The watched inbox: which dropped files are complete enough to read.

A partner's upload, a copy over SMB, a spreadsheet saving in place: each
writes a file in several steps. A file is read only once its size and
modification time have held still for ``stable_polls`` polls in a row.
"""

from __future__ import annotations

from pathlib import Path

from connectors.file_drop.inbox import is_candidate


class Watcher:
    """Polls one folder; each poll returns the files that have stopped changing."""

    def __init__(self, folder: Path, *, stable_polls: int = 2) -> None:
        self.folder = folder
        self.stable_polls = stable_polls
        # Per file: (size, mtime_ns) at the last poll, and for how many polls it held.
        self._seen: dict[Path, tuple[tuple[int, int], int]] = {}

    def poll(self) -> list[Path]:
        """The files ready to read, oldest first (they stay ready until they leave)."""
        current: dict[Path, tuple[tuple[int, int], int]] = {}
        for entry in self.folder.iterdir():
            try:
                if not is_candidate(entry):
                    continue
                stat = entry.stat()
            except OSError:  # gone between the listing and the look
                continue
            if stat.st_size == 0:
                continue  # created, nothing written yet
            shape = (stat.st_size, stat.st_mtime_ns)
            before = self._seen.get(entry)
            held = before[1] + 1 if before is not None and before[0] == shape else 0
            current[entry] = (shape, held)
        self._seen = current
        ready = [path for path, (_, held) in current.items() if held >= self.stable_polls]
        return sorted(ready, key=lambda path: (current[path][0][1], path.name))
