"""The flow: a plan played phase by phase against a running hub, as its partners would.

0. the reseller network is published and the webhook resellers register their endpoints
   (each keeps the secret it is given, or rotates for a new one when the answer that
   carried it was lost in a crash);
1. delegations enrol businesses and trainers report completions and feedback, over HTTP
   in batches and in files dropped in the inbox; a few events are sent twice;
2. offers, one at a time: each that must become a lead is on ``pn.lead-requests.v1``
   before the next is sent, so the router sees them in the same order in every run;
3. the CRMs answer, in rounds: every lead a reseller newly holds is answered as
   ``connectors.synthetic.crm.decide`` says (accept, reject with a reason, or silence;
   later won or lost), in lead id order, each answer once its lead moved;
4. consent withdrawals and erasures, one at a time.

A phase ends when its effects are on the topics (``Tap``), or after a bounded wait,
which is then noted: the checks afterwards say what is missing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import httpx

from connectors.crm_webhook.receiver import Receiver
from connectors.synthetic.crm import Reply, decide
from connectors.synthetic.crm import event as answer_event
from reliability.oracle import Expected
from reliability.partners import GaveUp, Ledger, Partner, await_settled, drop
from reliability.plan import Plan
from reliability.tap import Tap
from schemas.models import ConsentWithdrawn

#: How a paced flow shares its time between phases 1-4 (answers: per round, of ~4).
SHARES = {"training": 0.3, "offers": 0.4, "answers": 0.05, "privacy": 0.1, "all": 0.9}
#: The router's national queue (Settings' default): its leads get no CRM answer.
NATIONAL_QUEUE = "cefac-national"
#: The statuses of a lead its holder may still act on.
OPEN = frozenset({"assigned", "accepted", "queued"})
#: Most answer rounds (a lead is placed at most PASSPORT_HUB_ROUTING_MAX_HOPS times).
MAX_ROUNDS = 14
_PROFILES_PER_BATCH = 100


@dataclass
class Flow:
    """What the phases share: the plan and its expectation, the partners, the hub's topics."""

    plan: Plan
    expected: Expected
    admin: Partner
    resellers: Callable[[str], Partner]
    """The client of a reseller's own key."""
    tap: Tap
    receivers: list[Receiver]
    inbox: Path
    ledger: Ledger
    stop: threading.Event = field(default_factory=threading.Event)
    phase_timeout_s: float = 150.0
    notes: list[str] = field(default_factory=list)
    """What did not happen in time (a symptom: the checks say what it cost)."""
    secrets: dict[str, str] = field(default_factory=dict)
    issued: list[str] = field(default_factory=list)
    """Every signing secret the API handed a reseller (the leak scan looks for each)."""
    timings: dict[str, float] = field(default_factory=dict)
    answers: dict[str, Reply] = field(default_factory=dict)
    """Answer event id → the reply it carries (what the router must have applied)."""
    pace_s: float = 0.0
    """How long phases 1-4 should last at least (the kills' schedule), 0: as fast as they
    go. Pacing changes when partners send, never what nor in which order."""

    def pacer(self, phase: str, steps: int) -> Callable[[int], None]:
        """A call after each step ``i`` of a phase that waits while it is ahead of its share."""
        budget = self.pace_s * SHARES[phase]
        started = time.monotonic()

        def after(index: int) -> None:
            due = started + budget * (index + 1) / max(1, steps)
            self.stop.wait(max(0.0, due - time.monotonic()))

        return after

    def receiver_of(self, reseller_id: str) -> Receiver:
        return self.receivers[sum(map(ord, reseller_id)) % len(self.receivers)]

    # -- phases -------------------------------------------------------------------------

    def setup(self) -> None:
        """Phase 0: the reseller network, then the webhook endpoints."""
        started = time.monotonic()
        profiles = list(self.plan.profiles)
        for i in range(0, len(profiles), _PROFILES_PER_BATCH):
            self.admin.send(profiles[i:i + _PROFILES_PER_BATCH])
        for reseller_id in self.plan.webhooks:
            self._register(reseller_id)
        for reseller_id in self.plan.webhooks:
            self._await_endpoint(reseller_id)
        self.timings["0 setup"] = time.monotonic() - started

    def background(self, partner: Partner) -> threading.Thread:
        """Start sending the steady traffic (over ``partner``), spread over phases 1-4."""
        paced = self.pacer("all", len(self.plan.background))

        def run() -> None:
            for index, post in enumerate(self.plan.background):
                if self.stop.is_set():
                    return
                self.guarded(partial(partner.send, post.events), f"background {index}")
                paced(index)

        thread = threading.Thread(target=run, name="background", daemon=True)
        thread.start()
        return thread

    def training(self) -> None:
        """Phase 1: enrolments, completions, feedback (HTTP batches and dropped files)."""
        started = time.monotonic()
        waiters: list[threading.Thread] = []
        paced = self.pacer("training", len(self.plan.training))
        for index, post in enumerate(self.plan.training):
            if post.channel == "api":
                self.guarded(partial(self.admin.send, post.events), f"batch {index}")
                paced(index)
                continue
            name = f"trainers-{self.plan.seed}-{index:03d}"
            drop(self.inbox, name, post.events)
            waiter = threading.Thread(target=await_settled, args=(
                self.inbox, name, post.events, self.ledger),
                kwargs={"timeout_s": self.phase_timeout_s, "stop": self.stop}, daemon=True)
            waiter.start()
            waiters.append(waiter)
            paced(index)
        for waiter in waiters:
            waiter.join()
        self._phase_wait("1 training", self._trained)
        self.timings["1 training"] = time.monotonic() - started

    def offers(self) -> None:
        """Phase 2: offer requests one at a time; a lead's request is out before the next."""
        started = time.monotonic()
        leads = 0
        paced = self.pacer("offers", len(self.plan.offers))
        for index, offer in enumerate(self.plan.offers):
            self.guarded(partial(self.admin.send_one, offer), f"offer {offer.event_id}")
            if str(offer.event_id) in self.expected.leads:
                leads += 1
                if not self.tap.wait(_requested(leads), self.phase_timeout_s / 3, self.stop):
                    self.notes.append(f"offer {offer.event_id}: no lead request within "
                                      f"{self.phase_timeout_s / 3:.0f} s")
            paced(index)
        self._phase_wait("2 offers", _placed(len(self.expected.leads)))
        self.timings["2 offers"] = time.monotonic() - started

    def answers_rounds(self) -> None:
        """Phase 3: the CRMs answer in rounds until nobody has anything left to say."""
        started = time.monotonic()
        done: set[tuple[str, int]] = set()
        for _ in range(MAX_ROUNDS):
            current = self.tap.read(lambda t: dict(t.leads))
            replies = [reply for lead_id in sorted(current)
                       if (reply := decide(self.plan.answer_seed, current[lead_id],
                                           national_queue=NATIONAL_QUEUE)) is not None
                       and (reply.lead_id, reply.version) not in done]
            if not replies:
                break
            paced = self.pacer("answers", len(replies))
            for index, reply in enumerate(replies):
                done.add((reply.lead_id, reply.version))
                self.guarded(partial(self.answer, reply), f"answer {reply.lead_id}")
                paced(index)
            self._phase_wait("3 answers", _moved(replies))
        self.timings["3 answers"] = time.monotonic() - started

    def privacy(self) -> None:
        """Phase 4: consent withdrawals and erasures, each applied before the next."""
        started = time.monotonic()
        paced = self.pacer("privacy", len(self.plan.privacy))
        for index, event in enumerate(self.plan.privacy):
            self.guarded(partial(self.admin.send_one, event), f"privacy {event.event_id}")
            flag = "consent_withdrawn" if isinstance(event, ConsentWithdrawn) else "erased"
            self._phase_wait("4 privacy", _closed(event.siren, flag))
            paced(index)
        self.timings["4 privacy"] = time.monotonic() - started

    # -- steps --------------------------------------------------------------------------

    def _register(self, reseller_id: str) -> None:
        partner = self.resellers(reseller_id)
        receiver = self.receiver_of(reseller_id)
        try:
            answer = partner.request("PUT", f"/v1/resellers/{reseller_id}/webhook",
                                     json_body={"url": receiver.url(f"/{reseller_id}"),
                                                "enabled": True})
            secret = self._command(answer)
            if answer.status_code == 202 and secret is None:
                # The answer that carried the secret was lost (the API died after the
                # command was out): a partner without its secret rotates for a new one.
                secret = self._command(partner.request(
                    "POST", f"/v1/resellers/{reseller_id}/webhook/rotate"))
        except GaveUp as exc:
            self.notes.append(str(exc))
            return
        if answer.status_code != 202 or not isinstance(secret, str):
            self.ledger.refuse(f"webhook of {reseller_id}: {answer.status_code}")
            return
        self.secrets[reseller_id] = secret
        receiver.secrets(f"/{reseller_id}", [secret])

    def _command(self, answer: httpx.Response) -> str | None:
        """Note an accepted webhook command (it must reach the commands topic); its secret."""
        if answer.status_code != 202:
            return None
        document = answer.json()
        self.ledger.accept(str(document["event_id"]), "WebhookCommand", "api")
        secret = document.get("secret")
        if not isinstance(secret, str):
            return None
        self.issued.append(secret)
        return secret

    def _await_endpoint(self, reseller_id: str) -> None:
        try:
            self.resellers(reseller_id).request(
                "GET", f"/v1/resellers/{reseller_id}/webhook", params={"wait": 10},
                done=lambda r: r.status_code == 200)
        except GaveUp as exc:
            self.notes.append(f"endpoint of {reseller_id} never shown: {exc}")

    def answer(self, reply: Reply) -> None:
        """One CRM answer, once the read model shows the lead at the version it answers."""
        partner = self.resellers(reply.reseller_id)
        partner.request("GET", f"/v1/leads/{reply.lead_id}", params={"wait": 10},
                        done=lambda r: r.status_code == 200
                        and int(r.json().get("version", 0)) >= reply.version)
        event = answer_event(reply, datetime.now(UTC))
        body = {"answer": event.answer, "event_id": str(event.event_id),
                "occurred_at": event.occurred_at.isoformat()}
        if event.reason is not None:
            body["reason"] = event.reason
        answer = partner.request("POST", f"/v1/leads/{reply.lead_id}/answer", json_body=body)
        if answer.status_code == 202:
            self.ledger.accept(str(event.event_id), "LeadAnswered", "api")
            self.answers[str(event.event_id)] = reply
        else:
            self.ledger.refuse(f"answer {reply.answer} to {reply.lead_id} v{reply.version}: "
                               f"{answer.status_code} {answer.text[:200]}")

    def guarded(self, step: Callable[[], object], what: str) -> None:
        try:
            step()
        except GaveUp as exc:
            self.notes.append(f"{what}: {exc}")

    def _phase_wait(self, phase: str, done: Callable[[Tap], bool]) -> None:
        if not self.tap.wait(done, self.phase_timeout_s, self.stop):
            self.notes.append(f"phase {phase}: not reflected within {self.phase_timeout_s:.0f} s")

    def _trained(self, tap: Tap) -> bool:
        """Every business's snapshot shows its modules and feedback (phase 1's effects)."""
        for siren in self.plan.businesses:
            business = self.expected.businesses[siren]
            datum = tap.passports.get(siren)
            if datum is None or datum.get("state") == "awaiting_enrolment":
                return False
            if set(datum.get("modules_completed") or ()) != business.modules:
                return False
            if len(datum.get("feedback") or ()) != business.feedback:
                return False
        return True


# -- what a phase waits for -------------------------------------------------------------------


def _requested(count: int) -> Callable[[Tap], bool]:
    return lambda tap: len(tap.lead_requests) >= count


def _placed(count: int) -> Callable[[Tap], bool]:
    return lambda tap: len(tap.leads) >= count


def _moved(replies: list[Reply]) -> Callable[[Tap], bool]:
    """Every answered lead went past the version its answer was for."""
    return lambda tap: all(int(tap.leads[r.lead_id].get("version", 1)) > r.version
                           for r in replies)


def _closed(siren: str, flag: str) -> Callable[[Tap], bool]:
    """The business's snapshot shows the withdrawal (or erasure), and it has no open lead."""
    def done(tap: Tap) -> bool:
        return bool(tap.passports.get(siren, {}).get(flag)) and not any(
            lead.get("siren") == siren and lead.get("status") in OPEN
            for lead in tap.leads.values())
    return done
