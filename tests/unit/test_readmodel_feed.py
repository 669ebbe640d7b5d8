"""The lead-event feed: events in offset order, cursors that survive a rebuild, erasure scrubs."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from hub.contract import Inbound
from schemas import catalog
from schemas.webhooks import lead_events
from services.readmodel import feed
from services.readmodel.queries import Queries
from services.readmodel.store import Writer
from services.routing.router import Answer
from tests.unit.test_readmodel import lead as v1_lead
from tests.unit.test_readmodel import snapshot
from tests.unit.test_readmodel_leads import CONTACT, HOLDER, HOUR, NOW, datums, request, router


def at_offsets(items: list[dict[str, Any]], first: int = 0) -> list[Inbound]:
    """LeadAssigned datums as read from pn.leads.v1, at consecutive offsets from ``first``."""
    return [Inbound(catalog.LEADS, 0, first + n, None, "LeadAssigned", datum, 0)
            for n, datum in enumerate(items)]


def history() -> list[dict[str, Any]]:
    """L1 placed with HOLDER, rejected and passed on; L2 placed; L1 accepted by its new holder."""
    r = router()
    changes = r.request(request("L1"), NOW)
    changes += r.answer(Answer("L1", HOLDER, "rejected", "budget"), NOW + HOUR)
    holder = changes[-1].lead.holder
    assert holder is not None
    assert holder != HOLDER
    changes += r.request(request("L2", "552100554"), NOW + 2 * HOUR)
    changes += r.answer(Answer("L1", holder, "accepted", None), NOW + 3 * HOUR)
    changes += r.request(request("L3", "443061841"), NOW + 4 * HOUR)
    return datums(changes)


def expected(items: list[dict[str, Any]], reseller: str | None) -> list[dict[str, Any]]:
    """The feed ``items`` should make: their events in order, with the owner for the admin."""
    return [event.body() if reseller else {**event.body(), "reseller_id": event.reseller_id}
            for datum in items for event in lead_events(datum)
            if reseller in (None, event.reseller_id)]


def every(queries: Queries, reseller: str | None, limit: int = 1000) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = queries.lead_feed(reseller, cursor=None, limit=limit)["events"]
    return events


def test_events_follow_the_changes_in_offset_order(model: tuple[Writer, Queries]) -> None:
    writer, queries = model
    items = history()
    writer.apply(at_offsets(items))
    mine = every(queries, HOLDER)
    assert mine == expected(items, HOLDER)
    assert [(e["type"], e["data"]["lead_id"]) for e in mine][:2] == [
        ("lead.assigned", "L1"), ("lead.updated", "L1")]
    assert "reseller_id" not in mine[0]
    # The admin's feed: every event in order, each saying whose it is.
    assert every(queries, None) == expected(items, None)
    assert len(every(queries, None)) > len(mine)
    assert every(queries, "nobody") == []


def test_a_cursor_walks_the_feed_one_page_at_a_time(model: tuple[Writer, Queries]) -> None:
    writer, queries = model
    writer.apply(at_offsets(history()))
    start = queries.lead_feed(None, cursor=None, limit=1000)
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = queries.lead_feed(None, cursor=cursor, limit=2)
        if not page["events"]:
            assert page["next_cursor"] == (cursor or feed.START_CURSOR)
            break
        assert len(page["events"]) <= 2
        seen += [e["id"] for e in page["events"]]
        cursor = page["next_cursor"]
    assert seen == [e["id"] for e in start["events"]]
    assert cursor == start["next_cursor"]
    # Nothing new: the same cursor back; the start texts and None all mean the beginning.
    assert queries.lead_feed(None, cursor=cursor) == {"events": [], "next_cursor": cursor}
    for beginning in (None, "", "start", feed.START_CURSOR):
        assert queries.lead_feed(None, cursor=beginning, limit=1000)["events"] == start["events"]
    assert queries.lead_feed("nobody", cursor=None)["next_cursor"] == feed.START_CURSOR


def test_a_reseller_cursor_resumes_after_its_own_last_event(
        model: tuple[Writer, Queries]) -> None:
    writer, queries = model
    items = history()
    writer.apply(at_offsets(items[:2]))
    first = queries.lead_feed(HOLDER, cursor=None)
    assert [e["type"] for e in first["events"]] == ["lead.assigned", "lead.updated"]
    writer.apply(at_offsets(items[2:], first=2))
    later = expected(items[2:], HOLDER)
    assert later  # HOLDER hears of something in the rest too
    assert queries.lead_feed(HOLDER, cursor=first["next_cursor"])["events"] == later


def test_cursors_are_the_same_after_a_rebuild_from_the_same_records(tmp_path: Path) -> None:
    items = history()
    live_path, rebuilt_path = tmp_path / "live.sqlite", tmp_path / "rebuilt.sqlite"
    live = Writer(live_path)
    for n, datum in enumerate(items):  # one record per batch, as while following
        live.apply(at_offsets([datum], first=n))
    live.close()
    rebuilt = Writer(rebuilt_path)
    rebuilt.apply(at_offsets(items))  # all at once, as a catch-up reads them
    rebuilt.close()
    before, after = Queries(live_path), Queries(rebuilt_path)
    for reseller in (HOLDER, None):
        page = before.lead_feed(reseller, cursor=None, limit=1)
        again = after.lead_feed(reseller, cursor=None, limit=1)
        assert page == again
        # A cursor kept from before the rebuild resumes at the same place after it.
        assert (before.lead_feed(reseller, cursor=page["next_cursor"])
                == after.lead_feed(reseller, cursor=page["next_cursor"]))
        assert after.lead_feed(reseller, cursor=page["next_cursor"])["events"]


def test_a_re_emitted_change_adds_nothing(model: tuple[Writer, Queries]) -> None:
    writer, queries = model
    items = history()
    writer.apply(at_offsets(items))
    before = queries.lead_feed(None, cursor=None, limit=1000)
    # The same changes again further down the topic (a producer retry, a restore's replay).
    assert writer.apply(at_offsets(items, first=100)) == 0
    assert queries.lead_feed(None, cursor=None, limit=1000) == before
    assert queries.lead_feed(None, cursor=before["next_cursor"])["events"] == []
    # Under another event id but an old version: the lead row refuses it, so does the feed.
    stale = {**items[0], "event_id": str(uuid.uuid4())}
    assert writer.apply(at_offsets([stale], first=200)) == 0
    assert queries.lead_feed(None, cursor=before["next_cursor"])["events"] == []
    ids = [e["id"] for e in before["events"]]
    assert len(ids) == len(set(ids))


def test_an_erasure_scrubs_the_contact_from_every_event_of_the_lead(
        model: tuple[Writer, Queries]) -> None:
    writer, queries = model
    r = router()
    placed = datums(r.request(request("L1"), NOW) + r.request(request("L2", "552100554"), NOW))
    writer.apply(at_offsets(placed))
    held = every(queries, None)
    assert [e["data"]["business"].get("contact_email") for e in held] == [CONTACT, CONTACT]
    writer.apply(at_offsets(datums(r.withdraw("L1", "erased", NOW + HOUR)), first=2))
    after = every(queries, None)
    by_lead = {e["data"]["lead_id"]: e for e in after if e["type"] == "lead.assigned"}
    assert "contact_email" not in by_lead["L1"]["data"]["business"]
    assert by_lead["L1"]["data"]["business"]["siren"] == "732829320"  # the rest stays
    assert by_lead["L2"]["data"]["business"]["contact_email"] == CONTACT  # another lead's
    assert [e["type"] for e in after] == ["lead.assigned", "lead.assigned", "lead.withdrawn"]
    assert after[2]["reseller_id"] == HOLDER
    assert CONTACT not in json.dumps([e for e in after if e["data"]["lead_id"] == "L1"])
    # Same ids and order: a CRM that read them before sees the same events, scrubbed.
    assert [e["id"] for e in after[:2]] == [e["id"] for e in held]


def test_an_erasure_scrubs_the_closed_leads_of_the_business_too(
        model: tuple[Writer, Queries]) -> None:
    writer, queries = model
    r = router()
    won = r.request(request("L1"), NOW)
    won += r.answer(Answer("L1", HOLDER, "accepted", None), NOW + HOUR)
    won += r.answer(Answer("L1", HOLDER, "won", None), NOW + 2 * HOUR)
    again = r.request(request("L9"), NOW + 3 * HOUR)  # the same business asks again
    other = r.request(request("L2", "552100554"), NOW + 3 * HOUR)
    placed = datums(won + again + other)
    writer.apply(at_offsets(placed))
    def of(events: list[dict[str, Any]], lead_id: str) -> list[dict[str, Any]]:
        return [e for e in events if e["data"]["lead_id"] == lead_id]

    assert CONTACT in json.dumps(of(every(queries, None), "L1"))
    # Routing withdraws only the open lead (L9); L1 is closed and hears nothing.
    writer.apply(at_offsets(datums(r.withdraw("L9", "erased", NOW + 4 * HOUR)),
                            first=len(placed)))
    after = every(queries, None)
    assert [e["type"] for e in of(after, "L9")] == ["lead.assigned", "lead.withdrawn"]
    assert CONTACT not in json.dumps(of(after, "L1") + of(after, "L9"))
    assert of(after, "L2")[0]["data"]["business"]["contact_email"] == CONTACT


def _erased_snapshot(offset: int) -> Inbound:
    return Inbound(catalog.PASSPORTS, 0, offset, None, "PassportSnapshot",
                   {**snapshot("732829320"), "erased": True}, 0)


def test_an_erased_passport_scrubs_the_feed_whichever_topic_is_read_first(
        tmp_path: Path) -> None:
    r = router()
    placed = datums(r.request(request("L1"), NOW) + r.request(request("L2", "552100554"), NOW))
    orders = {"leads first": [*at_offsets(placed), _erased_snapshot(0)],
              "passport first": [_erased_snapshot(0), *at_offsets(placed)]}
    for name, batch in orders.items():
        path = tmp_path / f"{name}.sqlite"
        writer = Writer(path)
        writer.apply(batch)
        writer.close()
        events = {e["data"]["lead_id"]: e for e in every(Queries(path), None)}
        assert "contact_email" not in events["L1"]["data"]["business"], name
        assert events["L2"]["data"]["business"]["contact_email"] == CONTACT, name


def test_a_consent_withdrawal_keeps_the_past_events(model: tuple[Writer, Queries]) -> None:
    writer, queries = model
    r = router()
    writer.apply(at_offsets(datums(r.request(request("L1"), NOW))))
    writer.apply(at_offsets(datums(r.withdraw("L1", "consent_withdrawn", NOW + HOUR)), first=1))
    events = every(queries, HOLDER)
    assert [e["type"] for e in events] == ["lead.assigned", "lead.withdrawn"]
    assert "contact_email" not in events[1]["data"]["business"]


def test_v1_records_cause_no_events(model: tuple[Writer, Queries]) -> None:
    writer, queries = model
    writer.apply(at_offsets([v1_lead("L1", "web-78")]))
    assert queries.lead("L1") is not None
    assert every(queries, None) == []


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


@pytest.mark.parametrize("cursor", [
    "garbage!", "%%%", _b64("v2:5"), _b64("v1:"), _b64("v1:abc"), _b64("v1:-5"),
    _b64("v1:1.5"), _b64("v1: 5"), _b64("v1:--5"), "A" * 65, _b64("5"),
])
def test_a_malformed_cursor_is_refused(model: tuple[Writer, Queries], cursor: str) -> None:
    _writer, queries = model
    with pytest.raises(ValueError, match="cursor"):
        queries.lead_feed(None, cursor=cursor)


def test_cursor_encoding() -> None:
    assert feed.decode_cursor(feed.encode_cursor(41)) == 41
    assert feed.decode_cursor(None) == feed.START
    assert feed.encode_cursor(41) == _b64("v1:41")
    assert "=" not in feed.encode_cursor(1)
    assert "=" not in feed.START_CURSOR
    assert feed.seq(3, 1) == 25
    with pytest.raises(ValueError, match="at most"):
        feed.seq(3, feed.EVENTS_PER_RECORD)
