"""The watched inbox: which dropped files are complete enough to read, and whose they are.

A partner's upload, a copy over SMB, a spreadsheet saving in place: each
writes a file in several steps. A file is read only once its size and
modification time have held still for ``stable_polls`` polls in a row.

The watched folder holds one inbox per partner: the subfolder named after the
partner's API key id (``<inbox>/<key id>/``), whose files speak as that key
(connectors/file_drop/scopes.py). Files in the folder itself speak as the
watcher's own key (``--key-id``), if any. ``done/``, ``rejected/`` and hidden
folders are no inboxes.
"""

from __future__ import annotations

from pathlib import Path

from connectors.file_drop.inbox import SETTLED, is_candidate


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
        for entry in self._entries():
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

    def _entries(self) -> list[Path]:
        """The entries of the folder and of each partner's inbox in it."""
        entries: list[Path] = []
        for entry in self.folder.iterdir():
            entries.append(entry)
            try:
                if is_inbox(entry):
                    entries.extend(entry.iterdir())
            except OSError:  # gone, or not ours to read: no inbox to watch
                continue
        return entries

    def key_of(self, path: Path) -> str | None:
        """The key id of the partner inbox ``path`` is in (None: the folder itself)."""
        return path.parent.name if path.parent != self.folder else None


def is_inbox(path: Path) -> bool:
    """Whether an entry of the watched folder is a partner's inbox (named by its key id)."""
    return (path.is_dir() and not path.name.startswith(".")
            and path.name not in SETTLED)
