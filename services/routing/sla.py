"""The answer deadline: 2 business days after assignment, French public holidays excluded (pure).

Business days are Monday to Friday, less the public holidays of the lead's
département as the ``holidays`` package knows them (metropolitan France's, plus
Good Friday and St Stephen's day in Alsace-Moselle, and each overseas
département's own). The clock is Europe/Paris: a lead assigned on Friday at
16:00 is due on Tuesday at 16:00, and one assigned on a Saturday is due at the
end of the second business day after it (Tuesday 24:00, i.e. Wednesday 00:00).
"""

from __future__ import annotations

import functools
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from holidays.countries.france import France

PARIS = ZoneInfo("Europe/Paris")
#: The départements whose public holidays differ from metropolitan France's, by the
#: ``holidays`` package's subdivision code.
_SUBDIVISIONS = {"57": "57", "67": "6AE", "68": "6AE",
                 "971": "971", "972": "972", "973": "973", "974": "974", "976": "976"}


@functools.lru_cache(maxsize=64)
def _calendar(subdivision: str | None) -> France:
    # holidays is untyped; years are filled in as they are asked.
    return France(subdiv=subdivision)  # type: ignore[no-untyped-call]


def is_business_day(day: date, departement: str = "") -> bool:
    """Monday to Friday, and not a public holiday in ``departement`` (metropolitan by default)."""
    return day.weekday() < 5 and day not in _calendar(_SUBDIVISIONS.get(departement))


def add_business_days(start: datetime, days: int, departement: str = "") -> datetime:
    """``start`` moved on by ``days`` business days, keeping its time of day (Paris).

    Started on a day that is not a business day, the count starts at the next
    business day's beginning, so the deadline is the end of the last one.
    """
    local = start.astimezone(PARIS)
    day, end_of_day = _due_day(local.date(), days, departement)
    if end_of_day:
        return datetime.combine(day + timedelta(days=1), time(0), PARIS)
    return datetime.combine(day, local.timetz().replace(tzinfo=None), PARIS)


@functools.lru_cache(maxsize=4096)
def _due_day(start: date, days: int, departement: str) -> tuple[date, bool]:
    """The day a lead assigned on ``start`` is due, and whether at its end (``start`` was
    not a business day). Cached: every lead of a day in a département shares it."""
    closed = not is_business_day(start, departement)
    day, moved = start, 0
    while moved < days:
        day += timedelta(days=1)
        if is_business_day(day, departement):
            moved += 1
    return day, closed


def deadline_ms(assigned_at_ms: int, *, departement: str = "", business_days: int = 2) -> int:
    """When a lead assigned at ``assigned_at_ms`` (epoch ms) must be answered (epoch ms)."""
    start = datetime.fromtimestamp(assigned_at_ms / 1000, PARIS)
    return int(add_business_days(start, business_days, departement).timestamp() * 1000)
