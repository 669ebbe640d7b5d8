"""Read your writes: a 202's consistency token, and reads that wait until they reflect one.

Every write the API accepts is a record the broker acknowledged at a place:
topic, partition, offset (and the record's key). The 202 gives that place as
an opaque ``consistency_token`` (``services.readmodel.consistency.Token``).
A read with ``?after=TOKEN`` answers only once the read model reflects that
write (``wait`` seconds at most, 10 by default), else a 504 ``not-yet-consistent``
that says what it waited for: the client retries, or reads without ``after``
and accepts what is there. ``?wait=N`` alone waits for something unknown to
appear rather than answering 404 at once. Waiting never holds the event loop
nor a worker thread (``waiting.Changes``).

The token's topic is the catalog's base name, never the deployment's
prefixed one: a token reads the same in every environment and the read model
compares it with the offsets its records carry, which are base names too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Query

from connectors.api import problems
from connectors.api.problems import ProblemError
from connectors.api.waiting import Changes
from services.readmodel.consistency import Token

#: How long a read with ``after`` waits when it gives no ``wait``.
DEFAULT_WAIT_S = 10
#: The longest any read waits.
MAX_WAIT_S = 30

AFTER = Query(description="A `consistency_token` of a 202: answer only once the read model "
              "reflects that write (else 504 after `wait` seconds).", openapi_examples={
                  "token": {"summary": "the token of an enrolment",
                            "value": Token("pn.enrolments.v1", 0, 0, "732829320").encode()}})
WAIT = Query(ge=0, le=MAX_WAIT_S, description=f"Seconds to wait (0-{MAX_WAIT_S}): for `after` "
             f"to be reflected (default {DEFAULT_WAIT_S}), or alone for the thing to appear.")


def token(prefix: str, key: bytes, topic: str, partition: int | None,
          offset: int | None) -> str | None:
    """The token of a write at ``topic`` (as written, with ``prefix``), or None without a place."""
    if partition is None or offset is None:
        return None
    return Token(topic.removeprefix(prefix), partition, offset,
                 key.decode("utf-8", "replace")).encode()


def parse(text: str, name: str = "after") -> Token:
    """The token of a query parameter; a 422 ``ProblemError`` naming it when malformed."""
    try:
        return Token.decode(text)
    except ValueError as exc:
        raise ProblemError(problems.body(
            422, "invalid-input", "Invalid input", "not a consistency token",
            errors=[{"field": name, "message": str(exc)}])) from exc


def not_yet(what: str, seconds: float, written: Token) -> dict[str, Any]:
    """504: the read model did not reflect the write in time (nothing is wrong: retry)."""
    return problems.body(
        504, "not-yet-consistent", "Not yet consistent",
        f"waited {seconds:g} s for {what} to reflect the write at {written.topic} partition "
        f"{written.partition} offset {written.offset}; it does not yet: retry, or read "
        "without after")


async def settle(changes: Changes, *, after: str | None, wait: int | None,
                 reflects: Callable[[Token], bool], present: Callable[[], bool],
                 what: str) -> None:
    """Wait as a read's ``after`` and ``wait`` ask, then return (the route answers as always).

    With ``after``: until ``reflects(token)`` (a ``ProblemError``: 422 for a bad
    token, 504 when not reflected in time). With ``wait`` alone: until
    ``present()``, then return whatever the outcome (the route's 404 stands).
    Both checks run in a worker thread, between commits of the read model.
    """
    if after is not None:
        written = parse(after)
        seconds = DEFAULT_WAIT_S if wait is None else wait
        if not await changes.until(lambda: reflects(written), seconds):
            raise ProblemError(not_yet(what, seconds, written))
    elif wait:
        await changes.until(present, wait)
