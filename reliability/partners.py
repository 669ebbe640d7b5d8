"""The partners: HTTP clients that retry as real ones do, and the ledger of what was accepted.

A partner sends an event until the hub accepts it: on a refused connection (the API is
down), a timeout or a ``503``, it sends the same body again with the same ``event_id``,
so the hub's idempotency makes the retry harmless (docs/architecture.md, Guarantees).
``Retry-After`` is honoured up to ``MAX_BACKOFF_S``: a campaign keeps its patience
bounded. Every event the hub answered ``202`` for is written in the ``Ledger``: that is
what the campaign then looks for in the results, and a missing one is *lost*.

Trainers' files are dropped in their key's inbox (``<watched folder>/<key id>/``) as JSON
Lines (the API's bodies, one a line), written aside and renamed, and count as accepted
once the file drop settled them in that inbox's ``done/`` (rows listed in the file's
report are not).
"""

from __future__ import annotations

import csv
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from connectors.file_drop.inbox import REPORT_SUFFIX
from schemas.models import EventModel

#: The longest wait between two tries.
MAX_BACKOFF_S = 2.0
#: Statuses a partner retries (over its rate limit, the API restarting, the broker away,
#: a bug's 500: each counted in the report).
RETRIED = frozenset({429, 500, 502, 503, 504})


class GaveUp(Exception):
    """A request the hub did not accept within the partner's patience."""


@dataclass
class Ledger:
    """What the hub accepted, and how it answered along the way (thread-safe)."""

    accepted: dict[str, str] = field(default_factory=dict)
    """Event id → type tag, for every event answered 202 (or settled from a file)."""
    channels: Counter[str] = field(default_factory=Counter)
    answers: Counter[str] = field(default_factory=Counter)
    """HTTP statuses (and ``connection`` for a refused or cut connection), every try."""
    refused: list[str] = field(default_factory=list)
    """Events (and requests) the hub refused for good: none in a correct run."""
    retries: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def accept(self, event_id: str, kind: str, channel: str) -> None:
        with self._lock:
            if event_id not in self.accepted:
                self.channels[channel] += 1
            self.accepted[event_id] = kind

    def answered(self, status: int | str) -> None:
        with self._lock:
            self.answers[str(status)] += 1

    def retried(self) -> None:
        with self._lock:
            self.retries += 1

    def refuse(self, what: str) -> None:
        with self._lock:
            self.refused.append(what)


def _seconds(retry_after: str | None) -> float:
    """A ``Retry-After`` in seconds (0 when absent or not a number of seconds)."""
    try:
        return max(0.0, float(retry_after or 0))
    except ValueError:
        return 0.0


def body(event: EventModel) -> dict[str, Any]:
    """The JSON body of an event, as a partner posts it."""
    return event.model_dump(mode="json")


