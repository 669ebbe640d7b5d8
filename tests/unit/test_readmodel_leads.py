"""The leads in the read model: latest version per lead, trace, history, redaction, figures.

The changes are the router's own (``services.routing.router.Router`` over a small
registry), turned into ``LeadAssigned`` v2 datums by ``services.routing.records``
and put through the codec, as the read model gets them from the topic.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from hub.contract import Inbound
from schemas.codec import Codec
from services.readmodel import views
from services.readmodel.queries import Queries
from services.readmodel.store import Writer
from services.routing import records
from services.routing.registry import Registry, parse_profile
from services.routing.router import Answer, LeadRequest, Router
from services.routing.state import Change
from tests.unit.test_readmodel import inbounds
from tests.unit.test_readmodel import lead as v1_lead

#: A Monday, 09:00 in Paris: a business day.
NOW = int(datetime(2026, 11, 2, 8, 0, tzinfo=UTC).timestamp() * 1000)
HOUR = 3_600_000
CONTACT = "contact@boulangerie-martin.fr"
HOLDER, RIVAL, THIRD = "yvelines-web", "paris-web", "rival-net"
SIREN = "732829320"


def router() -> Router:
    """Three resellers of the Yvelines; the heaviest (HOLDER) wins the first decision."""
    profiles = [(HOLDER, 5), (RIVAL, 1), (THIRD, 1)]
    return Router(Registry.of(parse_profile(
        {"reseller_id": rid, "name": rid, "departements": ["78"],
         "categories": ["website-hosting"], "capacity": 10, "weight": weight})
        for rid, weight in profiles))


def request(lead_id: str, siren: str = SIREN) -> LeadRequest:
    return LeadRequest(lead_id, siren, "Boulangerie Martin", "78", "11", "website-hosting",
                       CONTACT, NOW)


def datums(changes: list[Change]) -> list[dict[str, Any]]:
    """The changes as the read model decodes them from the topic (through the codec)."""
    codec = Codec.default()
    return [codec.decode(codec.encode("LeadAssigned", records.datum(change, {}))).datum
            for change in changes]


def as_records(items: list[dict[str, Any]]) -> list[Inbound]:
    return inbounds(("LeadAssigned", datum) for datum in items)


def test_a_lead_keeps_its_latest_version_its_last_trace_and_its_history(
        model: tuple[Writer, Queries]) -> None:
    writer, queries = model
    r = router()
    changes = r.request(request("L1"), NOW)
    changes += r.answer(Answer("L1", HOLDER, "rejected", "budget"), NOW + HOUR)
    second = changes[-1].lead.holder
    assert second is not None
    changes += r.answer(Answer("L1", second, "accepted"), NOW + 2 * HOUR)
    assert writer.apply(as_records(datums(changes))) == 4
    found = queries.lead("L1")
    assert found is not None
    assert (found["status"], found["version"], found["reseller_id"]) == ("accepted", 4, second)
    assert found["excluded_resellers"] == [HOLDER]
    # The answer made no decision: the trace is the reassignment's, which left HOLDER out.
    trace = found["decision"]
    assert trace["winner"] == second
    assert {c["reseller_id"] for c in trace["candidates"]} == {RIVAL, THIRD}
    assert trace["excluded"] == [{"reseller_id": HOLDER, "reason": "seen_before"}]
    assert [(h["version"], h["change"], h["reseller_id"], h["previous_reseller_id"], h["reason"])
            for h in found["history"]] == [
        (1, "assigned", HOLDER, None, None), (2, "rejected", None, HOLDER, "budget"),
        (3, "reassigned", second, None, None), (4, "accepted", second, None, None)]
    assert found["holders"] == sorted({HOLDER, second})
    assert found["deadline_at"] is None  # answered: no deadline any more
    assert queries.lead_holder("L1") == (True, second)
    assert [x["lead_id"] for x in queries.leads_for(second)] == ["L1"]
    assert queries.leads_for(HOLDER) == []


def test_a_stale_or_repeated_version_never_overwrites_a_newer_one(
        model: tuple[Writer, Queries]) -> None:
    writer, queries = model
    r = router()
    changes = r.request(request("L1"), NOW)
    changes += r.answer(Answer("L1", HOLDER, "accepted"), NOW + HOUR)
    changes += r.answer(Answer("L1", HOLDER, "won"), NOW + 2 * HOUR)
    first, accepted, won = datums(changes)
    writer.apply(as_records([first, accepted, won]))
    before = (queries.lead("L1"), queries.stats()["leads"])
    # The same event again (a replay), and the accepted change re-emitted under another id.
    assert writer.apply(as_records([accepted, {**accepted, "event_id": str(uuid.uuid4())},
                                    {**first, "event_id": str(uuid.uuid4())}])) == 0
    assert (queries.lead("L1"), queries.stats()["leads"]) == before
    found = before[0]
    assert found is not None
    assert (found["status"], found["version"]) == ("won", 3)
    assert len(found["history"]) == 3


def test_a_duplicate_request_resolves_to_the_open_lead(model: tuple[Writer, Queries]) -> None:
    writer, queries = model
    r = router()
    changes = r.request(request("L1"), NOW) + r.request(request("L2"), NOW + HOUR)
    assert changes[-1].kind == "duplicate"
    writer.apply(as_records(datums(changes)))
    found = queries.lead("L2")
    assert found is not None
    assert (found["lead_id"], found["requested_as"], found["reseller_id"]) == ("L1", "L2", HOLDER)
    assert queries.lead("L1") == {k: v for k, v in found.items() if k != "requested_as"}
    assert queries.stats()["leads"]["by_status"]["duplicate"] == 1
    assert queries.stats()["leads"]["total"] == 1


def test_a_withdrawn_lead_drops_its_contact_email(model: tuple[Writer, Queries]) -> None:
    writer, queries = model
    r = router()
    placed = datums(r.request(request("L1"), NOW))
    writer.apply(as_records(placed))
    held = queries.lead("L1")
    assert held is not None
    assert held["contact_email"] == CONTACT
    writer.apply(as_records(datums(r.withdraw("L1", "consent_withdrawn", NOW + HOUR))))
    gone = queries.lead("L1")
    assert gone is not None
    assert (gone["status"], gone["reason"], gone["contact_email"]) == (
        "withdrawn", "consent_withdrawn", None)
    assert CONTACT not in json.dumps(gone)
    assert CONTACT not in json.dumps(queries.leads_for(HOLDER))
    # The older change, with the e-mail, replayed: it does not bring it back.
    writer.apply(as_records([{**placed[0], "event_id": str(uuid.uuid4())}]))
    assert CONTACT not in json.dumps(queries.lead("L1"))


def _rejected_then_reassigned(writer: Writer, queries: Queries) -> dict[str, Any]:
    r = router()
    changes = r.request(request("L1"), NOW)
    changes += r.answer(Answer("L1", HOLDER, "rejected", "other_vendor"), NOW + HOUR)
    writer.apply(as_records(datums(changes)))
    found = queries.lead("L1")
    assert found is not None
    return found


def test_a_reseller_sees_its_own_part_and_no_other_reseller(
        model: tuple[Writer, Queries]) -> None:
    writer, queries = model
    r = router()
    writer.apply(as_records(datums(r.request(request("L1"), NOW))))
    full = queries.lead("L1")
    assert full is not None
    mine = views.seen_by(full, HOLDER)
    text = json.dumps(mine)
    assert RIVAL not in text
    assert THIRD not in text
    assert mine["held"] is True
    assert mine["contact_email"] == CONTACT
    assert mine["deadline_at"] is not None
    standing = mine["decision"]["standing"]
    assert standing["reseller_id"] == HOLDER
    assert standing["weight"] == 5
    assert standing["share"] == pytest.approx(5 / 7)
    assert (mine["decision"]["rule"], mine["decision"]["won"]) == ("departement", True)
    assert not {"candidates", "excluded_resellers", "holders"} & mine.keys()


def test_a_past_holder_sees_the_lead_without_its_new_holder_or_contact(
        model: tuple[Writer, Queries]) -> None:
    writer, queries = model
    full = _rejected_then_reassigned(writer, queries)
    new_holder = full["reseller_id"]
    assert new_holder in (RIVAL, THIRD)
    past = views.seen_by(full, HOLDER)
    text = json.dumps(past)
    assert RIVAL not in text
    assert THIRD not in text
    assert (past["held"], past["reseller_id"], past["contact_email"]) == (False, None, None)
    assert past["decision"]["standing"] is None  # left out of the decision that passed it on
    assert [(h["change"], h["previous_reseller_id"], h["reason"]) for h in past["history"]] == [
        ("assigned", None, None), ("rejected", HOLDER, "other_vendor")]
    # The new holder sees where the lead came from only as "someone": never who.
    now = views.seen_by(full, new_holder)
    assert HOLDER not in json.dumps(now)
    assert [h["change"] for h in now["history"]] == ["reassigned"]


def test_lead_figures_by_status_reassignments_breaches_and_reasons(
        model: tuple[Writer, Queries], tmp_path: Path) -> None:
    writer, queries = model
    r = router()
    changes = r.request(request("L1"), NOW)
    changes += r.request(request("L2", "552100554"), NOW)
    changes += r.answer(Answer("L1", HOLDER, "rejected", "budget"), NOW + HOUR)
    changes += r.expire(NOW + 10 * 24 * HOUR)  # both holders let their deadline pass
    items = datums(changes)
    for datum in items:  # one change per batch: each replacement moves the counters
        writer.apply(as_records([datum]))
    figures = queries.stats()["leads"]
    assert figures["by_status"] == {"assigned": 2, "accepted": 0, "queued": 0, "rejected": 0,
                                    "expired": 0, "won": 0, "lost": 0, "withdrawn": 0,
                                    "duplicate": 0}
    assert (figures["total"], figures["open"]) == (2, 2)
    assert figures["reassignments"] == 3  # one after the rejection, one per expiry
    assert figures["sla_breaches"] == 2
    assert figures["rejections_by_reason"]["budget"] == 1
    assert sum(figures["rejections_by_reason"].values()) == 1
    rebuilt = Writer(tmp_path / "rebuilt.sqlite")
    rebuilt.apply(as_records(items))
    rebuilt.close()
    assert Queries(tmp_path / "rebuilt.sqlite").stats() == queries.stats()


def test_v1_records_still_read_with_their_defaults(model: tuple[Writer, Queries]) -> None:
    writer, queries = model
    writer.apply(inbounds([("LeadAssigned", v1_lead("L1", "web-78"))]))
    found = queries.lead("L1")
    assert found is not None
    assert (found["version"], found["change"], found["decision"]) == (1, "assigned", None)
    assert found["candidates"] == ["web-78"]
    assert [h["change"] for h in found["history"]] == ["assigned"]
    seen = views.seen_by(found, "web-78")
    assert (seen["held"], seen["decision"], seen["rule"]) == (True, None, "departement")
    assert queries.stats()["leads"]["by_status"]["assigned"] == 1
