"""What the leak scan reads: a run's log files, each component's /metrics, the dead letters.

The shell of reliability/leaks.py. Every component's stdout and stderr go to one log file
per component in the run's ``logs`` folder (reliability/processes.py), across its
restarts: read once the processes stopped, they hold every line of the run. The metrics
are scraped while the hub is still up (at the end of the run: the label values of every
series a process holds then). The dead-letter topic is read whole, headers and all, as
ops would read it (connectors/dlq/letters.py).
"""

from __future__ import annotations

from pathlib import Path

import httpx

from connectors.dlq.letters import read_all
from hub.config import Settings
from hub.errors import HubError
from reliability.leaks import Text
from reliability.processes import Cluster

SCRAPE_TIMEOUT_S = 10.0


def logs(log_dir: Path, run: str) -> list[Text]:
    """Every component's log file (undecodable bytes kept as replacement characters);
    ``run`` names the run in the sources (``<run>/logs/api.log``)."""
    out = []
    for path in sorted(log_dir.glob("*.log")):
        text = path.read_text(encoding="utf-8", errors="replace")
        out.append(Text("logs", f"{run}/logs/{path.name}", text, text.count("\n")))
    return out


def metrics(cluster: Cluster, run: str) -> tuple[list[Text], list[str]]:
    """Each component's /metrics as it answers now; and the components that did not answer."""
    texts, missing = [], []
    for name, component in cluster.components.items():
        try:
            answer = httpx.get(f"{component.spec.probes}/metrics", timeout=SCRAPE_TIMEOUT_S)
            answer.raise_for_status()
        except httpx.HTTPError as exc:
            missing.append(f"{run}: {name} /metrics: {type(exc).__name__}")
            continue
        texts.append(Text("metrics", f"{run}: {name} /metrics", answer.text,
                          answer.text.count("\n")))
    return texts, missing


def dead_letters(settings: Settings, run: str) -> tuple[list[Text], list[str]]:
    """One text per header of every dead letter; and what could not be read."""
    try:
        letters = read_all(settings)
    except HubError as exc:
        return [], [f"{run}: the dead letters: {exc}"]
    return [Text("dead-letter headers", f"{run}: {letter.topic} {letter.ref} {name}",
                 (raw or b"").decode("utf-8", errors="replace"))
            for letter in letters for name, raw in letter.headers], []
