"""deploy/compose, checked without a Docker engine.

Three layers. The Compose Specification's JSON schema (the copy dclint ships, from the
npm registry) says whether Compose can read the file at all. dclint, the Docker Compose
linter, holds it to its rules (explicit image tags, bound port interfaces, order).
Then what the schema cannot know and an operator would find at `docker compose up`:
every mounted file exists, every dependency is a service with a healthcheck, the hub's
containers are given settings the hub really reads (hub/config.py) and serve their
probes where the process contract says (docs/operations.md, Processes), Kafka is three
brokers with min.insync.replicas=2, Prometheus scrapes every component and loads the
alert rules (promtool), Grafana finds its provisioning. Each check is also shown to
fail on a broken copy.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import jsonschema
import pytest
import yaml

from hub.components import COMPONENTS
from tests.unit.deploy_kit import (
    DATA_DIR,
    DEPLOY,
    DEPLOYED,
    REPO,
    contract_breaches,
    load_yaml,
    run,
    serving_port,
    tool,
    unknown_settings,
)

COMPOSE_DIR = DEPLOY / "compose"
COMPOSE = COMPOSE_DIR / "compose.yaml"
DCLINT_CONFIG = COMPOSE_DIR / ".dclintrc.yaml"
ENV_EXAMPLE = COMPOSE_DIR / ".env.example"
BROKERS = 3
MIN_INSYNC_REPLICAS = 2
#: The components that read the API's keys file: the API, and the file drop, which binds
#: each partner's inbox to its key. Without it, either exits 2 at start.
KEYED = ("api", "file_drop")
Doc = dict[str, Any]


@pytest.fixture(scope="module")
def doc() -> Doc:
    loaded: Doc = load_yaml(COMPOSE)
    return loaded


@pytest.fixture(scope="module")
def dclint() -> Path:
    return tool("dclint")


# -- reading a compose file -----------------------------------------------------------

def services(doc: Doc) -> dict[str, Doc]:
    found: dict[str, Doc] = doc.get("services") or {}
    return found


def environment(service: Doc) -> dict[str, object]:
    """A service's environment, from either of Compose's two forms."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(str(item).partition("=")[::2] for item in env)
    return dict(env)


def depends_on(service: Doc) -> dict[str, str]:
    """A service's dependencies and their conditions (the list form: service_started)."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


def is_hub(service: Doc) -> bool:
    """Built from the repository's Dockerfile: a container of the hub's image."""
    build = service.get("build")
    context = build if isinstance(build, str) else (build or {}).get("context")
    return context is not None and (COMPOSE_DIR / context).resolve() == REPO


def component_of(service: Doc) -> str | None:
    """The component a hub container runs: `passport-hub run NAME`, or `python -m MODULE`."""
    entrypoint = service.get("entrypoint")
    if entrypoint:
        modules = {module: name for name, module in COMPONENTS.items()}
        return next((modules.get(arg) for arg in entrypoint if arg in modules), None)
    command = service.get("command") or []
    return command[0] if command and command[0] in COMPONENTS else None


def hub_services(doc: Doc) -> dict[str, str]:
    """Each hub service and its component."""
    return {name: component_of(service) or "?" for name, service in services(doc).items()
            if is_hub(service)}


def binds(service: Doc) -> Iterator[tuple[str, str]]:
    """A service's volumes as (source, target); a bind's source starts with . / or ~."""
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            source, _, rest = volume.partition(":")
            yield source, rest.partition(":")[0]
        else:
            yield str(volume.get("source", "")), str(volume["target"])


def is_bind(source: str) -> bool:
    return source.startswith((".", "/", "~"))


def host_path(service: Doc, container_path: str) -> Path | None:
    """Where on the host a path inside a service's container comes from (a bind mount)."""
    for source, target in binds(service):
        if is_bind(source) and (container_path == target
                                or container_path.startswith(target.rstrip("/") + "/")):
            return (COMPOSE_DIR / source / container_path[len(target):].lstrip("/")).resolve()
    return None


# -- the checks: each returns what is wrong, as sentences ------------------------------

