"""``python -m connectors.file_drop``: read dropped CSV and JSON Lines files into Kafka.

``ingest FILE…`` reads the files and settles each in ``done/`` or ``rejected/``
beside it; ``ingest --watch DIR`` polls DIR every second until SIGTERM/SIGINT.
Without arguments (``passport-hub run file_drop``) it watches ``<data dir>/inbox``.
One summary line per file on stdout; logs on stderr. Exit status: 0 when every
file was produced (bad rows, if any, in its report), 1 when a file was rejected
whole, a duplicate, or interrupted, 2 on an error (no broker, no such file).

Watching, it serves ``/metrics``, ``/livez`` and ``/readyz`` on
``PASSPORT_HUB_METRICS_HOST``/``PORT`` like every component (hub.probes): alive
while its polls (and the chunks of the file in hand) go on, ready while the
broker accepts a connection and the inbox is a folder.
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry

from connectors.file_drop.checkpoint import Checkpoints, checkpoint_path
from connectors.file_drop.ingest import CHUNK, FileDrop, Options, Outcome
from connectors.file_drop.metrics import FileDropMetrics
from connectors.file_drop.rows import models_by_tag, type_tag
from connectors.file_drop.watch import Watcher
from connectors.publish import Publisher
from hub import kafka, logs, probes
from hub.config import Settings
from hub.errors import BrokerUnavailable, HubError
from hub.service import install_stop_handlers

_PROG = "passport-hub ingest"


def _arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=_PROG, description="Read CSV or JSON Lines files of partner events into Kafka.")
    parser.add_argument("files", nargs="*", type=Path, metavar="FILE",
                        help="files to read; each is then moved to done/ or rejected/ beside it")
    parser.add_argument("--watch", type=Path, metavar="DIR",
                        help="watch DIR for dropped files until SIGTERM/SIGINT")
    parser.add_argument("--type", dest="event_type", metavar="TYPE",
                        help="type of rows that do not say (default: told by the CSV headers); "
                             f"one of {', '.join(models_by_tag())}")
    parser.add_argument("--source", metavar="NAME",
                        help="source of rows that do not say (default: the file's name)")
    parser.add_argument("--chunk", type=int, default=CHUNK, help=argparse.SUPPRESS)
    parser.add_argument("--interval", type=float, default=1.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if bool(args.files) == bool(args.watch):
        parser.error("give FILE… or --watch DIR (one of them)")
    if args.event_type is not None:
        tag = type_tag(args.event_type)
        if tag is None:
            parser.error(f"--type {args.event_type!r}: one of {', '.join(models_by_tag())}")
        args.event_type = tag
    if args.chunk < 1 or args.interval <= 0:
        parser.error("--chunk and --interval must be positive")
    return args


def _ingest_files(drop: FileDrop, files: Sequence[Path], stop: threading.Event) -> int:
    status = 0
    for path in files:
        if stop.is_set():
            break
        if not path.is_file():
            print(f"{path}: no such file", file=sys.stderr, flush=True)
            status = 2
            continue
        outcome = drop.ingest(path)
        print(outcome.summary(), flush=True)
        status = max(status, _status(outcome))
    return status


def _status(outcome: Outcome) -> int:
    return 0 if outcome.status == "done" else 1


def _watch(drop: FileDrop, folder: Path, stop: threading.Event, interval_s: float,
           beat: Callable[[], None] = lambda: None) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    watcher = Watcher(folder)
    log = logs.get().bind(component="file_drop")
    log.info("file_drop.watching", folder=str(folder))
    while not stop.is_set():
        beat()
        for path in watcher.poll():
            if stop.is_set():
                break
            try:
                outcome = drop.ingest(path, folder)
            except BrokerUnavailable as exc:
                # The file stays in the inbox, checkpointed; the next poll tries again.
                log.warning("file_drop.broker_unavailable", file=path.name, error=str(exc))
                break
            except OSError as exc:
                log.warning("file_drop.unreadable", file=path.name, error=str(exc))
                continue
            print(outcome.summary(), flush=True)
        stop.wait(interval_s)
    log.info("file_drop.stopped")
    return 0


def _probes(registry: CollectorRegistry, publisher: Publisher, folder: Path,
            options: Options) -> probes.Probes:
    """The watcher's probes: it beats at each poll and each acknowledged chunk, so it is
    stalled only past a chunk's every attempt (and their backoffs) with a margin."""
    stall_s = options.attempts * (publisher.settings.produce_timeout_s + 10.0) + 60.0
    return probes.Probes("file_drop", registry, stall_s=stall_s, checks={
        "broker": publisher.ready, "inbox": folder.is_dir})


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    settings = Settings()
    if argv[:1] == ["ingest"]:
        args = _arguments(argv[1:])
    elif not argv:  # the component: watch the data directory's inbox
        args = _arguments(["--watch", str(settings.data_dir / "inbox")])
    else:
        print(f"usage: {_PROG} [--type TYPE] [--source NAME] (FILE… | --watch DIR)",
              file=sys.stderr)
        return 2
    logs.configure(fmt=settings.log_format, level=settings.log_level, component="file_drop")
    stop = threading.Event()
    install_stop_handlers(stop.set)
    try:
        settings.bootstrap  # noqa: B018  # fails early, and clearly, when no broker is named
        kafka.ensure_topics(settings)
        options = Options(type=args.event_type, source=args.source, chunk=args.chunk)
        publisher = Publisher(settings)
        try:
            with Checkpoints(checkpoint_path(settings)) as checkpoints:
                registry = CollectorRegistry()
                metrics = FileDropMetrics.create(registry)
                if args.watch is None:
                    drop = FileDrop(publisher, checkpoints, options=options, stop=stop,
                                    metrics=metrics)
                    return _ingest_files(drop, args.files, stop)
                watching = _probes(registry, publisher, args.watch, options)
                probes.serve(watching, host=settings.metrics_host, port=settings.metrics_port)
                drop = FileDrop(publisher, checkpoints, options=options, stop=stop,
                                metrics=metrics, beat=watching.beat)
                return _watch(drop, args.watch, stop, args.interval, beat=watching.beat)
        finally:
            publisher.close()
    except HubError as exc:
        print(f"{_PROG}: {exc}", file=sys.stderr, flush=True)
        return 2
