"""The router's clock: the wall clock, or one that runs faster for a demo (epoch ms)."""

from __future__ import annotations

import time
from collections.abc import Callable


def router_clock(*, speed: float = 1.0, origin_ms: int | None = None,
                 wall: Callable[[], float] = time.time) -> Callable[[], int]:
    """Epoch milliseconds, running ``speed`` times as fast as ``wall`` from ``origin_ms``.

    The clock is the router's only notion of time: deadlines are set and fire by
    it, and absences are judged by its day. Every router of a stack must share
    ``origin_ms`` (``passport-hub up`` sets it), so a takeover keeps the same time.
    """
    if speed == 1.0:
        return lambda: int(wall() * 1000)
    origin = origin_ms if origin_ms is not None else int(wall() * 1000)

    def now() -> int:
        return origin + int((wall() * 1000 - origin) * speed)

    return now
