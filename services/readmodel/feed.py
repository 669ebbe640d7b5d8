"""The lead-event feed's positions and cursors (pure): what a CRM pulls, in a stable order.

Each ``LeadAssigned`` record of ``pn.leads.v1`` becomes at most two events
(``schemas.webhooks.lead_events``). An event's place in the feed, ``seq``, is
derived from the record's offset: ``offset * 8 + index``. The topic has one
partition and keeps its records for good, and the read model rebuilds its file
from it at every start, so the same event gets the same ``seq`` after any
rebuild and a cursor a CRM kept across an API restart resumes exactly where it
was: nothing repeated, nothing skipped. (8 leaves room should a change ever
cause more events than the two it causes now.)

A cursor is the ``seq`` of the last event read, written as URL-safe base64 of
``v1:<seq>`` (no padding): opaque to clients, so the encoding can change with
a new prefix.
"""

from __future__ import annotations

import base64
import binascii
import re

#: Events one record may cause (``seq`` spacing); ``lead_events`` gives at most two.
EVENTS_PER_RECORD = 8
#: The ``seq`` before the first event: the start cursor's position.
START = -1
_PREFIX = "v1:"
#: Cursor texts clients may send for "from the beginning" besides none at all.
_START_TEXTS = frozenset({"", "start"})
_NUMBER = re.compile(r"-?[0-9]{1,19}")


def seq(offset: int, index: int) -> int:
    """The feed position of event ``index`` (0-based) of the record at ``offset``."""
    if not 0 <= index < EVENTS_PER_RECORD:
        raise ValueError(f"a record causes at most {EVENTS_PER_RECORD} events (index {index})")
    return offset * EVENTS_PER_RECORD + index


def encode_cursor(position: int) -> str:
    """The opaque cursor of the feed position ``position`` (``START``: the beginning)."""
    raw = f"{_PREFIX}{position}".encode("ascii")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


START_CURSOR = encode_cursor(START)


def decode_cursor(cursor: str | None) -> int:
    """The position a cursor names; ``None``, "" and "start" name the beginning.

    Raises ``ValueError`` for anything ``encode_cursor`` did not write.
    """
    if cursor is None or cursor in _START_TEXTS:
        return START
    if len(cursor) > 64:
        raise ValueError("feed cursor is too long to be one this API issued")
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, ValueError) as exc:
        raise ValueError("feed cursor is not one this API issued (not URL-safe base64)") from exc
    number = text.removeprefix(_PREFIX)
    if number == text or not _NUMBER.fullmatch(number):
        raise ValueError("feed cursor is not one this API issued (unknown format)")
    position = int(number)
    if position < START:
        raise ValueError("feed cursor names no position of the feed")
    return position
