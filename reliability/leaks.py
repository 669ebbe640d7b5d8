"""The leak scan (pure): every secret and contact value a run injected, looked for in texts.

The campaign knows each value it handed the hub (API keys, webhook signing secrets, the
hub's sealing key, the businesses' contact e-mails, phones and names); the hub must
never write one of them where operators look (CONVENTIONS 9: "no contact details or
secrets ever"): a log line, a metric, a dead letter's headers. ``scan`` looks for
each value in every text, in the forms a careless log call would give it: as sent, in
any case, URL-encoded, JSON-escaped (the JSON logs write ``é`` as ``\\u00e9``), a
signing secret without its ``whsec_`` prefix, a phone in its national forms. It
reports where each was found, never the value itself: the report is published.

All the values go into one regular expression shaped as a trie (a value's prefix is
tried once for every value that shares it), so a text is read once whatever the
number of values.
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, quote_plus

from connectors.crm_webhook.signing import PREFIX as SECRET_PREFIX

#: The kinds of injected value, in the report's order.
KINDS = ("API key", "webhook secret", "webhook secret key", "contact e-mail", "contact phone",
         "contact name")
#: Where the hub's operators read: every text scanned comes from one of them.
PLACES = ("logs", "metrics", "dead-letter headers")
#: Fields of the plan's events that hold a contact datum, and its kind.
CONTACT_FIELDS = {"contact_email": "contact e-mail", "contact_phone": "contact phone",
                  "contact_name": "contact name"}
#: Forms shorter than this are not looked for (they would match by chance).
MIN_LENGTH = 6
#: Leaks named in full (the rest are counted).
EXAMPLES = 20
#: Kinds whose forms are digits: found only between non-alphanumerics, so a phone does not
#: match inside a longer number.
_BOUNDED = frozenset({"contact phone"})
_ALNUM = frozenset(string.ascii_letters + string.digits)
_END = ""


@dataclass(frozen=True, slots=True)
class Secret:
    """One value the campaign injected."""

    kind: str
    value: str


@dataclass(frozen=True, slots=True)
class Text:
    """One text the hub wrote: a log file, a scrape of /metrics, a dead letter's header."""

    place: str
    """One of ``PLACES``."""
    source: str
    """Which one: ``run/logs/api.log``, ``run: passport /metrics``, ``run: pn.dlq.v1 1:42
    dlq.error.message``."""
    text: str
    lines: int = 1
    """How many lines it counts as (a log file: its lines), for the report's totals."""


@dataclass(frozen=True, slots=True)
class Leak:
    """One occurrence of an injected value (never the value: where, and in which form)."""

    kind: str
    form: str
    place: str
    where: str
    """The source, and the line in it when the text has several."""


@dataclass
class Findings:
    """A scan's result: what was looked for, in how much, and what was found where."""

    injected: Counter[str] = field(default_factory=Counter)
    """Kind → distinct values looked for."""
    scanned: Counter[str] = field(default_factory=Counter)
    """Place → lines (log lines, metric lines, dead-letter headers) read."""
    sources: Counter[str] = field(default_factory=Counter)
    """Place → texts read (log files, scrapes, dead-letter headers)."""
    found: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(kind, place) → occurrences."""
    leaks: list[Leak] = field(default_factory=list)
    """The first ``EXAMPLES`` occurrences."""
    unscanned: list[str] = field(default_factory=list)
    """What could not be read (a scrape that failed): a scan that did not look is no pass."""
    control: int = 0
    """Occurrences the same scan found where the values belong (the contact e-mails in the
    webhooks the CRMs received): none would mean a scan blind to the hub's own forms."""

    @property
    def total(self) -> int:
        return sum(self.found.values())

    @property
    def ok(self) -> bool:
        return self.total == 0 and not self.unscanned

    def add(self, other: Findings) -> None:
        """Another run's findings, summed into these."""
        self.injected.update(other.injected)
        self.scanned.update(other.scanned)
        self.sources.update(other.sources)
        self.found.update(other.found)
        self.leaks += other.leaks[:max(0, EXAMPLES - len(self.leaks))]
        self.unscanned += other.unscanned
        self.control += other.control


def forms(secret: Secret) -> dict[str, str]:
    """The forms of a value that are looked for, by name (case aside: matching ignores it)."""
    value = secret.value
    out = {"as sent": value, "URL-encoded": quote(value, safe=""),
           "URL-encoded (+)": quote_plus(value, safe=""),
           "JSON-escaped": json.dumps(value)[1:-1]}
    if secret.kind == "webhook secret" and value.startswith(SECRET_PREFIX):
        out["without its prefix"] = value.removeprefix(SECRET_PREFIX)
    if secret.kind == "contact phone" and value.startswith("+33") and len(value) == 12:
        national = "0" + value[3:]
        out["national"] = national
        out["national, spaced"] = " ".join(national[i:i + 2] for i in range(0, 10, 2))
    unique: dict[str, str] = {}
    for name, text in out.items():
        if len(text) >= MIN_LENGTH and text not in unique.values():
            unique[name] = text
    return unique


