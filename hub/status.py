"""``passport-hub status``: what a running hub's components say about themselves.

An operator without Grafana sees the same as the dashboard: each component's
readiness, the consumer lag per topic (as the broker sees it, and as each loop
does), the dead letters by stage, and the programme's figures. Everything comes
from the endpoints every process serves (``/readyz`` and ``/metrics``,
docs/operations.md, Metrics), found through the ``hub.json`` that ``passport-hub up``
writes in its run directory — so the view needs no broker client, and shows a
component that stopped answering as down rather than hanging on it.

The core is pure: ``snapshot`` turns what a ``Fetch`` returns into ``Status`` data,
``render`` turns that into rich renderables; ``command`` is the thin shell around
them (httpx, the terminal, ``--watch``).

Exit status: 0 every component is ready; 1 one at least is not ready or down; 2 no
running hub was found (or its ``hub.json`` is unreadable). ``--watch`` runs until
Ctrl-C and then exits 0.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

import httpx
from rich import box
from rich.columns import Columns
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from hub.errors import HubError
from hub.promtext import Exposition, Key, merge
from schemas.reference import REGIONS

EXIT_READY = 0
EXIT_DEGRADED = 1
EXIT_NO_HUB = 2

#: Seconds a probe may take: a component slower than that to answer is shown as down,
#: and the whole view stays under a couple of seconds however many are.
PROBE_TIMEOUT_S = 1.0
#: How many régions the programme figures name.
TOP_REGIONS = 5

CONSUMED = "passport_hub_records_consumed_total"
OUTBOX = "passport_hub_outbox_pending_records"
RESTORING = "passport_hub_restores_in_progress"
GROUP_LAG = "passport_hub_consumer_group_lag_records"
LOOP_LAG = "passport_hub_consumer_lag_records"
DEAD_LETTERS = "passport_hub_dead_letters_total"
ISSUED = "passport_hub_programme_passports_issued"
TARGET = "passport_hub_programme_passports_target"
LEADS = "passport_hub_programme_leads"

DASH = "—"
#: French digit grouping and the space before "%": a narrow no-break space, as CLDR's
#: ``fr`` locale (and so the browser's ``Intl.NumberFormat("fr-FR")``) writes them.
THIN = "\u202f"


@dataclass(frozen=True, slots=True)
class HubFile:
    """Where a running hub's parts answer: ``<run dir>/hub.json``, written by ``up``."""

    path: Path
    pid: int
    broker: str | None
    components: Mapping[str, str]
    """Component name → base URL (``/readyz`` and ``/metrics`` are under it)."""

    @classmethod
    def load(cls, path: Path) -> HubFile:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            components = data["components"]
            if not isinstance(components, dict):
                raise TypeError("components is not an object")
            return cls(path, int(data["pid"]), data.get("broker"),
                       {str(name): str(url) for name, url in components.items()})
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise HubError(f"{path} is not a readable hub.json ({exc})") from exc


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (one of another user's counts)."""
    if pid <= 0:  # 0 and negatives name process groups, not a process
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def find_hub(data_dir: Path) -> HubFile | None:
    """The newest ``hub.json`` whose process is alive, if any: an embedded stack's is in
    its run dir, ``<data dir>/embedded-<ts>/``, a stack on a configured broker's in the
    data dir itself. A run dir left behind by a killed hub is skipped, not shown as all
    down."""
    found = [*data_dir.glob("hub.json"), *data_dir.glob("*/hub.json")]
    candidates = sorted(found, key=_mtime, reverse=True)
    for path in candidates:
        try:
            hub = HubFile.load(path)
        except HubError:
            continue
        if pid_alive(hub.pid):
            return hub
    return None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer: its status and body."""

    status: int
    text: str


#: GET a URL: its reply, or None when nothing answered (refused, timed out).
Fetch = Callable[[str], Reply | None]
State = Literal["ready", "not ready", "down"]


@dataclass(frozen=True, slots=True)
class ComponentStatus:
    """One component's row. ``None`` figures: the component does not expose them."""

    name: str
    url: str
    state: State
    detail: str = ""
    """Why not ready: the failing checks, or the HTTP status."""
    consumed: float | None = None
    outbox: float | None = None
    restoring: float | None = None


@dataclass(frozen=True, slots=True)
class Programme:
    """The programme's figures, as the API computes them from its read model."""

    issued_by_region: Mapping[str, float] | None = None
    target: float | None = None
    leads: Mapping[str, float] | None = None

    @property
    def issued(self) -> float | None:
        by_region = self.issued_by_region
        return None if by_region is None else sum(by_region.values())


@dataclass(frozen=True, slots=True)
class Status:
    """What every component of one hub said, at one moment. ``None`` aggregates: no
    component exposes the metric."""

    hub: HubFile
    at: float
    """``time.monotonic()`` of the snapshot: rates between two snapshots."""
    taken_at: datetime
    components: tuple[ComponentStatus, ...]
    group_lag: Mapping[Key, float] | None = None
    """(group, topic) → records behind, summed over partitions (the broker's view)."""
    loop_lag: Mapping[Key, float] | None = None
    """(component, topic) → records behind (each loop's own view)."""
    dead_letters: Mapping[Key, float] | None = None
    """(stage, component) → dead letters so far."""
    programme: Programme = field(default_factory=Programme)

    @property
    def exit_code(self) -> int:
        ready = all(c.state == "ready" for c in self.components)
        return EXIT_READY if ready else EXIT_DEGRADED


def snapshot(hub: HubFile, fetch: Fetch, *, at: float | None = None,
             taken_at: datetime | None = None) -> Status:
    """Ask every component of ``hub`` (at once: a slow one costs one timeout, not one
    each) and sum up what they said. ``fetch`` must be safe to call from threads."""
    names = list(hub.components)
    with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
        probes = list(pool.map(lambda name: _probe(name, hub.components[name], fetch), names))
    pages = [page for _, page in probes]
    by_partition = merge(pages, GROUP_LAG, ("group", "topic", "partition"), replicated=True)
    return Status(
        hub=hub,
        at=time.monotonic() if at is None else at,
        taken_at=datetime.now().astimezone() if taken_at is None else taken_at,
        components=tuple(row for row, _ in probes),
        group_lag=None if by_partition is None else _drop_last(by_partition),
        loop_lag=merge(pages, LOOP_LAG, ("component", "topic")),
        dead_letters=merge(pages, DEAD_LETTERS, ("stage", "component")),
        programme=Programme(
            issued_by_region=_single(merge(pages, ISSUED, ("region",), replicated=True)),
            target=_scalar(merge(pages, TARGET, (), replicated=True)),
            leads=_single(merge(pages, LEADS, ("status",), replicated=True)),
        ),
    )


def _probe(name: str, base: str, fetch: Fetch) -> tuple[ComponentStatus, Exposition | None]:
    base = base.rstrip("/")
    ready = fetch(base + "/readyz")
    if ready is None:
        return ComponentStatus(name, base, "down", "no answer"), None
    state, detail = _readiness(ready)
    page = _page(fetch(base + "/metrics"))
    if page is None:
        return ComponentStatus(name, base, state, detail), None
    return ComponentStatus(name, base, state, detail, consumed=page.total(CONSUMED),
                           outbox=page.total(OUTBOX), restoring=page.total(RESTORING)), page


def _readiness(reply: Reply) -> tuple[State, str]:
    """``/readyz`` read as hub/probes.py answers it: 200 ``{"status": "ready"}`` or 503
    ``{"status": "not_ready", "checks": {name: bool}}``."""
    try:
        body = json.loads(reply.text)
    except ValueError:
        body = None
    body = body if isinstance(body, dict) else {}
    if reply.status == 200 and body.get("status", "ready") == "ready":
        return "ready", ""
    checks = body.get("checks")
    failing = [str(name) for name, ok in checks.items() if ok is not True] \
        if isinstance(checks, dict) else []
    return "not ready", ", ".join(failing) or f"HTTP {reply.status}"


def _page(reply: Reply | None) -> Exposition | None:
    if reply is None or reply.status != 200:
        return None
    try:
        return Exposition.parse(reply.text)
    except ValueError:  # not Prometheus text: as if the component exposed nothing
        return None


def _drop_last(grouped: Mapping[Key, float]) -> dict[Key, float]:
    """Sum away the last label of each key (the partition)."""
    out: dict[Key, float] = {}
    for key, value in grouped.items():
        out[key[:-1]] = out.get(key[:-1], 0.0) + value
    return out


def _single(grouped: Mapping[Key, float] | None) -> dict[str, float] | None:
    return None if grouped is None else {key[0]: value for key, value in grouped.items()}


def _scalar(grouped: Mapping[Key, float] | None) -> float | None:
    return None if grouped is None else grouped.get(())


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
