"""Running one processor as a process: the wiring every service's ``__main__`` shares.

Settings, logs, a /metrics endpoint, the store, the topics, the loop; SIGTERM
and SIGINT stop the loop after the batch in hand, relay the outbox, and close.
"""

from __future__ import annotations

import gc
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType

from prometheus_client import CollectorRegistry

from hub import kafka, logs, probes, sqlite
from hub.config import Settings
from hub.errors import StoreUnwritable
from hub.grouplag import BrokerWatch
from hub.processor import Processor, ProcessorLoop, store_path
from hub.restoring import Restorer
from hub.store import Store


def install_stop_handlers(stop: Callable[[], None]) -> None:
    """Call ``stop`` on SIGTERM or SIGINT (main thread only)."""
    def handler(signum: int, _frame: FrameType | None) -> None:
        logs.get().info("signal.received", signal=signal.Signals(signum).name)
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


@contextmanager
def tuned_gc() -> Iterator[None]:
    """Collect garbage less often than CPython's default, and never what start-up built.

    A hub process allocates in bursts (a request's batch of models and records, a
    poll's thousands of records) that live until the broker acknowledged them: with
    the default thresholds the collector ran every 700 allocations, promoted them
    all, and its full collections scanned the whole heap (modules, schemas, the
    app), pausing the work for up to ~100 ms. Measured: ~18 to ~1 µs of CPU per
    batched event in the ingest bench; ~8% of the passport service's time (0.59 s
    of 7.6 s, 526 collections) to ~1% (12). Restores the defaults on exit.
    """
    thresholds = gc.get_threshold()
    gc.freeze()  # modules, app, schemas: alive until exit, never worth scanning
    gc.set_threshold(20_000, 20, 20)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


@dataclass(frozen=True, slots=True)
class Wiring:
    """What a service's build function returns: its processor and optional hooks."""

    processor: Processor
    before_poll: Callable[[], None] | None = None
    """Called before every poll, outside the store transaction (e.g. refresh a table)."""
    close: Callable[[], None] | None = None
    """Called once after the loop stopped."""
    restorer: Restorer | None = None
    """Rebuilds state for assigned partitions from the topics (processor.Restorer)."""
    align_inputs: bool = False
    """Read co-partitioned inputs in step by record time (hub.align)."""
    millis_timestamps: bool = False
    """The processor takes ``timestamp-millis`` fields as epoch milliseconds (``int``)."""
    idle_poll_ms: int = 500
    """How long a poll waits for records when the inputs are caught up: a ``Deferring``
    processor that acts on time, not only on records (the webhook sender's answers and
    retries), sets it lower, so ``flush`` runs that often."""
    registry: CollectorRegistry | None = None
    """Where the service's own metrics are (default: a registry of the loop's alone); the
    process's /metrics serves it, with the loop's metrics."""


def processor_loop(wiring: Wiring, *, settings: Settings, store: Store,
                   registry: CollectorRegistry) -> ProcessorLoop:
    """The loop that runs a service's wiring (as ``run_processor`` does, in any process)."""
    return ProcessorLoop(wiring.processor, settings=settings, store=store, registry=registry,
                         before_poll=wiring.before_poll, restorer=wiring.restorer,
                         align_inputs=wiring.align_inputs,
                         millis_timestamps=wiring.millis_timestamps,
                         idle_poll_ms=wiring.idle_poll_ms)


@contextmanager
def started(wiring: Wiring, *, settings: Settings, store: Store,
            registry: CollectorRegistry | None = None) -> Iterator[ProcessorLoop]:
    """A service's loop, started; closed (its outbox relayed) and its wiring's ``close``
    called at the end of the block, whatever happened in it (tests and tools run a
    service in their own process this way)."""
    loop = processor_loop(wiring, settings=settings, store=store,
                          registry=registry if registry is not None else CollectorRegistry())
    loop.start()
    try:
        yield loop
    finally:
        loop.close()
        if wiring.close is not None:
            wiring.close()


def run_processor(build: Callable[[Settings], Wiring], *, settings: Settings | None = None,
                  instance: str = "0") -> None:
    """Build a service from settings and run it until a stop signal.

    A store that cannot be written (its disk or cap full, or read-only) stops the
    process: one error line (``store.full``, ``store.read_only``), readiness down
    while it closes, then ``SystemExit`` with ``StoreUnwritable.exit_code``. The
    failed batch was rolled back, so a restart with room resumes where it stopped.
    """
    settings = settings or Settings()
    # Before build: loggers bound while building must already render as configured.
    logs.configure(fmt=settings.log_format, level=settings.log_level)
    sqlite.set_size_cap(settings.store_max_mb)
    health = StoreHealth()
    try:
        _run(build, settings=settings, instance=instance, health=health)
    except StoreUnwritable as exc:
        health.failed(exc)
        raise SystemExit(exc.exit_code) from None


def _run(build: Callable[[Settings], Wiring], *, settings: Settings, instance: str,
         health: StoreHealth) -> None:
    wiring = build(settings)
    processor = wiring.processor
    logs.configure(fmt=settings.log_format, level=settings.log_level, component=processor.name)
    registry = wiring.registry if wiring.registry is not None else CollectorRegistry()
    kafka.ensure_topics(settings)
    with Store(store_path(settings, processor.name, instance)) as store:
        loop = processor_loop(wiring, settings=settings, store=store, registry=registry)
        watch = BrokerWatch(settings, component=processor.name,
                            group=settings.group(processor.name), topics=processor.inputs,
                            registry=registry)
        probes.serve(loop_probes(loop, watch, registry, store_writable=health.writable),
                     host=settings.metrics_host, port=settings.metrics_port)
        install_stop_handlers(loop.stop)
        watch.start()
        loop.start()
        try:
            with tuned_gc():
                loop.run()
        except StoreUnwritable as exc:
            health.failed(exc)  # said, and not ready, before the close's relay takes its time
            raise
        finally:
            try:
                loop.close()  # relays what was committed; the failed batch never was
            finally:
                watch.stop()
                if wiring.close is not None:
                    wiring.close()


class StoreHealth:
    """Whether the process's stores still take writes: the first failure is logged, once,
    and turns readiness off (a second one, met while closing, says nothing new)."""

    def __init__(self) -> None:
        self.error: StoreUnwritable | None = None

    def writable(self) -> bool:
        return self.error is None

    def failed(self, exc: StoreUnwritable) -> None:
        if self.error is not None:
            return
        self.error = exc
        logs.get().error(exc.event, exit_code=exc.exit_code, **exc.fields())


def loop_probes(loop: ProcessorLoop, watch: BrokerWatch, registry: CollectorRegistry, *,
                store_writable: probes.Check = lambda: True) -> probes.Probes:
    """A processor is alive while its loop turns, and ready once it has joined its group,
    restored what it was given, and its broker answers, while its store takes writes
    (docs/operations.md, Probes)."""
    stall_s = 2 * loop.settings.max_poll_interval_ms / 1000 + 60
    checks: dict[str, probes.Check] = {
        "started": lambda: loop.started,
        "broker": lambda: bool(watch.up),
        "restored": loop.restored,
        "store": store_writable,
    }
    # The heartbeat is the loop's own: read at each probe, never pushed by the loop.
    return probes.Probes(loop.processor.name, registry, checks=checks, stall_s=stall_s,
                         heartbeat=lambda: loop.last_turn)
