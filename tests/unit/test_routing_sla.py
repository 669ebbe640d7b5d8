"""The answer deadline: 2 business days, Europe/Paris, each département's public holidays.

The holidays asserted are those of the ``holidays`` package (0.109), checked against it:
metropolitan France has Easter Monday, 1 and 8 May, Ascension, Whit Monday, 14 July,
15 August, 1 and 11 November, 25 December; Moselle (57) and Alsace (67, 68) add Good
Friday and 26 December; each overseas département adds its abolition of slavery day
(Guadeloupe 27 May, Martinique 22 May, Guyane 10 June, Réunion 20 December, Mayotte
27 April).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.routing import sla
from tests.unit.routing_kit import HOUR, ms, paris


def due(start: datetime, departement: str = "") -> datetime:
    """The deadline of a lead assigned at ``start``, in Paris time."""
    return datetime.fromtimestamp(sla.deadline_ms(ms(start), departement=departement) / 1000,
                                  sla.PARIS)


@pytest.mark.parametrize(("assigned", "deadline"), [
    (paris(2026, 3, 3, 15), paris(2026, 3, 5, 15)),    # Tuesday -> Thursday
    (paris(2026, 3, 6, 16), paris(2026, 3, 10, 16)),   # Friday -> Tuesday
    (paris(2026, 3, 5, 23, 59), paris(2026, 3, 9, 23, 59)),  # Thursday late -> Monday
    (paris(2026, 3, 7, 9), paris(2026, 3, 11)),        # Saturday -> end of Tuesday
    (paris(2026, 3, 8, 23), paris(2026, 3, 11)),       # Sunday -> end of Tuesday
    (paris(2026, 3, 2, 0), paris(2026, 3, 4, 0)),      # Monday at midnight -> Wednesday
])
def test_two_business_days_on_ordinary_weeks(assigned: datetime, deadline: datetime) -> None:
    assert due(assigned) == deadline


def test_the_deadline_keeps_the_paris_time_of_day_across_a_clock_change() -> None:
    # Summer time starts on Sunday 29 March 2026: Friday 16:00 -> Tuesday 16:00 is 95 hours.
    assigned = paris(2026, 3, 27, 16)
    assert due(assigned) == paris(2026, 3, 31, 16)
    assert sla.deadline_ms(ms(assigned)) - ms(assigned) == 95 * HOUR


def test_the_deadline_of_an_instant_given_in_utc_is_reckoned_in_paris() -> None:
    # 23:30 UTC on Friday is already Saturday 00:30 in Paris (winter): a closed day.
    utc_friday_night = datetime(2026, 3, 6, 23, 30, tzinfo=UTC)
    assert due(utc_friday_night) == paris(2026, 3, 11)


@pytest.mark.parametrize(("assigned", "deadline", "holiday"), [
    (paris(2026, 4, 3, 10), paris(2026, 4, 8, 10), "Easter Monday 6 April"),
    (paris(2026, 4, 30, 10), paris(2026, 5, 5, 10), "Labour Day, Friday 1 May"),
    (paris(2026, 5, 7, 10), paris(2026, 5, 12, 10), "Victory Day, Friday 8 May"),
    (paris(2026, 5, 13, 10), paris(2026, 5, 18, 10), "Ascension, Thursday 14 May"),
    (paris(2026, 5, 22, 10), paris(2026, 5, 27, 10), "Whit Monday 25 May"),
    (paris(2026, 7, 13, 10), paris(2026, 7, 16, 10), "National Day, Tuesday 14 July"),
    (paris(2026, 11, 10, 10), paris(2026, 11, 13, 10), "Armistice, Wednesday 11 November"),
    (paris(2026, 12, 24, 10), paris(2026, 12, 29, 10), "Christmas, Friday 25 December"),
    (paris(2026, 12, 31, 10), paris(2027, 1, 5, 10), "New Year, Friday 1 January 2027"),
])
def test_metropolitan_public_holidays_are_not_business_days(
        assigned: datetime, deadline: datetime, holiday: str) -> None:
    assert due(assigned) == deadline, holiday
    assert due(assigned, "78") == deadline, holiday


def test_a_lead_assigned_on_a_public_holiday_is_due_at_the_end_of_the_second_day_after() -> None:
    # Thursday 14 May 2026 (Ascension): Friday, then Monday; due Monday at 24:00.
    assert due(paris(2026, 5, 14, 11)) == paris(2026, 5, 19)


@pytest.mark.parametrize("departement", ["57", "67", "68"])
def test_alsace_moselle_also_rests_on_good_friday_and_st_stephens_day(departement: str) -> None:
    # Good Friday 3 April 2026, then Easter Monday: Thursday -> Wednesday.
    assert due(paris(2026, 4, 2, 10)) == paris(2026, 4, 7, 10)  # metropolitan: Fri, Tue
    assert due(paris(2026, 4, 2, 10), departement) == paris(2026, 4, 8, 10)
    # 25 and 26 December 2025 (Thursday, Friday).
    assert due(paris(2025, 12, 24, 10)) == paris(2025, 12, 29, 10)
    assert due(paris(2025, 12, 24, 10), departement) == paris(2025, 12, 30, 10)
    assert not sla.is_business_day(date(2026, 4, 3), departement)
    assert sla.is_business_day(date(2026, 4, 3), "54")  # Meurthe-et-Moselle: not Moselle


@pytest.mark.parametrize(("departement", "holiday"), [
    ("971", date(2026, 5, 27)),    # Guadeloupe
    ("972", date(2026, 5, 22)),    # Martinique
    ("973", date(2026, 6, 10)),    # Guyane
    ("974", date(2027, 12, 20)),   # La Réunion
    ("976", date(2027, 4, 27)),    # Mayotte
])
def test_overseas_departements_keep_their_own_abolition_day(departement: str,
                                                            holiday: date) -> None:
    assert holiday.weekday() < 5  # a weekday, so only the holiday can close it
    assert not sla.is_business_day(holiday, departement)
    assert sla.is_business_day(holiday)
    assert sla.is_business_day(holiday, "78")


def test_reunion_pushes_its_deadline_past_20_december() -> None:
    # Friday 17 December 2027; Monday 20 December is a holiday in Réunion only.
    assigned = paris(2027, 12, 17, 10)
    assert due(assigned) == paris(2027, 12, 21, 10)
    assert due(assigned, "974") == paris(2027, 12, 22, 10)


def test_mayotte_pushes_its_deadline_past_27_april() -> None:
    # Monday 26 April 2027; Tuesday 27 April is a holiday in Mayotte only.
    assigned = paris(2027, 4, 26, 10)
    assert due(assigned) == paris(2027, 4, 28, 10)
    assert due(assigned, "976") == paris(2027, 4, 29, 10)


def test_business_days_are_monday_to_friday() -> None:
    week = [date(2026, 3, 2) + timedelta(days=n) for n in range(7)]
    assert [sla.is_business_day(d) for d in week] == [True] * 5 + [False] * 2


def test_the_number_of_business_days_is_a_knob() -> None:
    assigned = paris(2026, 3, 3, 15)
    assert sla.deadline_ms(ms(assigned), business_days=1) == ms(paris(2026, 3, 4, 15))
    assert sla.deadline_ms(ms(assigned), business_days=5) == ms(paris(2026, 3, 10, 15))
