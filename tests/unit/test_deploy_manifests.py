"""deploy/kubernetes agrees with the code: probes, limits, non-root, settings names, consumer groups, topics."""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from services.ingest.app import INTAKE
from shared.audit.relay import AUDIT_TOPIC
from shared.contracts.domain_events import DSR_EVENTS_TOPIC, EXPORT_EVENTS_TOPIC, RETENTION_EVENTS_TOPIC
from shared.contracts.events import CONTACT_EVENTS_TOPIC
from shared.messaging.kafka import DLQ_SUFFIX
from shared.platform.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deploy" / "kubernetes"
SOURCES = (ROOT / "services", ROOT / "shared")
SERVICES = ("ingest", "retention", "dsr", "export")

Manifest = dict[str, Any]

# A consumer group id as the code spells it: `group="..."` or a `...GROUP = "..."` constant.
_GROUP_LITERAL = re.compile(r"""\bgroup\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_GROUP_CONSTANT = re.compile(
    r"""^\w*GROUP\w*\s*(?::\s*Final)?\s*=\s*["']([A-Za-z0-9._-]+)["']""", re.MULTILINE
)


def _load() -> list[Manifest]:
    documents: list[Manifest] = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document is None:
                continue
            assert isinstance(document, dict), f"{path.name}: a document that is not a mapping"
            document["__file__"] = path.name
            documents.append(document)
    return documents


@pytest.fixture(scope="module")
def documents() -> list[Manifest]:
    result = _load()
    assert result, f"no manifests under {MANIFESTS}"
    return result


def of_kind(documents: list[Manifest], kind: str) -> list[Manifest]:
    return [d for d in documents if d.get("kind") == kind]


def by_name(documents: list[Manifest], kind: str) -> dict[str, Manifest]:
    return {str(d["metadata"]["name"]): d for d in of_kind(documents, kind)}


def containers(workload: Manifest) -> list[Manifest]:
    result: list[Manifest] = workload["spec"]["template"]["spec"]["containers"]
    return result


def configmap(documents: list[Manifest]) -> dict[str, str]:
    maps = of_kind(documents, "ConfigMap")
    assert len(maps) == 1, "one ConfigMap with the settings"
    data: dict[str, str] = maps[0]["data"]
    return data


def topics(documents: list[Manifest]) -> dict[str, Manifest]:
    return {
        str(t["spec"].get("topicName") or t["metadata"]["name"]): t for t in of_kind(documents, "KafkaTopic")
    }


def kafka_triggers(scaled: Manifest) -> list[dict[str, str]]:
    return [t["metadata"] for t in scaled["spec"]["triggers"] if t["type"] == "kafka"]


def source_texts() -> Iterator[tuple[Path, str]]:
    for folder in SOURCES:
        for path in sorted(folder.rglob("*.py")):
            yield path, path.read_text()


def groups_in_code() -> set[str]:
    found: set[str] = set()
    for _path, text in source_texts():
        found.update(_GROUP_LITERAL.findall(text))
        found.update(_GROUP_CONSTANT.findall(text))
    return found


def setting_names() -> set[str]:
    return {name.upper() for name in Settings.model_fields}


def test_kustomization_lists_every_file() -> None:
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    listed = list(kustomization["resources"])
    assert len(listed) == len(set(listed)), "a file is listed twice"
    on_disk = {p.name for p in MANIFESTS.iterdir() if p.is_file() and p.name != "kustomization.yaml"}
    assert set(listed) == on_disk, f"listed {sorted(listed)}, in the folder {sorted(on_disk)}"


def test_no_secret_values_are_committed(documents: list[Manifest]) -> None:
    assert not of_kind(documents, "Secret"), "Secrets are created by the operator, never committed"
    secret_fields = {name.upper() for name, f in Settings.model_fields.items() if f.annotation is SecretStr}
    secret_fields.add("DATABASE_URL")
    leaked = secret_fields & set(configmap(documents))
    assert not leaked, f"{sorted(leaked)} belong in a Secret, not the ConfigMap"


def test_configmap_names_are_settings_fields(documents: list[Manifest]) -> None:
    unknown = sorted(set(configmap(documents)) - setting_names())
    assert not unknown, f"the ConfigMap sets {unknown}, which shared.platform.settings.Settings does not read"


def test_configmap_makes_valid_production_settings(documents: list[Manifest]) -> None:
    values: dict[str, Any] = {key.lower(): value for key, value in configmap(documents).items()}
    values["key_encryption_key"] = base64.b64encode(os.urandom(32)).decode()
    values["blind_index_key"] = base64.b64encode(os.urandom(32)).decode()
    values["database_url"] = "postgresql+asyncpg://sailo:x@sailo-db-rw:5432/sailo"
    settings = Settings.model_validate(values)
    assert settings.sailo_env == "production"
    assert settings.kafka_enable_idempotence is True
    assert settings.kafka_replication_factor >= 2
    assert settings.resolved_blob_store_url.startswith("s3://"), (
        "replicas on several nodes share one blob store"
    )


def test_container_environment_names_are_settings_fields(documents: list[Manifest]) -> None:
    fields = setting_names()
    for workload in [*of_kind(documents, "Deployment"), *of_kind(documents, "Job")]:
        for container in containers(workload):
            for variable in container.get("env", []):
                name = variable["name"]
                assert name in fields or name.startswith("AWS_"), f"{workload['metadata']['name']}: {name}"
                secret = variable.get("valueFrom", {}).get("secretKeyRef")
                if secret is None:
                    continue
                assert "value" not in variable


def test_one_deployment_per_service(documents: list[Manifest]) -> None:
    deployments = by_name(documents, "Deployment")
    assert set(deployments) == set(SERVICES)
    for name, deployment in deployments.items():
        assert deployment["spec"]["replicas"] >= 2, name
        (container,) = containers(deployment)
        assert container["command"] == ["python", "-m", f"services.{name}"], name
        port = Settings.model_fields[f"{name}_port"].default
        assert [p["containerPort"] for p in container["ports"]] == [port], name
        assert configmap(documents)[f"{name.upper()}_PORT"] == str(port)


@pytest.mark.parametrize("name", SERVICES)
def test_probes(documents: list[Manifest], name: str) -> None:
    for container in containers(by_name(documents, "Deployment")[name]):
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        for probe in ("readinessProbe", "livenessProbe"):
            port = container[probe]["httpGet"]["port"]
            assert port in ports or port in ports.values(), f"{name}: {probe} on an unknown port"


def test_resources_and_security(documents: list[Manifest]) -> None:
    for workload in [*of_kind(documents, "Deployment"), *of_kind(documents, "Job")]:
        name = workload["metadata"]["name"]
        pod = workload["spec"]["template"]["spec"]
        for container in containers(workload):
            resources = container.get("resources", {})
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(part, {})), f"{name}: {part}"
            context = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
            assert context.get("runAsNonRoot") is True, name
            assert context.get("runAsUser", 1) != 0, name
            assert context.get("allowPrivilegeEscalation") is False, name
            assert context.get("readOnlyRootFilesystem") is True, name
            assert context.get("capabilities", {}).get("drop") == ["ALL"], name


