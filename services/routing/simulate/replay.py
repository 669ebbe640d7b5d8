"""One policy over the inputs, on a simulated clock: the real ``Router``, fed in time order.

The clock jumps from one moment to the next thing due: a lead request, an
answer, a withdrawal, or a deadline (the earliest in ``RouterState.deadlines``,
fired with ``Router.expire`` at that very moment), so an expiry happens when it
would in production. An answer and a deadline at the same instant: the answer
first (it came in time).

Who answers. When the router hands a lead to a reseller, the answers recorded
for that (lead, reseller) pair, if any, are replayed at their recorded times
(never before the simulated assignment: then a minute after it); otherwise —
another holder than in the recording, or a synthetic year — the answer model
decides for the simulated holder (``answers``). An answer whose lead has since
moved on (expired, withdrawn, or a won/lost for a lead no longer accepted) is
counted as stale and dropped, as the hub would refuse it. Leads in the
national queue wait there: CEFAC's own handling is not simulated.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from services.routing.router import Answer, InvalidAnswerError, Router
from services.routing.simulate.answers import DAY_MS, Answers
from services.routing.simulate.inputs import Inputs, RecordedAnswer
from services.routing.simulate.metrics import Summary, Tally, summarise
from services.routing.simulate.policies import Policy
from services.routing.state import Change

#: How long the clock runs on after the last input, so accepted leads close and
#: pending deadlines fire.
SETTLE_MS = 60 * DAY_MS
_MINUTE_MS = 60_000
#: Progress is reported every this many requests.
_PROGRESS_EVERY = 500

Progress = Callable[[int, int], None]
"""``progress(requests done, requests in all)``."""


@dataclass(frozen=True, slots=True)
class _Due:
    kind: Literal["answer", "withdraw"]
    lead_id: str
    reseller_id: str = ""
    answer: str = ""
    reason: str | None = None


class Replay:
    """One policy's run over some inputs."""

    def __init__(self, inputs: Inputs, policy: Policy, model: Answers) -> None:
        self.inputs = inputs
        self.policy = policy
        self.model = model
        self.registry = policy.registry(inputs.resellers)
        self.router = Router(self.registry, rules=policy.rules())
        origin = inputs.requests[0].requested_at if inputs.requests else 0
        self.tally = Tally(origin=origin)
        self.stale = 0
        self._queue: list[tuple[int, int, _Due]] = []
        self._seq = 0
        self._recorded: dict[tuple[str, str], list[RecordedAnswer]] = {}
        for recorded in inputs.answers:
            self._recorded.setdefault((recorded.lead_id, recorded.reseller_id),
                                      []).append(recorded)
        for withdrawal in inputs.withdrawals:
            self._push(withdrawal.at, _Due("withdraw", withdrawal.lead_id,
                                           reason=withdrawal.reason))

    def run(self, progress: Progress | None = None) -> Summary:
        started = time.perf_counter()
        requests = self.inputs.requests
        for done, request in enumerate(requests, 1):
            self._advance(request.requested_at)
            self._observe(self.router.request(request, request.requested_at))
            if progress is not None and (done % _PROGRESS_EVERY == 0 or done == len(requests)):
                progress(done, len(requests))
        last = max([r.requested_at for r in requests[-1:]]
                   + [at for at, _, _ in self._queue], default=0)
        self._advance(last + SETTLE_MS)
        return summarise(self.policy.name, self.policy.describe(), self.router.state,
                         self.tally, weights={i: r.weight for i, r in self.registry.items()},
                         stale_answers=self.stale, elapsed_s=time.perf_counter() - started)

    # -- the clock ---------------------------------------------------------------------------

    def _advance(self, until: int) -> None:
        """Everything due up to ``until``, deadlines included, in time order."""
        deadlines, queue = self.router.state.deadlines, self._queue
        while True:
            next_deadline = deadlines[0][0] if deadlines else until + 1
            next_due = queue[0][0] if queue else until + 1
            if min(next_deadline, next_due) > until:
                return
            if next_deadline < next_due:
                self._observe(self.router.expire(next_deadline))
            else:
                at, _, due = heapq.heappop(queue)
                self._observe(self._apply(due, at))

    def _apply(self, due: _Due, at: int) -> list[Change]:
        if due.kind == "withdraw":
            return self.router.withdraw(due.lead_id, due.reason or "consent_withdrawn", at)
        lead = self.router.state.leads.get(due.lead_id)
        if lead is None or lead.holder != due.reseller_id or lead.status not in (
                ("accepted",) if due.answer in ("won", "lost") else ("assigned",)):
            self.stale += 1
            return []
        try:
            return self.router.answer(Answer(due.lead_id, due.reseller_id, due.answer,
                                             due.reason), at)
        except InvalidAnswerError:  # a recorded answer the hub refused too
            self.stale += 1
            return []

    def _observe(self, changes: list[Change]) -> None:
        national = self.router.rules.national_queue
        for change in changes:
            self.tally.observe(change)
            if change.kind in ("assigned", "reassigned") and change.lead.holder != national:
                self._schedule(change)

    def _schedule(self, change: Change) -> None:
        """The holder's answers to a lead it was just handed (recorded, or the model's)."""
        lead_id, holder = change.lead.lead_id, change.lead.holder
        assert holder is not None
        recorded = self._recorded.get((lead_id, holder))
        if recorded:
            for answer in recorded:
                self._push(max(answer.at, change.at + _MINUTE_MS),
                           _Due("answer", lead_id, holder, answer.answer, answer.reason))
            return
        reply = self.model.reply(lead_id, holder)
        if reply.answer is None:
            return  # ignored: its deadline will pass
        answered = change.at + reply.delay_ms
        self._push(answered, _Due("answer", lead_id, holder, reply.answer, reply.reason))
        if reply.outcome is not None:
            self._push(answered + reply.outcome_delay_ms,
                       _Due("answer", lead_id, holder, reply.outcome))

    def _push(self, at: int, due: _Due) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (at, self._seq, due))