def build_problems(doc: Doc) -> list[str]:
    problems = []
    for name, service in services(doc).items():
        if "image" not in service and "build" not in service:
            problems.append(f"{name}: neither image nor build")
        build = service.get("build")
        if isinstance(build, dict):
            context = COMPOSE_DIR / build.get("context", ".")
            if not (context / build.get("dockerfile", "Dockerfile")).is_file():
                problems.append(f"{name}: no {build.get('dockerfile')} in {context}")
    return problems


def mount_problems(doc: Doc) -> list[str]:
    problems = []
    named = set(doc.get("volumes") or {})
    declared_secrets = doc.get("secrets") or {}
    for name, service in services(doc).items():
        for source, target in binds(service):
            if is_bind(source) and not (COMPOSE_DIR / source).exists():
                problems.append(f"{name}: {source} (mounted at {target}) does not exist")
            elif not is_bind(source) and source and source not in named:
                problems.append(f"{name}: volume {source} is not declared")
        for env_file in service.get("env_file") or []:
            path = env_file if isinstance(env_file, str) else env_file["path"]
            if not (COMPOSE_DIR / path).is_file():
                problems.append(f"{name}: env_file {path} does not exist")
        for secret in service.get("secrets") or []:
            secret_name = secret if isinstance(secret, str) else secret["source"]
            if secret_name not in declared_secrets:
                problems.append(f"{name}: secret {secret_name} is not declared")
    for config in (doc.get("configs") or {}).values():
        if "file" in config and not (COMPOSE_DIR / config["file"]).is_file():
            problems.append(f"config file {config['file']} does not exist")
    return problems + secret_problems(declared_secrets)


def secret_problems(secrets: dict[str, Doc]) -> list[str]:
    """A secret's file is made by the operator: under secrets/, ignored by git, explained."""
    problems = []
    readme = (COMPOSE_DIR / "secrets" / "README.md").read_text(encoding="utf-8")
    ignored = (COMPOSE_DIR / ".gitignore").read_text(encoding="utf-8").splitlines()
    for name, secret in secrets.items():
        if "file" not in secret:
            continue
        path = Path(secret["file"])
        if path.parts[0] != "secrets":  # Path drops a leading ./
            problems.append(f"secret {name}: {path} is not under secrets/")
        if "/secrets/*" not in ignored:
            problems.append("secrets/* is not ignored by deploy/compose/.gitignore")
        if f"`{path.name}`" not in readme:
            problems.append(f"secret {name}: secrets/README.md does not say how to make "
                            f"{path.name}")
    return problems


def dependency_problems(doc: Doc) -> list[str]:
    problems = []
    known = services(doc)
    for name, service in known.items():
        for target, condition in depends_on(service).items():
            if target not in known:
                problems.append(f"{name}: depends on {target}, which is not a service")
            elif condition == "service_healthy" and "healthcheck" not in known[target]:
                problems.append(f"{name}: waits for {target} to be healthy; it has no "
                                "healthcheck")
            elif known[target].get("profiles") and not service.get("profiles"):
                problems.append(f"{name}: depends on {target}, which only runs in a profile")
    return problems


def kafka_nodes(doc: Doc) -> dict[str, dict[str, object]]:
    return {name: environment(service) for name, service in services(doc).items()
            if str(service.get("image", "")).startswith("apache/kafka:")}


