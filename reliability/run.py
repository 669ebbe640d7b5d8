"""One run of a plan: a fresh hub (its own topics and groups), the flow, the kills, the results.

The campaign makes two runs of one plan on one broker, side by side in time but apart in
names (topic and group prefixes): the reference without kills, then the one with them.
Each run mints its partners' keys (an operator's for the delegations' and trainers'
HTTP traffic, one per reseller for its webhook and its answers: the API checks that a
reseller answers only its own leads, and a trainers' key whose inbox the files are
dropped in: the file drop reads a file as its inbox's key), starts CRM receivers, starts
the hub's processes,
plays the flow, and once everything is back up and quiet, reads what the hub left; once
the processes stopped, it scans their logs, metrics and dead letters for every key,
secret and contact value it handed them (reliability/leaks.py).
"""

from __future__ import annotations

import pickle
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from connectors.api.keys import mint, save
from connectors.crm_webhook.receiver import Receiver
from hub import kafka
from hub.broker import free_port
from hub.config import Settings
from reliability import chaos, processes, surfaces
from reliability.chaos import Kill, Killer
from reliability.flow import Flow
from reliability.leaks import Scanner, Secret, Text, secrets_of
from reliability.oracle import Expected
from reliability.partners import GaveUp, Ledger, Partner
from reliability.plan import Plan
from reliability.results import (
    FeedItem,
    Observed,
    change,
    feed_item,
    passport_view,
    received,
)
from reliability.tap import Tap
from schemas import catalog

#: The webhook retry schedule of a run (seconds): the demo's, compressed like its clock,
#: so that a delivery that failed while the deliverer was down is retried within the run.
RETRY_SCHEDULE_S = "0,1,2,5,10,20,30,60"
RECEIVERS = 2
#: How long the hub may take to be up, to settle after the kills, and to drain.
START_TIMEOUT_S = 120.0
DRAIN_TIMEOUT_S = 150.0
#: A drained hub: nothing written to the topics for this long.
QUIET_S = 4.0


@dataclass(frozen=True, slots=True)
class Target:
    """Where a run goes: the broker, and the names that keep this run's topics apart."""

    bootstrap: str
    tag: str
    replication_factor: int = 1


def settings_of(target: Target, run_dir: Path) -> Settings:
    return Settings(kafka_bootstrap_servers=target.bootstrap, topic_prefix=f"{target.tag}.",
                    group_prefix=target.tag, data_dir=run_dir,
                    replication_factor=target.replication_factor, log_format="json")


@dataclass(frozen=True, slots=True)
class Live:
    """A run's hub while it runs, and what talks to it."""

    cluster: processes.Cluster
    tap: Tap
    admin: Partner
    receivers: list[Receiver]
    flow: Flow
    killer: Killer
    background: Partner
    """A second operator's client: the steady traffic goes on beside the phases."""


