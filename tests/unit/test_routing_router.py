"""A lead's life through the pure Router: duplicates, answers, reassignment, queue, withdrawal."""

from __future__ import annotations

import pytest

from services.routing.router import Answer, InvalidAnswerError, Router, RoutingRules
from services.routing.state import Change
from tests.unit.routing_kit import DAY, T0, ms, paris, request, reseller, router


def two() -> Router:
    return router(reseller("a", capacity=2), reseller("b", capacity=2))


def answer(r: Router, lead_id: str, what: str, reason: str | None = None, *,
           by: str | None = None, now: int = T0) -> list[Change]:
    holder = by if by is not None else r.state.leads[lead_id].holder
    assert holder is not None
    return r.answer(Answer(lead_id, holder, what, reason), now)


def test_a_request_is_assigned_with_a_deadline() -> None:
    r = two()
    [change] = r.request(request("L1"), T0)
    lead = change.lead
    assert (change.kind, lead.status, lead.holder, lead.version, lead.hops) == (
        "assigned", "assigned", "a", 1, 1)
    assert (lead.assigned_at, lead.deadline_at) == (T0, T0 + 2 * DAY)
    assert (lead.rule, lead.candidates) == ("departement", ("a", "b"))
    assert change.decision is not None
    assert change.decision.winner == "a"
    assert r.state.open_count("a") == 1


def test_a_replayed_request_changes_nothing() -> None:
    r = two()
    r.request(request("L1"), T0)
    assert r.request(request("L1"), T0 + 1) == []
    assert r.state.open_count("a") == 1


def test_a_second_request_while_open_is_a_duplicate_and_takes_no_capacity() -> None:
    r = two()
    r.request(request("L1"), T0)
    [dup] = r.request(request("L2"), T0 + 1)
    assert (dup.kind, dup.lead.status, dup.duplicate_of) == ("duplicate", "duplicate", "L1")
    assert dup.lead.holder is None
    assert dup.lead.contact_email is None
    assert dup.decision is None
    assert (r.state.open_count("a"), r.state.open_count("b")) == (1, 0)
    assert r.state.standing("b").received == 0
    # Another category of the same business is a lead of its own.
    [other] = r.request(request("L3", category="website-hosting"), T0)
    assert other.kind == "queued"  # nobody sells it here


def test_after_the_first_closes_a_new_request_gets_a_new_lead() -> None:
    r = two()
    r.request(request("L1"), T0)
    answer(r, "L1", "accepted")
    answer(r, "L1", "won")
    [fresh] = r.request(request("L2"), T0)
    assert (fresh.kind, fresh.lead.lead_id, fresh.duplicate_of) == ("assigned", "L2", None)
    assert fresh.lead.holder == "b"  # a received one already


def test_only_the_holder_answers() -> None:
    r = two()
    r.request(request("L1"), T0)
    with pytest.raises(InvalidAnswerError, match="not held by b"):
        r.answer(Answer("L1", "b", "accepted"), T0)
    with pytest.raises(InvalidAnswerError, match="no lead L9"):
        r.answer(Answer("L9", "a", "accepted"), T0)
    assert r.state.leads["L1"].status == "assigned"


@pytest.mark.parametrize(("status_path", "refused"), [
    ((), "won"), ((), "lost"),
    (("accepted",), "accepted"), (("accepted",), "rejected"),
    (("accepted", "won"), "lost"), (("accepted", "lost"), "won"),
    ((), "maybe"),
])
def test_answers_follow_the_lifecycle(status_path: tuple[str, ...], refused: str) -> None:
    r = two()
    r.request(request("L1"), T0)
    for step in status_path:
        answer(r, "L1", step, by="a")
    before = r.state.leads["L1"]
    reason = "budget" if refused == "rejected" else None
    with pytest.raises(InvalidAnswerError, match="cannot be"):
        r.answer(Answer("L1", "a", refused, reason), T0)
    assert r.state.leads["L1"] == before