def kafka_problems(doc: Doc) -> list[str]:
    nodes = kafka_nodes(doc)
    brokers = {name: env for name, env in nodes.items()
               if "broker" in str(env.get("KAFKA_PROCESS_ROLES", "")).split(",")}
    problems = [] if len(brokers) == BROKERS else [f"{len(brokers)} brokers, not {BROKERS}"]
    wanted = {"KAFKA_MIN_INSYNC_REPLICAS": MIN_INSYNC_REPLICAS,
              "KAFKA_DEFAULT_REPLICATION_FACTOR": BROKERS,
              "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": BROKERS,
              "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": BROKERS,
              "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": MIN_INSYNC_REPLICAS,
              "KAFKA_AUTO_CREATE_TOPICS_ENABLE": False}
    for name, env in brokers.items():
        problems += [f"{name}: {key}={env.get(key)!r}, expected {value!r}"
                     for key, value in wanted.items()
                     if str(env.get(key)).lower() != str(value).lower()]
        if not any(target == env.get("KAFKA_LOG_DIRS") for _, target in
                   binds(services(doc)[name])):
            problems.append(f"{name}: its log dirs are not on a volume")
    ids = {name: env.get("KAFKA_NODE_ID") for name, env in nodes.items()}
    if len(set(ids.values())) != len(ids):
        problems.append(f"node ids are not distinct: {ids}")
    for setting in ("CLUSTER_ID", "KAFKA_CONTROLLER_QUORUM_VOTERS"):
        if len({str(env.get(setting)) for env in nodes.values()}) != 1:
            problems.append(f"the nodes do not share one {setting}")
    controllers = {f"{ids[name]}@{name}" for name, env in nodes.items()
                   if "controller" in str(env.get("KAFKA_PROCESS_ROLES", "")).split(",")}
    for name, env in nodes.items():
        voters = {voter.rpartition(":")[0]
                  for voter in str(env.get("KAFKA_CONTROLLER_QUORUM_VOTERS", "")).split(",")}
        if voters != controllers:
            problems.append(f"{name}: quorum voters {sorted(voters)}, controllers "
                            f"{sorted(controllers)}")
    return problems


def advertised(env: dict[str, object], listener: str = "PLAINTEXT") -> str | None:
    for entry in str(env.get("KAFKA_ADVERTISED_LISTENERS", "")).split(","):
        name, _, address = entry.partition("://")
        if name == listener:
            return address
    return None


def hub_problems(doc: Doc) -> list[str]:
    problems = []
    nodes = kafka_nodes(doc)
    bootstrap = {advertised(env) for env in nodes.values()}
    data_volumes: dict[str, str] = {}
    running = hub_services(doc)
    for name, component in running.items():
        service = services(doc)[name]
        env = environment(service)
        problems += [f"{name}: {setting} is no setting of the hub (hub/config.py)"
                     for setting in unknown_settings(env)]
        if str(env.get("PASSPORT_HUB_REPLICATION_FACTOR")) != str(BROKERS):
            problems.append(f"{name}: PASSPORT_HUB_REPLICATION_FACTOR is not {BROKERS}")
        servers = set(str(env.get("KAFKA_BOOTSTRAP_SERVERS", "")).split(","))
        if servers != bootstrap:
            problems.append(f"{name}: KAFKA_BOOTSTRAP_SERVERS {sorted(servers)} are not the "
                            "brokers' listeners")
        if any(depends_on(service).get(node) != "service_healthy" for node in nodes):
            problems.append(f"{name}: does not wait for every broker to be healthy")
        if component not in DEPLOYED:
            continue
        problems += [f"{name}: {breach}" for breach in contract_breaches(env, component)]
        volume = next((s for s, target in binds(service) if target == DATA_DIR), None)
        if volume is None or is_bind(volume):
            problems.append(f"{name}: no named volume at {DATA_DIR}")
        elif volume in data_volumes:
            problems.append(f"{name}: shares volume {volume} with {data_volumes[volume]}")
        else:
            data_volumes[volume] = name
        probe = " ".join(map(str, (service.get("healthcheck") or {}).get("test", [])))
        if f"127.0.0.1:{serving_port(component)}/readyz" not in probe:
            problems.append(f"{name}: its healthcheck does not ask /readyz on "
                            f"{serving_port(component)}")
    missing = sorted(set(DEPLOYED) - set(running.values()))
    problems += [f"no service runs {component}" for component in missing]
    if len(running) != len(set(running.values())):
        problems.append(f"a component runs twice: {running}")
    keys = {str(environment(services(doc)[name]).get("PASSPORT_HUB_WEBHOOK_SECRET_KEY"))
            for name, component in running.items() if component in {"api", "crm_webhook"}}
    if len(keys) != 1 or keys == {"None"}:
        problems.append("api and crm_webhook are not given one webhook secret key")
    return problems


