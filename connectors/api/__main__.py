"""``python -m connectors.api``: the HTTP API on ``api_host:api_port``.

Wiring, in order: settings, logs, API keys (a keys file, a dev key, or both;
neither is a configuration error: exit 2), topics, publisher, idempotency
store, read model (rebuilt from its topics), then uvicorn. SIGTERM/SIGINT stop
uvicorn gracefully (in-flight requests finish); then the read model, the
store and the producer close. The metrics registry carries the HTTP and ingest
metrics (``create_app``) and the programme's figures, read from the read model
at each scrape (``connectors.api.programme``).
"""

from __future__ import annotations

import sys

import uvicorn
from prometheus_client import CollectorRegistry

from connectors.api.app import create_app
from connectors.api.auth import KeyRing
from connectors.api.idempotency import AcceptedStore
from connectors.api.programme import ProgrammeCollector
from connectors.api.readside import ModelReadSide
from connectors.crm_webhook.secrets import Sealer
from connectors.publish import Publisher
from hub import kafka, logs, sqlite
from hub.config import Settings
from hub.errors import HubError, StoreUnwritable
from hub.processor import store_path
from hub.service import install_stop_handlers, tuned_gc
from services.readmodel import ReadModel


def main() -> int:
    settings = Settings()
    logs.configure(fmt=settings.log_format, level=settings.log_level, component="api")
    sqlite.set_size_cap(settings.store_max_mb)
    log = logs.get()
    dev_key = settings.dev_api_key.get_secret_value() if settings.dev_api_key else None
    try:
        keyring = KeyRing(settings.api_keys_file, dev_key)
        kafka.ensure_topics(settings)
    except HubError as exc:
        log.error("api.failed", error=str(exc))
        return 2
    if keyring.dev_key_enabled:
        log.warning("api.dev_key_enabled",
                    hint="PASSPORT_HUB_DEV_API_KEY is accepted with every scope: dev only")
    if not Sealer.from_settings(settings).protected:
        log.warning("api.webhook_secrets_plain",
                    hint="set PASSPORT_HUB_WEBHOOK_SECRET_KEY: the webhook signing secrets the "
                    "API issues travel unsealed on the commands topic")
    publisher = Publisher(settings)
    # One read model file per API port: two API processes on one data directory must not
    # share it. The idempotency store is shared by them (SQLite serialises the writers).
    registry = CollectorRegistry()  # the API's, and the read model's dead letters
    readmodel = ReadModel(settings, store_path(settings, "api-readmodel", str(settings.api_port)),
                          registry=registry)
    store: AcceptedStore | None = None
    try:
        store = AcceptedStore(settings.data_dir / "api-accepted.sqlite",
                              retention_s=settings.api_idempotency_days * 86400)
        readmodel.start()
        readside = ModelReadSide(readmodel)
        registry.register(ProgrammeCollector(readside.stats, ready=lambda: readside.caught_up))
        app = create_app(settings, publisher=publisher, readside=readside,
                         keyring=keyring, store=store, registry=registry)
        server = uvicorn.Server(uvicorn.Config(
            app, host=settings.api_host, port=settings.api_port, log_config=None,
            access_log=False,  # Observe logs each request, without paths' query strings
            # Named, not "auto", which falls back to h11 and asyncio without a word: their
            # per-request Python work showed in the ingest bench as a slower tail of
            # single events (p99 37-480 ms, against ~25 ms) and more event-loop CPU per
            # batched event (4.5 µs, against 3.7).
            http="httptools", loop="uvloop",
            timeout_graceful_shutdown=10))

        def stop() -> None:
            server.should_exit = True

        # uvicorn swaps in its own handlers while serving, then restores these and
        # re-raises the signal it caught: ours make that a no-op instead of a kill,
        # so the read model and the producer still close below.
        install_stop_handlers(stop)
        log.info("api.listening", host=settings.api_host, port=settings.api_port)
        with tuned_gc():
            server.run()
    except StoreUnwritable as exc:  # at start: serving, it answers 503 instead (ingest.py)
        log.error(exc.event, exit_code=exc.exit_code, **exc.fields())
        return exc.exit_code
    except HubError as exc:
        log.error("api.failed", error=str(exc))
        return 2
    finally:
        readmodel.stop()
        if store is not None:
            store.close()
        publisher.close()
    log.info("api.stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
