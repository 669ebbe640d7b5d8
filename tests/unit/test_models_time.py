"""The JSON models and time: the future bound, aware datetimes only, and the Avro side."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from schemas.models import ModuleCompleted, OfferRequested, parse_event
from tests.unit.test_models import CONTEXT, EVENTS, NOW_AT, locs, reject


def test_future_timestamps() -> None:
    at = NOW_AT + timedelta(minutes=5)
    assert parse_event({**EVENTS["offer_requested"], "occurred_at": at.isoformat()}, now=NOW_AT)
    late = (at + timedelta(seconds=1)).isoformat()
    error = reject("offer_requested", occurred_at=late)
    assert locs(error) == [("offer_requested", "occurred_at")]
    assert "5 minutes" in str(error)
    # The same check on a model's own validation, with the clock in the context.
    with pytest.raises(ValidationError) as direct:
        OfferRequested.model_validate({**EVENTS["offer_requested"], "occurred_at": late},
                                      context=CONTEXT)
    assert locs(direct.value) == [("occurred_at",)]


def test_future_check_uses_the_real_clock_by_default() -> None:
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    with pytest.raises(ValidationError):
        parse_event({**EVENTS["offer_requested"], "occurred_at": soon})
    past = (datetime.now(UTC) - timedelta(days=400)).isoformat()
    assert parse_event({**EVENTS["offer_requested"], "occurred_at": past})


def test_from_avro_does_not_recheck_the_clock() -> None:
    model = parse_event(EVENTS["module_completed"], now=NOW_AT)
    datum = {**model.to_avro(), "occurred_at": datetime.now(UTC) + timedelta(days=1)}
    assert ModuleCompleted.from_avro(datum).occurred_at > datetime.now(UTC)


def test_from_avro_still_checks_the_domain() -> None:
    model = parse_event(EVENTS["module_completed"], now=NOW_AT)
    with pytest.raises(ValidationError) as caught:
        ModuleCompleted.from_avro({**model.to_avro(), "module_id": "knitting"})
    assert locs(caught.value) == [("module_id",)]


def test_naive_datetime_objects_are_rejected() -> None:
    naive = datetime(2026, 11, 26, 9)  # noqa: DTZ001 - naive on purpose
    error = reject("module_completed", occurred_at=naive)
    assert locs(error) == [("module_completed", "occurred_at")]
    assert error.errors()[0]["type"] == "timezone_aware"
