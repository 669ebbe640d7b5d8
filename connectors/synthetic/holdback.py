"""Holding offer requests back for a while after the rest of their business's story.

A real business asks for an offer days after its passport; synthetic traffic
compresses those days into milliseconds. The passport service decides a
request's eligibility when it applies it, and reads training and offer topics
side by side, so a request published alongside the training that earns the
passport can be applied first and never become a lead. Holding requests back
for a few seconds of wall time restores the real order of things.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

from schemas.models import EventModel, OfferRequested


class Holdback:
    """Splits event chunks into what goes now and offer requests that wait ``delay_s``."""

    def __init__(self, delay_s: float, clock: Callable[[], float]) -> None:
        self._delay = delay_s
        self._clock = clock
        self._held: deque[tuple[float, EventModel]] = deque()

    def admit(self, events: Iterable[EventModel]) -> list[EventModel]:
        """Hold the offer requests among ``events``; return the others and whatever is now due."""
        due_at = self._clock() + self._delay
        now: list[EventModel] = []
        for event in events:
            if isinstance(event, OfferRequested) and self._delay > 0:
                self._held.append((due_at, event))
            else:
                now.append(event)
        return now + self.due()

    def due(self) -> list[EventModel]:
        """The held events whose time has come, in the order they were admitted."""
        out: list[EventModel] = []
        now = self._clock()
        while self._held and self._held[0][0] <= now:
            out.append(self._held.popleft()[1])
        return out

    def next_due_in(self) -> float | None:
        """Seconds until the next held event is due (None when nothing is held)."""
        if not self._held:
            return None
        return max(0.0, self._held[0][0] - self._clock())

    def release(self) -> list[EventModel]:
        """Everything still held, due or not (stopping: it was counted, so it goes out)."""
        out = [event for _, event in self._held]
        self._held.clear()
        return out