def secret_mounts(service: Doc) -> dict[str, str]:
    """Where a service sees each of its secrets: its path in the container, by secret."""
    mounts = {}
    for secret in service.get("secrets") or []:
        source = secret if isinstance(secret, str) else secret["source"]
        target = source if isinstance(secret, str) else secret.get("target", source)
        mounts[source] = target if target.startswith("/") else f"/run/secrets/{target}"
    return mounts


def keys_file_problems(doc: Doc) -> list[str]:
    """The API and the file drop read one keys file, a secret mounted where they look."""
    problems, read = [], set()
    for name, component in hub_services(doc).items():
        if component not in KEYED:
            continue
        service = services(doc)[name]
        path = environment(service).get("PASSPORT_HUB_API_KEYS_FILE")
        sources = [s for s, target in secret_mounts(service).items() if target == path]
        if not sources:
            problems.append(f"{name}: PASSPORT_HUB_API_KEYS_FILE {path} is no secret "
                            "mounted in it")
        read.update(sources)
    if len(read) > 1:
        problems.append(f"the keyed services read different keys files: {sorted(read)}")
    return problems


def scrape_targets(config: Doc) -> dict[str, str]:
    """The targets of the scrape job `passport-hub`, with their `component` labels."""
    jobs = [job for job in config.get("scrape_configs") or []
            if job.get("job_name") == "passport-hub"]
    return {target: group.get("labels", {}).get("component", "?")
            for job in jobs for group in job.get("static_configs") or []
            for target in group.get("targets") or []}


def prometheus_problems(doc: Doc, config: Doc) -> list[str]:
    expected = {f"{name}:{serving_port(component)}": component
                for name, component in hub_services(doc).items() if component in DEPLOYED}
    targets = scrape_targets(config)
    problems = [f"job passport-hub: {target} ({component}) is not scraped"
                for target, component in expected.items() if targets.get(target) != component]
    problems += [f"job passport-hub: {target} is no hub component"
                 for target in targets if target not in expected]
    prometheus = services(doc)["prometheus"]
    for pattern in config.get("rule_files") or []:
        on_host = host_path(prometheus, pattern)
        if on_host is None or not list(on_host.parent.glob(on_host.name)):
            problems.append(f"rule_files {pattern}: no such file mounted")
    return problems


def provisioned(service: Doc, folder: str) -> list[Path]:
    """The host files a container sees in ``folder``: mounted one by one, or with it."""
    found = []
    for source, target in binds(service):
        host = (COMPOSE_DIR / source).resolve()
        if not is_bind(source):
            continue
        if target.startswith(folder.rstrip("/") + "/") and host.is_file():
            found.append(host)
        elif folder == target or folder.startswith(target.rstrip("/") + "/"):
            inside = host / folder[len(target):].lstrip("/")
            found += sorted(inside.glob("*.y*ml")) if inside.is_dir() else []
    return found


def grafana_problems(doc: Doc) -> list[str]:
    grafana = services(doc)["grafana"]
    datasources = provisioned(grafana, "/etc/grafana/provisioning/datasources")
    providers = provisioned(grafana, "/etc/grafana/provisioning/dashboards")
    problems = [f"grafana: nothing provisioned in {what}"
                for what, files in (("datasources", datasources), ("dashboards", providers))
                if not files]
    for path in datasources:
        for source in load_yaml(path).get("datasources") or []:
            host = urlparse(source.get("url", "")).hostname
            if host not in services(doc):
                problems.append(f"datasource {source.get('name')}: {host} is no service")
    for path in providers:
        for provider in load_yaml(path).get("providers") or []:
            folder = host_path(grafana, provider.get("options", {}).get("path", "?"))
            if folder is None or not list(folder.glob("*.json")):
                problems.append(f"dashboard provider {provider.get('name')}: no dashboards")
    home = environment(grafana).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    home_path = host_path(grafana, str(home)) if home else None
    if home and (home_path is None or not home_path.is_file()):
        problems.append(f"home dashboard {home} is not mounted")
    return problems


