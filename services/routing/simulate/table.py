"""The terminal view: a progress bar while replaying, then one column per policy (rich)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from services.routing.simulate.metrics import DEVIATION_FLOOR, Summary


@contextmanager
def progress_bar(console: Console, policy: str) -> Iterator[Callable[[int, int], None]]:
    """A ``replay.Progress`` callback drawing one bar for ``policy``'s replay."""
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("lead requests"), TimeElapsedColumn(), console=console,
                  transient=False) as bar:
        task = bar.add_task(f"replaying {policy}", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def figure_rows(s: Summary) -> list[tuple[str, str]]:
    worst = (f"{s.worst_deviation:+.1%} ({s.worst_reseller})" if s.worst_reseller
             else "n/a")
    return [
        ("knobs", s.description),
        ("leads (duplicates)", f"{s.leads:,} ({s.duplicates:,})"),
        ("assignments", f"{s.assignments:,}"),
        ("rejections", f"{s.rejections:,}"),
        ("SLA breaches (expired)", f"{s.breaches:,}"),
        ("won / lost", f"{s.won:,} / {s.lost:,}"),
        ("reached the national queue", f"{s.queued:,}"),
        ("hops per lead mean / p95 / max", f"{s.hops_mean:.2f} / {s.hops_p95:.0f} / {s.hops_max}"),
        ("Gini of leads per reseller", f"{s.gini:.3f}"),
        ("Gini of leads per unit of weight", f"{s.gini_per_weight:.3f}"),
        (f"worst deviation (entitlement >= {DEVIATION_FLOOR:.0f})", worst),
        ("stale answers dropped", f"{s.stale_answers:,}"),
        ("replay time", f"{s.elapsed_s:.1f} s"),
    ]


def summary_table(summaries: Sequence[Summary]) -> Table:
    """The figures of every policy, side by side."""
    table = Table(title="Routing simulation", title_justify="left")
    table.add_column("", style="bold")
    for s in summaries:
        table.add_column(s.policy, justify="right")
    columns = [figure_rows(s) for s in summaries]
    for index, (label, _) in enumerate(columns[0] if columns else ()):
        table.add_row(label, *(column[index][1] for column in columns))
    return table
