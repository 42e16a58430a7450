"""deploy/compose.yaml, read as documentation that must stay true: it parses, it has every
part of the deployment (PostgreSQL, three NATS JetStream nodes in one cluster, three Qdrant
nodes in one cluster, the service, the workers), every EXDESK_ setting it names exists and
validates, and every exdesk command and option it runs is one exdesk has. Nothing here runs a
container (no image can be pulled on the project's machine)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from service.cli import app
from service.settings import Settings

COMPOSE = Path(__file__).resolve().parents[2] / "deploy" / "compose.yaml"
NATS = ("nats-1", "nats-2", "nats-3")
QDRANT = ("qdrant-1", "qdrant-2", "qdrant-3")
EXDESK = ("exdesk-init", "exdesk-service", "exdesk-worker")
_DEFAULTED = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::?-([^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services = compose["services"]
    assert isinstance(services, dict)
    return services


def _interpolated(value: object) -> str:
    """A value as compose gives it with nothing set in the environment: ${X:-default} is the
    default, ${X} empty."""
    return _DEFAULTED.sub(lambda m: m.group(2) or "", str(value))


def _settings_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    assert isinstance(env, dict), "environment as a mapping, not a list"
    return {k: _interpolated(v) for k, v in env.items() if k.startswith("EXDESK_")}


def test_every_part_of_the_deployment_is_there(compose: dict[str, Any]) -> None:
    services = _services(compose)
    assert {"postgres", *NATS, *QDRANT, *EXDESK} <= services.keys()
    assert services["exdesk-worker"]["deploy"]["replicas"] >= 2
    declared = set(compose.get("volumes") or {})
    for name, service in services.items():
        for dependency in service.get("depends_on") or {}:
            assert dependency in services, f"{name} depends on {dependency}, not a service"
        for volume in service.get("volumes") or []:
            source = volume.split(":", 1)[0]
            assert source in declared, f"{name} mounts {source}, not a declared volume"


def test_every_exdesk_setting_exists_and_validates(compose: dict[str, Any]) -> None:
    fields = {f"EXDESK_{name.upper()}" for name in Settings.model_fields}
    for name in EXDESK:
        named = _settings_of(_services(compose)[name])
        assert named, f"{name} names no EXDESK_ setting"
        unknown = named.keys() - fields
        assert not unknown, f"{name}: {sorted(unknown)} are not exdesk settings"
        settings = Settings(**{k.removeprefix("EXDESK_").lower(): v for k, v in named.items()})
        assert settings.database().startswith("postgresql+psycopg://")
        assert settings.qdrant_url and settings.stream_url


def test_the_clusters_are_clusters(compose: dict[str, Any]) -> None:
    services = _services(compose)
    for node in NATS:
        command = services[node]["command"]
        assert f"--name {node}" in command and "--jetstream" in command
        assert "--cluster_name exdesk" in command
        assert all(f"nats://{other}:6222" in command for other in NATS)
    for node in QDRANT:
        service = services[node]
        assert service["environment"]["QDRANT__CLUSTER__ENABLED"] == "true"
        assert f"http://{node}:6335" in service["command"]
        if node != QDRANT[0]:
            assert service["command"][1:3] == ["--bootstrap", f"http://{QDRANT[0]}:6335"]
    settings = _settings_of(services["exdesk-worker"])
    assert all(f"nats://{node}:4222" in settings["EXDESK_STREAM_URL"] for node in NATS)
    assert all(f"nats://{node}:4222" in settings["EXDESK_EVENTS_NATS_URL"] for node in NATS)
    assert 1 < int(settings["EXDESK_STREAM_REPLICAS"]) <= len(NATS)
    assert 1 < int(settings["EXDESK_EVENTS_REPLICAS"]) <= len(NATS)
    assert 1 < int(settings["EXDESK_QDRANT_REPLICAS"]) <= len(QDRANT)


def test_every_process_that_writes_the_log_has_the_one_signing_key(
    compose: dict[str, Any],
) -> None:
    services = _services(compose)
    assert services["exdesk-init"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in EXDESK:
        service = services[name]
        key = Path(_settings_of(service)["EXDESK_SIGNING_KEY"])
        mounts = {v.split(":")[1]: v for v in service["volumes"]}
        assert str(key.parent) in mounts, f"{name}: the signing key's folder is not mounted"
        assert mounts[str(key.parent)].startswith("exdesk-keys:")
        if name != "exdesk-init":  # made once by init, read by the others
            assert mounts[str(key.parent)].endswith(":ro")
            assert service["depends_on"]["exdesk-init"]["condition"] == (
                "service_completed_successfully"
            )


def test_the_commands_are_exdesks(compose: dict[str, Any]) -> None:
    runner = CliRunner()
    for name in EXDESK:
        command = _services(compose)[name]["command"]
        assert command[0] == "exdesk"
        args = command[1:]
        first = next((i for i, w in enumerate(args) if w.startswith("-")), len(args))
        path, options = args[:first], [w for w in args[first:] if w.startswith("--")]
        result = runner.invoke(app, [*path, "--help"], terminal_width=200)
        assert result.exit_code == 0, (name, result.output)
        for option in options:
            assert option in result.output, f"{name}: exdesk {' '.join(path)} has no {option}"
