"""docs/operations.md, the operator's runbook, is held to the code it describes.

Every alert of deploy/prometheus/rules has its ``### Alert: <name>`` section, the anchor
its ``runbook_url`` points at; every metric the hub exposes (tests/promql.py) has its row
in the metrics table, with its type, and no row names a metric that does not exist; every
catalog topic has its row with who writes and reads it; every setting of hub/config.py is
named and no other ``PASSPORT_HUB_*``; every ``passport-hub …`` command line written in
the doc is one the CLI accepts, with its flags; every relative link leads to a file (and
heading) that exists. Each check is a function of the text, so that the tests below can
also show it failing on a doc broken on purpose.
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from pydantic import AliasChoices

from hub import cli
from hub.config import Settings
from schemas.catalog import CATALOG, Topic
from tests import promql

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "operations.md"
TEXT = DOC.read_text(encoding="utf-8")

# -- markdown ---------------------------------------------------------------------------------

_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
_SPAN = re.compile(r"`([^`\n]+)`")


def prose(text: str) -> str:
    """The text without its fenced code blocks (their `# comments` are no headings)."""
    return _FENCE.sub("", text)


def headings(text: str) -> list[str]:
    return [line.lstrip("#").strip() for line in prose(text).splitlines()
            if re.match(r"#{1,6} ", line)]


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading's anchor (a repeated heading gets -1, -2, … as on GitHub)."""
    seen: dict[str, int] = {}
    found = set()
    for heading in headings(text):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def code(text: str) -> Iterator[str]:
    """Every line of the fenced blocks, and every inline code span outside them."""
    for block in _FENCE.findall(text):
        yield from block.splitlines()
    yield from _SPAN.findall(prose(text))


# -- alerts -----------------------------------------------------------------------------------

_ALERT_HEADING = "Alert: "


def alert_problems(text: str, alerts: Iterable[dict[str, Any]]) -> list[str]:
    """Alerts without their exact section, sections of no alert, and runbook URLs that do not
    point at their section."""
    names = [str(alert["alert"]) for alert in alerts]
    sections = {heading.removeprefix(_ALERT_HEADING) for heading in headings(text)
                if heading.startswith(_ALERT_HEADING)}
    exact = {line[len("### " + _ALERT_HEADING):].strip() for line in prose(text).splitlines()
             if line.startswith("### " + _ALERT_HEADING)}
    problems = [f"no `### {_ALERT_HEADING}{name}` section" for name in names
                if name not in exact]
    problems += [f"section {_ALERT_HEADING}{name} names no alert"
                 for name in sorted(sections - set(names))]
    found = anchors(text)
    for alert in alerts:
        url = str(alert.get("annotations", {}).get("runbook_url", ""))
        page, _, fragment = url.partition("#")
        if page != "docs/operations.md" or fragment not in found:
            problems.append(f"{alert['alert']}: runbook_url {url!r} leads to no section")
    return problems


# -- metrics ----------------------------------------------------------------------------------

_METRIC_ROW = re.compile(r"^\| `(passport_hub_\w+)` \| (\w+) \|", re.MULTILINE)


def exposed_types() -> dict[str, str]:
    """Every metric the hub exposes (histograms by their base name), with its type."""
    kinds = (("counter", promql.COUNTERS), ("gauge", promql.GAUGES),
             ("histogram", promql.HISTOGRAMS))
    types = {name: kind for kind, names in kinds for name in names}
    histogram_series = {f"{name}_{suffix}" for name in promql.HISTOGRAMS
                        for suffix in ("bucket", "sum", "count")}
    assert set(types) | histogram_series == promql.EXPOSED | set(promql.HISTOGRAMS)
    return types


def metric_problems(text: str, exposed: dict[str, str]) -> list[str]:
    """Metrics without their table row (or with the wrong type), and rows of no metric."""
    rows = dict(_METRIC_ROW.findall(text))
    problems = [f"{name}: no row `| `{name}` | {kind} |` in the metrics table"
                for name, kind in sorted(exposed.items()) if rows.get(name) != kind]
    problems += [f"{name}: a row, but the hub exposes no such metric"
                 for name in sorted(set(rows) - set(exposed))]
    return problems


# -- topics -----------------------------------------------------------------------------------


def topic_row(topic: Topic) -> str:
    """The topic table's row: layout (tests/unit/test_docs.py checks it too), then who
    writes and who reads it, as the catalog says."""
    return (f"| `{topic.name}` | {topic.key} | {topic.partitions} | "
            f"{'yes' if topic.compacted else 'no'} | {', '.join(topic.writers)} | "
            f"{', '.join(topic.readers)} |")