def secrets_of(events: Iterable[Any]) -> list[Secret]:
    """The contact values the events carry (``CONTACT_FIELDS``, whatever the event type)."""
    out: list[Secret] = []
    for event in events:
        for name, kind in CONTACT_FIELDS.items():
            value = getattr(event, name, None)
            if isinstance(value, str) and value:
                out.append(Secret(kind, value))
    return out


class Scanner:
    """Every form of every secret, compiled once; ``scan`` then reads any number of texts."""

    def __init__(self, secrets: Iterable[Secret]) -> None:
        self.injected: Counter[str] = Counter()
        # Lower-cased form → the (kind, form name, form) it stands for.
        self._forms: dict[str, set[tuple[str, str, str]]] = {}
        bounded: set[str] = set()
        plain: set[str] = set()
        for secret in set(secrets):
            self.injected[secret.kind] += 1
            for name, text in forms(secret).items():
                key = text.lower()
                self._forms.setdefault(key, set()).add((secret.kind, name, text))
                (bounded if secret.kind in _BOUNDED else plain).add(key)
        self._tries = [(_alternation(words), words is bounded) for words in (plain, bounded)
                       if words]
        self._compiled: dict[tuple[str, int], re.Pattern[str]] = {}

    def scan(self, texts: Iterable[Text], unscanned: Iterable[str] = (),
             control: Iterable[Text] = ()) -> Findings:
        """Where each injected value occurs in ``texts`` (``unscanned``: what could not be
        read, carried into the findings; ``control``: texts that must hold some)."""
        findings = Findings(injected=Counter(self.injected), unscanned=list(unscanned),
                            control=sum(1 for text in control for _ in self._find(text)))
        for text in texts:
            findings.scanned[text.place] += text.lines
            findings.sources[text.place] += 1
            for leak in self._find(text):
                findings.found[(leak.kind, leak.place)] += 1
                if len(findings.leaks) < EXAMPLES:
                    findings.leaks.append(leak)
        return findings

    def _find(self, text: Text) -> Iterator[Leak]:
        """The leaks of one text, in the order they occur in it."""
        for start, end in sorted(self._spans(text.text)):
            found = text.text[start:end]
            where = text.source
            if "\n" in text.text:
                where += f":{text.text.count(chr(10), 0, start) + 1}"
            for kind, name, form in sorted(self._forms.get(found.lower(), ())):
                yield Leak(kind, _case(name, form, found), text.place, where)

    def _spans(self, text: str) -> Iterator[tuple[int, int]]:
        """Where the forms are in ``text`` (matched lower-cased: several times faster than
        ignoring case, and the same wherever lower-casing keeps every position)."""
        lowered, flags = text.lower(), 0
        if len(lowered) != len(text):  # a character that lower-cases to two: the slow way
            lowered, flags = text, re.IGNORECASE
        for trie, bounded in self._tries:
            pattern = self._compiled.get((trie, flags))
            if pattern is None:
                pattern = self._compiled[(trie, flags)] = re.compile(trie, flags)
            for match in pattern.finditer(lowered):
                start, end = match.span()
                if bounded and ((start > 0 and lowered[start - 1] in _ALNUM)
                                or (end < len(lowered) and lowered[end] in _ALNUM)):
                    continue  # digits inside a longer number: not this phone
                yield start, end


def scan(texts: Iterable[Text], secrets: Iterable[Secret]) -> Findings:
    """``Scanner(secrets).scan(texts)``: the one-shot form."""
    return Scanner(secrets).scan(texts)


def _case(name: str, form: str, found: str) -> str:
    """The form's name, saying so when it was found in another case than sent."""
    if found == form:
        return name
    return f"{name}, lower-case" if found == form.lower() else f"{name}, other case"


def _alternation(words: Iterable[str]) -> str:
    """A regular expression matching any of ``words``, built as a trie, longest first."""
    root: dict[str, Any] = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[_END] = {}
    return _branch(root) if root else ""


def _branch(node: dict[str, Any]) -> str:
    branches = []
    for first in sorted(k for k in node if k != _END):
        child, text = node[first], re.escape(first)
        while len(child) == 1 and _END not in child:  # a chain: one way on, no word ends
            ((char, child),) = child.items()
            text += re.escape(char)
        branches.append(text + _branch(child))
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    if _END in node:  # a word may end here, or go on (greedy: the longer one first)
        return f"(?:{body})?"
    return body
