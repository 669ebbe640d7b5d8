"""How simulated resellers answer their leads: a seeded model, the same under every policy.

Each reseller has its own temperament (how often it lets a lead expire, how
often it accepts, how fast it answers), drawn from the seed and its id; each
(lead, reseller) pair then draws its reply from a generator seeded by the pair.
So the reply to a lead depends only on who holds it, never on the order the
replay reaches it in: two policies handing a lead to the same reseller get the
same answer, and a difference in results comes from the policy alone.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from schemas.fields import REJECT_REASONS

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
#: Rejection reasons as often as partner programmes see them (budget and no response lead).
_REASON_WEIGHTS = (30, 22, 12, 10, 8, 8, 3, 7)


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
            rng = random.Random(f"{self.seed}:temperament:{reseller_id}")
            found = Temperament(ignore=min(0.9, self.ignore * rng.uniform(0.2, 2.5)),
                                accept=min(0.95, self.accept * rng.uniform(0.6, 1.3)),
                                win=min(0.9, self.win * rng.uniform(0.5, 1.5)),
                                slow_hours=rng.uniform(4, 36))
            self._temperaments[reseller_id] = found
        return found

    def reply(self, lead_id: str, reseller_id: str) -> Reply:
        """The reply of ``reseller_id`` to ``lead_id`` (the same for the pair every time)."""
        mood = self.temperament(reseller_id)
        rng = random.Random(f"{self.seed}:{lead_id}:{reseller_id}")
        if rng.random() < mood.ignore:
            return Reply(None)
        # Answers come within the SLA (2 business days are at least 48 hours).
        delay = int(rng.uniform(0.25, mood.slow_hours) * HOUR_MS)
        if rng.random() >= mood.accept:
            reason = rng.choices(REJECT_REASONS, weights=_REASON_WEIGHTS)[0]
            return Reply("rejected", reason, delay)
        outcome = "won" if rng.random() < mood.win else "lost"
        return Reply("accepted", None, delay, outcome, int(rng.uniform(3, 45) * DAY_MS))
