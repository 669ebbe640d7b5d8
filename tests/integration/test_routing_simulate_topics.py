"""``routing simulate --from-topics``: a running hub's resellers, requests and answers, replayed."""

from __future__ import annotations

import pytest

from hub.config import Settings
from services.routing.simulate.inputs import read_topics
from services.routing.simulate.policies import PRODUCTION
from services.routing.simulate.replay import Replay
from tests.integration.test_routing_service import (
    WHEN_MS,
    answer,
    answers,
    lead_request,
    profile,
    requests,
    resellers,
)
from tests.unit.test_routing_simulate_replay import Fake

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


def test_the_topics_of_a_hub_replay_like_a_recording(topics: Settings) -> None:
    resellers(topics, profile("a", ["78"]), profile("b", ["78"]),
              profile("bad", ["999"]))  # invalid: skipped, as the router would
    first, second = lead_request(), lead_request()
    requests(topics, first, second)
    answers(topics, answer(first["lead_id"], "a", "accepted"),
            answer(second["lead_id"], "b", "rejected", "budget"))

    inputs = read_topics(topics, timeout_s=60)

    assert [r.reseller_id for r in inputs.resellers] == ["a", "b"]
    assert inputs.skipped == 1
    assert {r.lead_id for r in inputs.requests} == {first["lead_id"], second["lead_id"]}
    assert all(r.requested_at == WHEN_MS for r in inputs.requests)
    assert sorted(a.answer for a in inputs.answers) == ["accepted", "rejected"]

    replay = Replay(inputs, PRODUCTION, Fake())
    summary = replay.run()
    leads = replay.router.state.leads
    # Whichever order the two (simultaneous) requests are decided in, each recorded
    # answer is replayed once its reseller holds the lead: the first accepted by a, the
    # second rejected by b and, a letting it expire too, in the national queue.
    assert summary.leads == 2
    assert (leads[first["lead_id"]].holder, leads[first["lead_id"]].status) == ("a", "accepted")
    assert leads[second["lead_id"]].status == "queued"
    assert leads[second["lead_id"]].excluded == ("a", "b")
    assert summary.rejections == 1
