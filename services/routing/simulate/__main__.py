"""``passport-hub routing simulate``: replay leads under one or more policies, side by side.

Prints a table per policy (with a progress bar while replaying) and writes the
HTML report. Exit codes: 0 done, 2 bad arguments or unreadable inputs.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from hub.errors import HubError
from hub.service import tuned_gc
from services.routing.simulate import inputs as sources
from services.routing.simulate import report
from services.routing.simulate.answers import AnswerModel
from services.routing.simulate.inputs import Inputs
from services.routing.simulate.policies import (
    PRODUCTION,
    Policy,
    parse_policy,
    read_policy_file,
)
from services.routing.simulate.population import Programme, synthetic_year
from services.routing.simulate.replay import Replay
from services.routing.simulate.table import progress_bar, summary_table

DEFAULT_REPORT = Path("routing-simulation.html")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="passport-hub routing simulate",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="What if: replay lead requests and answers through the real router "
                    "under one or more policies, on a simulated clock, and compare shares, "
                    "SLA breaches, hops and the national queue.",
        epilog=_epilog())
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--synthetic", action="store_true",
                        help="generate a programme year (see --businesses, --seed)")
    source.add_argument("--jsonl", type=Path, metavar="FILE",
                        help="a recording: one JSON object a line (format below)")
    source.add_argument("--from-topics", action="store_true",
                        help="read pn.resellers.v1, pn.lead-requests.v1 and "
                             "pn.lead-responses.v1 of the hub at KAFKA_BOOTSTRAP_SERVERS")
    parser.add_argument("--businesses", type=int, default=150_000,
                        help="synthetic year: businesses (a third ask for an offer)")
    parser.add_argument("--requests", type=int, default=None,
                        help="synthetic year: lead requests (default: businesses / 3)")
    parser.add_argument("--resellers", type=int, default=650,
                        help="synthetic year: resellers")
    parser.add_argument("--seed", type=int, default=2027,
                        help="seed of the synthetic year and of the answer model")
    parser.add_argument("--policy", action="append", default=[], metavar="NAME:K=V,...",
                        help="a policy to replay (repeatable); knobs: weight_scale, "
                             "weight.<reseller_id>, capacity_scale, fallback "
                             "(region|departement|national), sla_business_days, max_hops")
    parser.add_argument("--policy-file", type=Path, action="append", default=[],
                        metavar="F.json", help="a JSON list of policies (same knobs)")
    parser.add_argument("--report", type=Path, default=DEFAULT_REPORT, metavar="FILE.html",
                        help=f"where to write the HTML report (default {DEFAULT_REPORT})")
    return parser


def _epilog() -> str:
    doc = sources.__doc__ or ""
    return ("Without --policy or --policy-file the production policy runs (the router's "
            "defaults).\n\n" + doc[doc.index("JSONL format"):]
            + "\nAnswers: " + _replay_rule())


def _replay_rule() -> str:
    return ("recorded answers are replayed when the simulated holder of a lead is the "
            "reseller that gave them; otherwise the seeded answer model answers for the "
            "simulated holder.")


def _policies(args: argparse.Namespace) -> list[Policy]:
    policies = [parse_policy(text) for text in args.policy]
    for path in args.policy_file:
        policies.extend(read_policy_file(path))
    policies = policies or [PRODUCTION]
    names = [p.name for p in policies]
    if len(set(names)) != len(names):
        raise HubError(f"policy names must differ: {names}")
    return policies


def _inputs(args: argparse.Namespace) -> Inputs:
    if args.jsonl is not None:
        return sources.read_jsonl(args.jsonl)
    if args.from_topics:
        return sources.read_topics()
    return synthetic_year(Programme(businesses=args.businesses, requests=args.requests,
                                    resellers=args.resellers, seed=args.seed))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    console = Console(stderr=False)
    started = time.perf_counter()
    try:
        policies = _policies(args)
        inputs = _inputs(args)
    except (HubError, OSError) as exc:
        console.print(f"[red]routing simulate: {exc}[/red]")
        return 2
    loaded = time.perf_counter() - started
    console.print(f"inputs: {inputs.source}: {len(inputs.resellers):,} resellers, "
                  f"{len(inputs.requests):,} lead requests, {len(inputs.answers):,} recorded "
                  f"answers, {inputs.skipped:,} records skipped ({loaded:.1f} s)")
    model = AnswerModel(seed=args.seed)
    summaries = []
    # The inputs live to the end: frozen out of the collector's scans (~15% of a replay).
    with tuned_gc():
        for policy in policies:
            with progress_bar(console, policy.name) as progress:
                summaries.append(Replay(inputs, policy, model).run(progress))
    console.print(summary_table(summaries))
    written = report.write(args.report, summaries, source=inputs.source)
    console.print(f"report: {written.resolve()}")
    console.print(f"elapsed: {time.perf_counter() - started:.1f} s "
                  f"(inputs {loaded:.1f} s, replays "
                  f"{sum(s.elapsed_s for s in summaries):.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
