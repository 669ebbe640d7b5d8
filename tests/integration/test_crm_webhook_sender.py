"""The sender against the test receiver, over real HTTP on 127.0.0.1 (no broker needed)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from connectors.crm_webhook.receiver import Receiver, line
from connectors.crm_webhook.schedule import classify
from connectors.crm_webhook.sender import Request, Result, Sender
from connectors.crm_webhook.signing import new_secret, sign_headers
from connectors.crm_webhook.ssrf import Guard
from hub.broker import free_port

pytestmark = pytest.mark.timeout(20)

BODY = b'{"id":"msg_1","type":"lead.assigned","timestamp":"2025-03-03T10:00:00.000Z",' \
       b'"data":{"lead_id":"lead-42"}}'
LOCAL = Guard(["127.0.0.1"])


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture
def wake() -> threading.Event:
    return threading.Event()


@pytest.fixture
def sender(wake: threading.Event) -> Iterator[Sender]:
    with Sender(LOCAL, max_in_flight=64, timeout_s=5, wake=wake) as running:
        yield running


def request(receiver: Receiver, path: str, key: str | None = None,
            secrets: tuple[str, ...] = ()) -> Request:
    headers = sign_headers("msg_1", int(time.time()), BODY, secrets) if secrets else {}
    return Request(key or path, receiver.url(path), headers, BODY)


def landed(sender: Sender, wake: threading.Event, count: int,
           timeout_s: float = 10) -> list[Result]:
    """The next ``count`` results, waiting on ``wake`` (a hang fails by pytest's timeout)."""
    got: list[Result] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < count and time.monotonic() < deadline:
        wake.wait(0.5)
        wake.clear()
        got.extend(sender.results())
    return got


def test_a_delivery_arrives_signed_as_sent(receiver: Receiver, sender: Sender,
                                           wake: threading.Event) -> None:
    secret = new_secret()
    receiver.secrets("/r/web-78", [secret])
    sender.submit(request(receiver, "/r/web-78", secrets=(secret,)))
    [result] = landed(sender, wake, 1)
    assert (result.key, result.status, result.error, result.refused) == \
        ("/r/web-78", 204, None, False)
    assert result.latency_ms >= 0
    assert classify(result.status, result.error, result.retry_after, 0).kind == "delivered"
    [got] = receiver.deliveries("/r/web-78")
    assert got.body == BODY
    assert got.verified is True
    assert got.status_answered == 204
    assert got.headers["content-type"] == "application/json"
    assert got.headers["user-agent"] == "passport-hub"
    assert got.headers["webhook-id"] == "msg_1"
    assert "msg_1  lead.assigned  lead-42  signature ok" in line(got)
    assert sender.in_flight == 0


def test_a_failure_is_its_status(receiver: Receiver, sender: Sender,
                                 wake: threading.Event) -> None:
    receiver.behave("/fail", "fail")
    sender.submit(request(receiver, "/fail"))
    [result] = landed(sender, wake, 1)
    assert (result.status, result.error, result.refused) == (500, None, False)
    assert classify(result.status, result.error, result.retry_after, 0).kind == "retry"


def test_a_slow_receiver_is_a_timeout(receiver: Receiver, wake: threading.Event) -> None:
    receiver.behave("/slow", "slow:5")
    with Sender(LOCAL, max_in_flight=4, timeout_s=0.3, wake=wake) as sender:
        sender.submit(request(receiver, "/slow"))
        [result] = landed(sender, wake, 1)
    assert (result.status, result.error, result.refused) == (None, "timeout", False)


def test_gone_is_gone(receiver: Receiver, sender: Sender, wake: threading.Event) -> None:
    receiver.behave("/gone", "gone")
    sender.submit(request(receiver, "/gone"))
    [result] = landed(sender, wake, 1)
    assert result.status == 410
    assert classify(result.status, result.error, result.retry_after, 0).kind == "gone"


def test_throttling_surfaces_retry_after(receiver: Receiver, sender: Sender,
                                         wake: threading.Event) -> None:
    receiver.behave("/busy", "throttle:7")
    sender.submit(request(receiver, "/busy", "first"))
    [first] = landed(sender, wake, 1)
    sender.submit(request(receiver, "/busy", "second"))
    [second] = landed(sender, wake, 1)
    assert (first.status, first.retry_after) == (429, "7")
    assert classify(first.status, first.error, first.retry_after, 0).retry_after_ms == 7_000
    assert (second.status, second.retry_after) == (204, None)


def test_a_redirect_is_not_followed(receiver: Receiver, sender: Sender,
                                    wake: threading.Event) -> None:
    receiver.behave("/moved", "redirect")
    sender.submit(request(receiver, "/moved"))
    [result] = landed(sender, wake, 1)
    assert (result.status, result.error) == (302, "redirect not followed")
    assert classify(result.status, result.error, None, 0).kind == "retry"
    assert [d.path for d in receiver.deliveries()] == ["/moved"]


def test_a_closed_port_is_connection_refused(sender: Sender, wake: threading.Event) -> None:
    sender.submit(Request("closed", f"http://127.0.0.1:{free_port()}/hook", {}, BODY))
    [result] = landed(sender, wake, 1)
    assert (result.status, result.error, result.refused) == (None, "connection refused", False)


def test_loopback_is_refused_unless_allow_listed(receiver: Receiver,
                                                 wake: threading.Event) -> None:
    with Sender(Guard([]), max_in_flight=4, timeout_s=5, wake=wake) as sender:
        sender.submit(request(receiver, "/r/web-78"))
        [result] = landed(sender, wake, 1)
    assert result.refused
    assert result.status is None
    assert result.error is not None
    assert "http to 127.0.0.1 is refused" in result.error
    assert receiver.deliveries() == []


def test_a_hanging_attempt_ends_when_the_receiver_stops(wake: threading.Event,
                                                        sender: Sender) -> None:
    receiver = Receiver(behaviour="hang")
    receiver.start()
    try:
        sender.submit(request(receiver, "/hang"))
        [got] = receiver.wait_for(1, "/hang")
        assert got.status_answered is None
        assert sender.in_flight == 1
    finally:
        receiver.stop()
    [result] = landed(sender, wake, 1)
    assert result.status == 503 or result.error is not None
    assert sender.in_flight == 0


def test_closing_the_sender_abandons_a_hanging_attempt(receiver: Receiver,
                                                       wake: threading.Event) -> None:
    receiver.behave("/hang", "hang")
    sender = Sender(LOCAL, max_in_flight=4, timeout_s=15, wake=wake)
    sender.start()
    sender.submit(request(receiver, "/hang"))
    receiver.wait_for(1, "/hang")
    sender.close()
    sender.close()  # twice is fine
    assert sender.results() == []
    with pytest.raises(RuntimeError, match="not running"):
        sender.submit(request(receiver, "/hang"))


def test_fifty_concurrent_submissions_all_complete(receiver: Receiver, sender: Sender,
                                                   wake: threading.Event) -> None:
    receiver.behave("/slow", "slow:0.3")
    for n in range(50):
        sender.submit(request(receiver, "/slow", f"k{n}"))
    results = landed(sender, wake, 50)
    assert sorted(r.key for r in results) == sorted(f"k{n}" for n in range(50))
    assert {r.status for r in results} == {200}
    assert len(receiver.deliveries("/slow")) == 50


def test_attempts_beyond_max_in_flight_wait_their_turn(wake: threading.Event) -> None:
    receiver = Receiver(behaviour="hang")
    receiver.start()
    with Sender(LOCAL, max_in_flight=5, timeout_s=15, wake=wake) as sender:
        try:
            for n in range(20):
                sender.submit(request(receiver, "/hang", f"k{n}"))
            receiver.wait_for(5)
            time.sleep(0.2)  # room for a sixth to arrive, were the bound broken
            assert len(receiver.deliveries()) == 5
            assert sender.in_flight == 20
        finally:
            receiver.stop()
        results = landed(sender, wake, 20)
    assert len(results) == 20  # the first five answered 503, the others found the port closed


def test_the_receiver_checks_signatures_and_plays_its_behaviours(
        receiver: Receiver, sender: Sender, wake: threading.Event) -> None:
    secret, other = new_secret(), new_secret()
    receiver.secrets("/signed", [other])
    receiver.behave("/flap", "flap")
    sender.submit(request(receiver, "/signed", secrets=(secret,)))
    landed(sender, wake, 1)
    for n in range(4):
        sender.submit(request(receiver, "/flap", f"flap{n}"))
        landed(sender, wake, 1)
    [signed] = receiver.wait_for(1, "/signed")
    assert signed.verified is False
    assert [d.status_answered for d in receiver.deliveries("/flap")] == [500, 204, 500, 204]
    assert {d.verified for d in receiver.deliveries("/flap")} == {None}
    with pytest.raises(TimeoutError, match="received 0 of 1 deliveries at /none"):
        receiver.wait_for(1, "/none", timeout_s=0.05)
    with pytest.raises(ValueError, match="unknown behaviour"):
        receiver.behave("/x", "explode")