class Run:
    """One playing of a plan; ``play`` returns what the hub left."""

    def __init__(self, plan: Plan, expected: Expected, target: Target, run_dir: Path, *,
                 kills: list[Kill] | None = None, progress: list[str] | None = None,
                 phase_timeout_s: float = 150.0) -> None:
        self.plan = plan
        self.expected = expected
        self.target = target
        self.run_dir = run_dir
        self.kills = kills or []
        self.progress = progress if progress is not None else []
        self.phase_timeout_s = phase_timeout_s
        self.settings = settings_of(target, run_dir)
        self.ledger = Ledger()
        self.stop = threading.Event()
        self.webhook_secret_key = secrets.token_urlsafe(32)
        self.tokens: list[str] = []
        """Every API key minted for the run (the leak scan looks for each)."""
        self._scraped: tuple[list[Text], list[str]] = ([], [])
        self._secrets: list[Secret] = []
        self._control: list[Text] = []
        """What the CRMs received: where contact e-mails belong (the scan's control)."""

    def play(self) -> Observed:
        """The flow's phases with the kills meanwhile; then what the hub left."""
        started = time.monotonic()
        with self.live() as live:
            steady = live.flow.background(live.background)
            for name, phase in (("training", live.flow.training), ("offers", live.flow.offers),
                                ("answers", live.flow.answers_rounds),
                                ("privacy", live.flow.privacy)):
                self._say(f"phase {name} ({len(live.killer.done)} kills so far)")
                phase()
            steady.join()
            observed = self.finish(live)
        self.scan(observed)
        observed.wall_s = time.monotonic() - started
        return observed

    @contextmanager
    def live(self) -> Iterator[Live]:
        """The hub up, its partners' clients, the CRM receivers, the network and endpoints
        set up (phase 0), and the killer started; everything stopped at the end."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        kafka.ensure_topics(self.settings)
        minted = self._keys()
        with ExitStack() as stack:
            receivers = [stack.enter_context(Receiver()) for _ in range(RECEIVERS)]
            api_port = free_port()
            cluster = processes.Cluster(processes.specs(self.run_dir, api_port=api_port),
                                        self._env(), self.run_dir / "logs")
            stack.enter_context(processes.running(cluster))
            self._await_start(cluster)
            tap = Tap(self.settings)
            tap.start()
            stack.callback(tap.close)
            partners = _Partners(f"http://127.0.0.1:{api_port}", minted.admin,
                                 minted.resellers, self.ledger, self.stop)
            stack.callback(partners.close)
            flow = Flow(plan=self.plan, expected=self.expected, admin=partners.admin,
                        resellers=partners.reseller, tap=tap, receivers=receivers,
                        inbox=processes.inbox(self.run_dir, minted.trainers),
                        ledger=self.ledger, stop=self.stop,
                        phase_timeout_s=self.phase_timeout_s, pace_s=chaos.duration(self.kills))
            self._say("setup: resellers and webhook endpoints")
            flow.setup()
            killer = Killer(cluster, self.kills, log=self.progress)
            killer.start()
            stack.callback(killer.stop)
            stack.callback(self.stop.set)
            yield Live(cluster, tap, partners.admin, receivers, flow, killer, partners.steady)

    def finish(self, live: Live) -> Observed:
        """After the flow: the last kills, everything back up, drained; then the results."""
        self._say(f"flow done; {len(live.killer.plan) - len(live.killer.done)} kills to come")
        live.killer.join()
        self._settle(live.cluster, live.flow)
        self._drain(live.tap, live.admin, live.receivers)
        observed = self._observe(live)
        # The metrics die with the processes: scraped now; the logs are read at ``scan``.
        self._scraped = surfaces.metrics(live.cluster, self.run_dir.name)
        self._secrets = self._injected(live.flow)
        self._control = [Text("control", f"delivery {d.headers.get('webhook-id')}",
                              d.body.decode("utf-8", errors="replace"))
                         for receiver in live.receivers for d in receiver.deliveries()]
        return observed

    def scan(self, observed: Observed) -> None:
        """Once the processes stopped (``live`` is over): the leak scan of the run's logs,
        its last metrics and its dead letters, into ``observed.leaks``."""
        metrics, unscraped = self._scraped
        letters, unread = surfaces.dead_letters(self.settings, self.run_dir.name)
        texts = [*surfaces.logs(self.run_dir / "logs", self.run_dir.name), *metrics, *letters]
        observed.leaks = Scanner(self._secrets).scan(texts, [*unscraped, *unread],
                                                     control=self._control)
        # For whoever digs into a failure (``--work-dir`` keeps it): the run's results whole.
        (self.run_dir / "observed.pickle").write_bytes(pickle.dumps(observed))

    def _injected(self, flow: Flow) -> list[Secret]:
        """Every secret and contact value this run handed the hub."""
        return [*(Secret("API key", token) for token in self.tokens),
                *(Secret("webhook secret", secret) for secret in flow.issued),
                Secret("webhook secret key", self.webhook_secret_key),
                *secrets_of(self.plan.events())]

    # -- set-up ----------------------------------------------------------------------

    def _keys(self) -> Minted:
        """An operator's key, one per reseller and the trainers' one, in this run's keys
        file.

        The trainers' key is bound to no organisation (``mint`` without ``trainer_org``,
        which the keys CLI never makes): the run's files mix the reports of several
        training organisations, and an unbound trainer key may report for any of them
        (``Caller.refusal``) while it may still send only the trainer's event types. The
        file drop and the API warn about it at every load (``key_unbound``): expected.
        """
        token, key = mint("operations", "admin")
        trainer_token, trainer_key = mint("trainers", "trainer")
        tokens, keys = {}, [key, trainer_key]
        for profile in self.plan.profiles:
            reseller_token, reseller_key = mint(profile.reseller_id, "reseller",
                                                profile.reseller_id)
            tokens[profile.reseller_id] = reseller_token
            keys.append(reseller_key)
        save(self.run_dir / "keys.json", keys)
        self.tokens = [token, trainer_token, *tokens.values()]
        return Minted(token, tokens, trainer_key.key_id)

    def _env(self) -> dict[str, str]:
        s = self.settings
        assert s.kafka_bootstrap_servers is not None
        return {"KAFKA_BOOTSTRAP_SERVERS": s.kafka_bootstrap_servers,
                "PASSPORT_HUB_TOPIC_PREFIX": s.topic_prefix,
                "PASSPORT_HUB_GROUP_PREFIX": s.group_prefix,
                "PASSPORT_HUB_REPLICATION_FACTOR": str(s.replication_factor),
                "PASSPORT_HUB_LOG_FORMAT": "json", "PASSPORT_HUB_LOG_LEVEL": "info",
                "PASSPORT_HUB_API_KEYS_FILE": str((self.run_dir / "keys.json").resolve()),
                "PASSPORT_HUB_WEBHOOK_ALLOW_HOSTS": "127.0.0.1",
                "PASSPORT_HUB_WEBHOOK_RETRY_SCHEDULE_S": RETRY_SCHEDULE_S,
                "PASSPORT_HUB_WEBHOOK_SECRET_KEY": self.webhook_secret_key}

    def _await_start(self, cluster: processes.Cluster) -> None:
        late = cluster.wait_ready(START_TIMEOUT_S)
        if late:
            raise RuntimeError(f"not ready within {START_TIMEOUT_S:.0f} s: {', '.join(late)}")
        deadline = time.monotonic() + START_TIMEOUT_S
        while not cluster.settled():
            if time.monotonic() > deadline:
                raise RuntimeError("the consumer groups did not settle")
            time.sleep(0.3)

    def _settle(self, cluster: processes.Cluster, flow: Flow) -> None:
        """After the last kill: everything running, ready and holding its partitions."""
        for name in cluster.components:
            cluster.restart(name)
        late = cluster.wait_ready(START_TIMEOUT_S)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not cluster.settled() and time.monotonic() < deadline:
            time.sleep(0.3)
        if late or not cluster.settled():
            flow.notes.append(f"after the kills, not back: {late or 'consumer groups'}")

    def _drain(self, tap: Tap, admin: Partner, receivers: list[Receiver]) -> None:
        """Wait until every group consumed its inputs, the topics are quiet (the outboxes
        relayed), and the CRMs got every message the feed holds."""
        self._say("draining")
        webhooks = set(self.plan.webhooks)
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while time.monotonic() < deadline:
            feed = _feed(admin)
            wanted = {item.message for item in feed or () if item.reseller_id in webhooks}
            got = {received(d).message for r in receivers for d in r.deliveries()}
            if feed is not None and wanted <= got and tap.quiet_for() >= QUIET_S \
                    and tap.behind() == 0:
                return
            time.sleep(1.0)

    # -- results ---------------------------------------------------------------------

    def _observe(self, live: Live) -> Observed:
        tap, admin, flow, cluster, killer = (live.tap, live.admin, live.flow, live.cluster,
                                             live.killer)
        def copy(t: Tap) -> tuple[Any, ...]:
            return ({k: v.copy() for k, v in t.inputs.items()}, dict(t.passports),
                    list(t.outputs[catalog.LEADS]), list(t.outputs[catalog.LEAD_REQUESTS]),
                    len(t.outputs[catalog.PASSPORTS]))

        inputs, snapshots, leads, requests, snapshot_records = tap.read(copy)
        webhooks = set(self.plan.webhooks)
        observed = Observed(
            accepted=dict(self.ledger.accepted), channels=self.ledger.channels.copy(),
            http=self.ledger.answers.copy(), retries=self.ledger.retries,
            refused=list(self.ledger.refused), notes=list(flow.notes), inputs=inputs,
            snapshots={s: passport_view(d) for s, d in snapshots.items()},
            erased_contact={s: bool(d.get("contact_email")) for s, d in snapshots.items()},
            snapshot_records=snapshot_records,
            changes=[change(w.offset, w.datum) for w in leads],
            lead_requests=[(w.record, str(w.datum["lead_id"]), str(w.datum["event_id"]))
                           for w in requests],
            feed=[item for item in _settled_feed(admin) if item.reseller_id in webhooks],
            deliveries=[received(d) for r in live.receivers for d in r.deliveries()],
            answers={k: (r.lead_id, r.version, r.answer) for k, r in flow.answers.items()},
            kills=list(killer.done), timings=dict(flow.timings),
            starts={n: c.starts for n, c in cluster.components.items()},
            dead_letters={n: c.dead_letters for n, c in cluster.components.items()},
            errors={n: list(c.lines) for n, c in cluster.components.items() if c.lines})
        for siren in self.expected.businesses:
            answer = admin.request("GET", f"/v1/passports/{siren}")
            observed.passports[siren] = answer.json() if answer.status_code == 200 else None
        for lead_id in sorted({c.lead_id for c in observed.changes}):
            answer = admin.request("GET", f"/v1/leads/{lead_id}")
            observed.lead_views[lead_id] = answer.json() if answer.status_code == 200 else None
        return observed

    def _say(self, text: str) -> None:
        self.progress.append(f"[{self.target.tag}] {text}")


@dataclass(frozen=True, slots=True)
class Minted:
    """The keys a run minted, as its partners use them."""

    admin: str
    """The operator's token."""
    resellers: dict[str, str]
    """Each reseller's token, by reseller id."""
    trainers: str
    """The trainers' key id: the name of the inbox their files are dropped in."""


