"""The whole hub on one machine: broker (embedded unless configured), topics, components.

``passport-hub up`` and ``passport-hub demo`` are built from this: a ``Stack``
is a context manager that brings everything up in order and takes it down in
reverse order, whatever happened in between.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType, TracebackType

from pydantic import SecretStr

from hub import kafka, logs
from hub.broker import EmbeddedBroker, free_port
from hub.components import COMPONENTS
from hub.config import Settings
from hub.supervisor import Supervisor

#: The API key of a stack on the embedded broker (dev, demo): printed, so never a secret.
DEV_API_KEY = "dev-local-key"
#: How fast the demo's router clock runs: 2 business days (48 h) pass in a minute of
#: wall time (up to two over a weekend), so leads expire and move on while one watches.
DEMO_CLOCK_SPEED = 2880.0
#: The demo's webhook retries, compressed like its clock: a stopped receiver started again
#: gets its deliveries within a minute or two, not after Svix's 5 min, 30 min, 2 h...
DEMO_RETRY_SCHEDULE_S = "0,2,5,10,20,30,60,120"
#: In the run directory: where each component of a running stack answers, and its pid.
HUB_FILE = "hub.json"
#: In the run directory: the same endpoints as a Prometheus ``file_sd_configs`` file.
TARGETS_FILE = "prometheus-targets.json"
#: Children that serve no probes: the demo's source.
_NO_PROBES = frozenset({"synthetic"})


def _reachable(host: str) -> str:
    """A host to reach a server on that listens on ``host`` (a wildcard: loopback)."""
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host  # noqa: S104 - a comparison


class Stack:
    """Broker + topics + supervised components, started and stopped in order."""

    def __init__(self, settings: Settings, *, quiet_children: bool,
                 clock_speed: float | None = None) -> None:
        """``clock_speed``: run the routers' clock that much faster (a demo), from now,
        unless the settings chose a speed or an origin themselves."""
        self.log = logs.get().bind(stack=True)
        self._requested = settings
        self._quiet = quiet_children
        self._clock_speed = clock_speed
        self.broker: EmbeddedBroker | None = None
        self.settings = settings
        self.supervisor: Supervisor | None = None
        self.run_dir: Path = settings.data_dir
        self.stopping = threading.Event()
        self.endpoints: dict[str, str] = {}
        """Component → the base URL of its /metrics, /livez and /readyz, once started."""
        self._ports: dict[str, int] = {}

    def __enter__(self) -> Stack:
        base = self._requested
        overrides: dict[str, object] = {}
        if not base.kafka_bootstrap_servers:
            # A memory broker starts empty, so state from an earlier run would lie
            # about positions: every embedded run gets a fresh data directory.
            self.run_dir = base.data_dir / f"embedded-{int(time.time())}"
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.broker = EmbeddedBroker(log_path=self.run_dir / "broker.log")
            # It takes transactions but fences nothing (docs/architecture.md, Zombie fencing).
            overrides = {"kafka_bootstrap_servers": self.broker.start(), "data_dir": self.run_dir,
                         "transactions": False}
        if self.broker is not None and base.dev_api_key is None and base.api_keys_file is None:
            # A dev or demo stack: newcomers' curl works with a known key. A stack on a
            # configured broker, or one given keys, gets no such key.
            overrides["dev_api_key"] = SecretStr(DEV_API_KEY)
        if self.broker is not None:
            overrides |= dev_webhook_overrides(base)
        if self._clock_speed is not None:
            overrides |= clock_overrides(base, self._clock_speed, time.time_ns() // 1_000_000)
            if "webhook_retry_schedule_s" not in base.model_fields_set:
                overrides["webhook_retry_schedule_s"] = DEMO_RETRY_SCHEDULE_S
        self.settings = base.model_copy(update=overrides)
        kafka.ensure_topics(self.settings)
        log_dir = None
        if self._quiet:
            log_dir = self.run_dir / "logs"
            log_dir.mkdir(parents=True, exist_ok=True)
        self.supervisor = Supervisor(self.child_env(), log_dir=log_dir,
                                     child_env=self._component_env)
        return self

    def _component_env(self, name: str) -> dict[str, str]:
        """A component's own probes port (the API: its API port), noted in ``endpoints``
        and in the run directory's files for whoever watches (``passport-hub status``, a
        Prometheus)."""
        s = self.settings
        if name not in COMPONENTS or name in _NO_PROBES:
            return {}
        env: dict[str, str] = {}
        if name == "api":
            host, port = s.api_host, s.api_port
        else:
            host = s.metrics_host
            port = self._ports.get(name) or (s.metrics_port_base + len(self._ports)
                                             if s.metrics_port_base else free_port(host))
            self._ports[name] = port
            env = {"PASSPORT_HUB_METRICS_HOST": host, "PASSPORT_HUB_METRICS_PORT": str(port)}
        self.endpoints[name] = f"http://{_reachable(host)}:{port}"
        self._publish()
        return env

    def _publish(self) -> None:
        """Write ``hub.json`` and ``prometheus-targets.json`` (each whole, or not at all)."""
        s = self.settings
        hub = {"pid": os.getpid(), "broker": s.kafka_bootstrap_servers,
               "topic_prefix": s.topic_prefix,
               "api": f"http://{_reachable(s.api_host)}:{s.api_port}",
               "components": dict(self.endpoints)}
        targets = [{"targets": [url.removeprefix("http://")], "labels": {"component": name}}
                   for name, url in self.endpoints.items()]
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for file, document in ((HUB_FILE, hub), (TARGETS_FILE, targets)):
            path = self.run_dir / file
            partial = path.with_suffix(".partial")
            partial.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
            partial.replace(path)

    def child_env(self) -> dict[str, str]:
        """What every child needs to find the same broker, topics, data and time."""
        s = self.settings
        assert s.kafka_bootstrap_servers is not None
        clock = {"PASSPORT_HUB_ROUTING_CLOCK_SPEED": repr(s.routing_clock_speed)}
        if s.routing_clock_origin_ms is not None:
            clock["PASSPORT_HUB_ROUTING_CLOCK_ORIGIN_MS"] = str(s.routing_clock_origin_ms)
        return {
            "KAFKA_BOOTSTRAP_SERVERS": s.kafka_bootstrap_servers,
            "PASSPORT_HUB_TOPIC_PREFIX": s.topic_prefix,
            "PASSPORT_HUB_GROUP_PREFIX": s.group_prefix,
            "PASSPORT_HUB_DATA_DIR": str(self.run_dir.resolve()),
            "PASSPORT_HUB_API_HOST": s.api_host,
            "PASSPORT_HUB_API_PORT": str(s.api_port),
            "PASSPORT_HUB_TRANSACTIONS": str(s.transactional).lower(),
            "PASSPORT_HUB_LOG_FORMAT": "json" if self._quiet else s.log_format,
            **({"PASSPORT_HUB_DEV_API_KEY": key} if (key := self.dev_api_key) else {}),
            **clock,
            "PASSPORT_HUB_WEBHOOK_ALLOW_HOSTS": s.webhook_allow_hosts,
            "PASSPORT_HUB_WEBHOOK_RETRY_SCHEDULE_S": s.webhook_retry_schedule_s,
            **({"PASSPORT_HUB_WEBHOOK_SECRET_KEY": s.webhook_secret_key.get_secret_value()}
               if s.webhook_secret_key is not None else {}),
        }

    @property
    def dev_api_key(self) -> str | None:
        """The dev API key the children accept (to show in the banner), if any."""
        key = self.settings.dev_api_key
        return key.get_secret_value() if key is not None else None

    def handle_signals(self) -> None:
        """SIGTERM and SIGINT ask the stack to stop (main thread only)."""
        def handler(signum: int, _frame: FrameType | None) -> None:
            self.log.info("signal.received", signal=signal.Signals(signum).name)
            self.stopping.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.supervisor is not None:
            self.supervisor.stop()
        for file in (HUB_FILE, TARGETS_FILE):  # nothing runs there any more
            (self.run_dir / file).unlink(missing_ok=True)
        if self.broker is not None:
            self.broker.stop()
            shutil.rmtree(self.run_dir, ignore_errors=True)


#: Where a dev stack's webhooks may point over plain http: the newcomer's local receiver.
DEV_WEBHOOK_HOSTS = "127.0.0.1,localhost,::1"


def dev_webhook_overrides(settings: Settings) -> dict[str, object]:
    """A dev stack (embedded broker) delivers to loopback receivers, and seals its webhook
    secrets with a key of its own run (its state lives and dies with the run), unless the
    user chose either."""
    chosen = settings.model_fields_set
    out: dict[str, object] = {}
    if "webhook_allow_hosts" not in chosen:
        out["webhook_allow_hosts"] = DEV_WEBHOOK_HOSTS
    if "webhook_secret_key" not in chosen:
        out["webhook_secret_key"] = SecretStr(secrets.token_urlsafe(32))
    return out


def clock_overrides(settings: Settings, speed: float, now_ms: int) -> dict[str, object]:
    """Settings for routers on a clock ``speed`` times as fast from ``now_ms``, where the
    user chose neither (environment or env file). The origin is fixed once per stack:
    a restarted router must keep the time."""
    chosen = settings.model_fields_set
    out: dict[str, object] = {}
    if "routing_clock_speed" not in chosen:
        out["routing_clock_speed"] = speed
    if "routing_clock_origin_ms" not in chosen:
        out["routing_clock_origin_ms"] = now_ms
    return out


class StatusLine:
    """One live line on a terminal; a plain line every few seconds elsewhere."""

    def __init__(self, every_s: float = 5.0) -> None:
        self._tty = sys.stdout.isatty()
        self._every = every_s
        self._last = 0.0

    def show(self, text: str, *, final: bool = False) -> None:
        now = time.monotonic()
        if self._tty:
            sys.stdout.write("\r\x1b[2K" + text + ("\n" if final else ""))
            sys.stdout.flush()
        elif final or now - self._last >= self._every:
            print(text, flush=True)
            self._last = now
