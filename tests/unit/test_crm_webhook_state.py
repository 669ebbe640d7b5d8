"""The delivery component's pure core: endpoint fold, attempt outcomes, order and caps."""

from __future__ import annotations

import itertools

import pytest

from connectors.crm_webhook import state as core
from connectors.crm_webhook.schedule import RetryPolicy, parse_schedule
from connectors.crm_webhook.state import CommandError, Deliveries, Endpoint, Pending, Secret
from schemas.webhooks import LeadEvent

T0 = 1_790_000_000_000
DAY_MS = 86_400_000
SVIX = RetryPolicy(parse_schedule("0,5,300,1800,7200,18000,36000,36000"), 15_000, 5 * DAY_MS)


def secret(name: str, at: int = T0) -> Secret:
    return Secret(f"plain:{name}", name[:12], at)


def endpoint(reseller: str = "r1", *, url: str = "https://crm.example/hook") -> Endpoint:
    return core.register(None, reseller_id=reseller, url=url, enabled=True, secret=secret("s1"))


def pending(reseller: str, seq: int, lead: str | None, *, due: int = T0,
            attempts: int = 0) -> Pending:
    return Pending(core.ref(reseller, seq), reseller, lead, attempts, due)


# -- endpoints --------------------------------------------------------------------------------


def test_a_first_registration_needs_a_url_and_a_secret() -> None:
    with pytest.raises(CommandError):
        core.register(None, reseller_id="r1", url="https://x.example", enabled=True, secret=None)
    with pytest.raises(CommandError):
        core.register(None, reseller_id="r1", url=None, enabled=True, secret=secret("s1"))
    first = endpoint()
    assert (first.enabled, first.version, first.disabled_reason) == (True, 1, None)
    paused = core.register(None, reseller_id="r2", url="https://x.example", enabled=False,
                           secret=secret("s1"))
    assert (paused.enabled, paused.disabled_reason) == (False, "by_owner")


def test_a_later_registration_keeps_what_it_does_not_name_and_enabling_starts_afresh() -> None:
    first = endpoint()
    moved = core.register(first, reseller_id="r1", url="https://new.example/h", enabled=None,
                          secret=None)
    assert (moved.url, moved.secrets, moved.enabled, moved.version) == (
        "https://new.example/h", first.secrets, True, 2)
    broken = core.gone(moved)
    assert broken is not None
    assert (broken.enabled, broken.disabled_reason) == (False, "gone")
    still = core.register(broken, reseller_id="r1", url=None, enabled=None, secret=None)
    assert not still.enabled  # naming nothing does not re-enable
    failing = core.failed(broken, T0, SVIX)
    assert failing is not None
    again = core.register(failing, reseller_id="r1", url=None, enabled=True, secret=None)
    assert (again.enabled, again.disabled_reason, again.failing_since) == (True, None, None)


def test_rotation_signs_with_both_secrets_during_the_overlap_then_with_the_new_one() -> None:
    first = endpoint()
    rotated = core.rotate(first, secret=secret("s2", T0 + 1000), overlap_ms=DAY_MS)
    assert [s.fingerprint for s in rotated.secrets] == ["s2", "s1"]  # newest first
    assert rotated.secrets[1].expires_at == T0 + 1000 + DAY_MS
    assert [s.fingerprint for s in rotated.signing(T0 + DAY_MS)] == ["s2", "s1"]
    assert core.prune(rotated, T0 + DAY_MS) is None  # nothing expired yet
    after = T0 + 1000 + DAY_MS
    assert [s.fingerprint for s in rotated.signing(after)] == ["s2"]
    pruned = core.prune(rotated, after)
    assert pruned is not None
    assert [s.fingerprint for s in pruned.secrets] == ["s2"]
    assert pruned.version == rotated.version + 1
    # A second rotation within the overlap never lengthens the first secret's life.
    twice = core.rotate(rotated, secret=secret("s3", T0 + 2000), overlap_ms=2 * DAY_MS)
    assert [(s.fingerprint, s.expires_at) for s in twice.secrets] == [
        ("s3", None), ("s2", T0 + 2000 + 2 * DAY_MS), ("s1", T0 + 1000 + DAY_MS)]
    at_once = core.rotate(first, secret=secret("s2", T0), overlap_ms=0)
    assert [s.fingerprint for s in at_once.secrets] == ["s2"]
    with pytest.raises(CommandError):
        core.rotate(None, secret=secret("s2"), overlap_ms=0)