class _Partners:
    """The clients of one run: the operator's, and each reseller's (made when first used)."""

    def __init__(self, base: str, admin: str, resellers: dict[str, str], ledger: Ledger,
                 stop: threading.Event) -> None:
        self._base, self._tokens, self._ledger, self._stop = base, resellers, ledger, stop
        self.admin = Partner(base, admin, ledger, stop=stop)
        self.steady = Partner(base, admin, ledger, stop=stop)
        self._resellers: dict[str, Partner] = {}

    def reseller(self, reseller_id: str) -> Partner:
        if reseller_id not in self._resellers:
            self._resellers[reseller_id] = Partner(self._base, self._tokens[reseller_id],
                                                   self._ledger, stop=self._stop)
        return self._resellers[reseller_id]

    def close(self) -> None:
        self.admin.close()
        self.steady.close()
        for partner in self._resellers.values():
            partner.close()


def _settled_feed(admin: Partner, tries: int = 10) -> list[FeedItem]:
    """The whole feed of a drained hub (asked again while the API cannot answer)."""
    for _ in range(tries):
        feed = _feed(admin)
        if feed is not None:
            return feed
        time.sleep(1.0)
    raise RuntimeError("the API never answered the lead events' feed")


def _feed(admin: Partner) -> list[FeedItem] | None:
    """Every reseller's lead events, as the read model's feed holds them (an admin's read);
    None when the API could not say (the drain asks again; the checks would tell)."""
    cursor, out = "start", []
    while True:
        try:
            answer = admin.request("GET", "/v1/lead-events",
                                   params={"cursor": cursor, "limit": 500})
            page = answer.json() if answer.status_code == 200 else None
        except (GaveUp, httpx.HTTPError, ValueError):
            return None
        if not isinstance(page, dict):
            return None
        events = page.get("events") or []
        out += [feed_item(e) for e in events]
        if not events or page.get("next_cursor") == cursor:
            return out
        cursor = page["next_cursor"]
