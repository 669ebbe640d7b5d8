"""Prometheus text exposition, read back: the samples of one ``/metrics`` page, queried.

``passport-hub status`` (hub/status.py) reads every component's ``/metrics`` the way
Prometheus would, so what it shows is what the dashboard and the alert rules see
(docs/operations.md, Metrics). The text is parsed by prometheus_client's own parser:
the format has escaping and type rules that a hand-written reader would get wrong.

A metric that no component declares is ``None`` in every query here, not zero: the
terminal shows it as "—" ("not exposed"), where 0 means "exposed, and nothing yet".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

#: A label set reduced to the labels a query groups by, in the order asked.
Key = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Sample:
    """One line of an exposition: a sample name, its labels and its value."""

    name: str
    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True, slots=True)
class Exposition:
    """The samples of one ``/metrics`` page, and every sample name its families declare
    (a labelled counter with no child yet declares its name and has no sample)."""

    samples: tuple[Sample, ...]
    declared: frozenset[str]

    @classmethod
    def parse(cls, text: str) -> Exposition:
        """The page's samples (ValueError: not Prometheus text)."""
        samples: list[Sample] = []
        declared: set[str] = set()
        for family in text_string_to_metric_families(text):
            declared.add(family.name)
            if family.type == "counter":
                declared.add(family.name + "_total")
            for sample in family.samples:
                declared.add(sample.name)
                samples.append(Sample(sample.name, dict(sample.labels), float(sample.value)))
        return cls(tuple(samples), frozenset(declared))

    def total(self, name: str) -> float | None:
        """The sum of every sample of ``name`` (None: not declared here)."""
        grouped = self.by(name, ())
        return None if grouped is None else grouped.get((), 0.0)

    def by(self, name: str, labels: Iterable[str]) -> dict[Key, float] | None:
        """``sum by (labels) (name)``, as PromQL would (None: not declared here)."""
        if name not in self.declared:
            return None
        wanted = tuple(labels)
        out: dict[Key, float] = {}
        for sample in self.samples:
            if sample.name == name:
                key = tuple(sample.labels.get(label, "") for label in wanted)
                out[key] = out.get(key, 0.0) + sample.value
        return out


def merge(pages: Iterable[Exposition | None], name: str, labels: Iterable[str], *,
          replicated: bool = False) -> dict[Key, float] | None:
    """``name`` summed by ``labels`` over several components' pages (None: no page
    declares it).

    ``replicated``: the pages report the same series (a gauge every replica computes from
    the same source, such as the programme figures of N API instances, or a group's lag
    as each of its members reads it from the broker): a label set's value is its largest
    one, not the sum, so that two replicas do not double a figure.
    """
    wanted = tuple(labels)
    out: dict[Key, float] | None = None
    for page in pages:
        grouped = page.by(name, wanted) if page is not None else None
        if grouped is None:
            continue
        out = {} if out is None else out
        for key, value in grouped.items():
            if replicated:
                out[key] = max(out.get(key, value), value)
            else:
                out[key] = out.get(key, 0.0) + value
    return out
