"""``python -m connectors.dlq``: list, show and redrive the hub's dead letters.

    list [--limit N] [--stage S] [--since ISO]   one line per dead letter, oldest first
    show OFFSET                                   headers, key, value (decoded, else hex)
    redrive (OFFSET… | --all) [--dry-run]         re-validate, publish the valid ones back

OFFSET is ``partition:offset`` in the dead-letter topic (a bare offset will do
when only one partition has it). Exit status: 0 when done, 2 on an error (no
broker, no such dead letter).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import get_args

from connectors.dlq.ledger import Ledger, ledger_path
from connectors.dlq.letters import DeadLetter, find, read_all
from connectors.dlq.redrive import redrive
from connectors.dlq.views import list_line, show
from connectors.publish import Publisher
from hub import deadletter, kafka, logs
from hub.config import Settings
from hub.errors import HubError
from schemas.codec import Codec

_PROG = "passport-hub dlq"


def _since(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def arguments(argv: Sequence[str]) -> argparse.Namespace:
    """The parsed command line (exits with the usage on an error, as argparse does)."""
    parser = argparse.ArgumentParser(prog=_PROG, description="Inspect and redrive dead letters.")
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="one line per dead letter: offset, time, source, "
                                          "stage, error class, message")
    listing.add_argument("--limit", type=int, default=100, metavar="N",
                         help="the N most recent that match (default 100)")
    listing.add_argument("--stage", choices=get_args(deadletter.Stage))
    listing.add_argument("--since", type=_since, metavar="ISO",
                         help="written at or after this time (UTC unless it says)")
    one = sub.add_parser("show", help="headers, key and value of one dead letter")
    one.add_argument("offset", metavar="OFFSET", help="PARTITION:OFFSET in the dead-letter topic")
    again = sub.add_parser("redrive", help="re-validate and publish back to the source topic")
    again.add_argument("offsets", nargs="*", metavar="OFFSET")
    again.add_argument("--all", action="store_true", help="every dead letter")
    again.add_argument("--dry-run", action="store_true", help="say what would go, send nothing")
    args = parser.parse_args(argv)
    if args.command == "redrive" and bool(args.offsets) == args.all:
        parser.error("redrive takes OFFSET… or --all (one of them)")
    if args.command == "list" and args.limit < 1:
        parser.error("--limit must be at least 1")
    return args


def _list(letters: list[DeadLetter], ledger: Ledger, args: argparse.Namespace) -> int:
    chosen = [letter for letter in letters
              if (args.stage is None or letter.stage == args.stage)
              and (args.since is None or letter.time >= args.since)]
    chosen.sort(key=lambda letter: (letter.timestamp_ms, letter.partition, letter.offset))
    for letter in chosen[-args.limit:]:
        print(list_line(letter, ledger.get(letter)))
    hidden = len(chosen) - min(len(chosen), args.limit)
    print(f"{len(chosen)} dead letters" + (f" ({hidden} older not shown)" if hidden else ""),
          file=sys.stderr)
    return 0


def _redrive(settings: Settings, letters: list[DeadLetter], ledger: Ledger,
             args: argparse.Namespace) -> int:
    chosen = letters if args.all else [find(letters, ref) for ref in args.offsets]
    publisher = Publisher(settings)
    try:
        results = redrive(chosen, sink=publisher, ledger=ledger, settings=settings,
                          dry_run=args.dry_run)
    finally:
        publisher.close()
    for result in results:
        print(result.line())
    counts = {status: sum(r.status == status for r in results)
              for status in ("redriven", "would redrive", "already redriven", "left alone")}
    print(", ".join(f"{count} {status}" for status, count in counts.items() if count)
          or "nothing to redrive", file=sys.stderr)
    return 0


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run a parsed command against the hub ``settings`` name (logging left as it is)."""
    try:
        settings.bootstrap  # noqa: B018  # fails early, and clearly, when no broker is named
        kafka.ensure_topics(settings)
        letters = read_all(settings)
        with Ledger(ledger_path(settings)) as ledger:
            if args.command == "list":
                return _list(letters, ledger, args)
            if args.command == "show":
                letter = find(letters, args.offset)
                print(show(letter, Codec.default(), ledger.get(letter)))
                return 0
            return _redrive(settings, letters, ledger, args)
    except HubError as exc:
        print(f"{_PROG}: {exc}", file=sys.stderr, flush=True)
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    args = arguments(list(sys.argv[1:] if argv is None else argv))
    settings = Settings()
    logs.configure(fmt=settings.log_format, level=settings.log_level, component="dlq")
    return run(args, settings)