def topic_problems(text: str, topics: Iterable[Topic]) -> list[str]:
    lines = set(text.splitlines())
    return [f"{topic.name}: no row {topic_row(topic)!r}" for topic in topics
            if topic_row(topic) not in lines]


# -- settings ---------------------------------------------------------------------------------

_VARIABLE = re.compile(r"\b(?:PASSPORT_HUB_[A-Z0-9_]*[A-Z0-9]|KAFKA_BOOTSTRAP_SERVERS)\b")


def setting_names() -> set[str]:
    """The environment name of every setting (its first alias, else prefix + name)."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    names = set()
    for field, info in Settings.model_fields.items():
        alias = info.validation_alias
        names.add(str(alias.choices[0]) if isinstance(alias, AliasChoices)
                  else f"{prefix}{field}".upper())
    return names


def setting_problems(text: str, settings: set[str]) -> list[str]:
    named = set(_VARIABLE.findall(text))
    return ([f"{name}: a setting the doc never names" for name in sorted(settings - named)]
            + [f"{name}: named in the doc, but no such setting"
               for name in sorted(named - settings)])


# -- commands ---------------------------------------------------------------------------------

# `passport-hub` starting a command line (not `passport-hub.env`, `job="passport-hub"`,
# `--namespace=passport-hub`), possibly as `.venv/bin/passport-hub`.
_COMMAND = re.compile(r"(?<![\w.=/\"'-])(?:\.venv/bin/)?passport-hub[ \t]+(?=[a-z])")
# Where a shell line goes on to another command, or a comment.
_END = re.compile(r"(?<!\\)\||&&|;|\s#|\s[<>]|\s2>")
_WORD = re.compile(r"[A-Za-z0-9_][\w.:…/@+-]*")
_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z-]*")


def commands(text: str) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """Every ``passport-hub`` command line in the doc's code: its leading words (the
    subcommands and positionals) and the flags it uses."""
    found = []
    for line in code(text):
        for match in _COMMAND.finditer(line):
            rest = _END.split(line[match.end():], maxsplit=1)[0]
            words: list[str] = []
            for token in rest.split():
                if not _WORD.fullmatch(token):
                    break
                words.append(token)
            found.append((tuple(words), tuple(_FLAG.findall(rest))))
    return found


@cache
def usage(words: tuple[str, ...]) -> tuple[int, str]:
    """What ``passport-hub <words> --help`` exits with and prints: the top-level parser
    (``cli._parser``) for the hub's own commands, the module's own for a delegated one
    (``cli.delegated``), run in-process as ``passport-hub`` runs it."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        target = cli.delegated(list(words))
        if target is None:
            try:
                cli._parser().parse_args([*words, "--help"])
                status = 0
            except SystemExit as exc:
                status = exc.code if isinstance(exc.code, int) else 1
        else:
            module, argv = target
            with warnings.catch_warnings():
                # runpy warns when the module was imported earlier in this test session.
                warnings.simplefilter("ignore", RuntimeWarning)
                status = cli._delegate(module, [*argv, "--help"])
    return status, out.getvalue()


