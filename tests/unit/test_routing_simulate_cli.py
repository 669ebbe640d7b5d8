"""The simulator's command line, its policies and its report (no broker, no browser)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from services.routing.simulate.__main__ import main
from services.routing.simulate.inputs import collect_records
from services.routing.simulate.policies import (
    PRODUCTION,
    PolicyError,
    parse_policy,
    policy_of,
    read_policy_file,
)
from services.routing.simulate.population import Programme, synthetic_year
from tests.unit.test_routing_simulate_replay import TINY


def test_a_policy_option_sets_its_knobs() -> None:
    policy = parse_policy("wide: fallback=national, capacity_scale=1.5, weight.a=7, max_hops=3")
    assert policy.name == "wide"
    assert policy.fallback == "national"
    assert policy.capacity_scale == 1.5
    assert policy.weights == {"a": 7}
    assert policy.rules().max_hops == 3
    assert parse_policy("x:fallback=departement-only").fallback == "departement"
    assert PRODUCTION.rules() == parse_policy("production").rules()
    assert PRODUCTION.describe() == "production defaults"
    assert "weight.a=7" in policy.describe()


@pytest.mark.parametrize(("text", "error"), [
    ("x:colour=red", "unknown policy knobs"),
    ("x:fallback=planet", "fallback 'planet'"),
    ("x:max_hops", "not key=value"),
    ("x:capacity_scale=lots", "could not convert"),
    ("x:weight_scale=0", "scales must be positive"),
])
def test_a_bad_policy_says_which_knob(text: str, error: str) -> None:
    with pytest.raises(PolicyError, match=re.escape(error)):
        parse_policy(text)


def test_profiles_under_a_policy_stay_within_what_profiles_allow() -> None:
    resellers = synthetic_year(Programme(businesses=300, seed=1)).resellers
    heavy = policy_of({"weight_scale": 50, "capacity_scale": 0.1, "weights": {"reseller-001": 0}})
    registry = heavy.registry(resellers)
    assert all(1 <= r.weight <= 100 for r in registry.values())
    assert registry["reseller-001"].weight == 1  # clamped
    assert all(r.capacity == round(o.capacity * 0.1) for r, o in zip(
        (registry[o.reseller_id] for o in resellers), resellers, strict=True))
    assert policy_of({"fallback": "departement"}).registry(resellers).in_region(
        "11", "e-commerce") == []
    national = policy_of({"fallback": "national"}).registry(resellers)
    assert len(national.in_region("11", "e-commerce")) == sum(
        "e-commerce" in r.categories for r in resellers) > 0


def test_a_policy_file_is_a_list(tmp_path: Path) -> None:
    path = tmp_path / "policies.json"
    path.write_text(json.dumps([{"name": "a"}, {"name": "b", "sla_business_days": 3}]))
    assert [p.sla_business_days for p in read_policy_file(path)] == [2, 3]
    path.write_text(json.dumps({"name": "a"}))
    with pytest.raises(PolicyError, match="a JSON list"):
        read_policy_file(path)


def test_topic_records_become_inputs_and_bad_ones_are_skipped() -> None:
    good = {"reseller_id": "a", "name": "A", "departements": ["78"],
            "categories": ["e-commerce"], "capacity": 3, "weight": 1}
    inputs = collect_records([("ResellerProfile", good),
                              ("ResellerProfile", {**good, "reseller_id": "b",
                                                   "departements": ["0"]}),
                              ("PassportSnapshot", {}), ("LeadRequested", {"lead_id": "x"})],
                             source="test")
    assert [r.reseller_id for r in inputs.resellers] == ["a"]
    assert inputs.skipped == 3


def test_the_command_replays_two_policies_and_writes_a_self_contained_report(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recording = tmp_path / "leads.jsonl"
    recording.write_text("\n".join(TINY) + "\n")
    policies = tmp_path / "policies.json"
    policies.write_text(json.dumps([{"name": "b-heavy", "weights": {"b": 3}}]))
    report = tmp_path / "out" / "sim.html"
    code = main(["--jsonl", str(recording), "--policy", "production",
                 "--policy-file", str(policies), "--report", str(report)])
    out = capsys.readouterr().out
    assert code == 0
    assert "b-heavy" in out
    assert "production" in out
    assert "elapsed:" in out
    page = report.read_text()
    assert page.count("<svg") == 6  # 3 charts x 2 policies
    assert "<script" not in page
    assert not re.search(r"""(src|href)=["']?https?:""", page)


def test_bad_arguments_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--jsonl", str(tmp_path / "missing.jsonl")]) == 2
    assert main(["--synthetic", "--policy", "x:colour=red"]) == 2
    assert main(["--synthetic", "--policy", "a", "--policy", "a"]) == 2
    assert "policy names must differ" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--synthetic", "--jsonl", "x"])  # one source only


def test_help_documents_the_jsonl_format(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert '"type": "lead_answered"' in text
    assert "recorded answers are replayed when the simulated holder" in text
