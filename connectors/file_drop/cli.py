"""``python -m connectors.file_drop``: read dropped CSV and JSON Lines files into Kafka.

``ingest FILE…`` reads the files and settles each in ``done/`` or ``rejected/``
beside it; ``ingest --watch DIR`` polls DIR every second until SIGTERM/SIGINT.
Without arguments (``passport-hub run file_drop``) it watches ``<data dir>/inbox``.

Each partner's inbox is the subfolder of the watched folder named after its API key
id, and its rows may do only what that key may do over HTTP (connectors/file_drop/
scopes.py); ``--key-id`` binds the files given, or those of the watched folder itself,
to a key. The keys are the API's (``PASSPORT_HUB_API_KEYS_FILE``); on a dev stack the
dev key (``PASSPORT_HUB_DEV_API_KEY``) lets in, with every scope, the files bound to
none. Having neither is a configuration error (exit 2).
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
import os
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry

from connectors.file_drop.checkpoint import Checkpoints, checkpoint_path
from connectors.file_drop.ingest import CHUNK, FileDrop, Options, Outcome
from connectors.file_drop.lookups import OnDemandReadModel
from connectors.file_drop.metrics import FileDropMetrics
from connectors.file_drop.rows import models_by_tag, type_tag
from connectors.file_drop.scopes import Inboxes, ScopeUnavailable
from connectors.file_drop.watch import Watcher
from connectors.publish import Publisher
from hub import kafka, logs, probes
from hub.config import Settings
from hub.errors import BrokerUnavailable, HubError
from hub.processor import store_path
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
    parser.add_argument("--key-id", metavar="KEY_ID",
                        help="the API key the files given (or those directly in the watched "
                             "folder) speak as; a partner's inbox is <DIR>/<key id>/")
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


def _ingest_files(drop: FileDrop, files: Sequence[Path], stop: threading.Event,
                  key_id: str | None) -> int:
    status = 0
    for path in files:
        if stop.is_set():
            break
        if not path.is_file():
            print(f"{path}: no such file", file=sys.stderr, flush=True)
            status = 2
            continue
        try:
            outcome = drop.ingest(path, key_id=key_id)
        except ScopeUnavailable as exc:
            print(f"{path.name}: cannot check its rows now ({exc}); left where it is",
                  file=sys.stderr, flush=True)
            status = max(status, 1)
            continue
        print(outcome.summary(), flush=True)
        status = max(status, _status(outcome))
    return status


def _status(outcome: Outcome) -> int:
    return 0 if outcome.status == "done" else 1


def _watch(drop: FileDrop, folder: Path, stop: threading.Event, interval_s: float, *,
           beat: Callable[[], None] = lambda: None, key_id: str | None = None) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    watcher = Watcher(folder)
    log = logs.get().bind(component="file_drop")
    log.info("file_drop.watching", folder=str(folder))
    while not stop.is_set():
        beat()
        for path in watcher.poll():
            if stop.is_set():
                break
            owner = watcher.key_of(path)
            try:
                # A partner's file settles in its own inbox, where its report is for it.
                outcome = drop.ingest(path, key_id=owner if owner is not None else key_id)
            except BrokerUnavailable as exc:
                # The file stays in the inbox, checkpointed; the next poll tries again.
                log.warning("file_drop.broker_unavailable", file=path.name, error=str(exc))
                break
            except ScopeUnavailable as exc:  # the same: what the API would answer a 503
                log.warning("file_drop.scope_unavailable", file=path.name, key_id=owner,
                            error=str(exc))
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


def _lookups(settings: Settings, *, watching: bool,
             stop: threading.Event) -> OnDemandReadModel:
    """The read model of the scope checks: the watcher's own file, or a one-shot run's,
    named after its process (two runs never rebuild each other's) and deleted after."""
    instance = "watch" if watching else f"ingest-{os.getpid()}"
    return OnDemandReadModel(settings, store_path(settings, "file-drop-readmodel", instance),
                             scratch=not watching, stop=stop)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    settings = Settings()
    if argv[:1] == ["ingest"]:
        args = _arguments(argv[1:])
    elif not argv:  # the component: watch the data directory's inbox
        args = _arguments(["--watch", str(settings.data_dir / "inbox")])
    else:
        print(f"usage: {_PROG} [--type TYPE] [--source NAME] [--key-id KEY_ID] "
              "(FILE… | --watch DIR)",
              file=sys.stderr)
        return 2
    logs.configure(fmt=settings.log_format, level=settings.log_level, component="file_drop")
    stop = threading.Event()
    install_stop_handlers(stop.set)
    try:
        settings.bootstrap  # noqa: B018  # fails early, and clearly, when no broker is named
        lookups = _lookups(settings, watching=args.watch is not None, stop=stop)
        dev_key = settings.dev_api_key.get_secret_value() if settings.dev_api_key else None
        # Before the broker: no keys to bind the inboxes to is a configuration error.
        inboxes = Inboxes(settings.api_keys_file, dev_key, lookups=lookups)
        kafka.ensure_topics(settings)
        options = Options(type=args.event_type, source=args.source, chunk=args.chunk)
        publisher = Publisher(settings)
        try:
            with Checkpoints(checkpoint_path(settings)) as checkpoints:
                registry = CollectorRegistry()
                metrics = FileDropMetrics.create(registry)
                if args.watch is None:
                    drop = FileDrop(publisher, checkpoints, options=options, stop=stop,
                                    metrics=metrics, inboxes=inboxes)
                    return _ingest_files(drop, args.files, stop, args.key_id)
                watching = _probes(registry, publisher, args.watch, options)
                lookups.beat = watching.beat
                probes.serve(watching, host=settings.metrics_host, port=settings.metrics_port)
                drop = FileDrop(publisher, checkpoints, options=options, stop=stop,
                                metrics=metrics, beat=watching.beat, inboxes=inboxes)
                return _watch(drop, args.watch, stop, args.interval, beat=watching.beat,
                              key_id=args.key_id)
        finally:
            lookups.stop()
            publisher.close()
    except HubError as exc:
        print(f"{_PROG}: {exc}", file=sys.stderr, flush=True)
        return 2