class Partner:
    """One API key's client; every call retries until accepted or out of patience."""

    def __init__(self, base: str, token: str, ledger: Ledger, *, patience_s: float = 120.0,
                 stop: threading.Event | None = None) -> None:
        self.base = base
        self.ledger = ledger
        self.patience_s = patience_s
        self._stop = stop or threading.Event()
        self._client = httpx.Client(base_url=base, timeout=30.0,
                                    headers={"Authorization": f"Bearer {token}"})

    def close(self) -> None:
        self._client.close()

    def request(self, method: str, path: str, *, json_body: Any = None,
                params: Mapping[str, Any] | None = None,
                done: Callable[[httpx.Response], bool] | None = None) -> httpx.Response:
        """The first answer that is not retried (or that ``done`` accepts); ``GaveUp``."""
        deadline = time.monotonic() + self.patience_s
        delay = 0.1
        while True:
            wait = delay
            try:
                answer = self._client.request(method, path, json=json_body, params=params)
            except httpx.TransportError:
                self.ledger.answered("connection")
            else:
                self.ledger.answered(answer.status_code)
                if (done(answer) if done is not None else answer.status_code not in RETRIED):
                    return answer
                wait = max(delay, _seconds(answer.headers.get("retry-after")))
            if time.monotonic() + wait > deadline or self._stop.is_set():
                raise GaveUp(f"{method} {path}: not accepted within {self.patience_s:.0f} s")
            self.ledger.retried()
            time.sleep(min(wait, MAX_BACKOFF_S))
            delay = min(delay * 2, MAX_BACKOFF_S)

    def send(self, events: Sequence[EventModel]) -> None:
        """Post events as one batch until each is accepted (only the unaccepted are re-sent)."""
        waiting = list(events)
        deadline = time.monotonic() + self.patience_s
        while waiting:
            answer = self.request("POST", "/v1/events:batch",
                                  json_body={"events": [body(e) for e in waiting]},
                                  done=lambda r: r.status_code in (202, 503, 422))
            results = _results(answer)
            again: list[EventModel] = []
            for index, event in enumerate(waiting):
                item = results[index] if results is not None and index < len(results) \
                    else {"status": answer.status_code}
                status = int(item.get("status", 0))
                if status == 202:
                    self.ledger.accept(str(event.event_id), event.RECORD, "api")
                elif status in RETRIED:
                    again.append(event)
                else:
                    self.ledger.refuse(f"{event.RECORD} {event.event_id}: {status} "
                                       f"{json.dumps(item.get('problem'))[:300]}")
            if again:
                if time.monotonic() > deadline or self._stop.is_set():
                    raise GaveUp(f"{len(again)} events not accepted in {self.patience_s:.0f} s")
                self.ledger.retried()
                time.sleep(0.5)
            waiting = again

    def send_one(self, event: EventModel) -> httpx.Response:
        """Post one event (``POST /v1/events``) until accepted; the 202 answer."""
        answer = self.request("POST", "/v1/events", json_body=body(event))
        if answer.status_code == 202:
            self.ledger.accept(str(event.event_id), event.RECORD, "api")
        else:
            self.ledger.refuse(f"{event.RECORD} {event.event_id}: {answer.status_code} "
                               f"{answer.text[:300]}")
        return answer


def _results(answer: httpx.Response) -> list[dict[str, Any]] | None:
    """The per-event results of a batch answer (None: the answer is about the whole batch)."""
    try:
        document = answer.json()
    except ValueError:
        return None
    results = document.get("results") if isinstance(document, dict) else None
    return results if isinstance(results, list) else None


def drop(inbox: Path, name: str, events: Sequence[EventModel]) -> Path:
    """Write a JSON Lines file into the inbox the way an upload lands: aside, then renamed."""
    inbox.mkdir(parents=True, exist_ok=True)
    target = inbox / f"{name}.jsonl"
    partial = inbox / f"{name}.jsonl.part"
    partial.write_text("".join(json.dumps(body(e)) + "\n" for e in events), encoding="utf-8")
    partial.replace(target)
    return target


def settled(inbox: Path, name: str) -> tuple[str, set[int]] | None:
    """Where the file drop settled ``name`` (``done`` or ``rejected``) and the lines its
    report refused; None while it is not settled."""
    for folder in ("done", "rejected"):
        path = inbox / folder / f"{name}.jsonl"
        if path.exists():
            report = path.with_name(path.name + REPORT_SUFFIX)
            refused: set[int] = set()
            if report.exists():
                with report.open(encoding="utf-8-sig", newline="") as rows:
                    refused = {int(row["line"]) for row in csv.DictReader(rows)
                               if row.get("line", "").isdigit()}
            return folder, refused
    return None


def await_settled(inbox: Path, name: str, events: Sequence[EventModel], ledger: Ledger, *,
                  timeout_s: float, stop: threading.Event | None = None) -> bool:
    """Wait for the file drop to settle a dropped file; note its rows as accepted."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not (stop is not None and stop.is_set()):
        found = settled(inbox, name)
        if found is not None:
            folder, refused = found
            for line, event in enumerate(events, start=1):
                if folder == "done" and line not in refused:
                    ledger.accept(str(event.event_id), event.RECORD, "file")
                else:
                    ledger.refuse(f"{name} line {line}: {folder}")
            return True
        time.sleep(0.2)
    ledger.refuse(f"{name}: not settled within {timeout_s:.0f} s")
    return False
