"""``python -m reliability [--long]``: the crash campaign, its report, docs/reliability.md.

Exit status: 0 when nothing was lost, doubled, let through or diverged and no key, secret
or contact value leaked into a log, a metric or a dead letter; 1 otherwise; 2 when the
campaign could not run (a hub that never came up).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from reliability import campaign, soak, suites
from reliability.leaks import Findings
from reliability.report import Campaign, Report, markdown, renderable

#: The long campaign: this many plans of ``--kills`` kills each (>= 200 in all), then the soak.
LONG_ROUNDS = 8
LONG_KILLS = 26


def _arguments(argv: Sequence[str]) -> argparse.Namespace:
    defaults = campaign.Settings()
    parser = argparse.ArgumentParser(
        prog="python -m reliability",
        description="Kill every hub component at random moments during a realistic flow, "
                    "then check that nothing was lost, doubled or let through.")
    parser.add_argument("--long", action="store_true",
                        help=f"{LONG_ROUNDS} plans of {LONG_KILLS} kills, then the soak")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--businesses", type=int, default=defaults.businesses)
    parser.add_argument("--resellers", type=int, default=defaults.resellers)
    parser.add_argument("--background", type=int, default=defaults.background,
                        help="businesses of steady traffic sent along the phases")
    parser.add_argument("--kills", type=int, help=f"kills per plan (default {defaults.kills})")
    parser.add_argument("--rounds", type=int, help="plans to play (default 1; --long: "
                        f"{LONG_ROUNDS})")
    parser.add_argument("--soak-minutes", type=float,
                        help=f"the soak's length (--long: {soak.MINUTES:g}; 0: no soak)")
    parser.add_argument("--soak-window", type=float, default=soak.WINDOW_MINUTES,
                        help="minutes per line of the soak's table")
    parser.add_argument("--kill-every", type=float, default=soak.KILL_EVERY_S,
                        help="seconds between two kills of the soak")
    parser.add_argument("--no-suites", action="store_true",
                        help="skip the campaigns that are test suites (hostile input, auth "
                             "matrix, poison, erasure, full store, broker faults, zombies)")
    parser.add_argument("--report", type=Path, default=Path("docs/reliability.md"),
                        help="where the Markdown report goes (default docs/reliability.md)")
    parser.add_argument("--no-report", action="store_true", help="print only")
    parser.add_argument("--work-dir", type=Path, help="keep the runs' logs and stores here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _arguments(argv)
    console = Console()
    if not console.is_terminal:  # a CI log or a pipe: tables as wide as they need
        console = Console(width=160)
    started = time.monotonic()

    def say(line: str) -> None:
        console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {line}", highlight=False)

    settings = campaign.Settings(
        seed=args.seed, businesses=args.businesses, resellers=args.resellers,
        background=args.background,
        kills=args.kills if args.kills is not None else (
            LONG_KILLS if args.long else campaign.Settings().kills),
        rounds=args.rounds if args.rounds is not None else (LONG_ROUNDS if args.long else 1),
        work_dir=args.work_dir)
    try:
        outcome = campaign.run(settings, say)
        soaked = None
        minutes = args.soak_minutes if args.soak_minutes is not None else (
            soak.MINUTES if args.long else 0.0)
        if minutes > 0:
            soaked = soak.run(soak.Settings(minutes=minutes, window_minutes=args.soak_window,
                                            kill_every_s=args.kill_every, seed=args.seed,
                                            resellers=args.resellers, work_dir=args.work_dir),
                              say)
    except RuntimeError as exc:
        console.print(f"[red]the campaign could not run: {exc}[/red]")
        return 2
    ran_suites = () if args.no_suites else tuple(suites.run(say))
    campaigns = [Campaign("crash", campaign.TRIED, sum(outcome.kills.values()), outcome.crash),
                 Campaign("crash-free reference", "the same plans, no kill", 0,
                          outcome.reference)] if settings.rounds else []
    if soaked is not None:
        campaigns.append(Campaign("soak", soaked.tried, soaked.kills, soaked.verdict))
    findings = Findings()
    findings.add(outcome.leaks)
    if soaked is not None:
        findings.add(soaked.leaks)
    report = Report(
        command=" ".join(["python -m reliability", *map(shlex.quote, argv)]),
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), broker=outcome.broker,
        wall_s=time.monotonic() - started, inputs=dict(outcome.inputs),
        campaigns=tuple(campaigns), kills=outcome.kills, kills_up=outcome.kills_up,
        reference=outcome.reference, soak=tuple(soaked.rows) if soaked else (),
        notes=tuple(outcome.notes[:20]), runs=tuple(outcome.runs),
        leaks=findings if campaigns else None, suites=ran_suites)
    console.print(renderable(report))
    if not args.no_report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(markdown(report, campaign.METHOD), encoding="utf-8")
        console.print(f"report written to {args.report}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
