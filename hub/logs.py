"""structlog set-up: JSON lines in production, pretty output on a terminal.

Log events are names (``passport.issued``) with bound context; contact details,
secrets and API keys are never logged (docs/architecture.md, How the code is written).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}


def configure(*, fmt: str = "auto", level: str = "info", component: str | None = None) -> None:
    """Configure structlog (and the stdlib loggers of the libraries we use)."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    if component:
        structlog.contextvars.bind_contextvars(component=component)
    # kafka-python is chatty at INFO (every connect and rebalance step).
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s %(message)s")
    # It also logs every refused connection while a broker starts; our own events say
    # what failed and what it means, so its logger stays quiet.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)


def get(name: str | None = None) -> Any:
    """A bound logger (typed Any: structlog's proxies are not precisely typed)."""
    return structlog.get_logger(name)