def test_service_and_disruption_budget_per_deployment(documents: list[Manifest]) -> None:
    services = by_name(documents, "Service")
    budgets = by_name(documents, "PodDisruptionBudget")
    for name, deployment in by_name(documents, "Deployment").items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert services[name]["spec"]["selector"].items() <= labels.items(), name
        assert budgets[name]["spec"]["selector"]["matchLabels"].items() <= labels.items(), name
        port = containers(deployment)[0]["ports"][0]
        assert services[name]["spec"]["ports"][0]["targetPort"] in (port["name"], port["containerPort"])


def test_migration_job(documents: list[Manifest]) -> None:
    (job,) = of_kind(documents, "Job")
    (container,) = containers(job)
    assert container["command"] == ["python", "-m", "shared.platform.db", "upgrade"]
    assert "def main" in (ROOT / "shared" / "platform" / "db.py").read_text()


def test_engines(documents: list[Manifest]) -> None:
    (cluster,) = of_kind(documents, "Cluster")
    assert cluster["apiVersion"].startswith("postgresql.cnpg.io/")
    assert cluster["spec"]["instances"] == 3
    (kafka,) = of_kind(documents, "Kafka")
    brokers = sum(
        pool["spec"]["replicas"]
        for pool in of_kind(documents, "KafkaNodePool")
        if "broker" in pool["spec"]["roles"]
        and pool["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    )
    assert brokers == 3
    bootstrap = f"{kafka['metadata']['name']}-kafka-bootstrap"
    assert configmap(documents)["KAFKA_BOOTSTRAP_SERVERS"].startswith(bootstrap)
    for topic in of_kind(documents, "KafkaTopic"):
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
        assert topic["spec"]["replicas"] == int(configmap(documents)["KAFKA_REPLICATION_FACTOR"])


def test_topics_are_the_ones_the_code_uses(documents: list[Manifest]) -> None:
    prefix = configmap(documents)["KAFKA_TOPIC_PREFIX"]
    assert prefix == Settings.model_fields["kafka_topic_prefix"].default
    consumed = [CONTACT_EVENTS_TOPIC, INTAKE, RETENTION_EVENTS_TOPIC, DSR_EVENTS_TOPIC, EXPORT_EVENTS_TOPIC]
    expected = (
        {prefix + AUDIT_TOPIC} | {prefix + t for t in consumed} | {prefix + t + DLQ_SUFFIX for t in consumed}
    )
    assert set(topics(documents)) == expected


def test_audit_topic_has_one_partition(documents: list[Manifest]) -> None:
    audit = topics(documents)[configmap(documents)["KAFKA_TOPIC_PREFIX"] + AUDIT_TOPIC]
    assert audit["spec"]["partitions"] == 1
    assert str(audit["spec"]["config"]["retention.ms"]) == "-1"


def test_topics_can_adopt_what_a_service_created(documents: list[Manifest]) -> None:
    """A service that starts first creates a topic with KAFKA_TOPIC_PARTITIONS; partitions only grow."""
    default = int(configmap(documents)["KAFKA_TOPIC_PARTITIONS"])
    audit = configmap(documents)["KAFKA_TOPIC_PREFIX"] + AUDIT_TOPIC
    for name, topic in topics(documents).items():
        if name != audit:
            assert topic["spec"]["partitions"] >= default, name


def test_scaled_objects(documents: list[Manifest]) -> None:
    deployments = by_name(documents, "Deployment")
    known = topics(documents)
    bootstrap = configmap(documents)["KAFKA_BOOTSTRAP_SERVERS"]
    code_groups = groups_in_code()
    scaled_groups: set[str] = set()
    for scaled in of_kind(documents, "ScaledObject"):
        name = scaled["metadata"]["name"]
        spec = scaled["spec"]
        assert spec["scaleTargetRef"]["name"] in deployments, name
        assert spec["minReplicaCount"] >= 2, name
        assert spec["maxReplicaCount"] >= spec["minReplicaCount"], name
        triggers = kafka_triggers(scaled)
        assert triggers, f"{name} has no kafka trigger"
        for trigger in triggers:
            group, topic = trigger["consumerGroup"], trigger["topic"]
            assert group in code_groups, f"{name}: consumer group {group} is not in the code"
            assert topic in known, f"{name}: topic {topic} has no KafkaTopic"
            assert known[topic]["spec"]["partitions"] >= spec["maxReplicaCount"], (
                f"{name}: {topic} has fewer partitions than maxReplicaCount"
            )
            assert trigger["bootstrapServers"] == bootstrap, name
            assert int(trigger["lagThreshold"]) > 0, name
            scaled_groups.add(group)
    assert code_groups <= scaled_groups, (
        f"consumer groups without an autoscaler: {sorted(code_groups - scaled_groups)}"
    )


def test_every_consuming_service_is_autoscaled(documents: list[Manifest]) -> None:
    targets = {s["spec"]["scaleTargetRef"]["name"] for s in of_kind(documents, "ScaledObject")}
    consuming = {
        name for name in SERVICES if "rt.consumer(" in (ROOT / "services" / name / "app.py").read_text()
    }
    assert consuming == set(SERVICES)
    assert consuming <= targets
