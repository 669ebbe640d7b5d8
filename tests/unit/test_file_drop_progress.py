"""The file drop's progress bar: shown for a large file on a terminal, never otherwise."""

from __future__ import annotations

import io

from rich.console import Console

from connectors.file_drop.progress import ProgressBar


def _console(terminal: bool) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=terminal, width=100), out


def test_a_large_file_on_a_terminal_shows_its_name_share_and_rows_then_clears() -> None:
    console, out = _console(terminal=True)
    bar = ProgressBar(console, min_bytes=10)
    bar.start("inscriptions.csv", 1000)
    bar.update(0.45, 22_500)
    bar.finish()
    shown = out.getvalue()
    assert "inscriptions.csv" in shown
    assert "45%" in shown
    assert "22,500 rows" in shown
    assert shown.endswith("\x1b[2K"), "the bar was not cleared for the summary line"


def test_a_small_file_or_a_pipe_shows_nothing() -> None:
    for terminal, size in ((True, 9), (False, 1000)):
        console, out = _console(terminal)
        bar = ProgressBar(console, min_bytes=10)
        bar.start("inscriptions.csv", size)
        bar.update(0.5, 10)
        bar.finish()
        assert out.getvalue() == ""
