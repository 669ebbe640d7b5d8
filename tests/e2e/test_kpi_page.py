"""The KPI page of a running hub, as a programme manager's browser shows it.

`passport-hub up --demo` runs the whole hub with synthetic traffic (and the demo's
CRMs answering leads); the test adds a business of its own with trainees'
feedback (the demo sends none), waits until every chart has figures, then loads
``/kpi`` in headless Chromium (tests/browser.py): the page draws without a console
message (errors, uncaught exceptions and refused loads are all console messages),
and every bar and point drawn carries the figure of the data the page was
served with, which is the running stack's (between two reads of
``/kpi/data.json`` taken before and after). The screenshot is kept as an artefact
and its path printed.
"""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser import artefacts, browse, chromium, console, pixels
from tests.e2e.stack import AUTH, up, wait_for
from tests.e2e.test_up import SIREN, _event

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

#: Tall enough for the whole page at this width: the screenshot shows every chart.
WINDOW = (1280, 3000)
TRAINERS = ("Organisme e2e", "CCI e2e")
MODULES = ("website-create", "website-traffic", "email-pro")


def fr(value: int) -> str:
    """An integer as fr-FR writes it: a narrow no-break space between thousands."""
    return f"{value:,}".replace(",", "\u202f")


class Drawn(HTMLParser):
    """What the page drew: per chart (svg id), the figure of each bar, point and mark."""

    def __init__(self) -> None:
        super().__init__()
        self.charts: dict[str, dict[str, float]] = defaultdict(dict)
        self.marks: dict[str, dict[str, float]] = defaultdict(dict)
        self.body: dict[str, str | None] = {}
        self.data: list[str] = []
        self.text: list[str] = []
        self._chart: str | None = None
        self._row: str | None = None
        self._in_data = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        classes = (found.get("class") or "").split()
        if tag == "body":
            self.body = found
        elif tag == "svg" and found.get("id"):
            self._chart = found["id"]
        elif tag == "g" and "row" in classes:
            self._row = found.get("data-key")
        elif self._chart and "data-value" in found:
            value = float(found["data-value"] or "nan")
            if tag == "rect" and "bar" in classes and "back" not in classes:
                self.charts[self._chart][str(found["data-key"])] = value
            elif tag == "circle":
                self.charts[self._chart][str(found["data-date"])] = value
            elif tag == "line" and "mark" in classes and self._row is not None:
                self.marks[self._chart][self._row] = value
        self._in_data = tag == "script" and found.get("type") == "application/json"

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._chart = None
        self._in_data = False

    def handle_data(self, data: str) -> None:
        (self.data if self._in_data else self.text).append(data)


def _feedback(base: str) -> None:
    """A business of the test's own, enrolled, trained and rating its modules."""
    def post(body: dict[str, Any]) -> None:
        answer = httpx.post(f"{base}/v1/events", json=body, headers=AUTH, timeout=15)
        assert answer.status_code == 202, answer.text

    post(_event("business_enrolled", siren=SIREN, name="Boulangerie Martin", departement="78",
                naf="10.71C", employees=3, contact_email="contact@boulangerie-martin.fr",
                consent_share_with_resellers=False))
    for index, module in enumerate(MODULES):
        post(_event("module_completed", siren=SIREN, module_id=module))
        post(_event("training_feedback", siren=SIREN, module_id=module,
                    trainer_org=TRAINERS[index % 2], delegation="cefac-78", score=3 + index))


def _figures(base: str) -> dict[str, Any] | None:
    """The data document once every chart of the page has something to draw."""
    document: dict[str, Any] = httpx.get(f"{base}/kpi/data.json", timeout=10).json()
    quality = {q["trainer_org"] for q in document["quality"]["by_trainer_org"]}
    ready = (document["passports_by_day"]["series"]
             and set(TRAINERS) <= quality
             and document["resellers"]["sla"]["due"] > 0
             and document["leads"]["by_status"]["accepted"] > 0)
    return document if ready else None


def test_the_kpi_page_draws_the_running_hub_s_figures(tmp_path: Path) -> None:
    started = time.monotonic()
    browser = chromium()
    with up(tmp_path, "--demo", "--rate", "300") as base:
        up_s = time.monotonic() - started
        _feedback(base)
        before = wait_for(lambda: _figures(base), 60, "figures in every chart of the KPI page")
        figures_s = time.monotonic() - started
        dumped = browse(browser, "--enable-logging=stderr", "--v=0", "--dump-dom",
                        f"{base}/kpi", window=WINDOW, timeout_s=60)
        after = httpx.get(f"{base}/kpi/data.json", timeout=10).json()
        shot = artefacts() / "kpi-page.png"
        shot.unlink(missing_ok=True)
        browse(browser, f"--screenshot={shot}", f"{base}/kpi", window=WINDOW, timeout_s=60)
    assert console(dumped.stderr) == []

    drawn = Drawn()
    drawn.feed(dumped.stdout)
    assert drawn.body.get("data-rendered") == "ok", dumped.stdout[:2000]
    (inline,) = drawn.data
    page = json.loads(inline)  # the figures the page was served with: the stack's, then
    issued = page["national"]["passports_issued"]
    assert before["national"]["passports_issued"] <= issued <= after["national"][
        "passports_issued"]
    assert page["leads"]["total"] <= after["leads"]["total"]

    charts = drawn.charts
    series = page["passports_by_day"]["series"]
    assert charts["chart-over-time"] == {p["date"]: p["cumulative"] for p in series}
    assert series[-1]["cumulative"] + page["passports_by_day"]["undated"] == issued
    assert charts["chart-regions"] == {r["region"]: r["passports_issued"]
                                       for r in page["regions"]}
    assert len(charts["chart-regions"]) == 18
    assert charts["chart-modules"] == {m["module_id"]: m["businesses"] for m in page["modules"]}
    for chart, entries, field in (
            ("chart-quality-module", page["quality"]["by_module"], "module_id"),
            ("chart-quality-trainer", page["quality"]["by_trainer_org"], "trainer_org"),
            ("chart-quality-delegation", page["quality"]["by_delegation"], "delegation")):
        averages = {entry[field]: entry["average_score"] for entry in entries}
        assert len(charts[chart]) == min(12, len(entries)) > 0  # the best documented 12
        assert {key: averages[key] for key in charts[chart]} == charts[chart]
    assert charts["chart-leads"] == page["leads"]["by_status"]
    served = [r for r in page["resellers"]["by_reseller"] if r["received"] or r["entitlement"]]
    assert charts["chart-resellers"] == {r["reseller_id"]: r["received"] for r in served[:15]}
    assert drawn.marks["chart-resellers"] == {r["reseller_id"]: r["entitlement"]
                                              for r in served[:15]}

    text = " ".join(drawn.text)
    for label in ("Passeports délivrés", f"Objectif {fr(150_000)}", "Île-de-France",
                  "Leads par revendeur", "Réponses dans le délai"):
        assert label in text
    assert fr(issued) in text
    # A share, with its decimal comma (ICU puts a no-break space before the per cent sign).
    assert re.search(r"\d,\d[\u00a0\u202f]%", text)

    width, height, colours = pixels(shot.read_bytes())
    print(f"\nscreenshot kept at {shot} ({width}x{height}, {len(colours)} colours sampled); "
          f"{issued} passports on the page; stack up in {up_s:.1f}s, every chart's figures "
          f"in {figures_s:.1f}s, all in {time.monotonic() - started:.1f}s")
    assert (width, height) == WINDOW
    assert len(colours) > 50  # text, bars in several colours, the curve, the target
