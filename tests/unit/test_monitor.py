"""The live line: every lead once under its latest status, the passing changes counted."""

from __future__ import annotations

from typing import Any

from hub.monitor import FlowCounts
from hub.processor import Inbound
from schemas import catalog


def _lead(lead_id: str, version: int, change: str, status: str) -> Inbound:
    datum: dict[str, Any] = {"lead_id": lead_id, "version": version, "change": change,
                             "status": status}
    return Inbound(catalog.LEADS, 0, version, None, "LeadAssigned", datum, 0)


def _passport(siren: str, state: str) -> Inbound:
    return Inbound(catalog.PASSPORTS, 0, 0, None, "PassportSnapshot",
                   {"siren": siren, "state": state}, 0)


def test_leads_count_by_latest_status_and_changes_by_kind() -> None:
    counts = FlowCounts()
    counts.apply([
        _passport("1", "enrolled"), _passport("2", "passport_issued"), _passport("1", "enrolled"),
        _lead("a", 1, "assigned", "assigned"), _lead("a", 2, "accepted", "accepted"),
        _lead("b", 1, "assigned", "assigned"), _lead("b", 2, "rejected", "rejected"),
        _lead("b", 3, "reassigned", "assigned"),
        _lead("c", 1, "assigned", "assigned"), _lead("c", 2, "expired", "expired"),
        _lead("c", 3, "queued", "queued"),
        _lead("d", 1, "duplicate", "duplicate"),
        _lead("a", 3, "won", "won"),
    ])
    # Read again (a re-emitted change, a second reader pass): nothing counts twice.
    counts.apply([_lead("b", 2, "rejected", "rejected"), _lead("a", 2, "accepted", "accepted")])
    assert (counts.businesses, counts.passports, counts.lead_count) == (2, 1, 4)
    assert counts.by_status() == {"won": 1, "assigned": 1, "queued": 1, "duplicate": 1}
    assert counts.outcome() == {"assigned": 1, "accepted": 0, "rejected": 1, "reassigned": 1,
                                "expired": 1, "queued": 1, "won": 1, "duplicate": 1}
    assert (counts.leads_assigned, counts.leads_unassigned) == (2, 2)
    assert counts.line().endswith(
        "leads     4 (assigned 1 · accepted 0 · rejected 1 · reassigned 1 · expired 1 · "
        "queued 1 · won 1 · duplicate 1)")


def test_a_change_read_out_of_order_does_not_roll_a_lead_back() -> None:
    counts = FlowCounts()
    counts.apply([_lead("a", 2, "accepted", "accepted"), _lead("a", 1, "assigned", "assigned")])
    assert counts.by_status() == {"accepted": 1}
    assert counts.changes == {"accepted": 1, "assigned": 1}
