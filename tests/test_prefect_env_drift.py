"""The leak-proof Prefect environment has one source, ``flows/prefect_env.py``; the copies in
``infra/`` (image, compose, Kubernetes, ``prefect.yaml``) must carry every forced variable with
its value. Each checker is also shown to catch a copy with a variable removed or changed."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.flows import REPO

from flows import prefect_env

INFRA = REPO / "infra"
#: ``prefect.yaml`` names the source root by the worker-side variable, resolved at deploy time.
PREFECT_YAML_ROOT = "{{ $BREACH_NOTIFY_SRC }}"


def drift(where: str, expected: Mapping[str, str], found: Mapping[str, Any]) -> list[str]:
    """What ``found`` lacks or changes of ``expected``, one line per variable."""
    problems = []
    for key, value in expected.items():
        if key not in found:
            problems.append(f"{where}: lacks {key}")
        elif str(found[key]) != value:
            problems.append(f"{where}: {key}={found[key]!r}, expected {value!r}")
    return problems


def dockerfile_env(text: str) -> dict[str, str]:
    """Every ``ENV`` of a Dockerfile (``KEY=VALUE`` pairs, or the legacy ``KEY VALUE``)."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    env: dict[str, str] = {}
    for line in logical:
        parts = line.split(None, 1)
        if len(parts) != 2 or parts[0].upper() != "ENV":
            continue
        words = shlex.split(parts[1])
        if "=" not in words[0]:
            env[words[0]] = " ".join(words[1:])
            continue
        for word in words:
            key, _, value = word.partition("=")
            env[key] = value
    return env


def dockerfile_root(text: str) -> str:
    """The image's source root: its ``BREACH_NOTIFY_SRC``."""
    return dockerfile_env(text).get("BREACH_NOTIFY_SRC", "<unset>")


def image_root() -> str:
    return dockerfile_root((INFRA / "Dockerfile").read_text())


def check_dockerfile(path: Path) -> list[str]:
    env = dockerfile_env(path.read_text())
    expected = {**prefect_env.forced_for(image_root()), **prefect_env.DEFAULTS}
    return drift(path.name, expected, env)


def _runs_prefect(spec: Mapping[str, Any], *keys: str) -> bool:
    return any("prefect" in str(spec.get(key, "")) for key in keys)


def check_compose(path: Path) -> list[str]:
    spec = yaml.safe_load(path.read_text())
    expected = prefect_env.forced_for(image_root())
    problems = []
    for name, service in spec["services"].items():
        if not _runs_prefect(service, "entrypoint", "command"):
            continue
        env = service.get("environment") or {}
        if isinstance(env, list):
            env = dict(item.partition("=")[::2] for item in env)
        problems += drift(f"{path.name} service {name}", expected, env)
    return problems


def check_kubernetes(path: Path) -> list[str]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    maps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
    expected = prefect_env.forced_for(image_root())
    problems = []
    for doc in docs:
        pod = doc.get("spec", {}).get("template", {}).get("spec", {})
        for container in pod.get("containers", []):
            if not _runs_prefect(container, "command", "args"):
                continue
            env: dict[str, Any] = {}
            for source in container.get("envFrom", []):
                env.update(maps.get(source.get("configMapRef", {}).get("name"), {}))
            for item in container.get("env", []):
                env[item["name"]] = item.get("value", "<from a secret>")
            where = f"{path.name} {doc['kind']} {doc['metadata']['name']}/{container['name']}"
            problems += drift(where, expected, env)
    return problems


def check_prefect_yaml(path: Path) -> list[str]:
    spec = yaml.safe_load(path.read_text())
    expected = prefect_env.forced_for(PREFECT_YAML_ROOT)
    problems = []
    for deployment in spec["deployments"]:
        env = deployment["work_pool"].get("job_variables", {}).get("env", {})
        problems += drift(f"{path.name} deployment {deployment['name']}", expected, env)
    return problems


