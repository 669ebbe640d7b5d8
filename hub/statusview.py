"""``passport-hub status`` on a terminal: the rendering of ``hub.status``'s snapshot, and
the command around it (httpx, rich, ``--watch``).

Figures are written the French way (the programme's managers read them): a narrow
no-break space between thousands and before "%", a decimal comma.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx
from rich import box
from rich.columns import Columns
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from hub.errors import HubError
from hub.promtext import Key
from hub.status import (
    EXIT_NO_HUB,
    EXIT_READY,
    PROBE_TIMEOUT_S,
    ComponentStatus,
    Fetch,
    HubFile,
    Programme,
    Reply,
    Status,
    find_hub,
    snapshot,
)
from schemas.reference import REGIONS

#: How many régions the programme figures name.
TOP_REGIONS = 5
DASH = "—"
#: French digit grouping and the space before "%": a narrow no-break space, as CLDR's
#: ``fr`` locale (and so the browser's ``Intl.NumberFormat("fr-FR")``) writes them.
THIN = "\u202f"


# --- rendering ---------------------------------------------------------------------------

def fr_number(value: float, decimals: int = 0) -> str:
    """``1234.5`` → ``1 234,5`` (French grouping and decimal comma)."""
    text = f"{value:,.{decimals}f}"
    return text.replace(",", THIN).replace(".", ",")


def fr_share(part: float, whole: float) -> str:
    """``1 234 / 150 000 (0,8 %)``."""
    share = f" ({fr_number(100 * part / whole, 1)}{THIN}%)" if whole > 0 else ""
    return f"{fr_number(part)} / {fr_number(whole)}{share}"


def _figure(value: float | None) -> str:
    return DASH if value is None else fr_number(value)


_STATE_STYLE = {"ready": "green", "not ready": "yellow", "down": "bold red"}


def render(status: Status, previous: Status | None = None) -> Group:
    """The whole view; with ``previous`` (the last snapshot of a watch), rates too."""
    # Side by side where the width allows: a watch should fit in one screen.
    counts = Columns([Padding(table, (0, 0, 1, 0))
                      for table in (*_lag(status), _dead_letters(status))], padding=(0, 3))
    return Group(_header(status), Text(), _components(status, previous), Text(), counts,
                 _programme(status.programme))


def _header(status: Status) -> Text:
    hub = status.hub
    ready = sum(c.state == "ready" for c in status.components)
    return Text(f"passport-hub · pid {hub.pid} · broker {hub.broker or DASH} · "
                f"{ready}/{len(status.components)} ready · "
                f"{status.taken_at:%Y-%m-%d %H:%M:%S} · {hub.path}")


def _table(title: str, *, show_header: bool = True) -> Table:
    return Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD,
                 show_header=show_header, show_edge=False, pad_edge=False)


def _components(status: Status, previous: Status | None) -> Table:
    table = _table("Components")
    table.add_column("component", no_wrap=True)
    table.add_column("state")
    table.add_column("URL", no_wrap=True)
    # A rate needs two snapshots: a single view shows the totals only.
    columns = ("consumed", "per s", "outbox", "restoring") if previous is not None \
        else ("consumed", "outbox", "restoring")
    for column in columns:
        table.add_column(column, justify="right")
    before = {c.name: c for c in previous.components} if previous is not None else {}
    for row in status.components:
        state = Text(row.state, style=_STATE_STYLE[row.state])
        if row.detail and row.state != "ready":
            state.append(f" ({row.detail})")
        rate = [] if previous is None else [_rate(row, before.get(row.name),
                                                  status.at - previous.at)]
        table.add_row(row.name, state, row.url, _figure(row.consumed), *rate,
                      _figure(row.outbox), _figure(row.restoring))
    return table


def _rate(row: ComponentStatus, earlier: ComponentStatus | None, elapsed_s: float) -> str:
    """Records consumed per second since the last view ("—": no figure, or a restart)."""
    if (row.consumed is None or earlier is None or earlier.consumed is None
            or elapsed_s <= 0 or row.consumed < earlier.consumed):
        return DASH
    return fr_number((row.consumed - earlier.consumed) / elapsed_s, 1)


def _lag(status: Status) -> tuple[Table, Table]:
    broker = _keyed_table("Lag, as the broker sees it", ("topic", "group"),
                          status.group_lag, order=(1, 0))
    loops = _keyed_table("Lag, each loop's own view", ("topic", "component"),
                         status.loop_lag, order=(1, 0))
    return broker, loops


def _dead_letters(status: Status) -> Table:
    return _keyed_table("Dead letters by stage", ("stage", "component"), status.dead_letters,
                        order=(0, 1), total=True)


def _keyed_table(title: str, columns: tuple[str, str], values: Mapping[Key, float] | None,
                 *, order: tuple[int, int], total: bool = False) -> Table:
    """Rows of (two labels, a count); ``order``: which key element goes in which column."""
    table = _table(title)
    for column in columns:
        table.add_column(column)
    table.add_column("records", justify="right")
    if values is None:
        table.add_row(DASH, DASH, DASH)
        return table
    if not values:
        table.add_row("none", "", "0")
    rows = sorted((tuple(key[i] for i in order), value) for key, value in values.items())
    for labels, value in rows:
        table.add_row(*labels, fr_number(value))
    if total and values:
        table.add_row("total", "", fr_number(sum(values.values())), style="bold")
    return table


def _programme(programme: Programme) -> Table:
    table = _table("Programme", show_header=False)
    table.add_column("figure")
    table.add_column("value")
    issued, target = programme.issued, programme.target
    if issued is not None and target is not None:
        passports = fr_share(issued, target)
    else:
        passports = f"{_figure(issued)} / {_figure(target)}"
    table.add_row("passports issued", passports)
    by_region = programme.issued_by_region
    if by_region is None:
        regions = DASH
    else:
        top = sorted(by_region.items(), key=lambda item: (-item[1], item[0]))[:TOP_REGIONS]
        regions = " · ".join(f"{REGIONS.get(code, code)} {fr_number(value)}"
                             for code, value in top if value > 0) or "none yet"
    table.add_row("top régions", regions)
    leads = programme.leads
    if leads is None:
        table.add_row("leads", DASH)
    else:
        counts = sorted(leads.items(), key=lambda item: (-item[1], item[0]))
        table.add_row("leads", " · ".join(f"{name} {fr_number(value)}" for name, value in counts)
                      or "none yet")
    return table


# --- the command -------------------------------------------------------------------------

def http_fetch(client: httpx.Client) -> Fetch:
    """A ``Fetch`` over ``client``: any transport failure is "no answer"."""
    def fetch(url: str) -> Reply | None:
        try:
            response = client.get(url)
        except (httpx.HTTPError, httpx.InvalidURL):
            return None
        return Reply(response.status_code, response.text)
    return fetch


def console() -> Console:
    """The terminal, or a plain wide one when stdout is a file or a pipe (rich drops the
    colours itself; a log keeps long topic names on one line)."""
    out = Console()
    if out.is_terminal or "COLUMNS" in os.environ:
        return out
    return Console(width=200)


def command(data_dir: Path, *, hub_file: Path | None, watch: bool, interval_s: float,
            out: Console | None = None) -> int:
    """``passport-hub status``: a hub named by ``hub_file``, else the newest running one
    under ``data_dir`` (a named file is taken as is: its hub may run in containers,
    where its pid means nothing here)."""
    try:
        hub = HubFile.load(hub_file) if hub_file is not None else find_hub(data_dir)
    except HubError as exc:
        print(f"passport-hub status: {exc}", file=sys.stderr)
        return EXIT_NO_HUB
    if hub is None:
        print(f"passport-hub status: no running hub in {data_dir} (start one "
              "with `passport-hub up`, or name its hub.json with --hub)", file=sys.stderr)
        return EXIT_NO_HUB
    out = out if out is not None else console()
    # trust_env=False: the hub's endpoints are reached directly, never through a proxy.
    with httpx.Client(timeout=PROBE_TIMEOUT_S, trust_env=False) as client:
        fetch = http_fetch(client)
        if not watch:
            status = snapshot(hub, fetch)
            out.print(render(status))
            return status.exit_code
        return _watch(hub, fetch, out, interval_s)


def _watch(hub: HubFile, fetch: Fetch, out: Console, interval_s: float) -> int:
    """Refresh until Ctrl-C: in place on a terminal, one view after another elsewhere."""
    previous: Status | None = None
    try:
        if out.is_terminal:
            with Live(console=out, auto_refresh=False) as live:
                while True:
                    current = snapshot(hub, fetch)
                    live.update(_framed(render(current, previous), interval_s), refresh=True)
                    previous = current
                    time.sleep(interval_s)
        while True:
            current = snapshot(hub, fetch)
            out.print(render(current, previous))
            out.print()
            previous = current
            time.sleep(interval_s)
    except KeyboardInterrupt:
        return EXIT_READY


def _framed(view: RenderableType, interval_s: float) -> Group:
    return Group(view, Text(f"every {fr_number(interval_s, 1)} s · Ctrl-C stops", style="dim"))
