"""Settings shared by every service, read from the environment (and .env) on demand.

No instance is created at import time: each process builds one in its entry point and passes it down, so
tests construct their own without patching the environment first.

The variable names are the contract with docker-compose.yml, deploy/ and the embedded launcher; a test keeps
compose and these classes in agreement.
"""

from __future__ import annotations

import base64
import binascii
from enum import StrEnum
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Development-only keys: the embedded default and the test suite use them, production refuses them.
DEVELOPMENT_KEY_ENCRYPTION_KEY = base64.b64encode(b"sailo-development-kek-do-not-use").decode()
DEVELOPMENT_BLIND_INDEX_KEY = base64.b64encode(b"sailo-development-blind-index-k!").decode()


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class LogFormat(StrEnum):
    JSON = "json"
    CONSOLE = "console"


def _decode_key(value: SecretStr, name: str) -> bytes:
    try:
        raw = base64.b64decode(value.get_secret_value(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"{name} must be base64") from exc
    if len(raw) != 32:
        raise ValueError(f"{name} must decode to 32 bytes (256 bits), got {len(raw)}")
    return raw


class Settings(BaseSettings):
    """Every setting a Sailo process reads. Names are the environment variable names, case-insensitive."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    sailo_env: Environment = Environment.DEVELOPMENT
    service_name: str = "sailo"
    log_level: str = "INFO"
    log_format: LogFormat = LogFormat.JSON

    # Where the embedded default keeps its state; also the default root of the filesystem blob store.
    sailo_data_dir: Path = Path(".sailo")
    policy_dir: Path = Path("policies")

    database_url: str = "postgresql+asyncpg://sailo:sailo@127.0.0.1:5432/sailo"
    database_pool_size: int = Field(default=10, ge=1, le=200)

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    # Real Kafka: on. The embedded Tansu broker answers InitProducerId with an error, so it runs with it off;
    # exactly-once effects never depend on it (consumers are idempotent on event_id).
    kafka_enable_idempotence: bool = True
    kafka_topic_prefix: str = "sailo."
    kafka_topic_partitions: int = Field(default=6, ge=1, le=1000)
    kafka_replication_factor: int = Field(default=1, ge=1, le=10)
    kafka_request_timeout_ms: int = Field(default=10_000, ge=1000)

    # Envelope encryption: the key-encryption key wraps every per-contact data key; the blind index key makes
    # identifier hashes unguessable. Base64 of 32 random bytes each.
    key_encryption_key: SecretStr = SecretStr(DEVELOPMENT_KEY_ENCRYPTION_KEY)
    key_encryption_key_id: str = "kek-1"
    blind_index_key: SecretStr = SecretStr(DEVELOPMENT_BLIND_INDEX_KEY)

    # file:///absolute/path, a relative path, or s3://bucket/prefix (S3-compatible, see BLOB_S3_ENDPOINT_URL).
    blob_store_url: str = ""
    blob_s3_endpoint_url: str = ""

    # Bearer tokens: a local issuer in the embedded default; in production the identity provider's JWKS.
    auth_issuer: str = "sailo-local"
    auth_audience: str = "sailo"
    auth_jwks_url: str = ""
    auth_public_key_file: Path | None = None
    auth_private_key_file: Path | None = None
    auth_clock_skew_seconds: int = Field(default=30, ge=0, le=300)

    # Worker processes per service (uvicorn workers sharing the port); one Python process uses one core.
    http_workers: int = Field(default=1, ge=1, le=64)

    ingest_port: int = 8001
    retention_port: int = 8002
    dsr_port: int = 8003
    export_port: int = 8004

    # all: HTTP and the consumers; http or consumers: one side only, to scale them separately.
    ingest_mode: Literal["all", "http", "consumers"] = "all"
    ingest_max_body_bytes: int = Field(default=1_048_576, ge=1024)
    ingest_max_batch_items: int = Field(default=1000, ge=1, le=100_000)
    recording_max_bytes: int = Field(default=200 * 1024 * 1024, ge=1024)
    retention_sweep_interval_seconds: float = Field(default=10.0, gt=0, le=3600)
    """How often the retention sweeper looks for due items: the bound on deletion lag."""
    retention_sweep_batch: int = Field(default=500, ge=1, le=100_000)
    """Items per sweeper transaction."""
    # Ingest's rate limit per platform and instance (services/ingest/ratelimit.py): events per second and the burst, for
    # API keys without limits of their own and for bearer tokens. A batch of N events counts N. Far above what
    # one instance processes, so the defaults only stop a runaway platform; set a key's own limits to share
    # an instance fairly.
    ingest_rate_limit_per_second: float = Field(default=5000.0, gt=0, le=1_000_000)
    ingest_rate_limit_burst: int = Field(default=20_000, ge=1, le=10_000_000)
    # How long a process remembers an API key's row: a revoked key works for up to this long in a process that
    # used it just before (0: ask the database on every request).
    api_key_cache_seconds: float = Field(default=10.0, ge=0, le=300)

    # Audit log: the Ed25519 private key (PEM, PKCS#8) that signs checkpoints, mounted from a secret in
    # production; elsewhere a key pair is made under SAILO_DATA_DIR/keys. A checkpoint is signed after this many
    # new entries, or this many seconds after the last one when entries have come since; the relay looks for
    # new outbox rows at the interval.
    audit_signing_key_file: Path | None = None
    audit_checkpoint_every: int = Field(default=1000, ge=1, le=1_000_000)
    audit_checkpoint_seconds: float = Field(default=60.0, gt=0, le=86_400)
    audit_relay_interval_seconds: float = Field(default=0.2, gt=0, le=60)
    # The domain-event outbox (shared.messaging.outbox) is looked at this often when it was empty last time.
    outbox_relay_interval_seconds: float = Field(default=0.2, gt=0, le=60)

    # Data-subject requests: an access package can be downloaded for this many days, then it is destroyed; the
    # caseworker is reminded this many working days before a request's last day; the deadline watch runs at the
    # interval (reminders, overdue events, expired packages).
    dsr_package_days: int = Field(default=30, ge=1, le=365)
    dsr_reminder_working_days: int = Field(default=5, ge=0, le=20)
    dsr_watch_interval_seconds: float = Field(default=60.0, gt=0, le=3600)

    # Research loans: the institute is reminded this many days before a loan's due day while items are still
    # out; a notice (destroy, restrict, rectify) not acknowledged this many days after it was issued is
    # escalated; the loan watch runs at the interval (reminders, overdue events, escalations).
    export_reminder_days: int = Field(default=14, ge=0, le=365)
    export_notice_escalation_days: int = Field(default=7, ge=1, le=90)
    export_watch_interval_seconds: float = Field(default=300.0, gt=0, le=3600)

    @field_validator("key_encryption_key")
    @classmethod
    def _kek_is_256_bits(cls, value: SecretStr) -> SecretStr:
        _decode_key(value, "KEY_ENCRYPTION_KEY")
        return value

    @field_validator("blind_index_key")
    @classmethod
    def _blind_key_is_256_bits(cls, value: SecretStr) -> SecretStr:
        _decode_key(value, "BLIND_INDEX_KEY")
        return value

    @model_validator(mode="after")
    def _refuse_development_secrets_in_production(self) -> Self:
        if self.sailo_env is Environment.PRODUCTION:
            if self.key_encryption_key.get_secret_value() == DEVELOPMENT_KEY_ENCRYPTION_KEY:
                raise ValueError("KEY_ENCRYPTION_KEY must be set to a real key in production")
            if self.blind_index_key.get_secret_value() == DEVELOPMENT_BLIND_INDEX_KEY:
                raise ValueError("BLIND_INDEX_KEY must be set to a real key in production")
            if not (self.auth_jwks_url or self.auth_public_key_file):
                raise ValueError("AUTH_JWKS_URL or AUTH_PUBLIC_KEY_FILE must be set in production")
            if self.audit_signing_key_file is None:
                raise ValueError("AUDIT_SIGNING_KEY_FILE must be set in production")
        return self

    @property
    def kek_bytes(self) -> bytes:
        return _decode_key(self.key_encryption_key, "KEY_ENCRYPTION_KEY")

    @property
    def blind_index_key_bytes(self) -> bytes:
        return _decode_key(self.blind_index_key, "BLIND_INDEX_KEY")

    @property
    def resolved_blob_store_url(self) -> str:
        return self.blob_store_url or (self.sailo_data_dir / "blobs").resolve().as_uri()

    def topic(self, name: str) -> str:
        """Full topic name for a logical one, e.g. topic("contact-events")."""
        return f"{self.kafka_topic_prefix}{name}"
