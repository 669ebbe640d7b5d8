"""The report: the campaign's figures as terminal tables (rich) and as docs/reliability.md.

Pure: a ``Report`` (what was run, how, and each campaign's verdict) in, renderables and
Markdown out, so the tests check the text without running a hub.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from rich.console import Group, RenderableType
from rich.table import Table

from reliability import leaks
from reliability.leaks import Findings
from reliability.verdict import KINDS, Verdict


@dataclass(frozen=True, slots=True)
class Campaign:
    """One line of the summary: what was tried, how many times, and its verdict."""

    name: str
    tried: str
    times: int
    verdict: Verdict


@dataclass(frozen=True, slots=True)
class Report:
    """Everything the report shows."""

    command: str
    date: str
    broker: str
    wall_s: float
    inputs: dict[str, int]
    campaigns: tuple[Campaign, ...]
    kills: Counter[str] = field(default_factory=Counter)
    kills_up: Counter[str] = field(default_factory=Counter)
    reference: Verdict | None = None
    """The crash-free run's verdict (its figures sit beside the crash run's)."""
    soak: tuple[dict[str, str], ...] = ()
    """The soak's rows (one per window), already formatted."""
    notes: tuple[str, ...] = ()
    runs: tuple[list[str], ...] = ()
    """Per plan played: seed, leads expected, the wall seconds of both runs, the kills."""
    leaks: Findings | None = None
    """The leak scans of every run, summed (None: no run, nothing scanned)."""
    suites: tuple[Campaign, ...] = ()
    """The campaigns run as test suites (``reliability.suites``), after the crash campaign."""

    @property
    def ok(self) -> bool:
        return all(c.verdict.ok for c in (*self.campaigns, *self.suites)) and (
            self.leaks is None or self.leaks.ok)


def _summary_rows(report: Report) -> list[list[str]]:
    return [[c.name, c.tried, str(c.times), *(str(c.verdict.total(k)) for k in KINDS)]
            for c in (*report.campaigns, *report.suites)]


_SUMMARY = ["campaign", "what was tried", "times", *KINDS]


def _check_rows(verdict: Verdict) -> list[list[str]]:
    return [[c.name, c.kind, str(c.compared), str(c.failures),
             c.examples[0] if c.examples else ""] for c in verdict.checks]


def _figure_rows(report: Report, verdict: Verdict) -> list[list[str]]:
    reference = report.reference.figures if report.reference is not None else {}
    return [[name, str(value), str(reference.get(name, ""))]
            for name, value in verdict.figures.items()]


def _failure_rows(report: Report) -> list[list[str]]:
    """Every failing check of every campaign, with the failures it names."""
    return [[c.name, check.name, check.kind, str(check.failures), "; ".join(check.examples)]
            for c in (*report.campaigns, *report.suites) for check in c.verdict.checks
            if check.failures]


_FAILURES = ["campaign", "check", "kind", "failures", "first failures"]
_RUNS = ["seed", "leads expected", "crash-free run, s", "run with kills, s", "kills"]


def _kill_rows(report: Report) -> list[list[str]]:
    return [[target, str(n), str(report.kills_up.get(target, 0))]
            for target, n in sorted(report.kills.items())]


_LEAKS = ["kind", "values injected", *(f"in {place}" for place in leaks.PLACES)]


def _leak_rows(findings: Findings) -> list[list[str]]:
    """Per kind of value: how many were looked for, and how often each place held one."""
    rows = [[kind, str(findings.injected[kind]),
             *(str(findings.found[(kind, place)]) for place in leaks.PLACES)]
            for kind in leaks.KINDS]
    rows.append(["all", str(sum(findings.injected.values())),
                 *(str(sum(n for (_, p), n in findings.found.items() if p == place))
                   for place in leaks.PLACES)])
    return rows


def _leak_lines(findings: Findings) -> list[str]:
    """What was read, and where each leak was (never the value: the report is published)."""
    out = [f"Read: {findings.sources['logs']} log files ({findings.scanned['logs']} lines), "
           f"{findings.sources['metrics']} scrapes of /metrics "
           f"({findings.scanned['metrics']} lines), "
           f"{findings.scanned['dead-letter headers']} dead-letter headers. Control: the same "
           f"scan found {findings.control} contact values in the webhooks the CRMs received, "
           "where they belong."]
    out += [f"{leak.kind} ({leak.form}) in {leak.place}: {leak.where}"
            for leak in findings.leaks]
    if findings.total > len(findings.leaks):
        out.append(f"... and {findings.total - len(findings.leaks)} more")
    out += [f"not scanned: {what}" for what in findings.unscanned]
    return out


def _suite_rows(report: Report) -> list[list[str]]:
    return [[c.name, check.name, check.kind, str(check.compared), str(check.failures),
             "; ".join(check.examples)] for c in report.suites for check in c.verdict.checks]


