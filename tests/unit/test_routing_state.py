"""The router's state is the fold of its changes: a restore rebuilds exactly the live state."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from services.routing import records
from services.routing.router import Answer
from services.routing.state import Change, RouterState
from tests.unit.routing_kit import DAY, T0, Run, fold, request, reseller, router, summary


def scripted() -> tuple[RouterState, list[Change]]:
    """Every kind of change once: assigned, duplicate, rejected, reassigned, accepted,
    won, expired, queued, withdrawn."""
    r = router(reseller("a", capacity=3), reseller("b", ["78", "92"], weight=2),
               reseller("paris", ["75"]))

    def holder(lead_id: str) -> str:
        return str(r.state.leads[lead_id].holder)

    out = r.request(request("L1"), T0)
    out += r.request(request("L2"), T0 + 1)  # duplicate of L1
    out += r.request(request("L3", siren="542051180"), T0 + 2)
    out += r.answer(Answer("L1", holder("L1"), "rejected", "budget"), T0 + 3)
    out += r.answer(Answer("L3", holder("L3"), "accepted"), T0 + 4)
    out += r.answer(Answer("L3", holder("L3"), "won"), T0 + 5)
    out += r.request(request("L4", siren="356000000", departement="14"), T0 + 6)
    out += r.request(request("L5", siren="443061841"), T0 + 7)
    out += r.withdraw("L5", "consent_withdrawn", T0 + 8)
    out += r.request(request("L6", siren="552100554"), T0 + 9)
    out += r.expire(T0 + 2 * DAY + 3)
    return r.state, out


def test_the_scripted_run_has_every_kind_of_change() -> None:
    _, changes = scripted()
    assert {c.kind for c in changes} == {"assigned", "duplicate", "rejected", "reassigned",
                                         "accepted", "won", "expired", "queued", "withdrawn"}


def test_folding_the_emitted_changes_gives_the_live_state() -> None:
    live, changes = scripted()
    restored = fold(changes)
    assert summary(restored) == summary(live)
    assert restored.open_count("b") == live.open_count("b") > 0
    assert restored.due(T0 + 30 * DAY) == live.due(T0 + 30 * DAY) != []


def test_a_prefix_cut_between_a_loss_and_its_placement_is_unplaced() -> None:
    _, changes = scripted()
    cut = next(n for n, c in enumerate(changes) if c.kind == "rejected") + 1
    restored = fold(changes[:cut])
    [lead_id] = restored.unplaced
    assert restored.leads[lead_id].status == "rejected"
    assert restored.open_count(str(changes[cut - 1].previous)) == 0


def test_the_stored_json_loads_back_the_same_state() -> None:
    live, _ = scripted()
    leads, standings = live.take_dirty()
    assert live.take_dirty() == ([], {})
    loaded = RouterState()
    loaded.load([records.lead_of_json(records.lead_json(x)) for x in leads],
                {k: records.standing_of_json(records.standing_json(v))
                 for k, v in standings.items()})
    assert summary(loaded) == summary(live)
    assert loaded.take_dirty() == ([], {})


def test_due_gives_each_passed_deadline_earliest_first_and_only_once() -> None:
    r = router(reseller("a"), reseller("b"))
    r.request(request("L1"), T0 + 10)
    r.request(request("L2", siren="542051180"), T0)
    assert r.state.due(T0 + 2 * DAY - 1) == []
    assert r.state.due(T0 + 2 * DAY + 10) == ["L2", "L1"]
    assert r.state.due(T0 + 2 * DAY + 10) == []


def test_a_standing_is_the_candidates_trace() -> None:
    live, changes = scripted()
    last = {}
    for change in changes:
        if change.decision is not None:
            for c in change.decision.candidates:
                last[c.reseller_id] = (c.entitlement, c.received
                                       + (c.reseller_id == change.decision.winner))
    assert {k: (v.entitlement, v.received) for k, v in live.standings.items()} == last


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), size=st.integers(5, 30), steps=st.integers(1, 600))
def test_any_run_folds_back_to_its_live_state(seed: int, size: int, steps: int) -> None:
    run = Run.start(seed, size).run(steps)
    assert summary(fold(run.changes)) == summary(run.router.state)
