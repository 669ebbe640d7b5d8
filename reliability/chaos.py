"""The kills: which component dies when, from a seed, and the thread that does it.

Victims come in turn: each round is every target once, in a shuffled order, so no
component is spared and none is picked twice in a row by chance alone. Between two kills
the killer waits a seeded time; it then waits (a bounded while) for the victim to be
*up* — a processor that joined its group since it last started, an API that answers
ready — so that a kill hits a working process rather than one still starting, and
notes when it could not. The killed process gets SIGKILL (no clean-up of any kind),
stays down a seeded moment, and is started again on the same data directory.

The routers are two processes; which one is active (holds the lead partitions) changes
with every rebalance, so ``routing-active`` and ``routing-standby`` are roles resolved at
the moment of the kill from the routers' own logs (``partitions.assigned``).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass

from reliability.processes import Cluster, Component

#: What is killed in turn. The read model lives in the API's process: killing ``api``
#: kills it too, and its restart rebuilds or resumes it.
TARGETS = ("api", "passport", "routing-active", "routing-standby", "crm_webhook", "file_drop")
#: How long the killer waits for a victim to be up before killing it anyway.
UP_TIMEOUT_S = 25.0


@dataclass(frozen=True, slots=True)
class Kill:
    """One planned kill: its target, the wait before it, and how long the victim stays down."""

    target: str
    wait_s: float
    down_s: float


@dataclass(frozen=True, slots=True)
class Killed:
    """One kill done."""

    target: str
    process: str
    """The process that died (``routing-a`` or ``routing-b`` for a router)."""
    at_s: float
    """Seconds since the killer started."""
    up: bool
    """Whether the victim was up (joined, or ready) when it was killed."""


def schedule(seed: int, kills: int, *, gap_s: tuple[float, float] = (2.5, 5.5),
             down_s: tuple[float, float] = (0.0, 1.5)) -> list[Kill]:
    """``kills`` kills, every target once per round, in a seeded order and rhythm."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible campaign, nothing secret
    out: list[Kill] = []
    while len(out) < kills:
        turn = list(TARGETS)
        rng.shuffle(turn)
        for target in turn[:kills - len(out)]:
            out.append(Kill(target, round(rng.uniform(*gap_s), 2), round(rng.uniform(*down_s), 2)))
    return out


#: What a kill costs beyond its planned wait: finding the victim up, reaping, restarting.
KILL_OVERHEAD_S = 1.0


def duration(plan: list[Kill]) -> float:
    """About how long a schedule takes to play (the flow is paced to last as long)."""
    return sum(k.wait_s + k.down_s + KILL_OVERHEAD_S for k in plan)


def per_target(done: list[Killed]) -> Counter[str]:
    """How many kills each target took."""
    return Counter(kill.target for kill in done)


class Killer:
    """Plays a schedule of kills against a cluster, in a thread."""

    def __init__(self, cluster: Cluster, plan: list[Kill], *, up_timeout_s: float = UP_TIMEOUT_S,
                 log: list[str] | None = None) -> None:
        self.cluster = cluster
        self.plan = plan
        self.up_timeout_s = up_timeout_s
        self.done: list[Killed] = []
        self.log = log if log is not None else []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="killer", daemon=True)
        self._started = 0.0

    def start(self) -> None:
        self._started = time.monotonic()
        self._thread.start()

    def join(self, timeout_s: float | None = None) -> None:
        self._thread.join(timeout_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    @property
    def finished(self) -> bool:
        return not self._thread.is_alive()

    def _run(self) -> None:
        for kill in self.plan:
            if self._stop.wait(kill.wait_s):
                return
            victim, up = self._victim(kill.target)
            if self._stop.is_set():
                return
            victim.kill()
            self.done.append(Killed(kill.target, victim.name,
                                    round(time.monotonic() - self._started, 1), up))
            self.log.append(f"{time.monotonic() - self._started:7.1f}s kill {kill.target} "
                            f"({victim.name}, {'up' if up else 'starting'})")
            self._stop.wait(kill.down_s)
            self.cluster.restart(victim.name)

    def _victim(self, target: str) -> tuple[Component, bool]:
        """The process a target names now, once it is up (or after the timeout)."""
        deadline = time.monotonic() + self.up_timeout_s
        while True:
            found = self._resolve(target)
            if found is not None and _up(found):
                return found, True
            if time.monotonic() > deadline or self._stop.is_set():
                return found or self._fallback(target), False
            time.sleep(0.2)

    def _resolve(self, target: str) -> Component | None:
        if not target.startswith("routing-"):
            return self.cluster[target]
        wanted = target == "routing-active"
        for router in self.cluster.routers():
            if router.running() and router.holds_partitions() is wanted:
                return router
        return None

    def _fallback(self, target: str) -> Component:
        routers = [r for r in self.cluster.routers() if r.running()] or self.cluster.routers()
        return routers[0] if target == "routing-active" else routers[-1]


def _up(component: Component) -> bool:
    if not component.running():
        return False
    if component.name == "api":
        return component.ready()
    if component.name == "file_drop":  # no group: up once its probes answer
        return component.ready()
    return component.holds_partitions() is not None
