"""Read-your-writes: the token of an accepted write, and the rules that say a view reflects it.

The API accepts a write once the broker acknowledges it, long before the
services fold it into the state topics the read model follows. A ``Token``
names that write (its base topic, partition, offset and key); a client hands
it back (``?after=``) and the API waits until the read model ``reflects`` it.

The rules read the ``input_offsets`` the services put on every state record:
the next offset of each input "<topic>/<partition>" once the batch that wrote
the record was applied.

* **Own record (exact).** When the token's key is the record's key (a write
  about business S, a read of passport S), the passport service folded the
  write into S's snapshot in the batch that ends at or after it: S's row
  reflects it iff its ``input_offsets`` go past the token's offset. Only the
  row's own offsets say so; another business's progress says nothing about S.
  A write that changed nothing (a duplicate, a refused event) produces no new
  snapshot of S and is never reflected: the caller sees a timeout, not a lie.
* **Watermark (approximate).** For any other key the model knows only how far
  the passport service has read that input partition, as the highest offset
  any snapshot showed. It moves only when some business of the partition
  changes (a service that writes no snapshot shows no progress), and it
  says the write was read, not that whatever the caller is reading depends on
  it. Good enough to order "my write, then the figures", not a guarantee.
* **Leads.** A lead reflects a token once it exists and its latest change's
  ``input_offsets`` go past the token, or do not mention the token's input at
  all: a v1 lead carries no offsets, and a write to an input the router does
  not record (an enrolment that led to the lead's request) is reflected by the
  lead existing.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from schemas import catalog
from schemas.frozen import frozen

#: Longest encoded token accepted: a real one is well under 200 characters.
MAX_TOKEN_CHARS = 1024
_VERSION = 1


def where(topic: str, partition: int) -> str:
    """The ``input_offsets`` key of a topic partition: "<base topic>/<partition>"."""
    return f"{topic}/{partition}"


@frozen
class Token:
    """One accepted write: where the broker put it, and its record key."""

    topic: str
    """Base catalog topic name (no ``settings.topic_prefix``), e.g. ``pn.enrolments.v1``."""
    partition: int
    offset: int
    key: str

    @property
    def where(self) -> str:
        """The ``input_offsets`` key this token is checked against."""
        return where(self.topic, self.partition)

    def encode(self) -> str:
        """The token as an opaque URL-safe string (base64 of compact JSON, no padding)."""
        raw = json.dumps({"v": _VERSION, "t": self.topic, "p": self.partition,
                          "o": self.offset, "k": self.key},
                         separators=(",", ":"), ensure_ascii=False).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    @classmethod
    def decode(cls, text: str) -> Token:
        """The token ``encode`` wrote; ``ValueError`` saying what is wrong with anything else."""
        if not text:
            raise ValueError("consistency token is empty")
        if len(text) > MAX_TOKEN_CHARS:
            raise ValueError(f"consistency token is longer than {MAX_TOKEN_CHARS} characters")
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            value: Any = json.loads(raw)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("consistency token is not one this API issued "
                             "(not URL-safe base64 of JSON)") from exc
        if not isinstance(value, Mapping) or value.get("v") != _VERSION:
            raise ValueError("consistency token is not one this API issued (unknown format)")
        topic, partition, offset, key = (value.get(name) for name in ("t", "p", "o", "k"))
        if not isinstance(topic, str) or topic not in _TOPICS:
            raise ValueError(f"consistency token names no topic of the catalog: {topic!r}")
        if not isinstance(key, str):
            raise ValueError("consistency token's key is not a string")
        return cls(topic, _natural("partition", partition), _natural("offset", offset), key)


_TOPICS = frozenset(t.name for t in catalog.CATALOG)


def _natural(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"consistency token's {name} is not a non-negative integer")
    return value


def reflects_own(offsets: Mapping[str, int] | None, token: Token) -> bool:
    """Whether a record with these ``input_offsets`` was written after the token's write.

    ``None``: no such record (not reflected).
    """
    return offsets is not None and offsets.get(token.where, -1) > token.offset


#: The router's inputs: a lead's offsets are the truth about a write on them (an answer).
_ROUTER_INPUTS = frozenset({catalog.LEAD_REQUESTS, catalog.LEAD_RESPONSES})


def reflects_lead(offsets: Mapping[str, int] | None, token: Token) -> bool:
    """The lead rule: the lead exists, and for a write on a router input (an answer), its
    offsets are past it — a lead whose offsets do not name the answers' partition yet has
    not seen this answer. A write elsewhere (the offer request) is reflected once the lead
    exists."""
    if offsets is None:
        return False
    if token.where not in offsets:
        return token.topic not in _ROUTER_INPUTS
    return offsets[token.where] > token.offset


def reflects_watermark(watermark: int | None, token: Token) -> bool:
    """The approximate rule: some snapshot showed its input read past the token's write."""
    return watermark is not None and watermark > token.offset