def test_an_endpoint_failing_for_the_configured_days_without_a_success_is_disabled() -> None:
    ep = endpoint()
    first = core.failed(ep, T0, SVIX)
    assert first is not None
    assert first.failing_since == T0
    assert core.failed(first, T0 + DAY_MS, SVIX) is None  # still failing: nothing new
    healed = core.succeeded(first)
    assert healed is not None
    assert healed.failing_since is None
    assert core.succeeded(healed) is None
    again = core.failed(healed, T0 + DAY_MS, SVIX)
    assert again is not None
    assert core.failed(again, T0 + 6 * DAY_MS - 1, SVIX) is None
    off = core.failed(again, T0 + 6 * DAY_MS, SVIX)
    assert off is not None
    assert (off.enabled, off.disabled_reason, off.failing_since) == (False, "failing",
                                                                    T0 + DAY_MS)
    refused = core.failed(again, T0 + 6 * DAY_MS, SVIX, refused=True)
    assert refused is not None
    assert refused.disabled_reason == "refused"


def test_endpoint_json_and_datum_keep_fingerprints_never_secrets() -> None:
    ep = core.rotate(endpoint(), secret=secret("s2", T0 + 5), overlap_ms=10)
    assert core.endpoint_of_json(core.endpoint_json(ep)) == ep
    datum = core.endpoint_datum(ep, T0 + 7)
    assert "plain:" not in repr(datum)
    assert datum["secrets"] == [
        {"fingerprint": "s2", "created_at": T0 + 5, "expires_at": None},
        {"fingerprint": "s1", "created_at": T0, "expires_at": T0 + 15}]
    assert datum["event_id"] == core.endpoint_datum(ep, T0 + 99)["event_id"]  # per version


# -- attempts ---------------------------------------------------------------------------------


def test_a_failing_message_follows_the_whole_svix_schedule_then_fails() -> None:
    now = T0
    waiting = pending("r1", 1, "lead-1", due=now)
    attempts = []
    while True:
        now = waiting.due  # the simulated clock jumps to each attempt
        attempt = core.attempted(waiting, status=500, error=None, retry_after=None,
                                 refused=False, policy=SVIX, now=now)
        attempts.append(attempt)
        if attempt.pending is None:
            break
        waiting = attempt.pending
    assert [a.number for a in attempts] == list(range(1, 9))
    assert [a.outcome for a in attempts] == ["retrying"] * 7 + ["failed"]
    times = [T0, *(a.next_attempt_at or 0 for a in attempts[:-1])]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps == [5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000]
    assert all(a.effect == "failure" and a.error == "HTTP 500" for a in attempts)


def test_delivered_gone_refused_and_throttled_answers() -> None:
    waiting = pending("r1", 1, "lead-1", attempts=2)
    ok = core.attempted(waiting, status=204, error=None, retry_after=None, refused=False,
                        policy=SVIX, now=T0)
    assert (ok.outcome, ok.number, ok.pending, ok.effect) == ("delivered", 3, None, "success")
    gone = core.attempted(waiting, status=410, error=None, retry_after=None, refused=False,
                          policy=SVIX, now=T0)
    assert (gone.outcome, gone.effect) == ("failed", "gone")
    assert gone.pending is not None  # kept: re-registering resumes it
    throttled = core.attempted(waiting, status=429, error=None, retry_after="7200",
                               refused=False, policy=SVIX, now=T0)
    assert (throttled.outcome, throttled.next_attempt_at) == ("retrying", T0 + 7_200_000)
    short = core.attempted(waiting, status=503, error=None, retry_after="1", refused=False,
                           policy=SVIX, now=T0)
    assert short.next_attempt_at == T0 + 1_800_000  # the schedule's wait is longer
    refused = core.attempted(waiting, status=None, error="host 10.0.0.1 is a private address",
                             retry_after=None, refused=True, policy=SVIX, now=T0)
    assert (refused.outcome, refused.next_attempt_at, refused.error) == (
        "refused", T0 + 1_800_000, "host 10.0.0.1 is a private address")
    last = core.attempted(pending("r1", 1, None, attempts=7), status=None, error="timeout",
                          retry_after=None, refused=False, policy=SVIX, now=T0)
    assert (last.outcome, last.pending, last.error) == ("failed", None, "timeout")


