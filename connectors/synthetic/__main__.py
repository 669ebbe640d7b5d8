"""``python -m connectors.synthetic``: publish plausible partner traffic through the Publisher.

Finite (``--businesses N``): publish N businesses, then print ONE JSON line on
stdout with what the hub must produce from them, and exit 0. Forever
(``--forever``): publish at ``--rate`` events per second until SIGTERM/SIGINT,
and answer the leads as the resellers' CRMs would (connectors/synthetic/crm.py;
``--answer-leads`` / ``--no-answer-leads`` choose, in either mode: a finite run
that answers keeps answering after its result line, until SIGTERM).
Logs go to stderr; stdout carries only the result line.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

from connectors.publish import Publisher
from connectors.synthetic import crm
from connectors.synthetic.generator import Synthetic
from connectors.synthetic.holdback import Holdback
from connectors.synthetic.resellers import DEFAULT_RESELLERS
from hub import kafka, logs
from hub.config import Settings
from hub.errors import BrokerUnavailable, HubError
from hub.service import install_stop_handlers
from schemas.models import EventModel

#: Events per ``publish_many`` call when no rate is set.
_CHUNK = 1000
#: Attempts per chunk before giving up on the broker (each bounded by produce_timeout_s).
_ATTEMPTS = 5


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m connectors.synthetic",
                                     description="Publish synthetic partner events.")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--businesses", type=int, metavar="N", help="publish N businesses, then stop")
    mode.add_argument("--forever", action="store_true", help="publish until SIGTERM/SIGINT")
    parser.add_argument("--rate", type=float, metavar="EVENTS_PER_S",
                        help="events per second (default: 50 with --forever, unbounded otherwise)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: the clock)")
    parser.add_argument("--resellers", type=int, default=DEFAULT_RESELLERS,
                        help=f"reseller profiles to publish (default {DEFAULT_RESELLERS})")
    parser.add_argument("--answer-leads", action=argparse.BooleanOptionalAction, default=None,
                        help="answer the routed leads as the resellers would "
                             "(default: with --forever only)")
    parser.add_argument("--offer-delay", type=float, default=3.0, metavar="SECONDS",
                        help="hold offer requests back this long after the training (default 3)")
    args = parser.parse_args(argv)
    if args.businesses is not None and args.businesses < 0:
        parser.error("--businesses must be >= 0")
    if args.forever and args.rate is None:
        args.rate = 50.0
    if args.answer_leads is None:
        args.answer_leads = args.forever
    if args.rate is not None and args.rate <= 0:
        parser.error("--rate must be > 0")
    if args.offer_delay < 0:
        parser.error("--offer-delay must be >= 0")
    return args


def _chunks(units: Iterator[list[EventModel]], size: int,
            stop: threading.Event) -> Iterator[list[EventModel]]:
    """About ``size`` events per chunk, of whole units; after ``stop``, only what was made."""
    chunk: list[EventModel] = []
    while not stop.is_set():
        unit = next(units, None)
        if unit is None:
            break
        chunk.extend(unit)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:  # already counted in the expectations: publish it, stopping or not
        yield chunk


def _publish(publisher: Publisher, chunk: list[EventModel], stop: threading.Event) -> None:
    """Publish one chunk, retrying while the broker is away (duplicates carry the same ids)."""
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            publisher.publish_many(chunk)
            return
        except BrokerUnavailable as exc:
            if attempt == _ATTEMPTS or stop.is_set():
                raise
            logs.get().warning("synthetic.retry", attempt=attempt, error=str(exc))
            stop.wait(min(2.0**attempt, 10.0))


def run(settings: Settings, args: argparse.Namespace, stop: threading.Event, *,
        seed: int) -> dict[str, int]:
    """Publish the traffic the arguments ask for; return the expectations of what was sent."""
    source = Synthetic(seed=seed, clock=lambda: datetime.now(UTC), resellers=args.resellers)
    log = logs.get().bind(seed=seed)
    size = _CHUNK if args.rate is None else max(1, min(_CHUNK, int(args.rate / 10)))
    publisher = Publisher(settings)
    holdback = Holdback(args.offer_delay, time.monotonic)
    started = last_log = time.monotonic()
    sent = 0

    def publish(events: list[EventModel]) -> None:
        nonlocal sent
        if events:
            _publish(publisher, events, stop)
            sent += len(events)

    try:
        units = source.units(None if args.forever else args.businesses)
        for chunk in _chunks(units, size, stop):
            publish(holdback.admit(chunk))
            if args.rate is not None:
                # Pace against the start, not the last chunk, so the rate does not drift.
                stop.wait(max(0.0, started + sent / args.rate - time.monotonic()))
            if time.monotonic() - last_log >= 10.0:
                last_log = time.monotonic()
                log.info("synthetic.progress", events=sent, businesses=source.expected.businesses)
        while (wait := holdback.next_due_in()) is not None and not stop.is_set():
            stop.wait(wait)
            publish(holdback.due())
        publish(holdback.release())
    finally:
        publisher.close()
    result = source.expected.result()
    log.info("synthetic.done", **result, seconds=round(time.monotonic() - started, 3))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    settings = Settings()
    logs.configure(fmt=settings.log_format, level=settings.log_level, component="synthetic")
    stop = threading.Event()
    install_stop_handlers(stop.set)
    seed = args.seed if args.seed is not None else time.time_ns()
    answering: list[BaseException] = []
    crm_thread = None
    try:
        kafka.ensure_topics(settings)
        if args.answer_leads:
            crm_thread = threading.Thread(target=_answer, args=(settings, seed, stop, answering),
                                          name="crm", daemon=True)
            crm_thread.start()
        result = run(settings, args, stop, seed=seed)
    except HubError as exc:
        logs.get().error("synthetic.failed", error=str(exc))
        stop.set()
        return 2
    if not args.forever and stop.is_set():
        # Interrupted: the counts describe a partial run, so they are no result.
        return 1
    print(json.dumps(result), flush=True)
    if crm_thread is not None:
        crm_thread.join()  # until SIGTERM/SIGINT (or the CRM fails)
    return 2 if answering else 0


def _answer(settings: Settings, seed: int, stop: threading.Event,
            failed: list[BaseException]) -> None:
    """The CRM thread: answer until stopped; a failure stops the whole process (restarted)."""
    try:
        crm.run(settings, seed, stop)
    except HubError as exc:
        logs.get().error("crm.failed", error=str(exc))
        failed.append(exc)
        stop.set()


if __name__ == "__main__":
    sys.exit(main())
