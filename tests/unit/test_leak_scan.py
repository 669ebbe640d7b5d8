"""The leak scan on hand-made texts: every injected value is found, in the forms a careless
log call gives it, where it is; nothing else is (reliability/leaks.py)."""

from __future__ import annotations

import json
import random
import string
from datetime import UTC, datetime
from urllib.parse import quote

from reliability import leaks
from reliability.leaks import Findings, Leak, Scanner, Secret, Text, scan
from schemas.models import BusinessEnrolled, ModuleCompleted

TOKEN = "q3Vx9_Lk2-ZpR8sT0mWn4yBc6dFh1jGa5eIo7uKl3Qs"  # noqa: S105 - made up: what is looked for
SIGNING = "whsec_" + "b2NjYXNpb25hbGx5IGEgc2VjcmV0+/x"
EMAIL = "Contact@Boulangerie-Martin.fr"
PHONE = "+33712345678"
NAME = "Hélène Lefèvre"
SECRETS = [Secret("API key", TOKEN), Secret("webhook secret", SIGNING),
           Secret("contact e-mail", EMAIL), Secret("contact phone", PHONE),
           Secret("contact name", NAME)]


def _log(*lines: str) -> Text:
    return Text("logs", "run/logs/api.log", "".join(f"{line}\n" for line in lines), len(lines))


def _found(findings: Findings) -> list[tuple[str, str, str]]:
    return [(leak.kind, leak.form, leak.where) for leak in findings.leaks]


def test_clean_texts_find_nothing_and_count_what_was_read() -> None:
    texts = [_log('{"event": "http.request", "status": 202, "offset": 33712345678901}',
                  '{"event": "passport.issued", "siren": "732829320"}'),
             Text("metrics", "api /metrics", 'passport_hub_http_requests_total{route="/v1"} 3\n',
                  1),
             Text("dead-letter headers", "pn.dlq.v1 0:1 dlq.error.class", "ValidationError")]
    findings = scan(texts, SECRETS)
    assert findings.leaks == []
    assert findings.total == 0
    assert findings.ok
    assert findings.injected == {kind: 1 for kind in ("API key", "webhook secret",
                                                      "contact e-mail", "contact phone",
                                                      "contact name")}
    assert findings.scanned == {"logs": 2, "metrics": 1, "dead-letter headers": 1}
    assert findings.sources == {"logs": 1, "metrics": 1, "dead-letter headers": 1}


def test_each_value_is_found_where_it_is_and_the_value_is_not_repeated() -> None:
    texts = [_log('{"event": "ok"}', f'{{"event": "auth.failed", "header": "Bearer {TOKEN}"}}'),
             Text("metrics", "crm_webhook /metrics",
                  f'passport_hub_x_total{{to="{EMAIL}"}} 1\n', 1),
             Text("dead-letter headers", "pn.dlq.v1 2:7 dlq.error.message",
                  f"input_value='{NAME}'")]
    findings = scan(texts, SECRETS)
    assert _found(findings) == [("API key", "as sent", "run/logs/api.log:2"),
                                ("contact e-mail", "as sent", "crm_webhook /metrics:1"),
                                ("contact name", "as sent", "pn.dlq.v1 2:7 dlq.error.message")]
    assert findings.found == {("API key", "logs"): 1, ("contact e-mail", "metrics"): 1,
                              ("contact name", "dead-letter headers"): 1}
    assert not findings.ok
    for leak in findings.leaks:  # the findings name places, never a value
        assert all(secret.value not in str(leak) for secret in SECRETS)


def test_trivially_transformed_forms_are_found() -> None:
    lines = [f"to={quote(EMAIL, safe='')}",  # URL-encoded: contact%40...
             EMAIL.lower(),
             json.dumps({"name": NAME}),  # the JSON logs write é as \u00e9
             SIGNING.removeprefix("whsec_"),
             "call 07 12 34 56 78 today",
             "tel:0712345678",
             quote(SIGNING, safe=""),
             TOKEN.upper()]
    findings = scan([_log(*lines)], SECRETS)
    assert sorted((kind, form) for kind, form, _ in _found(findings)) == sorted([
        ("contact e-mail", "URL-encoded"),
        ("contact e-mail", "as sent, lower-case"),
        ("contact name", "JSON-escaped"),
        ("webhook secret", "without its prefix"),
        ("contact phone", "national, spaced"),
        ("contact phone", "national"),
        ("webhook secret", "URL-encoded"),
        ("API key", "as sent, other case")])
    assert [where for _, _, where in _found(findings)] == [
        f"run/logs/api.log:{n}" for n in range(1, len(lines) + 1)]