_SUITES = ["campaign", "tests", "a failure is", "inputs", "failures", "first failures"]


def _main(report: Report) -> Verdict | None:
    """The verdict whose checks and figures are detailed: the crash campaign's."""
    return report.campaigns[0].verdict if report.campaigns else None


# -- terminal ---------------------------------------------------------------------------------


def _table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> Table:
    table = Table(title=title, title_justify="left", show_lines=False)
    for name in header:
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


def renderable(report: Report) -> RenderableType:
    """The report as rich tables (the summary first, then the details)."""
    parts: list[RenderableType] = [
        _table("Reliability campaign", _SUMMARY, _summary_rows(report))]
    verdict = _main(report)
    if not report.ok:
        parts.append(_table("Failures", _FAILURES, _failure_rows(report)))
    if report.runs:
        parts.append(_table("Runs", _RUNS, report.runs))
    if report.kills:
        parts.append(_table("Kills (SIGKILL, then restart)", ["component", "kills", "while up"],
                            _kill_rows(report)))
    if verdict is not None:
        parts.append(_table("Checks", ["check", "kind", "compared", "failures",
                                       "first failure"], _check_rows(verdict)))
        parts.append(_table("Figures", ["figure", "with kills", "crash-free"],
                            _figure_rows(report, verdict)))
    if report.suites:
        parts.append(_table("Suites", _SUITES, _suite_rows(report)))
    if report.leaks is not None:
        parts.append(Group(_table("Leaks (must be 0)", _LEAKS, _leak_rows(report.leaks)),
                           *_leak_lines(report.leaks)))
    if report.soak:
        header = list(report.soak[0])
        parts.append(_table("Soak, per window", header,
                            [[row[h] for h in header] for row in report.soak]))
    verdict_line = "[green]nothing lost, doubled or let through[/green]" if report.ok else \
        "[red]FAILED: see the checks[/red]"
    parts.append(f"{verdict_line} — {report.wall_s:.0f} s wall")
    return Group(*parts)


# -- Markdown ----------------------------------------------------------------------------------


def _md(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(report: Report, method: str) -> str:
    """docs/reliability.md: how the figures were made, then the figures of this run."""
    verdict = _main(report)
    out = ["# Reliability: the campaigns' figures", "",
           "Written by `make reliability` (the `reliability` package); do not edit by hand.",
           "", f"Last run: `{report.command}`, {report.date}, on {report.broker}; "
           f"{report.wall_s:.0f} s wall. Verdict: "
           f"**{'nothing lost, doubled or let through' if report.ok else 'FAILED'}**.", "",
           "## Summary", "", _md(_SUMMARY, _summary_rows(report)), "",
           *(["## Failures", "", _md(_FAILURES, _failure_rows(report)), ""]
             if not report.ok else []),
           "## The input", "", _md(["what", "how many"],
                                   [[k, str(v)] for k, v in report.inputs.items()]), ""]
    if report.runs:
        out += ["## Runs", "", _md(_RUNS, report.runs), ""]
    if report.kills:
        out += ["## Kills", "", _md(["component", "kills", "while up"], _kill_rows(report)), ""]
    if verdict is not None:
        out += ["## Checks", "", _md(["check", "kind", "compared", "failures", "first failure"],
                                     _check_rows(verdict)), "",
                "## Figures", "", "Counted, not failed: a record re-sent after a crash under its "
                "own event id is dropped by every reader; a webhook may be delivered twice under "
                "its one id (the CRM drops the second).", "",
                _md(["figure", "with kills", "crash-free"], _figure_rows(report, verdict)), ""]
    if report.suites:
        out += ["## Suites", "", "The campaigns that are test suites, run by pytest in this "
                "run (`reliability/suites.py` names their files). An input is a test, a "
                "hypothesis example or a cell the test counts (the auth matrix's); a failing "
                "test counts all its inputs.", "", _md(_SUITES, _suite_rows(report)), ""]
    if report.leaks is not None:
        out += ["## Leaks", "", "Every API key, webhook signing secret, the hub's sealing key "
                "and every contact e-mail, phone and name the campaign handed the hub, looked "
                "for in every log line of every process, in every component's /metrics at the "
                "end of each run and in every dead letter's headers: as sent, in any case, "
                "URL-encoded, JSON-escaped (a secret also without its `whsec_` prefix, a phone "
                "in its national forms). Each count must be 0.", "",
                _md(_LEAKS, _leak_rows(report.leaks)), "",
                *(f"- {line}" for line in _leak_lines(report.leaks)), ""]
    if report.soak:
        header = list(report.soak[0])
        out += ["## Soak", "", _md(header, [[row[h] for h in header] for row in report.soak]),
                ""]
    if report.notes:
        out += ["## Notes of this run", "", *(f"- {note}" for note in report.notes), ""]
    out += ["## How the figures are made", "", method.strip(), ""]
    return "\n".join(out)