def interpolation_problems(text: str, example: str) -> list[str]:
    """Every ${VAR} of the compose file is explained in .env.example; required ones set."""
    problems = []
    for name, operator in re.findall(r"\$\{(\w+)(:?[-?])?", text):
        if not re.search(rf"^#? ?{name}=", example, re.MULTILINE):
            problems.append(f"${{{name}}} is not in .env.example")
        elif operator == ":?" and not re.search(rf"^{name}=", example, re.MULTILINE):
            problems.append(f"${{{name}}} is required but commented out in .env.example")
    return problems


def all_problems(doc: Doc) -> list[str]:
    prometheus = services(doc).get("prometheus", {})
    config_path = host_path(prometheus, "/etc/prometheus/prometheus.yml")
    config = load_yaml(config_path) if config_path and config_path.is_file() else {}
    return (build_problems(doc) + mount_problems(doc) + dependency_problems(doc)
            + kafka_problems(doc) + hub_problems(doc) + keys_file_problems(doc)
            + prometheus_problems(doc, config) + grafana_problems(doc))


# -- the Compose Specification ---------------------------------------------------------

def schema_errors(doc: Doc, dclint: Path) -> list[str]:
    # dclint's package ships the specification's schema beside its code.
    schema_path = dclint.resolve().parents[1] / "schemas" / "compose.schema.json"
    validator = jsonschema.Draft7Validator(json.loads(schema_path.read_text(encoding="utf-8")))
    return [f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
            for error in validator.iter_errors(doc)]


def test_the_file_follows_the_compose_specification(doc: Doc, dclint: Path) -> None:
    assert schema_errors(doc, dclint) == []


def test_the_specification_rejects_a_broken_file(doc: Doc, dclint: Path) -> None:
    broken = copy.deepcopy(doc)
    broken["services"]["api"]["depends_on"]["kafka-1"]["condition"] = "healthy"
    broken["services"]["routing"]["restart_policy"] = "always"
    errors = schema_errors(broken, dclint)
    assert any(e.startswith("services/api/depends_on") for e in errors), errors
    assert any("restart_policy" in e for e in errors), errors


def test_dclint_finds_nothing(dclint: Path) -> None:
    done = run(dclint, "--config", DCLINT_CONFIG, "--max-warnings", "0", "--color", "false",
               COMPOSE)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dclint_rejects_a_careless_file(dclint: Path, tmp_path: Path) -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    careless = text.replace("image: prom/prometheus:v3.5.0", "image: prom/prometheus:latest")
    careless = careless.replace('- "127.0.0.1:9090:9090"', '- "9090:9090"')
    broken = tmp_path / "compose.yaml"
    broken.write_text(careless, encoding="utf-8")
    done = run(dclint, "--config", DCLINT_CONFIG, "--max-warnings", "0", "--color", "false",
               broken)
    assert done.returncode != 0
    assert "service-image-require-explicit-tag" in done.stdout
    assert "no-unbound-port-interfaces" in done.stdout


# -- what docker compose up would find -------------------------------------------------

def test_every_service_mount_dependency_and_setting_holds(doc: Doc) -> None:
    assert all_problems(doc) == []


def test_every_component_runs_from_the_hub_image(doc: Doc) -> None:
    assert sorted(c for c in hub_services(doc).values() if c in DEPLOYED) == sorted(DEPLOYED)


def _set(path: str, value: object) -> Callable[[Doc], None]:
    """A breakage: set the value at a '/'-separated path (None deletes it)."""
    *parents, leaf = path.split("/")

    def apply(doc: Doc) -> None:
        node = doc
        for key in parents:
            node = node[key]
        if value is None:
            del node[leaf]
        else:
            node[leaf] = value
    return apply


