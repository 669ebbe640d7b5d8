"""How simulated resellers answer their leads: a seeded model, the same under every policy.

Each reseller has its own temperament (how often it lets a lead expire, how
often it accepts, how fast it answers), drawn from the seed and its id; each
(lead, reseller) pair then draws its reply from a generator seeded by the pair.
So the reply to a lead depends only on who holds it, never on the order the
replay reaches it in: two policies handing a lead to the same reseller get the
same answer, and a difference in results comes from the policy alone.
"""

from __future__ import annotations

import hashlib
import random
from bisect import bisect
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Protocol

from schemas.fields import REJECT_REASONS

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
#: Rejection reasons as often as partner programmes see them (budget and no response lead).
_REASON_WEIGHTS = (30, 22, 12, 10, 8, 8, 3, 7)
_REASON_CUMULATIVE = tuple(accumulate(_REASON_WEIGHTS))
_SCALE = float(2**32)


@dataclass(frozen=True, slots=True)
class Reply:
    """What a holder does with a lead: answer after ``delay_ms`` (or never: it expires),
    and, once accepted, close it as won or lost ``outcome_delay_ms`` later."""

    answer: str | None
    """accepted | rejected | None (ignored: the lead expires)."""
    reason: str | None = None
    delay_ms: int = 0
    outcome: str | None = None
    outcome_delay_ms: int = 0


class Answers(Protocol):
    """Whatever answers for simulated holders (the model, or a test's fake)."""

    def reply(self, lead_id: str, reseller_id: str) -> Reply: ...


@dataclass(frozen=True, slots=True)
class Temperament:
    ignore: float
    accept: float
    """Of the leads it answers."""
    win: float
    slow_hours: float
    """Its longest usual answer time."""


@dataclass(slots=True)
class AnswerModel:
    """Seeded replies of every reseller to every lead."""

    seed: int = 2027
    ignore: float = 0.12
    """The programme's mean share of leads left to expire (each reseller around it)."""
    accept: float = 0.72
    win: float = 0.35
    _temperaments: dict[str, Temperament] = field(default_factory=dict)

    def temperament(self, reseller_id: str) -> Temperament:
        found = self._temperaments.get(reseller_id)
        if found is None:
            rng = random.Random(f"{self.seed}:temperament:{reseller_id}")  # noqa: S311 - simulated
            found = Temperament(ignore=min(0.9, self.ignore * rng.uniform(0.2, 2.5)),
                                accept=min(0.95, self.accept * rng.uniform(0.6, 1.3)),
                                win=min(0.9, self.win * rng.uniform(0.5, 1.5)),
                                slow_hours=rng.uniform(4, 36))
            self._temperaments[reseller_id] = found
        return found

    def reply(self, lead_id: str, reseller_id: str) -> Reply:
        """The reply of ``reseller_id`` to ``lead_id`` (the same for the pair every time)."""
        mood = self.temperament(reseller_id)
        # Five uniforms from a hash of the pair: as reproducible as a seeded generator,
        # at a third of the cost of seeding one per reply (profiled: replies are many).
        digest = hashlib.blake2b(f"{self.seed}:{lead_id}:{reseller_id}".encode(),
                                 digest_size=20).digest()
        ignored, slow, accepted, reason, won = (
            int.from_bytes(digest[i:i + 4], "big") / _SCALE for i in range(0, 20, 4))
        if ignored < mood.ignore:
            return Reply(None)
        # Answers come within the SLA (2 business days are at least 48 hours).
        delay = int((0.25 + slow * (mood.slow_hours - 0.25)) * HOUR_MS)
        if accepted >= mood.accept:
            code = REJECT_REASONS[bisect(_REASON_CUMULATIVE, reason * _REASON_CUMULATIVE[-1])]
            return Reply("rejected", code, delay)
        outcome = "won" if won < mood.win else "lost"
        # The outcome's delay reuses the rejection draw, unused on this branch.
        return Reply("accepted", None, delay, outcome, int((3 + 42 * reason) * DAY_MS))
