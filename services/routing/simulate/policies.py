"""The knobs a what-if turns: weights, capacities, fallback, SLA and hops, as named policies.

A policy never re-implements routing: it changes the *inputs* of the real
core — the reseller profiles (weights, capacities) the ``Registry`` holds, the
``RoutingRules`` of the ``Router``, and which scopes the registry answers for
(the fallback) — and the production policy is the core's defaults.

Fallback: ``region`` (production: the département, then its région, then the
national queue); ``departement`` (alias ``departement-only``: straight from the
département to the national queue); ``national`` (the département, then the
région widened to the whole country: any reseller selling the category; the
core records such a decision with its rule ``region``; the queue only when
nobody in France may take the lead).

On the command line: ``--policy name:key=value,...`` with keys ``weight_scale``,
``weight.<reseller_id>``, ``capacity_scale``, ``fallback``,
``sla_business_days``, ``max_hops``; in a ``--policy-file``: a JSON list of
``{"name", "weight_scale", "weights": {id: n}, "capacity_scale", "fallback",
"sla_business_days", "max_hops"}``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

from hub.errors import HubError
from services.routing.registry import Registry, Reseller
from services.routing.router import RoutingRules

FALLBACKS = ("region", "departement", "national")
_ALIASES = {"departement-only": "departement", "département": "departement"}
_DEFAULTS = RoutingRules()


class PolicyError(HubError):
    """A policy the simulator cannot run (the message says which knob)."""


@dataclass(frozen=True, slots=True)
class Policy:
    """One what-if: the production policy with some knobs turned."""

    name: str = "production"
    weight_scale: float = 1.0
    weights: Mapping[str, int] = field(default_factory=dict)
    """Weight overrides by reseller id (after the scale)."""
    capacity_scale: float = 1.0
    fallback: str = "region"
    sla_business_days: int = _DEFAULTS.sla_business_days
    max_hops: int = _DEFAULTS.max_hops

    def rules(self) -> RoutingRules:
        return RoutingRules(max_hops=self.max_hops, sla_business_days=self.sla_business_days)

    def profile(self, reseller: Reseller) -> Reseller:
        """A reseller's profile under this policy (weights 1-100, as profiles allow)."""
        weight = self.weights.get(reseller.reseller_id,
                                  round(reseller.weight * self.weight_scale))
        capacity = round(reseller.capacity * self.capacity_scale)
        return replace(reseller, weight=min(100, max(1, weight)),
                       capacity=min(10_000, max(0, capacity)))

    def registry(self, resellers: Iterable[Reseller]) -> Registry:
        kinds: dict[str, type[Registry]] = {"region": Registry, "departement": _DepartementOnly,
                                             "national": _NationalFallback}
        kind = kinds[self.fallback]
        return kind.of(self.profile(r) for r in resellers)

    def describe(self) -> str:
        knobs = []
        for knob, value in (("weight_scale", self.weight_scale),
                            ("capacity_scale", self.capacity_scale),
                            ("fallback", self.fallback),
                            ("sla_business_days", self.sla_business_days),
                            ("max_hops", self.max_hops)):
            if value != getattr(PRODUCTION, knob):
                knobs.append(f"{knob}={value}")
        knobs.extend(f"weight.{i}={w}" for i, w in sorted(self.weights.items()))
        return ", ".join(knobs) or "production defaults"


PRODUCTION = Policy()


class _DepartementOnly(Registry):
    """No région step: from the département straight to the national queue."""

    __slots__ = ()

    def in_region(self, region: str, category: str) -> list[Reseller]:
        del region, category
        return []


class _NationalFallback(Registry):
    """The région step widened to every reseller in the country that sells the category."""

    __slots__ = ("_national",)

    def __init__(self) -> None:
        super().__init__()
        self._national: dict[str, list[Reseller]] = {}

    def put(self, reseller: Reseller) -> None:
        self._national.clear()
        super().put(reseller)

    def in_region(self, region: str, category: str) -> list[Reseller]:
        del region
        found = self._national.get(category)
        if found is None:
            found = self._national[category] = [self[i] for i in sorted(self)
                                                if category in self[i].categories]
        return found


def policy_of(values: Mapping[str, Any]) -> Policy:
    """A policy from its knobs (a policy file's entry, or a parsed ``--policy``)."""
    known = {"name", "weight_scale", "weights", "capacity_scale", "fallback",
             "sla_business_days", "max_hops"}
    unknown = set(values) - known
    if unknown:
        raise PolicyError(f"unknown policy knobs {sorted(unknown)} (known: {sorted(known)})")
    try:
        fallback = str(values.get("fallback", "region"))
        fallback = _ALIASES.get(fallback, fallback)
        policy = Policy(
            name=str(values.get("name", "production")),
            weight_scale=float(values.get("weight_scale", 1.0)),
            weights={str(k): int(v) for k, v in dict(values.get("weights") or {}).items()},
            capacity_scale=float(values.get("capacity_scale", 1.0)),
            fallback=fallback,
            sla_business_days=int(values.get("sla_business_days",
                                              _DEFAULTS.sla_business_days)),
            max_hops=int(values.get("max_hops", _DEFAULTS.max_hops)))
    except (TypeError, ValueError) as exc:
        raise PolicyError(f"policy {values.get('name', '?')}: {exc}") from exc
    if policy.fallback not in FALLBACKS:
        raise PolicyError(f"fallback {policy.fallback!r} is not one of {', '.join(FALLBACKS)}")
    if policy.weight_scale <= 0 or policy.capacity_scale < 0 or policy.max_hops < 0 \
            or policy.sla_business_days < 1:
        raise PolicyError(f"policy {policy.name}: scales must be positive, max_hops >= 0, "
                          "sla_business_days >= 1")
    return policy


def parse_policy(text: str) -> Policy:
    """``name:key=value,...`` (``weight.<id>=n`` overrides one reseller's weight)."""
    name, _, knobs = text.partition(":")
    values: dict[str, Any] = {"name": name.strip() or "production"}
    weights: dict[str, str] = {}
    for item in filter(None, (k.strip() for k in knobs.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise PolicyError(f"policy {name}: {item!r} is not key=value")
        if key.startswith("weight."):
            weights[key.removeprefix("weight.")] = value
        else:
            values[key.strip()] = value.strip()
    if weights:
        values["weights"] = weights
    return policy_of(values)


def read_policy_file(path: Path) -> list[Policy]:
    try:
        entries = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise PolicyError(f"{path}: {exc}") from exc
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise PolicyError(f"{path}: a JSON list of policies (objects) is expected")
    return [policy_of(entry) for entry in entries]
