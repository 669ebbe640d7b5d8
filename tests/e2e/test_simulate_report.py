"""The simulator's report as a reader sees it: run the command, open the page in Chromium.

Starts what it needs: Chromium is installed when missing (tests/browser.py). The
screenshot is kept as an artefact (``PASSPORT_HUB_ARTIFACTS_DIR``, by default
.passport-hub/artifacts/) and its path printed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.browser import ROOT, WINDOW, artefacts, browse, chromium, pixels

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

#: Appended to a copy of the report (the report itself has no script): writes every
#: chart's rendered size into the DOM that --dump-dom prints.
PROBE = """<script>
document.body.setAttribute('data-sizes', Array.from(document.querySelectorAll('svg.chart'))
  .map(s => { const r = s.getBoundingClientRect(); return s.id + ':' + Math.round(r.width)
  + 'x' + Math.round(r.height) + ':' + s.querySelectorAll('circle,rect,polyline').length; })
  .join(' '));
</script>"""


def test_the_report_renders_its_charts_in_a_browser(tmp_path: Path) -> None:
    report = tmp_path / "routing-simulation.html"
    run = subprocess.run(
        [sys.executable, "-m", "services.routing.simulate", "--synthetic",
         "--businesses", "4500", "--policy", "production",
         "--policy", "narrow:fallback=departement,capacity_scale=0.5",
         "--report", str(report)],
        capture_output=True, text=True, timeout=240, cwd=ROOT, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Routing simulation" in run.stdout
    assert "elapsed:" in run.stdout
    page = report.read_text(encoding="utf-8")
    assert "<script" not in page  # self-contained, no script at all

    browser = chromium()
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom = browse(browser, "--dump-dom", probed.as_uri()).stdout
    sizes = re.search(r'data-sizes="([^"]*)"', dom)
    assert sizes is not None, dom[:500]
    charts = dict((name, (int(w), int(h), int(n))) for name, w, h, n in
                  re.findall(r"(\S+):(\d+)x(\d+):(\d+)", sizes.group(1)))
    assert set(charts) == {f"{kind}_chart-{i}" for kind in ("share", "weekly", "hops")
                           for i in (0, 1)}
    for name, (width, height, marks) in charts.items():
        assert width > 100, name
        assert height > 100, name
        assert marks > 0, name  # dots, bars or lines drawn

    shot = artefacts() / "routing-simulation-report.png"
    shot.unlink(missing_ok=True)
    browse(browser, f"--screenshot={shot}", report.as_uri())
    width, height, colours = pixels(shot.read_bytes())
    print(f"\nscreenshot kept at {shot} ({width}x{height}, {len(colours)} colours sampled)")
    assert (width, height) == WINDOW
    assert len(colours) > 50  # text, axes, blue dots, purple bars, coloured lines
