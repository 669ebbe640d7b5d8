"""``passport-hub deliveries``: ask the delivery component to re-send a reseller's messages.

    replay --reseller R --since T [--until T]

T is ISO 8601 (UTC unless it says) or epoch milliseconds. The command publishes
one ``WebhookCommand`` (``replay``) to ``pn.webhook-commands.v1`` and returns
once the broker has it; the component re-sends every message of the reseller
created in [since, until) with its original webhook-id (the CRM drops what it
has). A command it applies more than an hour after it was issued is ignored:
run it while the component runs. Exit status: 0 when published, 2 on an error
(bad input, no broker).
"""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from connectors.publish import Publisher, Record
from hub import logs
from hub.config import Settings
from hub.errors import HubError
from schemas import catalog
from schemas.codec import Codec
from schemas.webhooks import iso

_PROG = "passport-hub deliveries"
SOURCE = "cli"


def moment(text: str) -> int:
    """An ISO 8601 time (naive: UTC) or epoch milliseconds, as epoch milliseconds."""
    value = text.strip()
    if value.isascii() and value.isdigit():
        return int(value)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 time nor epoch milliseconds: {text!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def arguments(argv: Sequence[str]) -> argparse.Namespace:
    """The parsed command line (exits 2 with the usage on an error, as argparse does)."""
    parser = argparse.ArgumentParser(prog=_PROG, description="Webhook delivery tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    replay = sub.add_parser("replay", help="re-send a reseller's messages of a time range")
    replay.add_argument("--reseller", required=True, help="the reseller id")
    replay.add_argument("--since", required=True, type=moment, metavar="T",
                        help="messages created at or after T (ISO 8601 or epoch ms)")
    replay.add_argument("--until", type=moment, metavar="T",
                        help="and before T (default: up to now)")
    args = parser.parse_args(argv)
    if not args.reseller.strip():
        parser.error("--reseller must not be empty")
    if args.until is not None and args.until <= args.since:
        parser.error("--until must be later than --since")
    return args


def replay_command(reseller_id: str, since: int, until: int | None, now: int) -> dict[str, object]:
    """The ``WebhookCommand`` datum of a replay."""
    return {"event_id": str(uuid.uuid4()), "occurred_at": now, "source": SOURCE,
            "schema_version": 1, "reseller_id": reseller_id, "command": "replay",
            "url": None, "enabled": None, "secret": None, "overlap_ms": None,
            "since": since, "until": until}


def run(args: argparse.Namespace, settings: Settings, *, now: int | None = None) -> int:
    """Publish the command of a parsed command line; print what was asked."""
    at = now if now is not None else int(datetime.now(UTC).timestamp() * 1000)
    datum = replay_command(args.reseller, args.since, args.until, at)
    publisher = Publisher(settings)
    try:
        settings.bootstrap  # noqa: B018  # fails early, and clearly, when no broker is named
        record = Record(settings.topic(catalog.WEBHOOK_COMMANDS), args.reseller.encode(),
                        Codec.default().encode("WebhookCommand", datum))
        failure = publisher.publish_records([record])[0]
        if failure is not None:
            raise failure
    except HubError as exc:
        print(f"{_PROG}: {exc}", file=sys.stderr, flush=True)
        return 2
    finally:
        publisher.close()
    until = iso(args.until) if args.until is not None else "now"
    print(f"asked to replay the messages of {args.reseller} from {iso(args.since)} until "
          f"{until} (command {datum['event_id']})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = arguments(list(sys.argv[1:] if argv is None else argv))
    settings = Settings()
    logs.configure(fmt=settings.log_format, level=settings.log_level, component="deliveries")
    return run(args, settings)


if __name__ == "__main__":
    sys.exit(main())
