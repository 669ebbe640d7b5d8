"""``python -m connectors.api``: the HTTP API on ``api_host:api_port``.

Wiring, in order: settings, logs, topics, publisher, read model (rebuilt from
its topics), then uvicorn. SIGTERM/SIGINT stop uvicorn gracefully (in-flight
requests finish); then the read model and the producer close.
"""

from __future__ import annotations

import sys

import uvicorn
from prometheus_client import CollectorRegistry

from connectors.api.app import create_app
from connectors.publish import Publisher
from hub import kafka, logs
from hub.config import Settings
from hub.errors import HubError
from hub.processor import store_path
from hub.service import install_stop_handlers
from services.readmodel import ReadModel


def main() -> int:
    settings = Settings()
    logs.configure(fmt=settings.log_format, level=settings.log_level, component="api")
    log = logs.get()
    try:
        kafka.ensure_topics(settings)
    except HubError as exc:
        log.error("api.failed", error=str(exc))
        return 2
    publisher = Publisher(settings)
    # One file per API port: two API processes on one data directory must not share it.
    readmodel = ReadModel(settings, store_path(settings, "api-readmodel", str(settings.api_port)))
    try:
        readmodel.start()
        app = create_app(settings, publisher=publisher, readmodel=readmodel,
                         registry=CollectorRegistry())
        server = uvicorn.Server(uvicorn.Config(
            app, host=settings.api_host, port=settings.api_port, log_config=None,
            access_log=False,  # Observe logs each request, without paths' query strings
            timeout_graceful_shutdown=10))

        def stop() -> None:
            server.should_exit = True

        # uvicorn swaps in its own handlers while serving, then restores these and
        # re-raises the signal it caught: ours make that a no-op instead of a kill,
        # so the read model and the producer still close below.
        install_stop_handlers(stop)
        log.info("api.listening", host=settings.api_host, port=settings.api_port)
        server.run()
    except HubError as exc:
        log.error("api.failed", error=str(exc))
        return 2
    finally:
        readmodel.stop()
        publisher.close()
    log.info("api.stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