CHECKS: dict[str, Callable[[Path], list[str]]] = {
    "Dockerfile": check_dockerfile,
    "compose.yaml": check_compose,
    "k8s/breach-notify.yaml": check_kubernetes,
    "prefect.yaml": check_prefect_yaml,
}


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_infra_copy_carries_every_forced_variable(name: str) -> None:
    assert CHECKS[name](INFRA / name) == []


def test_image_carries_the_flows_where_its_source_root_says() -> None:
    text = (INFRA / "Dockerfile").read_text()
    workdir = [ln.split()[1] for ln in text.splitlines() if ln.startswith("WORKDIR ")]
    assert workdir == [image_root()] == ["/app"]
    assert "COPY flows ./flows" in text.splitlines()


def test_forced_values_are_those_of_this_checkout() -> None:
    assert dict(prefect_env.FORCED) == prefect_env.forced_for(str(REPO))
    assert Path(prefect_env.FORCED["PREFECT_LOGGING_SETTINGS_PATH"]) == prefect_env.LOGGING_CONFIG
    assert prefect_env.LOGGING_CONFIG.is_file()


def _without(text: str, key: str) -> str:
    """``text`` minus the lines that set ``key`` (``KEY=…`` or ``KEY: …``)."""
    lines = text.splitlines()
    kept = []
    for line in lines:
        setting = line.strip().removeprefix("ENV ")
        if setting.startswith((f"{key}=", f"{key}:")):
            if line.strip().startswith("ENV "):  # keep the instruction, drop its first pair
                kept.append("ENV " + setting.split(None, 1)[1])
            continue
        kept.append(line)
    assert kept != lines, f"{key} not found"
    return "\n".join(kept) + "\n"


@pytest.mark.parametrize("key", sorted(prefect_env.FORCED))
@pytest.mark.parametrize("name", sorted(CHECKS))
def test_checker_fails_on_a_copy_lacking_a_forced_variable(
    tmp_path: Path, name: str, key: str
) -> None:
    copy = tmp_path / Path(name).name
    copy.write_text(_without((INFRA / name).read_text(), key))
    problems = CHECKS[name](copy)
    assert problems and all(f"lacks {key}" in p for p in problems)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_checker_fails_on_a_copy_changing_a_forced_variable(tmp_path: Path, name: str) -> None:
    text = (INFRA / name).read_text()
    changed = text.replace(
        'PREFECT_TASKS_DEFAULT_PERSIST_RESULT: "false"',
        'PREFECT_TASKS_DEFAULT_PERSIST_RESULT: "true"',
    ).replace(
        "PREFECT_TASKS_DEFAULT_PERSIST_RESULT=false", "PREFECT_TASKS_DEFAULT_PERSIST_RESULT=true"
    )
    assert changed != text
    copy = tmp_path / Path(name).name
    copy.write_text(changed)
    problems = CHECKS[name](copy)
    assert problems
    assert all("PREFECT_TASKS_DEFAULT_PERSIST_RESULT='true'" in p for p in problems)


def test_checker_fails_on_a_prefect_container_without_the_shared_environment(
    tmp_path: Path,
) -> None:
    text = (INFRA / "k8s" / "breach-notify.yaml").read_text()
    line = "          envFrom: [{configMapRef: {name: breach-notify-prefect-env}}]\n"
    assert text.count(line) == 3  # server, deploy job, worker
    copy = tmp_path / "k8s.yaml"
    copy.write_text(text.replace(line, "", 1))
    problems = check_kubernetes(copy)
    assert problems and all("Deployment prefect-server/server: lacks" in p for p in problems)

    compose = (INFRA / "compose.yaml").read_text()
    assert compose.count("<<: *leakproof") == 3  # server, deploy, worker
    copy = tmp_path / "compose.yaml"
    copy.write_text(compose.replace("      <<: *leakproof\n", "", 1))
    problems = check_compose(copy)
    assert problems and all("service prefect-server: lacks" in p for p in problems)
