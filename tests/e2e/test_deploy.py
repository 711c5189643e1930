"""The production layout as shipped (docker-compose.yml, deploy/, Dockerfile) holds together
without Docker: the Compose Specification's own schema accepts the file, every AirGate command
in it exists with its options, every file it mounts is there, HAProxy accepts its config, the
connection budget fits, and the image carries every package."""

from __future__ import annotations

import configparser
import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from airgate.cli import app
from core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "tests" / "fixtures" / "compose-spec" / "compose-spec.json"
POSTGRES_MAX_CONNECTIONS = 100  # PostgreSQL's default, which the compose file does not change


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def _airgate_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run the AirGate image (built from this repository)."""
    return {name: s for name, s in compose["services"].items() if "build" in s}


def test_the_compose_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text())
    errors = [
        f"{error.json_path}: {error.message}"
        for error in jsonschema.Draft7Validator(schema).iter_errors(compose)
    ]
    assert errors == []


def test_the_schema_rejects_what_compose_would(compose: dict[str, Any]) -> None:
    """The check can fail: a misspelt key is refused."""
    schema = json.loads(SCHEMA.read_text())
    broken = {**compose, "services": {**compose["services"], "x": {"comand": ["serve"]}}}
    assert not jsonschema.Draft7Validator(schema).is_valid(broken)


def test_every_airgate_command_exists_with_its_options(compose: dict[str, Any]) -> None:
    commands = {tuple(s["command"]) for s in _airgate_services(compose).values()}
    dockerfile_cmd = re.search(r"^CMD (\[.*\])$", (ROOT / "Dockerfile").read_text(), re.M)
    assert dockerfile_cmd is not None
    commands.add(tuple(json.loads(dockerfile_cmd.group(1))))
    assert {c[0] for c in commands} >= {"serve", "worker", "db", "sandbox"}
    for command in commands:
        result = CliRunner().invoke(app, [*command, "--help"])
        assert result.exit_code == 0, (command, result.output)


def test_every_mounted_file_exists(compose: dict[str, Any]) -> None:
    mounts = [
        volume.split(":")[0]
        for service in compose["services"].values()
        for volume in service.get("volumes", [])
        if volume.startswith(".")
    ]
    assert mounts, "the proxy's and PgBouncer's configs are mounted"
    for source in mounts:
        assert (ROOT / source).is_file(), source


def test_the_proxy_routes_to_every_serve_on_its_readiness(compose: dict[str, Any]) -> None:
    config = (ROOT / "deploy" / "haproxy.cfg").read_text()
    serves = {n for n, s in _airgate_services(compose).items() if s["command"][0] == "serve"}
    assert len(serves) == 2
    servers = re.findall(r"^\s*server (\S+) (\S+):(\d+)", config, re.M)
    assert {(name, host) for name, host, _ in servers} == {(n, n) for n in serves}
    check = re.search(r"default-server check port (\d+)", config)
    assert check is not None
    for name in serves:
        env = compose["services"][name]["environment"]
        assert env["AIRGATE_OPS_PORT"] == check.group(1)
        assert env["AIRGATE_OPS_HOST"] == "0.0.0.0"  # reachable from the proxy's container
        assert "/healthz" in " ".join(compose["services"][name]["healthcheck"]["test"])
    assert "option httpchk GET /readyz" in config


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")
def test_haproxy_accepts_its_config() -> None:
    """Without Docker's DNS: init-addr lets HAProxy start before the services resolve."""
    result = subprocess.run(
        ["haproxy", "-c", "-f", str(ROOT / "deploy" / "haproxy.cfg")],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "[ALERT]" not in result.stderr


def _processes(compose: dict[str, Any], env_of: dict[str, str]) -> int:
    """AirGate processes with a pool on ``env_of``'s database, counted from the file."""
    total = 0
    for service in _airgate_services(compose).values():
        if service["environment"]["AIRGATE_DATABASE_URL"] != env_of["AIRGATE_DATABASE_URL"]:
            continue
        command = service["command"]
        per_instance = (
            int(command[command.index("--processes") + 1]) if "--processes" in command else 1
        )
        total += per_instance * service.get("deploy", {}).get("replicas", 1)
    return total


def test_pgbouncer_pools_transactions_and_the_budget_fits(compose: dict[str, Any]) -> None:
    ini = configparser.ConfigParser()
    ini.read(ROOT / "deploy" / "pgbouncer.ini")
    bouncer = ini["pgbouncer"]
    assert bouncer["pool_mode"] == "transaction"
    env = compose["services"]["serve-1"]["environment"]
    assert env["AIRGATE_DATABASE_URL"].startswith(
        f"postgresql://airgate@pgbouncer:{bouncer['listen_port']}/"
    )
    assert env["AIRGATE_DB_PGBOUNCER"] == "true"
    defaults = Settings.model_fields
    per_process = sum(
        int(defaults[name].default)
        for name in ("db_pool_size", "db_max_overflow", "db_lookup_connections")
    )
    clients = _processes(compose, env) * per_process  # an upper bound: a worker has no lookups
    assert clients <= int(bouncer["max_client_conn"])
    backends = int(bouncer["default_pool_size"]) + int(bouncer["reserve_pool_size"])
    migrate_and_an_operator = 2 * per_process
    assert backends + migrate_and_an_operator < POSTGRES_MAX_CONNECTIONS
    assert compose["services"]["migrate"]["environment"]["AIRGATE_DB_PGBOUNCER"] == "false"


def test_redis_keeps_an_append_only_file(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert any(v.endswith(":/data") for v in redis["volumes"])


def test_the_image_carries_every_package() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    copied = set(re.findall(r"^COPY (\w+) \1$", (ROOT / "Dockerfile").read_text(), re.M))
    assert packages <= copied, packages - copied