BREAKAGES = {
    "a misspelt setting": (_set("services/routing/environment/PASSPORT_HUB_REPLICATON_FACTOR",
                                3), "PASSPORT_HUB_REPLICATON_FACTOR is no setting"),
    "min ISR 1": (_set("services/kafka-2/environment/KAFKA_MIN_INSYNC_REPLICAS", 1),
                  "kafka-2: KAFKA_MIN_INSYNC_REPLICAS=1"),
    "two brokers": (_set("services/kafka-3", None), "2 brokers, not 3"),
    "a missing mount": (_set("services/prometheus/volumes",
                             ["./prometheus-missing.yml:/etc/prometheus/prometheus.yml:ro"]),
                        "./prometheus-missing.yml (mounted at"),
    "an unknown dependency": (_set("services/passport/depends_on/kafka-4",
                                   {"condition": "service_healthy"}),
                              "depends on kafka-4, which is not a service"),
    "the liveness path probed for readiness": (
        _set("services/routing/healthcheck",
             {"test": ["CMD", "python", "-c", "http://127.0.0.1:9400/livez"]}),
        "routing: its healthcheck does not ask /readyz"),
    "a component left out": (_set("services/file-drop", None), "no service runs file_drop"),
    "the file drop without the keys": (_set("services/file-drop/secrets", None),
                                       "file-drop: PASSPORT_HUB_API_KEYS_FILE"),
    "a shared data volume": (_set("services/routing/volumes",
                                  ["passport-data:/var/lib/passport-hub"]),
                             "shares volume passport-data"),
    "grafana without its datasource": (
        _set("services/grafana/volumes", ["grafana-data:/var/lib/grafana"]),
        "grafana: nothing provisioned in datasources"),
    "a component run twice": (_set("services/crm-webhook/command", ["passport"]),
                              "a component runs twice"),
    "the wrong metrics port": (_set("services/passport/environment/PASSPORT_HUB_METRICS_PORT",
                                    9500), "PASSPORT_HUB_METRICS_PORT=9500"),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_a_broken_copy_is_caught(doc: Doc, breakage: str) -> None:
    apply, expected = BREAKAGES[breakage]
    broken = copy.deepcopy(doc)
    apply(broken)
    problems = all_problems(broken)
    assert any(expected in problem for problem in problems), problems


def test_every_variable_is_explained_in_the_env_example() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    example = ENV_EXAMPLE.read_text(encoding="utf-8")
    assert interpolation_problems(text, example) == []
    assert interpolation_problems(text + "${GRAFANA_ADMIN_USER:?}", example) == [
        "${GRAFANA_ADMIN_USER} is not in .env.example"]
    # Values in the example are empty: the operator makes each secret.
    assert re.findall(r"^\w*(?:KEY|PASSWORD)=(.+)$", example, re.MULTILINE) == []


# -- Prometheus and its rules ----------------------------------------------------------

def promtool_check(config: Doc, tmp_path: Path, doc: Doc) -> tuple[int, str]:
    """promtool check config on the compose Prometheus config, its rule_files read from
    the host paths compose mounts them from (so the alert rules are checked loaded)."""
    prometheus = services(doc)["prometheus"]
    on_host = dict(config)
    on_host["rule_files"] = [str(host_path(prometheus, p)) for p in config["rule_files"]]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(on_host), encoding="utf-8")
    done = run(tool("prometheus"), "check", "config", path)
    return done.returncode, done.stdout + done.stderr


def test_prometheus_loads_the_rules_and_scrapes_every_component(doc: Doc,
                                                                tmp_path: Path) -> None:
    config = load_yaml(COMPOSE_DIR / "prometheus.yml")
    status, output = promtool_check(config, tmp_path, doc)
    assert status == 0, output
    assert "passport-hub.rules.yml" in output
    assert sorted(scrape_targets(config).values()) == sorted(DEPLOYED)


def test_an_unscraped_component_is_caught(doc: Doc) -> None:
    config = load_yaml(COMPOSE_DIR / "prometheus.yml")
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "passport-hub")
    job["static_configs"] = [g for g in job["static_configs"]
                             if g["labels"]["component"] != "routing"]
    job["static_configs"][0]["labels"]["component"] = "API"
    assert prometheus_problems(doc, config) == [
        "job passport-hub: api:8080 (api) is not scraped",
        "job passport-hub: routing:9400 (routing) is not scraped"]


def test_promtool_rejects_a_broken_config(doc: Doc, tmp_path: Path) -> None:
    config = load_yaml(COMPOSE_DIR / "prometheus.yml")
    config["global"]["scrape_interval"] = "fifteen seconds"
    status, output = promtool_check(config, tmp_path, doc)
    assert status != 0, output
