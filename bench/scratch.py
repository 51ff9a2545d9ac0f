"""A benchmark run's scratch space: a temporary directory with an embedded PostgreSQL in it, both gone after."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def scratch_postgres(name: str) -> Iterator[tuple[str, Path]]:
    """(database URL, working directory) for the benchmark `name`; the server stops and the directory goes
    when the block ends, however it ends."""
    from deploy.embedded.ports import free_port
    from deploy.embedded.postgres import EmbeddedPostgres

    workdir = Path(tempfile.mkdtemp(prefix=f"sailo-bench-{name}-"))
    postgres = EmbeddedPostgres(workdir / "stack", port=free_port())
    postgres.start()
    try:
        yield postgres.url, workdir
    finally:
        postgres.stop()
        shutil.rmtree(workdir, ignore_errors=True)
