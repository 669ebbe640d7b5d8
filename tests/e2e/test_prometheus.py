"""A real Prometheus scrapes a running hub: every series the alert rules and the dashboard
use returns data, and every component's /metrics passes ``promtool check metrics``.

The stack is `passport-hub up --demo`; Prometheus (Debian's package, installed by
deploy/tools/ensure-prometheus.sh where missing) finds its targets in the
``prometheus-targets.json`` that `up` writes, as an operator's would. The test adds
what the demo's traffic alone never shows: a rejected event, a record no schema
decodes (a dead letter), and a reseller's CRM that answers 410 Gone (an endpoint
disabled). Then it asks Prometheus for each series by name, and runs each rule's and
panel's expression (they must evaluate without an error; a rate over a quiet series
may rightly be empty).
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from kafka import KafkaProducer

from hub.broker import free_port
from schemas import catalog
from tests import promql
from tests.e2e.stack import AUTH, hub_file, up, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

#: Scrape and rule evaluation every second: the test waits for series, not for time.
SCRAPE_INTERVAL = "1s"


@pytest.fixture
def gone_crm() -> Iterator[str]:
    """A CRM endpoint that answers every delivery with 410 Gone (it wants no more)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(410)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/gone"
    server.shutdown()


def _start_prometheus(config: Path, url: str, targets: Path, tmp_path: Path, log: IO[bytes],
                      ) -> subprocess.Popen[bytes]:
    promql.promtool()  # the same package brings the server
    config.write_text(
        "global:\n"
        f"  scrape_interval: {SCRAPE_INTERVAL}\n"
        f"  evaluation_interval: {SCRAPE_INTERVAL}\n"
        "rule_files:\n"
        + "".join(f"  - {path}\n" for path in promql.rule_files())
        + "scrape_configs:\n"
        "  - job_name: passport-hub\n"
        "    honor_labels: true\n"  # the kernel's own `component` label, not exported_component
        "    file_sd_configs:\n"
        f"      - files: [{targets}]\n"
        "        refresh_interval: 1s\n",
        encoding="utf-8")
    return subprocess.Popen(
        ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address={url.removeprefix('http://')}"],
        stdout=log, stderr=subprocess.STDOUT)


def _query(url: str, expr: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert answer["status"] == "success", (expr, answer)
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def _event(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "occurred_at": datetime.now(UTC).isoformat(), "source": "e2e", **fields}


def _provoke(base: str, broker: str, topic_prefix: str, crm: str) -> None:
    """A rejected event, an undecodable record, and an endpoint its CRM disables."""
    post = httpx.post(f"{base}/v1/events", headers=AUTH, timeout=15,
                      json=_event("business_enrolled", siren="732829321", name="X",
                                  departement="78"))
    assert post.status_code == 422, post.text
    producer = KafkaProducer(bootstrap_servers=broker)
    producer.send(f"{topic_prefix}{catalog.ENROLMENTS}", key=b"732829320", value=b"not avro")
    producer.flush()
    producer.close()
    reseller = "e2e-gone"
    profile = _event("reseller_profile", reseller_id=reseller, name="Gone", departements=["2A"],
                     categories=["website-hosting"], capacity=1, weight=1)
    assert httpx.post(f"{base}/v1/events", headers=AUTH, json=profile,
                      timeout=15).status_code == 202
    register = httpx.put(f"{base}/v1/resellers/{reseller}/webhook", headers=AUTH, timeout=15,
                         json={"url": crm, "enabled": True})
    assert register.status_code in (200, 201, 202), register.text

    def pinged() -> bool:
        answer = httpx.post(f"{base}/v1/resellers/{reseller}/webhook/test", headers=AUTH,
                            timeout=15)
        return answer.status_code == 202
    wait_for(pinged, 30, "the endpoint to take a test delivery")


def test_prometheus_scrapes_every_series_the_rules_and_dashboard_use(
        tmp_path: Path, gone_crm: str) -> None:
    config, url = tmp_path / "prometheus.yml", f"http://127.0.0.1:{free_port()}"
    # The gone CRM listens on loopback: a stack on the embedded broker allows it itself,
    # one on a configured broker (make test-kafka) is told to.
    env = {"PASSPORT_HUB_LOG_FORMAT": "json", "PASSPORT_HUB_WEBHOOK_ALLOW_HOSTS": "127.0.0.1"}
    with up(tmp_path, "--demo", "--rate", "100", env=env) as base, \
            (tmp_path / "prometheus.log").open("wb") as log:
        hub = hub_file(tmp_path)
        run_dir = Path(hub["run_dir"])
        server = _start_prometheus(config, url, run_dir / "prometheus-targets.json", tmp_path,
                                   log)
        try:
            for name, target in hub["components"].items():
                text = httpx.get(f"{target}/metrics", timeout=10).text
                lint = subprocess.run([promql.promtool(), "check", "metrics"], input=text,
                                      capture_output=True, text=True, check=False, timeout=60)
                assert lint.returncode == 0, f"{name}: {lint.stdout}{lint.stderr}"
            _provoke(base, hub["broker"], hub["topic_prefix"], gone_crm)
            names = sorted({name for expr in (*promql.rule_exprs(), *promql.dashboard_exprs(
                substituted=True)) for name in promql.metric_names(expr)})

            def missing() -> list[str]:
                return [name for name in names if not _query(url, f"count({name})")]

            def all_there() -> bool:
                return not missing()

            try:
                wait_for(all_there, 90, "every series to be scraped")
            except AssertionError:
                pytest.fail(f"no data in Prometheus for: {missing()}")
            up_series = _query(url, 'up{job="passport-hub"}')
            assert {s["metric"]["component"] for s in up_series} == set(hub["components"])
            assert all(s["value"][1] == "1" for s in up_series)
            for expr in (*promql.rule_exprs(), *promql.dashboard_exprs(substituted=True)):
                _query(url, expr)  # evaluates without an error
            rules = httpx.get(f"{url}/api/v1/rules", timeout=10).json()["data"]["groups"]
            assert sum(len(group["rules"]) for group in rules) == len(promql.rules())
        finally:
            server.terminate()
            server.wait(timeout=30)
