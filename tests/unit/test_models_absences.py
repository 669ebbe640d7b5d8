"""Reseller absences (ResellerProfile v3): ISO date ranges, validated, and their Avro form."""

from __future__ import annotations

import pytest

from schemas.codec import Codec
from schemas.models import ResellerProfile, parse_event
from tests.unit.test_models import EVENTS, NOW_AT, locs, reject


def test_reseller_absences_are_iso_date_ranges() -> None:
    model = parse_event({**EVENTS["reseller_profile"], "absences": [
        {"start": "2026-12-24", "end": "2026-12-24"}, {"start": "2027-02-01", "end": "2027-02-14"},
    ]}, now=NOW_AT)
    assert isinstance(model, ResellerProfile)
    assert model.absences == ({"start": "2026-12-24", "end": "2026-12-24"},
                              {"start": "2027-02-01", "end": "2027-02-14"})
    codec = Codec.default()
    decoded = codec.decode(codec.encode(model.RECORD, model.to_avro()))
    assert decoded.datum["absences"][1] == {"start": "2027-02-01", "end": "2027-02-14"}
    assert ResellerProfile.from_avro(decoded.datum) == model
    # The Publisher writes the model's own field values: they make the same record.
    own = {name: value for name, value in model.__dict__.items() if name != "type"}
    assert codec.encode_trusted(model.RECORD, own) == codec.encode(model.RECORD, model.to_avro())
    no_absence = {k: v for k, v in EVENTS["reseller_profile"].items() if k != "absences"}
    assert parse_event(no_absence, now=NOW_AT).to_avro()["absences"] == []


@pytest.mark.parametrize(
    ("absence", "message"),
    [
        ({"start": "2026-12-24", "end": "2026-12-23"}, "ends (2026-12-23) before it starts"),
        ({"start": "2026-02-30", "end": "2026-03-02"}, "ISO dates"),
        ({"start": "24/12/2026", "end": "2026-12-25"}, "ISO dates"),
        ({"start": "2026-12-24"}, "end"),
        ({"start": "2026-12-24", "end": "2026-12-25", "note": "Noël"}, "note"),
    ],
)
def test_a_bad_absence_is_refused(absence: dict[str, str], message: str) -> None:
    error = reject("reseller_profile", absences=[absence])
    assert message in str(error)
    assert all(loc[:3] == ("reseller_profile", "absences", 0) for loc in locs(error))
