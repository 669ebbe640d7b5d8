"""The ``passport-hub`` command: run the whole hub, one component, the demo, or the broker."""

from __future__ import annotations

import argparse
import json
import runpy
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from hub import logs, statusview
from hub.broker import EmbeddedBroker
from hub.components import COMPONENTS, CORE
from hub.config import Settings
from hub.errors import HubError
from hub.monitor import FlowMonitor
from hub.stack import DEMO_CLOCK_SPEED, DEV_API_KEY, Stack, StatusLine


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="passport-hub", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run the API and the services (and the embedded broker "
                                   "unless KAFKA_BOOTSTRAP_SERVERS is set) until Ctrl-C")
    up.add_argument("--demo", action="store_true", help="also feed synthetic partner traffic "
                                                        "and show a live summary")
    up.add_argument("--rate", type=int, default=50, help="demo events per second (default 50)")
    demo = sub.add_parser("demo", help="run a finite scenario and print what the hub made of it")
    demo.add_argument("--businesses", type=int, default=3000)
    demo.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for the result")
    run = sub.add_parser("run", help="run one component in this process")
    run.add_argument("name", choices=sorted(COMPONENTS))
    status = sub.add_parser("status", help="each component's state, lag, dead letters and the "
                                           "programme's figures, for a running hub")
    status.add_argument("--hub", type=Path, default=None, metavar="FILE",
                        help="the hub's hub.json (default: the newest running one under "
                             "PASSPORT_HUB_DATA_DIR)")
    status.add_argument("--watch", action="store_true", help="refresh until Ctrl-C")
    status.add_argument("--interval", type=_seconds, default=2.0,
                        help="seconds between refreshes with --watch (default 2)")
    broker = sub.add_parser("broker", help="run the embedded broker alone")
    broker.add_argument("--port", type=int, default=None)
    # Listed for --help only: main() hands their arguments, untouched, to their module.
    sub.add_parser("ingest", help="read CSV / JSON Lines files of partner events "
                                  "(FILE… or --watch DIR; see `ingest --help`)", add_help=False)
    sub.add_parser("dlq", help="list, show and redrive dead letters (see `dlq --help`)",
                   add_help=False)
    sub.add_parser("deliveries", help="webhook delivery tools: `deliveries replay --reseller R "
                                      "--since T [--until T]`", add_help=False)
    routing = sub.add_parser("routing", help="lead routing tools (`routing simulate --help`)")
    tools = routing.add_subparsers(dest="tool", required=True)
    tools.add_parser("simulate", help="replay leads over a reseller table and a policy: what "
                                      "if (see `routing simulate --help`)", add_help=False)
    return parser


def _seconds(text: str) -> float:
    """A positive number of seconds (an argument type)."""
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text}: not a positive number of seconds")
    return value


#: Commands that are another module's own command line, by their leading words, as
#: (module, its leading arguments): ``passport-hub ingest X`` runs ``python -m
#: connectors.file_drop ingest X``, ``passport-hub dlq list`` runs ``python -m
#: connectors.dlq list``, ``passport-hub routing simulate X`` runs ``python -m
#: services.routing.simulate X``, ``passport-hub deliveries replay X`` runs ``python -m
#: connectors.crm_webhook.cli replay X`` (``python -m connectors.crm_webhook`` is the
#: component itself) — by name: hub imports no connector nor service.
DELEGATED: dict[tuple[str, ...], tuple[str, tuple[str, ...]]] = {
    ("ingest",): ("connectors.file_drop", ("ingest",)),
    ("dlq",): ("connectors.dlq", ()),
    ("deliveries",): ("connectors.crm_webhook.cli", ()),
    ("routing", "simulate"): ("services.routing.simulate", ()),
}


def delegated(argv: Sequence[str]) -> tuple[str, list[str]] | None:
    """The module a command line is handed to, and its arguments (None: not delegated)."""
    for words, (module, leading) in DELEGATED.items():
        if tuple(argv[:len(words)]) == words:
            return module, [*leading, *argv[len(words):]]
    return None


def _delegate(module: str, argv: Sequence[str]) -> int:
    saved, sys.argv = sys.argv, [module, *argv]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except ImportError as exc:
        if exc.name is None or not module.startswith(exc.name):
            raise
        print(f"passport-hub: {module} is not installed here ({exc})", file=sys.stderr)
        return 2
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = saved
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if (target := delegated(argv)) is not None:
        return _delegate(*target)
    args = _parser().parse_args(argv)
    settings = Settings()
    logs.configure(fmt=settings.log_format, level=settings.log_level, component="cli")
    commands: dict[str, Callable[[], int]] = {
        "up": lambda: _up(settings, demo=args.demo, rate=args.rate),
        "demo": lambda: _demo(settings, businesses=args.businesses, timeout_s=args.timeout),
        "status": lambda: statusview.command(settings.data_dir, hub_file=args.hub,
                                             watch=args.watch, interval_s=args.interval),
        "run": lambda: _run(args.name),
        "broker": lambda: _broker(port=args.port),
    }
    try:
        return commands[args.command]()
    except HubError as exc:
        logs.get().error("command.failed", command=args.command, error=str(exc))
        return 2