def command_problems(text: str) -> list[str]:
    problems = []
    for words, flags in commands(text):
        line = " ".join(("passport-hub", *words))
        if not words:
            problems.append(f"{line}: no subcommand")
            continue
        status, shown = usage(words)
        if status != 0:
            problems.append(f"{line}: not a command ({shown.strip().splitlines()[-1:]})")
            continue
        problems += [f"{line}: no option {flag}" for flag in flags
                     if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", shown)]
    return problems


# -- links ------------------------------------------------------------------------------------

_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def link_problems(text: str, base: Path) -> list[str]:
    """Relative links whose file does not exist, or whose #anchor is no heading there."""
    problems = []
    for target in _LINK.findall(prose(text)):
        if re.match(r"[a-z]+:", target):
            continue  # http:, https:, mailto:
        path, _, fragment = target.partition("#")
        file = (base / path).resolve() if path else None
        if file is not None and not file.exists():
            problems.append(f"{target}: no such file")
            continue
        if fragment and (file is None or file.suffix == ".md"):
            page = text if file is None else file.read_text(encoding="utf-8")
            if fragment not in anchors(page):
                problems.append(f"{target}: no such heading")
    return problems


# -- the doc as it is -------------------------------------------------------------------------


def test_every_alert_has_its_section_and_its_runbook_url_leads_there() -> None:
    alerts = promql.alerts()
    assert alerts, "the rules define alerts"
    assert alert_problems(TEXT, alerts) == []


def test_every_exposed_metric_has_its_row_and_every_row_is_exposed() -> None:
    assert metric_problems(TEXT, exposed_types()) == []


def test_every_catalog_topic_has_its_row_with_writers_and_readers() -> None:
    assert topic_problems(TEXT, CATALOG) == []


def test_every_setting_is_named_and_only_settings_are() -> None:
    assert setting_problems(TEXT, setting_names()) == []


def test_every_command_written_is_one_the_cli_accepts() -> None:
    found = commands(TEXT)
    assert {words[0] for words, _ in found if words} >= {"status", "dlq", "deliveries", "run"}
    assert command_problems(TEXT) == []


def test_every_relative_link_leads_somewhere() -> None:
    assert _LINK.search(TEXT), "the doc links to others"
    assert link_problems(TEXT, DOC.parent) == []


# -- each check bites -------------------------------------------------------------------------


def test_a_missing_or_misspelt_alert_section_is_caught() -> None:
    name = str(promql.alerts()[0]["alert"])
    renamed = TEXT.replace(f"### Alert: {name}\n", f"### Alert: {name}X\n")
    problems = alert_problems(renamed, promql.alerts())
    assert f"no `### Alert: {name}` section" in problems
    assert f"section Alert: {name}X names no alert" in problems
    assert any(problem.startswith(f"{name}: runbook_url") for problem in problems)
    demoted = TEXT.replace(f"### Alert: {name}\n", f"#### Alert: {name}\n")
    assert f"no `### Alert: {name}` section" in alert_problems(demoted, promql.alerts())


def test_a_missing_metric_a_wrong_type_and_an_unknown_metric_are_caught() -> None:
    broken = (TEXT.replace("| `passport_hub_ready` | gauge |", "| `passport_hub_ready` | counter |")
              .replace("| `passport_hub_build_info` |", "| `passport_hub_built_info` |"))
    assert metric_problems(broken, exposed_types()) == [
        "passport_hub_build_info: no row `| `passport_hub_build_info` | gauge |` in the "
        "metrics table",
        "passport_hub_ready: no row `| `passport_hub_ready` | gauge |` in the metrics table",
        "passport_hub_built_info: a row, but the hub exposes no such metric",
    ]


def test_a_topic_row_with_the_wrong_readers_is_caught() -> None:
    leads = next(topic for topic in CATALOG if topic.name == "pn.leads.v1")
    broken = TEXT.replace(topic_row(leads), topic_row(leads).replace("crm_webhook, ", ""))
    assert topic_problems(broken, CATALOG) == [f"pn.leads.v1: no row {topic_row(leads)!r}"]


def test_a_setting_left_out_and_a_setting_made_up_are_caught() -> None:
    broken = re.sub(r"PASSPORT_HUB_WEBHOOK_PER_ENDPOINT\b", "PASSPORT_HUB_WEBHOOK_PER_HOST", TEXT)
    assert setting_problems(broken, setting_names()) == [
        "PASSPORT_HUB_WEBHOOK_PER_ENDPOINT: a setting the doc never names",
        "PASSPORT_HUB_WEBHOOK_PER_HOST: named in the doc, but no such setting",
    ]


@pytest.mark.parametrize(("line", "problem"), [
    ("`passport-hub frobnicate`", "passport-hub frobnicate: not a command"),
    ("`passport-hub run nothing`", "passport-hub run nothing: not a command"),
    ("`passport-hub dlq purge --all`", "passport-hub dlq purge: not a command"),
    ("```sh\n.venv/bin/passport-hub dlq list --stages apply  # a typo\n```",
     "passport-hub dlq list: no option --stages"),
    ("`passport-hub status --follow`", "passport-hub status: no option --follow"),
    ("`passport-hub deliveries replay --reseller R --from T`",
     "passport-hub deliveries replay: no option --from"),
])
def test_a_command_or_an_option_the_cli_lacks_is_caught(line: str, problem: str) -> None:
    problems = command_problems(f"{TEXT}\n{line}\n")
    assert len(problems) == 1, problems
    assert problems[0].startswith(problem), problems


def test_words_that_are_not_commands_are_not_taken_for_commands() -> None:
    text = ("`passport-hub.env`, `job=\"passport-hub\"`, "
            "`kubectl --namespace=passport-hub get pods`, `passport-hub.passport`")
    assert commands(text) == []


def test_a_link_to_a_missing_file_or_heading_is_caught() -> None:
    broken = f"{TEXT}\n[a](nowhere.md) [b](#no-such-heading) [c](routing.md#no-such-heading)\n"
    assert link_problems(broken, DOC.parent) == [
        "nowhere.md: no such file", "#no-such-heading: no such heading",
        "routing.md#no-such-heading: no such heading"]
