"""EmbeddedStack: PostgreSQL and the broker under one data directory, started and stopped together."""

from __future__ import annotations

import contextlib
from pathlib import Path
from types import TracebackType
from typing import Self

from deploy.embedded.broker import DEFAULT_KAFKA_PORT, KAFKA_PORT_OPTION, EmbeddedBroker
from deploy.embedded.datadir import data_dir_lock
from deploy.embedded.errors import EmbeddedError
from deploy.embedded.postgres import DEFAULT_PG_PORT, PG_PORT_OPTION, EmbeddedPostgres


class EmbeddedStack:
    """PostgreSQL and the broker under one data directory; a context manager that starts and stops both::

    with EmbeddedStack(Path(".sailo")) as stack:
        os.environ.update(stack.environment())
        ...
    """

    def __init__(
        self,
        data_dir: Path,
        pg_port: int = DEFAULT_PG_PORT,
        kafka_port: int = DEFAULT_KAFKA_PORT,
        *,
        pg_port_option: str = PG_PORT_OPTION,
        kafka_port_option: str = KAFKA_PORT_OPTION,
    ) -> None:
        if pg_port == kafka_port:
            raise ValueError(f"pg_port and kafka_port must differ, both are {pg_port}")
        self.data_dir = Path(data_dir).resolve()
        self.postgres = EmbeddedPostgres(self.data_dir, pg_port, port_option=pg_port_option)
        self.broker = EmbeddedBroker(self.data_dir, kafka_port, port_option=kafka_port_option)

    @property
    def database_url(self) -> str:
        return self.postgres.url

    @property
    def bootstrap_servers(self) -> str:
        return self.broker.bootstrap_servers

    def start(self) -> Self:
        """Starts (or reuses) PostgreSQL and starts the broker; both ports are checked first."""
        with data_dir_lock(self.data_dir):
            self.postgres._preflight()
            self.broker._preflight()
            self.postgres._start_locked()
            try:
                self.broker._start_locked()
            except BaseException:
                if not self.postgres.reused:
                    with contextlib.suppress(EmbeddedError):
                        self.postgres._stop_locked()
                raise
        return self

    def stop(self) -> None:
        """Stops the broker and PostgreSQL. Safe to call twice or without a start."""
        if not self.data_dir.is_dir():
            return
        with data_dir_lock(self.data_dir):
            try:
                self.broker._stop_locked()
            finally:
                self.postgres._stop_locked()

    def environment(self) -> dict[str, str]:
        """The settings (shared.platform.settings.Settings names) that point a Sailo process at this stack."""
        return {
            "DATABASE_URL": self.postgres.url,
            "KAFKA_BOOTSTRAP_SERVERS": self.broker.bootstrap_servers,
            "KAFKA_ENABLE_IDEMPOTENCE": "false",
            "SAILO_DATA_DIR": str(self.data_dir),
        }

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
