"""The campaign's report (terminal and docs/reliability.md) and the soak's table, from figures
alone (reliability/report.py, reliability/soak.py)."""

from __future__ import annotations

from collections import Counter

from rich.console import Console

from reliability import report, soak
from reliability.leaks import Findings, Scanner, Secret, Text
from reliability.report import Campaign, Report
from reliability.verdict import Check, Verdict

SECRET = "whsec_b2NjYXNpb25hbGx5IGEgc2VjcmV0"  # noqa: S105 - made up: what is looked for


def _verdict(failures: int = 0) -> Verdict:
    return Verdict([Check("every event answered 202 is on its input topic", "lost", 1149,
                          failures, ["LeadAnswered 42"] if failures else []),
                    Check("each message under one webhook-id", "doubled", 34, 0)],
                   {"events acknowledged": 1149, "duplicate deliveries (allowed)": 2})


def _findings(log: str = '{"event": "ok"}\n') -> Findings:
    scanner = Scanner([Secret("webhook secret", SECRET),
                       Secret("contact e-mail", "contact@garage-du-port.fr")])
    return scanner.scan([Text("logs", "seed-kills/logs/crm_webhook.log", log, log.count("\n")),
                         Text("metrics", "seed-kills: api /metrics", "up 1\n", 1)])


def _report(failures: int = 0, soak_rows: tuple[dict[str, str], ...] = (),
            leaks: Findings | None = None) -> Report:
    return Report(command="python -m reliability --kills 24", date="2026-12-07 02:00 UTC",
                  broker="the embedded broker (Tansu)", wall_s=201.4,
                  inputs={"businesses": 160, "offers": 51},
                  campaigns=(Campaign("crash", "SIGKILL in turn", 24, _verdict(failures)),
                             Campaign("crash-free reference", "no kill", 0, _verdict())),
                  kills=Counter(api=4, passport=4), kills_up=Counter(api=4, passport=3),
                  reference=_verdict(), soak=soak_rows, notes=("a | pipe",),
                  runs=(["20261207", "41", "44", "164", "24"],),
                  leaks=leaks if leaks is not None else _findings())


def test_the_markdown_holds_the_summary_the_command_and_every_check() -> None:
    text = report.markdown(_report(), "How it is done.")
    assert "`python -m reliability --kills 24`, 2026-12-07 02:00 UTC" in text
    assert "**nothing lost, doubled or let through**" in text
    assert "| crash | SIGKILL in turn | 24 | 0 | 0 | 0 | 0 |" in text
    assert "| every event answered 202 is on its input topic | lost | 1149 | 0 |  |" in text
    assert "| passport | 4 | 3 |" in text  # kills, of which while up
    assert "| 20261207 | 41 | 44 | 164 | 24 |" in text
    assert "| duplicate deliveries (allowed) | 2 | 2 |" in text
    assert "- a | pipe" in text  # notes are list items, not table cells
    assert text.rstrip().endswith("How it is done.")


def test_a_failure_shows_in_the_summary_and_the_verdict() -> None:
    failed = _report(failures=3)
    assert not failed.ok
    assert _report().ok
    text = report.markdown(failed, "")
    assert "**FAILED**" in text
    assert "| crash | SIGKILL in turn | 24 | 3 | 0 | 0 | 0 |" in text
    assert "LeadAnswered 42" in text


def test_table_cells_are_escaped() -> None:
    assert report._md(["a"], [["x | y\nz"]]).splitlines()[-1] == "| x \\| y z |"


def test_the_terminal_report_shows_the_same_figures() -> None:
    console = Console(record=True, width=200)
    console.print(report.renderable(_report(failures=1)))
    text = console.export_text()
    assert "Reliability campaign" in text
    assert "FAILED" in text
    assert "every event answered 202 is on its input topic" in text
    assert "201 s wall" in text


def test_the_soak_table_has_a_row_per_window_with_the_worst_of_each() -> None:
    samples = [soak.Sample(at_s=t, rss_mb={"api": 100.0 + t / 10, "passport": 80.0},
                           lag={"passport": float(t % 7)}, latency_ms=50.0 + t,
                           accepted=6 * t)
               for t in range(0, 600, 10)]
    rows = soak.windows(samples, kills_at=[30.0, 90.0, 400.0], window_s=300.0)
    assert [r["window"] for r in rows] == ["0-5 min", "5-10 min"]
    assert [r["kills"] for r in rows] == ["2", "1"]
    assert [r["events"] for r in rows] == [str(6 * 290), str(6 * 300)]
    assert rows[0]["api MB"] == "129"
    assert rows[1]["api MB"] == "159"
    assert rows[0]["latency max ms"] == "340"
    assert soak.flat(rows).failures == 0
    grown = [rows[0], {**rows[1], "api MB": "400"}]
    assert soak.flat(grown).failures == 1
    killed = [rows[0], {**rows[1], "latency max ms": "9000"}]  # a kill's: shown, not judged
    assert soak.flat(killed).failures == 0
    text = report.markdown(_report(soak_rows=tuple(rows)), "")
    assert "## Soak" in text
    assert f"| 5-10 min | {6 * 300} | 1 |" in text


def test_the_lag_is_read_from_a_processors_metrics() -> None:
    exposition = "\n".join([
        "# HELP passport_hub_consumer_lag_records lag",
        'passport_hub_consumer_lag_records{component="passport",topic="pn.training.v1"} 12.0',
        'passport_hub_consumer_lag_records{component="passport",topic="pn.enrolments.v1"} 3.0',
        'passport_hub_records_consumed_total{component="passport",topic="x"} 99.0'])
    assert soak.lag_of(exposition) == 15.0
    assert soak.rss_mb(None) == 0.0


def test_the_leaks_section_counts_per_kind_and_place_and_a_leak_fails_the_report() -> None:
    text = report.markdown(_report(), "")
    assert "## Leaks" in text
    assert "| kind | values injected | in logs | in metrics | in dead-letter headers |" in text
    assert "| webhook secret | 1 | 0 | 0 | 0 |" in text
    assert "| contact e-mail | 1 | 0 | 0 | 0 |" in text
    assert "| all | 2 | 0 | 0 | 0 |" in text
    assert "- Read: 1 log files (1 lines), 1 scrapes of /metrics (1 lines), " \
           "0 dead-letter headers. Control: the same scan found 0 contact values" in text
    assert _report().ok
    leaked = _report(leaks=_findings(f'{{"event": "webhook.sent", "secret": "{SECRET}"}}\n'))
    assert not leaked.ok  # even with every check of the verdicts passing
    text = report.markdown(leaked, "")
    assert "**FAILED**" in text
    assert "| webhook secret | 1 | 1 | 0 | 0 |" in text
    assert "- webhook secret (as sent) in logs: seed-kills/logs/crm_webhook.log:1" in text
    assert SECRET not in text  # where, never what
    console = Console(record=True, width=200)
    console.print(report.renderable(leaked))
    assert "Leaks (must be 0)" in console.export_text()
    assert SECRET not in console.export_text()