def test_a_phone_inside_a_longer_number_is_not_a_phone() -> None:
    findings = scan([_log("offset=33712345678", "id 107123456789", "x0712345678")], SECRETS)
    assert findings.total == 0
    assert scan([_log("phone: +33712345678.")], SECRETS).total == 1


def test_every_occurrence_is_counted_beyond_the_named_ones() -> None:
    text = _log(*(f"leak {i} {EMAIL}" for i in range(leaks.EXAMPLES + 5)))
    findings = scan([text], SECRETS)
    assert findings.total == leaks.EXAMPLES + 5
    assert len(findings.leaks) == leaks.EXAMPLES
    assert findings.leaks[-1].where == f"run/logs/api.log:{leaks.EXAMPLES}"


def test_many_values_sharing_prefixes_are_each_found_as_a_plain_search_would() -> None:
    rng = random.Random(7)
    alphabet = string.ascii_letters + string.digits + "-_"
    tokens = ["".join(rng.choice(alphabet) for _ in range(43)) for _ in range(1500)]
    tokens += [tokens[0][:30] + "x" * 13, "contact@a-b.fr", "contact@a-b.fr.example.org"]
    noise = "".join(rng.choice(alphabet + ' {}":,\n') for _ in range(200_000))
    planted = [tokens[5], tokens[0][:30] + "x" * 13, tokens[0], "contact@a-b.fr.example.org",
               "contact@a-b.fr"]
    text = noise[:50_000] + " | ".join(planted) + noise[50_000:]
    secrets = [Secret("API key", t) for t in tokens]
    findings = Scanner(secrets).scan([Text("logs", "big.log", text)])
    assert findings.total == len(planted)
    # As a plain search finds them (the longer address holds the shorter one: read once).
    assert sum(text.lower().count(t.lower()) for t in tokens) == len(planted) + 1


def test_the_control_counts_the_values_where_they_belong_apart_from_the_leaks() -> None:
    delivery = Text("control", "delivery msg-1",
                    json.dumps({"data": {"business": {"contact_email": EMAIL.lower()}}}))
    findings = Scanner(SECRETS).scan([_log('{"event": "ok"}')], control=[delivery, delivery])
    assert (findings.control, findings.total) == (2, 0)
    assert findings.ok


def test_a_surface_that_could_not_be_read_is_no_pass() -> None:
    findings = Scanner(SECRETS).scan([], unscanned=["api /metrics: ConnectError"])
    assert findings.total == 0
    assert not findings.ok


def test_findings_of_several_runs_add_up() -> None:
    one = scan([_log(EMAIL)], SECRETS)
    two = scan([_log(EMAIL, NAME)], SECRETS)
    one.add(two)
    assert one.total == 3
    assert one.injected["contact e-mail"] == 2
    assert [leak.where for leak in one.leaks] == ["run/logs/api.log:1", "run/logs/api.log:1",
                                                 "run/logs/api.log:2"]
    assert isinstance(one.leaks[0], Leak)


def test_the_contact_values_of_the_events_are_what_is_looked_for() -> None:
    now = datetime(2026, 12, 7, tzinfo=UTC)
    enrolled = BusinessEnrolled(
        event_id="8c6f1b9e-0a4e-4f7e-9d2c-1f4c0c6a9b11", occurred_at=now, source="cefac-78",
        siren="732829320", name="Boulangerie Martin", departement="78",
        contact_email=EMAIL, contact_phone="07 12 34 56 78", contact_name=NAME)
    module = ModuleCompleted(event_id="2b1d2c3e-4f50-4a6b-8c7d-9e0f1a2b3c4d", occurred_at=now,
                             source="trainer", siren="732829320", module_id="website-create")
    # As the events hold them: the e-mail's domain lower-cased, the phone in E.164.
    assert leaks.secrets_of([enrolled, module]) == [
        Secret("contact e-mail", "Contact@boulangerie-martin.fr"), Secret("contact phone", PHONE),
        Secret("contact name", NAME)]


def test_values_too_short_to_mean_anything_are_not_looked_for() -> None:
    assert leaks.forms(Secret("contact name", "Li")) == {}
    assert scan([_log("Li Li Li")], [Secret("contact name", "Li")]).total == 0
