"""docker-compose.yml agrees with shared.platform.settings.Settings and the Dockerfile (parsed, no engine needed)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from shared.platform.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"

HTTP_SERVICES = ("ingest", "retention", "dsr", "export")
SAILO_SERVICES = (*HTTP_SERVICES, "migrate")
SECRETS = ("KEY_ENCRYPTION_KEY", "BLIND_INDEX_KEY")

_INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?P<op>:?[-?])?(?P<arg>[^}]*)\}")


def interpolate(value: str) -> str:
    """What compose makes of ${VAR:-default} with nothing set: the default (or a placeholder)."""

    def replace(match: re.Match[str]) -> str:
        if match.group("op") in (":-", "-"):
            return match.group("arg")
        return f"unset-{match.group('name').lower()}"

    return _INTERPOLATION.sub(replace, value)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result = compose["services"]
    assert isinstance(result, dict)
    return result


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # ["NAME=value", ...] form
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(name): "" if value is None else str(value) for name, value in env.items()}


def test_all_services_exist(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) >= {*SAILO_SERVICES, "kafka", "postgres"}


@pytest.mark.parametrize("name", SAILO_SERVICES)
def test_environment_names_are_settings_fields(services: dict[str, dict[str, Any]], name: str) -> None:
    fields = set(Settings.model_fields)
    env = environment(services[name])
    assert env, f"{name} sets no environment"
    unknown = sorted(key for key in env if key.lower() not in fields)
    assert not unknown, f"{name} sets {unknown}, which shared.platform.settings.Settings does not read"


@pytest.mark.parametrize("name", SAILO_SERVICES)
def test_environment_values_are_valid_settings(services: dict[str, dict[str, Any]], name: str) -> None:
    values = {key.lower(): interpolate(value) for key, value in environment(services[name]).items()}
    settings = Settings.model_validate(values)  # validation only: no environment, no .env
    assert settings.kafka_enable_idempotence is True  # real Kafka: idempotent producers
    assert settings.resolved_blob_store_url == "file:///data/blobs"


@pytest.mark.parametrize("name", SAILO_SERVICES)
def test_no_secret_is_committed(services: dict[str, dict[str, Any]], name: str) -> None:
    env = environment(services[name])
    for secret in SECRETS:
        if secret in env:
            assert re.fullmatch(r"\$\{\w+(:?\?[^}]*)?\}", env[secret]), (
                f"{name}: {secret} must come from ${{VAR}}"
            )


def test_sailo_services_share_one_dockerfile(services: dict[str, dict[str, Any]]) -> None:
    builds = []
    for name in SAILO_SERVICES:
        build = services[name]["build"]
        if isinstance(build, str):
            build = {"context": build}
        builds.append((build.get("context", "."), build.get("dockerfile", "Dockerfile")))
    assert set(builds) == {(".", "Dockerfile")}
    assert (ROOT / "Dockerfile").is_file()


def test_commands(services: dict[str, dict[str, Any]]) -> None:
    for name in HTTP_SERVICES:
        assert services[name]["command"] == ["python", "-m", f"services.{name}"]
    assert services["migrate"]["command"] == ["python", "-m", "shared.platform.db", "upgrade"]


def test_ports_match_settings_defaults(services: dict[str, dict[str, Any]]) -> None:
    published = {}
    for name in HTTP_SERVICES:
        default = Settings.model_fields[f"{name}_port"].default
        ports = [str(port) for port in services[name]["ports"]]
        assert ports == [f"{default}:{default}"], name
        published[name] = default
    assert published == {"ingest": 8001, "retention": 8002, "dsr": 8003, "export": 8004}


def test_database_url_points_at_the_postgres_service(services: dict[str, dict[str, Any]]) -> None:
    for name in SAILO_SERVICES:
        url = urlsplit(interpolate(environment(services[name])["DATABASE_URL"]))
        assert url.scheme == "postgresql+asyncpg"
        assert url.hostname == "postgres" and url.hostname in services
        assert url.port == 5432
        pg_env = environment(services["postgres"])
        assert url.username == pg_env["POSTGRES_USER"]
        assert url.path.lstrip("/") == pg_env["POSTGRES_DB"]
        assert url.password == interpolate(pg_env["POSTGRES_PASSWORD"])


def test_bootstrap_servers_point_at_the_kafka_service(services: dict[str, dict[str, Any]]) -> None:
    kafka_listeners = environment(services["kafka"])["KAFKA_ADVERTISED_LISTENERS"]
    for name in SAILO_SERVICES:
        servers = environment(services[name])["KAFKA_BOOTSTRAP_SERVERS"].split(",")
        for server in servers:
            host, _, port = server.strip().rpartition(":")
            assert host == "kafka" and host in services
            assert f"//{host}:{port}" in kafka_listeners  # advertised inside the compose network


def test_every_service_has_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    for name in (*HTTP_SERVICES, "kafka", "postgres"):
        test = services[name].get("healthcheck", {}).get("test")
        assert test, f"{name} has no healthcheck"
    for name in HTTP_SERVICES:
        port = Settings.model_fields[f"{name}_port"].default
        assert f"http://localhost:{port}/healthz" in " ".join(services[name]["healthcheck"]["test"])
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "kafka-broker-api-versions.sh" in " ".join(services["kafka"]["healthcheck"]["test"])


def test_services_wait_for_healthy_dependencies_and_migrations(services: dict[str, dict[str, Any]]) -> None:
    for name in HTTP_SERVICES:
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["kafka"]["condition"] == "service_healthy"
        assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["migrate"].get("restart") in ("no", None)


def test_kafka_is_apache_kafka_in_kraft_mode(services: dict[str, dict[str, Any]]) -> None:
    kafka = services["kafka"]
    image, _, tag = kafka["image"].partition(":")
    assert image == "apache/kafka"
    assert tuple(int(part) for part in tag.split(".")[:2]) >= (3, 8)
    env = environment(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    assert "KAFKA_ZOOKEEPER_CONNECT" not in env


def test_postgres_keeps_its_data_in_a_volume(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    postgres = services["postgres"]
    assert postgres["image"] in ("postgres:16", "postgres:17")
    volume = next(v for v in postgres["volumes"] if v.endswith(":/var/lib/postgresql/data"))
    assert volume.split(":")[0] in compose["volumes"]


def test_blob_volume_is_shared(compose: dict[str, Any], services: dict[str, dict[str, Any]]) -> None:
    assert "blobs" in compose["volumes"]
    for name in HTTP_SERVICES:
        assert "blobs:/data/blobs" in services[name]["volumes"]
        assert environment(services[name])["BLOB_STORE_URL"] == "file:///data/blobs"


def test_dockerfile_and_dockerignore() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.MULTILINE)
    assert "uv sync --frozen --no-dev --no-install-project" in dockerfile
    assert dockerfile.index("COPY pyproject.toml uv.lock") < dockerfile.index("COPY . .")
    user = re.findall(r"^USER (\S+)", dockerfile, re.MULTILINE)
    assert user and user[-1] not in ("root", "0")
    assert 'CMD ["python", "-m", "services.ingest"]' in dockerfile
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".sailo", ".tools", ".git", ".env"} <= set(ignored)