def _run(name: str) -> int:
    sys.argv = [COMPONENTS[name]]
    runpy.run_module(COMPONENTS[name], run_name="__main__", alter_sys=True)
    return 0


def _up(settings: Settings, *, demo: bool, rate: int) -> int:
    # The demo's router runs on simulated time, so that leads expire while one watches.
    with Stack(settings, quiet_children=demo,
               clock_speed=DEMO_CLOCK_SPEED if demo else None) as stack:
        stack.handle_signals()
        assert stack.supervisor is not None
        for name in CORE:
            stack.supervisor.add(name)
        if demo:
            stack.supervisor.add("synthetic", ["--forever", "--rate", str(rate)])
        api = f"http://{stack.settings.api_host}:{stack.settings.api_port}"
        # Only the documented default is shown: a key the user chose is a secret.
        key = stack.dev_api_key if stack.dev_api_key == DEV_API_KEY else None
        print(f"passport-hub is up: API {api} · broker {stack.settings.kafka_bootstrap_servers}"
              f"{' · dev API key ' + key if key else ''}"
              f"{' · logs ' + str(stack.run_dir / 'logs') if demo else ''} · Ctrl-C stops",
              flush=True)
        for name, url in stack.endpoints.items():
            print(f"  {name:<12} {url}  (/metrics /livez /readyz)", flush=True)
        print(f"  the programme's figures: {api}/kpi · the terminal view: passport-hub status",
              flush=True)
        monitor = FlowMonitor(stack.settings) if demo else None
        if monitor is not None:
            monitor.start()
        status = StatusLine()
        started = time.monotonic()
        while not stack.stopping.is_set():
            stack.supervisor.watch()
            if monitor is not None:
                counts = monitor.refresh(timeout_ms=500)
                status.show(f"[{time.monotonic() - started:5.0f}s] {counts.line()} · "
                            f"restarts {stack.supervisor.restarts}")
            else:
                stack.stopping.wait(0.5)
        if monitor is not None:
            status.show(f"stopped: {monitor.counts.line()}", final=True)
            monitor.close()
    return 0


def _demo(settings: Settings, *, businesses: int, timeout_s: float) -> int:
    with Stack(settings, quiet_children=True) as stack:
        stack.handle_signals()
        assert stack.supervisor is not None
        for name in ("passport", "routing"):
            stack.supervisor.add(name)
        monitor = FlowMonitor(stack.settings)
        monitor.start()
        print(f"demo: {businesses} businesses on {stack.settings.kafka_bootstrap_servers} "
              f"(logs in {stack.run_dir / 'logs'})", flush=True)
        source = stack.supervisor.add("synthetic", ["--businesses", str(businesses)],
                                      restart=False)
        assert source.process is not None
        assert source.log_path is not None
        if source.process.wait() != 0:
            print(f"demo: the synthetic source failed (see {source.log_path})", file=sys.stderr)
            return 1
        expected = _last_json_line(source.log_path.read_text(encoding="utf-8"))
        want_passports = expected["expected_passports"]
        want_leads = expected["expected_leads"]
        status = StatusLine(every_s=2.0)
        deadline = time.monotonic() + timeout_s
        counts = monitor.refresh()
        while time.monotonic() < deadline and not stack.stopping.is_set():
            counts = monitor.refresh(timeout_ms=500)
            stack.supervisor.watch()
            status.show(counts.line())
            # Every lead request yields at least one change under its own lead id (a
            # duplicate request a "duplicate" one): distinct lead ids are the requests.
            if counts.passports >= want_passports and counts.lead_count >= want_leads:
                break
        monitor.close()
        routed = counts.lead_count
        ok = counts.passports == want_passports and routed == want_leads
        status.show(f"demo {'done' if ok else 'INCOMPLETE'}: {counts.businesses} businesses, "
                    f"{counts.passports}/{want_passports} passports issued, "
                    f"{counts.leads_assigned} leads routed to resellers + "
                    f"{counts.leads_unassigned} queued or duplicate "
                    f"({routed}/{want_leads} expected)",
                    final=True)
        return 0 if ok else 1


def _last_json_line(text: str) -> dict[str, int]:
    """The synthetic source's result: the last line of its output that is a JSON object."""
    for line in reversed(text.splitlines()):
        if line.startswith("{\"businesses\""):
            result: dict[str, int] = json.loads(line)
            return result
    raise HubError("the synthetic source printed no result line")


def _broker(*, port: int | None) -> int:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with EmbeddedBroker(port=port) as broker:
        print(broker.bootstrap, flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
