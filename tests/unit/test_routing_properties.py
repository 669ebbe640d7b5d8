"""Long random runs of the router: fair shares, capacity, never the same lead twice.

Each example builds a random registry (5-30 resellers over two régions, 1-3
départements each or a whole région, 1-3 of three categories, weights 1-5,
capacities 1-12) and drives the router with seeded random inputs: requests,
repeated requests, the holders' answers (and now and then a stranger's), withdrawals
and the clock moving on (routing_kit.Run). The run checks after every input that no
reseller holds more open leads than its capacity and that every lead rests in exactly
one status; these tests check what only the whole run shows.

Fair share is held to ±10% of the entitlement for resellers entitled to at least 30
leads. The deficit rule keeps every reseller within about one lead of its entitlement
(the largest gap seen over 60 runs of 4,000 inputs was 0.996 of a lead); at 30 leads
±10% is ±3, so the bound leaves room for the mix of scopes and capacities while a
policy that drifted (a rotation that ignores weights, or a reseller owed a burst after
a pause) fails it. Below 30 a single lead is more than 3%, and a ratio says little.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.routing_kit import Run

#: Entitlement from which a reseller's share is held to ±10% (see the docstring).
MEANINGFUL = 30
TOLERANCE = 0.10

seeds = st.integers(0, 2**32 - 1)
sizes = st.integers(5, 30)


@settings(max_examples=6, deadline=None)
@given(seed=seeds, size=sizes)
def test_each_reseller_gets_its_weighted_share(seed: int, size: int) -> None:
    run = Run.start(seed, size).run(2500)
    standings = run.router.state.standings
    assert sum(s.received for s in standings.values()) == \
        round(sum(s.entitlement for s in standings.values()))
    judged = {i: s for i, s in standings.items() if s.entitlement >= MEANINGFUL}
    for reseller_id, s in judged.items():
        assert abs(s.received - s.entitlement) <= TOLERANCE * s.entitlement, (reseller_id, s)


@settings(max_examples=10, deadline=None)
@given(seed=seeds, size=sizes, max_hops=st.integers(1, 6))
def test_no_reseller_holds_a_lead_twice_or_beyond_its_capacity(seed: int, size: int,
                                                                max_hops: int) -> None:
    run = Run.start(seed, size, max_hops=max_hops).run(800)  # checks capacity as it goes
    registry = run.router.registry
    for lead_id, holders in run.holders.items():
        assert len(holders) == len(set(holders)), (lead_id, holders)
        assert len(holders) <= max_hops
        assert run.router.state.leads[lead_id].excluded == tuple(sorted(
            set(run.router.state.leads[lead_id].excluded)))
    assert all(count <= registry[i].capacity for i, count in run.max_open.items())
    assert any(len(h) > 1 for h in run.holders.values()) or max_hops == 1 or \
        not run.holders  # reassignments did happen: the property was exercised


@settings(max_examples=10, deadline=None)
@given(seed=seeds, size=sizes)
def test_every_lead_rests_in_one_status_and_every_business_has_one_open_lead(
        seed: int, size: int) -> None:
    run = Run.start(seed, size).run(600)
    state = run.router.state
    open_by: dict[tuple[str, str], list[str]] = {}
    for lead in state.leads.values():
        if lead.open:
            open_by.setdefault((lead.siren, lead.category), []).append(lead.lead_id)
    assert {k: v[0] for k, v in open_by.items()} == state.open_by_request
    assert all(len(v) == 1 for v in open_by.values())
    last_version: dict[str, int] = {}
    for change in run.changes:
        assert change.lead.version == last_version.get(change.lead.lead_id, 0) + 1
        last_version[change.lead.lead_id] = change.lead.version


# Random runs meet RouterState.due's double entries (test_routing_router.py,
# test_a_lead_reassigned_on_the_weekend_expires_once): a lead assigned twice with the
# same deadline is expired twice, the second time from its fresh holder or out of the
# national queue. Seeds 0 and 1 each show it (27 and 34 such expiries in 1,500 inputs).
@pytest.mark.parametrize("seed", range(2))
def test_only_leads_held_past_their_deadline_expire(seed: int) -> None:
    run = Run.start(seed, 10).run(1500)
    assert [(c.lead.lead_id, c.previous) for c in run.spurious] == []