def test_a_rejection_needs_a_known_reason_and_nothing_else_has_one() -> None:
    r = two()
    r.request(request("L1"), T0)
    for bad in (None, "too-expensive"):
        with pytest.raises(InvalidAnswerError, match="reason code"):
            answer(r, "L1", "rejected", bad)
    with pytest.raises(InvalidAnswerError, match="only a rejection"):
        answer(r, "L1", "accepted", "budget")
    assert r.state.leads["L1"].status == "assigned"


def test_accept_then_win_closes_the_lead_and_frees_capacity() -> None:
    r = two()
    r.request(request("L1"), T0)
    [accepted] = answer(r, "L1", "accepted")
    assert (accepted.lead.status, accepted.lead.deadline_at) == ("accepted", None)
    assert accepted.lead.contact_email is not None
    assert r.state.open_count("a") == 1  # an accepted lead is still held
    [won] = answer(r, "L1", "won")
    assert (won.lead.status, won.lead.contact_email) == ("won", None)
    assert r.state.open_count("a") == 0


def test_a_lost_lead_frees_capacity() -> None:
    r = two()
    r.request(request("L1"), T0)
    answer(r, "L1", "accepted")
    answer(r, "L1", "lost")
    assert r.state.open_count("a") == 0


def test_a_rejection_reassigns_to_someone_else_and_frees_capacity() -> None:
    r = two()
    r.request(request("L1"), T0)
    rejected, reassigned = answer(r, "L1", "rejected", "budget", now=T0 + 5)
    assert (rejected.kind, rejected.previous, rejected.reason) == ("rejected", "a", "budget")
    assert rejected.lead.excluded == ("a",)
    assert (reassigned.kind, reassigned.lead.holder, reassigned.lead.hops) == (
        "reassigned", "b", 2)
    assert reassigned.lead.deadline_at == T0 + 5 + 2 * DAY
    assert (r.state.open_count("a"), r.state.open_count("b")) == (0, 1)


def test_an_expiry_reassigns_once_and_never_back() -> None:
    r = two()
    r.request(request("L1"), T0)
    assert r.expire(T0 + 2 * DAY - 1) == []
    expired, reassigned = r.expire(T0 + 2 * DAY)
    assert (expired.kind, expired.sla_breached, expired.previous) == ("expired", True, "a")
    assert reassigned.lead.holder == "b"
    assert r.expire(T0 + 2 * DAY) == []
    # b lets it expire too: nobody left who has not had it.
    later = reassigned.lead.deadline_at
    assert later is not None
    expired_again, queued = r.expire(later)
    assert expired_again.lead.excluded == ("a", "b")
    assert (queued.kind, queued.lead.holder, queued.reason) == (
        "queued", "cefac-national", "no_eligible")
    assert queued.decision is not None
    assert queued.decision.rule == "national"
    assert (r.state.open_count("a"), r.state.open_count("b")) == (0, 0)


def test_after_max_hops_the_lead_waits_in_the_queue() -> None:
    r = router(*(reseller(f"r{n}") for n in range(5)), rules=RoutingRules(max_hops=3))
    r.request(request("L1"), T0)
    holders = [r.state.leads["L1"].holder]
    for _ in range(2):
        *_, placed = answer(r, "L1", "rejected", "other")
        holders.append(placed.lead.holder)
    assert holders == ["r0", "r1", "r2"]
    _, queued = answer(r, "L1", "rejected", "spam")
    assert (queued.kind, queued.reason, queued.lead.holder) == (
        "queued", "hop_limit", "cefac-national")
    assert queued.lead.hops == 3
    assert queued.lead.excluded == ("r0", "r1", "r2")
    assert queued.lead.deadline_at is None


def test_nobody_eligible_queues_the_request() -> None:
    r = router(reseller("caen", ["14"]))
    [queued] = r.request(request("L1"), T0)
    assert (queued.kind, queued.lead.status, queued.reason) == ("queued", "queued", "no_eligible")
    assert queued.lead.holder == "cefac-national"
    assert (queued.lead.hops, queued.lead.deadline_at) == (0, None)
    assert r.expire(T0 + 30 * DAY) == []


