"""Erasure in the read model's store: no row, and no byte of its file, keeps the contact.

The leads a business's erasure reaches are those routing withdraws (open ones) and
those it does not: closed leads whose latest record still carries the e-mail (a
LeadAssigned v1 record), and leads read, in a rebuild, after the erased passport.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from hub.contract import Inbound
from schemas import catalog
from services.readmodel.queries import Queries
from services.readmodel.store import Writer
from tests.unit.test_readmodel import lead as v1_lead
from tests.unit.test_readmodel import snapshot
from tests.unit.test_readmodel_leads import CONTACT, HOUR, NOW, SIREN, datums, request, router

OTHER = "552100554"


def _leads(items: list[dict[str, Any]], first: int = 0) -> list[Inbound]:
    return [Inbound(catalog.LEADS, 0, first + n, None, "LeadAssigned", datum, 0)
            for n, datum in enumerate(items)]


def _erased(offset: int = 0) -> Inbound:
    return Inbound(catalog.PASSPORTS, 0, offset, None, "PassportSnapshot",
                   {**snapshot(SIREN), "erased": True}, 0)


def _everywhere(path: Path, needle: str) -> list[str]:
    """Where ``needle`` is: ``table.column`` of the file's rows, and the files' raw bytes."""
    found = []
    with sqlite3.connect(path) as conn:
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            cursor = conn.execute(f'SELECT * FROM "{table}"')  # noqa: S608  # the file's names
            names = [d[0] for d in cursor.description]
            found += [f"{table}.{names[i]}" for row in cursor for i, value in enumerate(row)
                      if needle in str(value)]
    conn.close()
    return found


def _raw(path: Path, needle: str) -> list[str]:
    return [p.name for p in (path, path.with_name(path.name + "-wal"))
            if p.exists() and needle.encode() in p.read_bytes()]


def test_an_erased_passport_scrubs_a_closed_lead_that_still_carries_the_contact(
        tmp_path: Path) -> None:
    path = tmp_path / "rm.sqlite"
    writer = Writer(path)
    other = {**v1_lead("L2", "web-78"), "siren": OTHER}
    writer.apply(_leads([v1_lead("L1", None, status="unassigned"), other]))
    assert _raw(path, CONTACT)
    writer.apply([_erased()])
    lead = Queries(path).lead("L1")
    assert lead is not None
    assert (lead["status"], lead["contact_email"]) == ("unassigned", None)
    assert Queries(path).lead("L2")["contact_email"] == CONTACT  # type: ignore[index]
    writer.close()
    assert [where for where in _everywhere(path, CONTACT)] == ["leads.json"]  # L2's only


def test_the_file_and_its_log_keep_no_byte_of_the_erased_contact(tmp_path: Path) -> None:
    r = router()
    placed = datums(r.request(request("L1"), NOW))
    withdrawn = datums(r.withdraw("L1", "erased", NOW + HOUR))
    # With a feed event to scrub (v2), and without (a v1 lead the erased passport reaches).
    cases = {"withdrawal": (_leads(placed), _leads(withdrawn, first=1)),
             "passport": (_leads([v1_lead("L1", "web-78")]), [_erased()])}
    for name, (before, erasure) in cases.items():
        path = tmp_path / f"{name}.sqlite"
        writer = Writer(path)
        writer.apply(before)
        assert _raw(path, CONTACT), name
        writer.apply(erasure)
        # The writer still open: its write-ahead log would hold the old pages.
        assert _raw(path, CONTACT) == [], name
        assert _everywhere(path, CONTACT) == [], name
        writer.close()


def test_a_lead_read_after_the_erasure_is_kept_without_the_contact(tmp_path: Path) -> None:
    r = router()
    placed = datums(r.request(request("L1"), NOW))
    withdrawn = datums(r.withdraw("L1", "erased", NOW + HOUR))
    late = {**v1_lead("L7", "web-78"), "event_id": "0b6f0b55-0000-4000-8000-000000000007"}
    # A rebuild reads the topics in no set order between them: the erasure is known from the
    # erased passport or from the erasure withdrawal, whichever came first.
    orders = {"passport first": [_erased(), *_leads([late])],
              "withdrawal first": [*_leads([*placed, *withdrawn, late])]}
    for name, batch in orders.items():
        path = tmp_path / f"{name}.sqlite"
        writer = Writer(path)
        writer.apply(batch)
        writer.close()
        lead = Queries(path).lead("L7")
        assert lead is not None, name
        assert lead["contact_email"] is None, name
        assert _everywhere(path, CONTACT) == [], name


def test_a_consent_withdrawal_is_no_erasure(tmp_path: Path) -> None:
    path = tmp_path / "rm.sqlite"
    writer = Writer(path)
    r = router()
    writer.apply(_leads(datums(r.request(request("L1"), NOW))))
    writer.apply(_leads(datums(r.withdraw("L1", "consent_withdrawn", NOW + HOUR)), first=1))
    writer.apply(_leads([v1_lead("L7", "web-78")], first=2))
    assert Queries(path).lead("L7")["contact_email"] == CONTACT  # type: ignore[index]
    writer.close()


def test_an_erased_change_keeps_the_lead_and_drops_the_contact(tmp_path: Path) -> None:
    path = tmp_path / "rm.sqlite"
    writer = Writer(path)
    writer.apply(_leads([v1_lead("L1", None, status="unassigned")]))
    erased = {**v1_lead("L1", None, status="unassigned"), "schema_version": 2,
              "change": "erased", "version": 2, "reason": "erased", "contact_email": None,
              "event_id": "0b6f0b55-0000-4000-8000-000000000002"}
    assert writer.apply(_leads([erased], first=1)) == 1
    lead = Queries(path).lead("L1")
    assert lead is not None
    assert (lead["status"], lead["change"], lead["contact_email"]) == (
        "unassigned", "erased", None)
    writer.close()
    assert _everywhere(path, CONTACT) == []