def test_delivery_ids_are_those_of_message_generation_and_attempt() -> None:
    message = core.Message(core.ref("r1", 1), LeadEvent("r1", "lead.assigned", "msg_1",
                                                        "lead-1", T0, {}))
    one = core.delivery_datum(message, attempt=1, generation=0, replay=False, url="u",
                              outcome="retrying", now=T0)
    again = core.delivery_datum(message, attempt=1, generation=0, replay=False, url="u",
                                outcome="delivered", now=T0 + 5)
    two = core.delivery_datum(message, attempt=2, generation=0, replay=False, url="u",
                              outcome="delivered", now=T0)
    replayed = core.delivery_datum(message, attempt=1, generation=1, replay=True, url="u",
                                   outcome="delivered", now=T0)
    assert one["event_id"] == again["event_id"]  # the same attempt, re-made after a crash
    assert len({one["event_id"], two["event_id"], replayed["event_id"]}) == 3
    assert core.message_of_json(message.ref, core.message_json(message)) == message


# -- what goes now ----------------------------------------------------------------------------


def test_only_the_oldest_pending_message_of_a_lead_goes_and_other_leads_go_beside_it() -> None:
    deliveries = Deliveries(per_endpoint=10, max_in_flight=100)
    assigned, withdrawn = pending("r1", 1, "lead-a"), pending("r1", 3, "lead-a")
    other, ping = pending("r1", 2, "lead-b"), pending("r1", 4, None)
    deliveries.load([withdrawn, ping, assigned, other])
    first = deliveries.due(T0, {"r1"})
    assert [p.ref for p in first] == [assigned.ref, other.ref, ping.ref]
    for p in first:
        deliveries.sent(p.ref)
    assert deliveries.due(T0, {"r1"}) == []  # withdrawn waits for assigned
    # assigned failed and waits for its retry: withdrawn still waits behind it.
    assert deliveries.answered(assigned.ref)
    deliveries.put(Pending(assigned.ref, "r1", "lead-a", 1, T0 + 5_000))
    assert deliveries.due(T0 + 1_000, {"r1"}) == []
    assert [p.ref for p in deliveries.due(T0 + 5_000, {"r1"})] == [assigned.ref]
    deliveries.sent(assigned.ref)
    deliveries.answered(assigned.ref)
    deliveries.remove(assigned.ref)  # delivered
    assert [p.ref for p in deliveries.due(T0 + 5_000, {"r1"})] == [withdrawn.ref]


def test_caps_per_endpoint_and_in_all_and_disabled_endpoints_wait() -> None:
    deliveries = Deliveries(per_endpoint=2, max_in_flight=3)
    deliveries.load(pending(r, i, f"{r}-lead-{i}") for r in ("r1", "r2", "r3")
                    for i in range(5))
    first = deliveries.due(T0, {"r1", "r2", "r3"})
    assert len(first) == 3
    assert all(sum(p.reseller_id == r for p in first) <= 2 for r in ("r1", "r2", "r3"))
    for p in first:
        deliveries.sent(p.ref)
    assert deliveries.due(T0, {"r1", "r2", "r3"}) == []  # the global cap
    deliveries.answered(first[0].ref)
    deliveries.remove(first[0].ref)
    [more] = deliveries.due(T0, {"r1", "r2", "r3"})
    assert more.ref not in {p.ref for p in first}
    wide = Deliveries(per_endpoint=2, max_in_flight=100)
    wide.load(pending(r, i, f"{r}-lead-{i}") for r in ("r1", "r2") for i in range(5))
    assert {p.reseller_id for p in wide.due(T0, {"r2"})} == {"r2"}  # r1 is disabled
    assert len(wide.due(T0, {"r1", "r2"})) == 4


def test_a_reseller_with_nothing_due_is_looked_at_again_when_due_or_changed() -> None:
    deliveries = Deliveries(per_endpoint=4, max_in_flight=100)
    deliveries.put(pending("r1", 1, "lead-a", due=T0 + 10_000))
    assert deliveries.due(T0, {"r1"}) == []
    assert deliveries.due(T0 + 9_999, {"r1"}) == []
    assert [p.ref for p in deliveries.due(T0 + 10_000, {"r1"})] == [core.ref("r1", 1)]
    deliveries.put(pending("r1", 2, "lead-b", due=T0 + 50_000))
    deliveries.sent(core.ref("r1", 1))
    assert deliveries.due(T0 + 10_000, {"r1"}) == []
    deliveries.put(pending("r1", 2, "lead-b", due=T0))  # made due now: seen at once
    assert [p.ref for p in deliveries.due(T0 + 10_000, {"r1"})] == [core.ref("r1", 2)]
    assert not deliveries.answered(core.ref("r1", 9))  # never sent: a stale answer
