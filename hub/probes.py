"""One port per process for whoever watches it: ``/metrics``, ``/livez`` and ``/readyz``.

Prometheus scrapes ``/metrics``; an orchestrator restarts a process whose ``/livez``
fails and sends no traffic (or takes no decision) on one whose ``/readyz`` fails
(docs/operations.md, Probes). The two questions differ on purpose: a process that
restores a partition for minutes is alive (restarting it would only start the
restore again) but not ready; a process whose loop has stopped turning is neither.

Liveness is a heartbeat: the loop notes the time of each turn, and the process is
alive while the last one is recent enough. Readiness is a set of named checks
(the broker answers, no restore is under way, ...), each a cheap call that reads
state other threads keep; ``/readyz`` answers which ones fail, and the
``passport_hub_ready`` gauge says the same to Prometheus.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

from hub import logs

#: A readiness check: True when the process may take traffic on its account.
Check = Callable[[], bool]


def version() -> str:
    """The installed package's version (the ``build_info`` label)."""
    try:
        return metadata.version("passport-hub")
    except metadata.PackageNotFoundError:
        return "unknown"


class Probes:
    """The state the three endpoints answer from: a heartbeat and named readiness checks."""

    def __init__(self, component: str, registry: CollectorRegistry, *,
                 checks: Mapping[str, Check] | None = None, stall_s: float = 120.0,
                 heartbeat: Callable[[], float] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``stall_s``: how long without a heartbeat before the process is not alive;
        ``heartbeat``: when the process's loop last turned (``clock`` time), read at each
        probe; without one, ``beat`` is called by the loop."""
        self.component = component
        self.registry = registry
        self.checks: dict[str, Check] = dict(checks or {})
        self._stall_s = stall_s
        self._clock = clock
        self._last_beat = clock()
        self._heartbeat = heartbeat
        Gauge("passport_hub_build_info", "The hub's version, per component (always 1).",
              ["component", "version"], registry=registry).labels(component, version()).set(1)
        ready = Gauge("passport_hub_ready",
                      "1 while the component answers ready on /readyz, 0 otherwise.",
                      ["component"], registry=registry)
        ready.labels(component).set_function(lambda: float(self.ready()[0]))

    def beat(self, at: float | None = None) -> None:
        """The loop turned (call once per iteration)."""
        self._last_beat = self._clock() if at is None else at

    def since_beat(self) -> float:
        """Seconds since the loop last turned."""
        last = self._heartbeat() if self._heartbeat is not None else self._last_beat
        return self._clock() - last

    def alive(self) -> bool:
        return self.since_beat() <= self._stall_s

    def ready(self) -> tuple[bool, dict[str, bool]]:
        """Whether every check passes, and each one's answer (a check that raises fails)."""
        answers: dict[str, bool] = {}
        for name, check in self.checks.items():
            try:
                answers[name] = bool(check())
            except Exception:  # a check is a probe, never a crash of the probe server
                answers[name] = False
        return all(answers.values()), answers

    def answer(self, path: str) -> tuple[int, str, bytes]:
        """Status, content type and body for a request path (the server's pure part)."""
        path = path.split("?", 1)[0]
        if path == "/metrics":
            return HTTPStatus.OK, CONTENT_TYPE_LATEST, generate_latest(self.registry)
        if path in ("/livez", "/healthz"):
            ok = self.alive()
            return _json(HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE,
                         {"status": "ok" if ok else "stalled",
                          "since_last_beat_s": round(self.since_beat(), 3)})
        if path == "/readyz":
            ok, answers = self.ready()
            return _json(HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE,
                         {"status": "ready" if ok else "not_ready", "checks": answers})
        return _json(HTTPStatus.NOT_FOUND, {"status": "not_found",
                                            "paths": ["/metrics", "/livez", "/readyz"]})


def _json(status: int, body: object) -> tuple[int, str, bytes]:
    return status, "application/json", orjson.dumps(body)


def serve(probes: Probes, *, host: str, port: int) -> int:
    """Serve the probes in a daemon thread; return the bound port (``port`` 0: a free one)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, content_type, body = probes.answer(self.path)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # scrapes every few seconds: not worth a log line each

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="probes", daemon=True).start()
    bound = int(server.server_address[1])
    logs.get().info("probes.serving", host=host, port=bound,
                    paths=["/metrics", "/livez", "/readyz"])
    return bound
