"""The embedded default (deploy/embedded/): real PostgreSQL and Tansu processes on free ports."""

from __future__ import annotations

import os
import signal
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import psutil
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from deploy.embedded.ports import PortInUse, free_port
from deploy.embedded.stack import EmbeddedStack

pytestmark = pytest.mark.integration

MakeStack = Callable[..., EmbeddedStack]


@pytest.fixture
def make_stack(tmp_path: Path) -> Iterator[MakeStack]:
    """Builds stacks (default: tmp_path/.sailo on free ports) and stops every one of them afterwards."""
    made: list[EmbeddedStack] = []

    def make(
        data_dir: Path | None = None, pg_port: int | None = None, kafka_port: int | None = None
    ) -> EmbeddedStack:
        stack = EmbeddedStack(
            data_dir or tmp_path / ".sailo",
            pg_port=pg_port or free_port(),
            kafka_port=kafka_port or free_port(),
        )
        made.append(stack)
        return stack

    yield make
    for stack in reversed(made):
        stack.stop()


def alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def dsn(stack: EmbeddedStack) -> str:
    return f"postgresql://sailo:sailo@127.0.0.1:{stack.postgres.port}/sailo"


async def kafka_round_trip(bootstrap_servers: str) -> bytes:
    topic = f"embedded-{uuid.uuid4().hex[:8]}"
    payload = uuid.uuid4().bytes
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, enable_idempotence=False)
    await producer.start()
    try:
        sent = await producer.send_and_wait(topic, payload, key=b"k", partition=0)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0)])
        consumer.seek(TopicPartition(topic, 0), sent.offset)
        record = await consumer.getone()
    finally:
        await consumer.stop()
    assert record.key == b"k"
    return bytes(record.value)


async def test_serves_postgres_and_kafka_and_keeps_data_across_restarts(
    make_stack: MakeStack, tmp_path: Path
) -> None:
    stack = make_stack()
    stack.start()

    env = stack.environment()
    assert env == {
        "DATABASE_URL": f"postgresql+asyncpg://sailo:sailo@127.0.0.1:{stack.postgres.port}/sailo",
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{stack.broker.port}",
        "KAFKA_ENABLE_IDEMPOTENCE": "false",
        "SAILO_DATA_DIR": str((tmp_path / ".sailo").resolve()),
    }
    assert stack.postgres.url == env["DATABASE_URL"]
    for name in ("postgres", "broker.log", "postgres.log", "stack.json"):
        assert (tmp_path / ".sailo" / name).exists(), name

    conn = await asyncpg.connect(dsn(stack))
    try:
        assert await conn.fetchval("select 1") == 1
        assert await conn.fetchval("show server_encoding") == "UTF8"
        await conn.execute("create table survives (note text)")
        await conn.execute("insert into survives values ('first run')")
    finally:
        await conn.close()

    payload = await kafka_round_trip(stack.bootstrap_servers)
    assert len(payload) == 16

    pg_pid, broker_pid = stack.postgres.pid, stack.broker.pid
    stack.stop()
    stack.stop()  # idempotent
    assert not alive(pg_pid)
    assert not alive(broker_pid)

    again = make_stack(pg_port=stack.postgres.port, kafka_port=stack.broker.port)
    with again:
        assert not again.postgres.reused
        conn = await asyncpg.connect(dsn(again))
        try:
            assert await conn.fetchval("select note from survives") == "first run"
        finally:
            await conn.close()
        await kafka_round_trip(again.bootstrap_servers)
    assert not alive(again.postgres.pid)


async def test_second_start_reuses_postgres_and_replaces_the_broker(make_stack: MakeStack) -> None:
    first = make_stack().start()
    first_pg, first_broker = first.postgres.pid, first.broker.pid

    second = make_stack(pg_port=first.postgres.port, kafka_port=first.broker.port).start()
    assert second.postgres.reused
    assert second.postgres.pid == first_pg
    assert second.broker.pid is not None and second.broker.pid != first_broker
    assert not alive(first_broker)

    conn = await asyncpg.connect(dsn(second))
    try:
        assert await conn.fetchval("select 1") == 1
    finally:
        await conn.close()
    await kafka_round_trip(second.bootstrap_servers)

    # A stop through any object of the data dir (here a fresh one, as a CLI would make) stops what runs there.
    make_stack(pg_port=first.postgres.port, kafka_port=first.broker.port).stop()
    assert not alive(first_pg)
    assert not alive(second.broker.pid)


async def test_stale_postmaster_pid_is_recovered(make_stack: MakeStack, tmp_path: Path) -> None:
    stack = make_stack().start()
    conn = await asyncpg.connect(dsn(stack))
    try:
        await conn.execute("create table kept (n int); insert into kept values (42)")
    finally:
        await conn.close()

    postmaster = stack.postgres.pid
    assert postmaster is not None
    os.kill(postmaster, signal.SIGKILL)  # a crash: postmaster.pid stays behind
    deadline = time.monotonic() + 10
    while alive(postmaster) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (tmp_path / ".sailo" / "postgres" / "postmaster.pid").exists()

    restarted = make_stack(pg_port=stack.postgres.port, kafka_port=stack.broker.port).start()
    assert not restarted.postgres.reused
    assert restarted.postgres.pid != postmaster
    conn = await asyncpg.connect(dsn(restarted))
    try:
        assert await conn.fetchval("select n from kept") == 42
    finally:
        await conn.close()


@pytest.mark.parametrize("taken", ["pg", "kafka"])
def test_taken_port_raises_port_in_use_before_starting_anything(
    make_stack: MakeStack, tmp_path: Path, taken: str
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        stack = make_stack(pg_port=port) if taken == "pg" else make_stack(kafka_port=port)

        with pytest.raises(PortInUse) as raised:
            stack.start()

    assert raised.value.port == port
    message = str(raised.value)
    assert str(port) in message
    assert ("--pg-port" if taken == "pg" else "--kafka-port") in message
    assert ("PostgreSQL" if taken == "pg" else "Kafka") in message
    data_dir = tmp_path / ".sailo"
    assert not (data_dir / "postgres").exists()
    assert not (data_dir / "broker.log").exists()
    assert stack.postgres.pid is None
    assert stack.broker.pid is None


def test_free_port_hands_out_distinct_bindable_ports() -> None:
    ports = {free_port() for _ in range(20)}
    assert len(ports) == 20
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", port))


def test_ports_must_differ(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="differ"):
        EmbeddedStack(tmp_path, pg_port=55555, kafka_port=55555)
