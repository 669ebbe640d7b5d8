"""``passport-hub status``: what a running hub's components say about themselves.

An operator without Grafana sees the same as the dashboard: each component's
readiness, the consumer lag per topic (as the broker sees it, and as each loop
does), the dead letters by stage, and the programme's figures. Everything comes
from the endpoints every process serves (``/readyz`` and ``/metrics``,
docs/operations.md, Metrics), found through the ``hub.json`` that ``passport-hub up``
writes in its run directory — so the view needs no broker client, and shows a
component that stopped answering as down rather than hanging on it.

This module is the pure core: ``snapshot`` turns what a ``Fetch`` returns into
``Status`` data. hub/statusview.py renders it with rich and is the command around it
(httpx, the terminal, ``--watch``).

Exit status: 0 every component is ready; 1 one at least is not ready or down; 2 no
running hub was found (or its ``hub.json`` is unreadable). ``--watch`` runs until
Ctrl-C and then exits 0.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from hub.errors import HubError
from hub.promtext import Exposition, Key, merge

EXIT_READY = 0
EXIT_DEGRADED = 1
EXIT_NO_HUB = 2

#: Seconds a probe may take: a component slower than that to answer is shown as down,
#: and the whole view stays under a couple of seconds however many are.
PROBE_TIMEOUT_S = 1.0

CONSUMED = "passport_hub_records_consumed_total"
OUTBOX = "passport_hub_outbox_pending_records"
RESTORING = "passport_hub_restores_in_progress"
GROUP_LAG = "passport_hub_consumer_group_lag_records"
LOOP_LAG = "passport_hub_consumer_lag_records"
DEAD_LETTERS = "passport_hub_dead_letters_total"
ISSUED = "passport_hub_programme_passports_issued"
TARGET = "passport_hub_programme_passports_target"
LEADS = "passport_hub_programme_leads"



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
