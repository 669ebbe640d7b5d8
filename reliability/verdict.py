"""A check and a verdict: what each property of a result compared and how many failed.

A failure is of one kind, the kinds the report sums up:

- ``lost``: something the hub acknowledged, or owed, is not in the result (an event
  answered 202 and not on its topic or not reflected, a lead never placed, an answer
  never applied, a message a CRM never got or could not verify);
- ``doubled``: something that must happen once happened twice (a lead requested under
  two ids, two different decisions for one version of a lead, a reseller over its
  capacity, a message under two webhook-ids);
- ``let through``: something the rules forbid is in the result (a lead for a business
  without passport or consent, a lead still open after its business withdrew, a contact
  e-mail where the business is gone, a key, secret or contact value in a log line, a
  metric or a dead letter's headers);
- ``diverged``: the run with kills differs from the crash-free run of the same plan.

Allowed repeats are counted, not failed: a record re-sent after a crash with its own
event id (readers drop it), a webhook delivered twice under its one id.
"""

from __future__ import annotations

from dataclasses import dataclass, field

KINDS = ("lost", "doubled", "let through", "diverged")
#: Failures named per check (the rest are counted).
EXAMPLES = 5


@dataclass
class Check:
    """One property of the result: how many things it looked at, and which failed."""

    name: str
    kind: str
    compared: int = 0
    failures: int = 0
    examples: list[str] = field(default_factory=list)

    def fail(self, what: str) -> None:
        self.failures += 1
        if len(self.examples) < EXAMPLES:
            self.examples.append(what)

    def look(self, ok: bool, what: str) -> None:
        """One thing compared: fine, or a failure named ``what``."""
        self.compared += 1
        if not ok:
            self.fail(what)


@dataclass
class Verdict:
    """Every check of a run, and the figures that are counted rather than failed."""

    checks: list[Check]
    figures: dict[str, int] = field(default_factory=dict)

    def total(self, kind: str) -> int:
        return sum(c.failures for c in self.checks if c.kind == kind)

    @property
    def ok(self) -> bool:
        return all(c.failures == 0 for c in self.checks)
