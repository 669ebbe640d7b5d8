"""Read-your-writes: tokens round-trip and refuse garbage; the reflects rules on a real file."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import pytest

from hub.contract import Inbound
from schemas import catalog
from services.readmodel.consistency import Token
from services.readmodel.queries import Queries
from services.readmodel.store import Writer
from tests.unit.test_readmodel import T0, lead, snapshot

SIREN, OTHER = "732829320", "552100554"
ENROLMENTS = catalog.ENROLMENTS


def token(offset: int, key: str = SIREN, *, partition: int = 2,
          topic: str = ENROLMENTS) -> Token:
    return Token(topic, partition, offset, key)


def _b64(raw: Any) -> str:
    text = raw if isinstance(raw, str) else json.dumps(raw)
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


def test_a_token_round_trips_url_safe_and_unpadded() -> None:
    for original in (token(0), token(2**40, key="lead/é?&=", partition=5),
                     Token(catalog.LEAD_RESPONSES, 0, 17, "L1")):
        text = original.encode()
        assert Token.decode(text) == original
        assert set(text) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert token(1).where == f"{ENROLMENTS}/2"
    assert token(1).encode() != token(2).encode()


GOOD = {"v": 1, "t": ENROLMENTS, "p": 0, "o": 3, "k": SIREN}


@pytest.mark.parametrize(("text", "says"), [
    ("", "empty"),
    ("not base64 at all!", "not one this API issued"),
    (_b64("plain text"), "not one this API issued"),
    (_b64([1, 2, 3]), "unknown format"),
    (_b64({**GOOD, "v": 2}), "unknown format"),
    (_b64({**GOOD, "t": "pn.nowhere.v1"}), "no topic"),
    (_b64({k: v for k, v in GOOD.items() if k != "t"}), "no topic"),
    (_b64({**GOOD, "p": -1}), "partition"),
    (_b64({**GOOD, "p": True}), "partition"),
    (_b64({**GOOD, "o": "3"}), "offset"),
    (_b64({**GOOD, "o": 1.5}), "offset"),
    (_b64({**GOOD, "k": 732829320}), "key"),
    ("A" * 2000, "longer"),
])
def test_a_malformed_token_is_refused_clearly(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        Token.decode(text)


def test_the_good_sample_decodes() -> None:
    assert Token.decode(_b64(GOOD)) == Token(ENROLMENTS, 0, 3, SIREN)


def passport_at(siren: str, offsets: dict[str, int]) -> dict[str, Any]:
    return {**snapshot(siren), "input_offsets": offsets}


def apply(writer: Writer, *items: tuple[str, dict[str, Any]]) -> None:
    writer.apply([Inbound(catalog.PASSPORTS, 0, n, None, record, datum, 0)
                  for n, (record, datum) in enumerate(items)])


def test_a_passport_reflects_its_own_write_by_its_offsets(model: tuple[Writer, Queries]) -> None:
    writer, queries = model
    where = f"{ENROLMENTS}/2"
    assert not queries.reflects_passport(SIREN, token(9))  # no passport yet
    apply(writer, ("PassportSnapshot", passport_at(SIREN, {where: 10})))
    assert queries.reflects_passport(SIREN, token(9))  # next offset 10: offset 9 is in
    assert not queries.reflects_passport(SIREN, token(10))
    assert not queries.reflects_passport(SIREN, token(9, partition=3))  # another partition
    # Another business moving further says nothing about this one's own write.
    apply(writer, ("PassportSnapshot", passport_at(OTHER, {where: 50})))
    assert not queries.reflects_passport(SIREN, token(20))
    apply(writer, ("PassportSnapshot", passport_at(SIREN, {where: 21})))
    assert queries.reflects_passport(SIREN, token(20))


def test_another_key_is_judged_by_the_watermark(model: tuple[Writer, Queries]) -> None:
    writer, queries = model
    where = f"{ENROLMENTS}/2"
    about_other = token(30, key=OTHER)
    assert not queries.reflects_passport(SIREN, about_other)  # nothing read yet
    apply(writer, ("PassportSnapshot", passport_at(SIREN, {where: 31})),
          ("PassportSnapshot", passport_at(SIREN, {where: 12})))  # an older one after: max
    assert queries.reflects_passport(SIREN, about_other)
    assert queries.reflects_passport("000000000", about_other)  # even an unknown business
    assert not queries.reflects_passport(SIREN, token(31, key=OTHER))
    assert not queries.reflects_passport(SIREN, token(0, key=OTHER, partition=4))
    # The latest snapshot of SIREN says 12, yet the mark stays at the highest seen.
    assert not queries.reflects_passport(SIREN, token(20))


def test_a_repeated_snapshot_still_moves_the_watermark(model: tuple[Writer, Queries]) -> None:
    writer, queries = model
    where = f"{ENROLMENTS}/2"
    first = passport_at(SIREN, {where: 5})
    apply(writer, ("PassportSnapshot", first))
    apply(writer, ("PassportSnapshot", {**first, "input_offsets": {where: 8}}))  # same event id
    assert queries.reflects_passport(SIREN, token(7, key=OTHER))
    assert not queries.reflects_passport(SIREN, token(7))  # the row kept the first one's


def test_a_lead_reflects_a_write_its_offsets_pass_or_do_not_name(
        model: tuple[Writer, Queries]) -> None:
    writer, queries = model
    answers = f"{catalog.LEAD_RESPONSES}/0"
    answer = Token(catalog.LEAD_RESPONSES, 0, 4, "L1")
    assert not queries.reflects_lead("L1", answer)  # unknown lead
    placed = {**lead("L1", "web-78"), "input_offsets": {f"{catalog.LEAD_REQUESTS}/0": 3,
                                                        answers: 4}}
    apply(writer, ("LeadAssigned", placed))
    assert not queries.reflects_lead("L1", answer)  # the answer at 4 is not in yet
    assert queries.reflects_lead("L1", Token(catalog.LEAD_RESPONSES, 0, 3, "L1"))
    assert queries.reflects_lead("L1", Token(catalog.LEAD_REQUESTS, 0, 2, "L1"))
    assert not queries.reflects_lead("L1", Token(catalog.LEAD_REQUESTS, 0, 3, "L1"))
    # An input the lead's offsets do not name: the lead existing is all there is to know.
    assert queries.reflects_lead("L1", Token(ENROLMENTS, 1, 99, SIREN))
    later = lead("L1", "web-78", at=T0 + timedelta(hours=1))  # v1: the later record wins
    answered = {**later, "input_offsets": {answers: 5}}
    apply(writer, ("LeadAssigned", answered))
    assert queries.reflects_lead("L1", answer)
    assert not queries.reflects_lead("L2", answer)


def test_a_lead_whose_offsets_do_not_name_the_answers_has_not_seen_an_answer(
        model: tuple[Writer, Queries]) -> None:
    writer, queries = model
    apply(writer, ("LeadAssigned", lead("L1", "web-78")))
    # The router's inputs: their absence from the offsets means "not read yet".
    assert not queries.reflects_lead("L1", Token(catalog.LEAD_RESPONSES, 0, 0, "L1"))
    assert not queries.reflects_lead("L1", Token(catalog.LEAD_REQUESTS, 0, 0, "L1"))
    # Any other write (the offer request): the lead existing is what there is to know.
    assert queries.reflects_lead("L1", Token(catalog.OFFER_REQUESTS, 2, 10**9, SIREN))