def test_a_withdrawal_cancels_the_open_lead_for_good() -> None:
    r = two()
    r.request(request("L1"), T0)
    [withdrawn] = r.withdraw("L1", "consent_withdrawn", T0 + 1)
    assert (withdrawn.kind, withdrawn.lead.status, withdrawn.reason) == (
        "withdrawn", "withdrawn", "consent_withdrawn")
    assert (withdrawn.previous, withdrawn.lead.contact_email) == ("a", None)
    assert withdrawn.lead.deadline_at is None
    assert r.state.open_count("a") == 0
    assert r.expire(T0 + 10 * DAY) == []
    assert r.withdraw("L1", "again", T0 + 2) == []
    assert r.withdraw("nope", "x", T0) == []
    with pytest.raises(InvalidAnswerError):
        answer(r, "L1", "rejected", "budget", by="a")
    # The business may ask again: a new lead, not a duplicate of the withdrawn one.
    [fresh] = r.request(request("L2"), T0 + 3)
    assert fresh.kind == "assigned"


def test_withdrawing_a_queued_or_accepted_lead() -> None:
    r = router(reseller("a"))
    r.request(request("L1"), T0)
    answer(r, "L1", "accepted")
    assert r.withdraw("L1", "erasure", T0)[0].lead.status == "withdrawn"
    r2 = router()
    r2.request(request("Q1"), T0)
    assert r2.withdraw("Q1", "erasure", T0)[0].previous == "cefac-national"


def test_capacity_is_never_exceeded_and_the_region_takes_the_overflow() -> None:
    r = router(reseller("versailles", capacity=2), reseller("paris", ["75"], capacity=1))
    holders = [r.request(request(f"L{n}", siren=f"{n:09d}"), T0)[0].lead.holder
               for n in range(4)]
    assert holders == ["versailles", "versailles", "paris", "cefac-national"]
    answer(r, "L0", "rejected", "budget")  # versailles frees a place, L0 goes on
    assert r.state.leads["L0"].holder == "cefac-national"  # paris full, versailles had it
    [again] = r.request(request("L9", siren="000000009"), T0)
    assert again.lead.holder == "versailles"


def test_versions_increase_by_one_per_change_of_a_lead() -> None:
    r = two()
    changes = r.request(request("L1"), T0)
    changes += answer(r, "L1", "rejected", "budget", now=T0 + 1)
    changes += r.expire(T0 + 3 * DAY)
    assert [(c.kind, c.lead.version) for c in changes] == [
        ("assigned", 1), ("rejected", 2), ("reassigned", 3), ("expired", 4), ("queued", 5)]


# Two assignments of one lead with the same deadline (both on a closed day, both due at
# the end of the second business day after it; or both in the same millisecond) leave two
# equal (deadline, lead) entries in RouterState.deadlines, and RouterState.due returns the
# lead twice: Router.expire then takes the lead from its *new* holder at once (or "expires"
# it out of the national queue). Reported with the fix (due: skip an id already returned).
def test_a_lead_reassigned_on_the_weekend_expires_once() -> None:
    r = router(reseller("a"), reseller("b"), reseller("c"))
    saturday, sunday = ms(paris(2026, 3, 7, 10)), ms(paris(2026, 3, 8, 15))
    r.request(request("L1", at=saturday), saturday)
    *_, reassigned = answer(r, "L1", "rejected", "timeline_too_short", now=sunday)
    wednesday = ms(paris(2026, 3, 11))
    assert reassigned.lead.deadline_at == wednesday  # the same deadline as a's
    changes = r.expire(wednesday)
    assert [(c.kind, c.previous or c.lead.holder) for c in changes] == [
        ("expired", "b"), ("reassigned", "c")]
    assert r.state.leads["L1"].holder == "c"
