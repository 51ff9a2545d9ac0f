"""Ingest benchmark: end-to-end events/s beside the raw limit of the same parts, measured in the same run.

    make bench                       (embedded PostgreSQL and broker on free ports)
    BENCH_EVENTS=50000 make bench    (more events)

End to end: HTTP batches of contact events to a running ingest process -> validated, sealed, produced with
acks=all -> consumed by the record store -> committed in PostgreSQL (counted in the database).
Raw limit: aiokafka produce (acks=all) + consume of payloads of the same size and asyncpg COPY of them into a
table, no application logic. The ratio end-to-end / raw is the figure to watch; absolute numbers vary.
Then single-event POST latency at a fixed offered rate (default 1,000 events/s): p50, p99.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.contracts.events import example_event
from shared.platform.keyfiles import generate_signing_key
from shared.security.auth import Role, mint_token

ROOT = Path(__file__).resolve().parent.parent
EVENTS = int(os.environ.get("BENCH_EVENTS", "20000"))
BATCH = int(os.environ.get("BENCH_BATCH", "500"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "4"))
RATE = int(os.environ.get("BENCH_RATE", "1000"))
RATE_SECONDS = int(os.environ.get("BENCH_RATE_SECONDS", "10"))


def make_events(count: int, run: str) -> list[dict[str, Any]]:
    """A realistic mix: calls with numbers and agents, chat messages, chatbot lines."""
    events = []
    for i in range(count):
        contact = f"bench-{run}-{i // 5}"
        kind = i % 5
        if kind == 0:
            body = example_event("call.started", event_id=str(uuid.uuid4()))
            body["data"] = {
                "direction": "inbound",
                "caller_number": f"+35840{i % 10_000_000:07d}",
                "service_number": "+358295095000",
            }
        elif kind == 1:
            body = example_event("call.answered", event_id=str(uuid.uuid4()))
            body["data"] = {"agent": {"id": f"agent-{i % 50}", "name": "Aino Agentti"}}
        elif kind == 4:
            body = example_event("call.ended", event_id=str(uuid.uuid4()))
        else:
            body = example_event("chat.message", event_id=str(uuid.uuid4()))
            body["data"] = {"sender": "customer", "text": f"Hei, kysyisin kaupparekisteristä, viesti {i}"}
        body["contact_id"] = contact
        events.append(body)
    return events


async def raw_limit(database_url: str, bootstrap: str, payloads: list[bytes], idempotence: bool) -> float:
    """events/s through produce(acks=all) -> consume -> COPY, no application logic."""
    topic = f"bench-raw-{uuid.uuid4().hex[:8]}"
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")
    connection = await asyncpg.connect(dsn)
    await connection.execute("CREATE TEMP TABLE raw_events (k bytea, v bytea)")
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=idempotence, linger_ms=2
    )
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"g-{topic}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await producer.start()
    await producer.send_and_wait(topic, b"warm-up")
    await consumer.start()
    copied = 0
    target = len(payloads) + 1
    started = time.perf_counter()

    async def produce() -> None:
        for start in range(0, len(payloads), BATCH):
            futures = [
                await producer.send(topic, key=str(i).encode(), value=p)
                for i, p in enumerate(payloads[start : start + BATCH])
            ]
            await asyncio.gather(*futures)

    async def consume() -> None:
        nonlocal copied
        while copied < target:
            batches = await consumer.getmany(timeout_ms=200, max_records=BATCH)
            for tp, records in batches.items():
                await connection.copy_records_to_table(
                    "raw_events", records=[(r.key, r.value) for r in records]
                )
                copied += len(records)
                await consumer.commit({tp: records[-1].offset + 1})

    await asyncio.gather(produce(), consume())
    elapsed = time.perf_counter() - started
    await consumer.stop()
    await producer.stop()
    await connection.close()
    return len(payloads) / elapsed


async def stored_count(dsn: str, run_ids: list[str]) -> int:
    connection = await asyncpg.connect(dsn)
    try:
        return int(
            await connection.fetchval(
                "SELECT count(*) FROM records.contact_events WHERE event_id = ANY($1::uuid[])", run_ids
            )
        )
    finally:
        await connection.close()


async def end_to_end(base_url: str, token: str, dsn: str, events: list[dict[str, Any]]) -> float:
    headers = {"Authorization": f"Bearer {token}"}
    batches = [events[i : i + BATCH] for i in range(0, len(events), BATCH)]
    queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
    for batch in batches:
        queue.put_nowait(batch)
    ids = [e["event_id"] for e in events]
    async with httpx.AsyncClient(base_url=base_url, timeout=120) as client:
        started = time.perf_counter()

        async def worker() -> None:
            while not queue.empty():
                batch = queue.get_nowait()
                response = await client.post(
                    "/v1/events/batch",
                    content=json.dumps(batch),
                    headers={**headers, "Content-Type": "application/json"},
                )
                if response.status_code != 202:
                    raise RuntimeError(f"batch answered {response.status_code}: {response.text[:300]}")

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        acknowledged = time.perf_counter() - started
        while await stored_count(dsn, ids) < len(ids):
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
    print(f"  acknowledged {len(events)} events in {acknowledged:.2f}s; all committed after {elapsed:.2f}s")
    return len(events) / elapsed


class RawHttpClient:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams.

    The load generator must cost far less than the server it measures; a general-purpose client spends more
    CPU per request than ingest does, so this one only writes prepared bytes and reads one response.
    """

    def __init__(self, port: int, connections: int) -> None:
        self.port = port
        self.idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
        self.connections = connections

    async def open(self) -> None:
        for _ in range(self.connections):
            self.idle.put_nowait(await asyncio.open_connection("127.0.0.1", self.port))

    async def request(self, raw: bytes) -> int:
        reader, writer = await self.idle.get()
        try:
            writer.write(raw)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
        except (OSError, asyncio.IncompleteReadError):
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            status = 0
        self.idle.put_nowait((reader, writer))
        return status

    async def close(self) -> None:
        while not self.idle.empty():
            _, writer = self.idle.get_nowait()
            writer.close()


async def latency_at_rate(port: int, token: str, run: str) -> tuple[float, float, int, float]:
    """Single-event POSTs offered at RATE/s (open loop); returns p50, p99 (ms), errors, achieved rate."""
    total = RATE * RATE_SECONDS
    requests = []
    for event in make_events(total, run + "-lat"):
        body = json.dumps(event).encode()
        requests.append(
            b"POST /v1/events HTTP/1.1\r\nHost: ingest\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {token}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
    client = RawHttpClient(port, connections=64)
    await client.open()
    latencies: list[float] = []
    errors = 0

    async def one(raw: bytes, due: float) -> None:
        nonlocal errors
        status = await client.request(raw)
        # Latency from when the request was due, so a stalled server cannot hide its queue (open loop).
        latencies.append(time.perf_counter() - due)
        if status != 202:
            errors += 1

    tasks = []
    started = time.perf_counter()
    for i, raw in enumerate(requests):
        due = started + i / RATE
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(raw, due)))
    await asyncio.gather(*tasks)
    achieved = total / (time.perf_counter() - started)
    await client.close()
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    return p50, p99, errors, achieved


def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    for _ in range(600):
        if process.poll() is not None:
            raise RuntimeError("ingest exited during start-up")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("ingest did not become ready")


async def main() -> None:
    from deploy.embedded.ports import free_port
    from deploy.embedded.stack import EmbeddedStack

    run = uuid.uuid4().hex[:8]
    workdir = Path(tempfile.mkdtemp(prefix="sailo-bench-"))
    stack = None
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAILO_")}
    if not (env.get("DATABASE_URL") and env.get("KAFKA_BOOTSTRAP_SERVERS")):
        stack = EmbeddedStack(workdir / "stack", pg_port=free_port(), kafka_port=free_port()).start()
        env.update(stack.environment())
    private, public = workdir / "auth.pem", workdir / "auth.pub.pem"
    generate_signing_key(private, public)
    port = free_port()
    env.update(
        SAILO_DATA_DIR=str(workdir / "data"),
        AUTH_PUBLIC_KEY_FILE=str(public),
        INGEST_PORT=str(port),
        LOG_LEVEL="WARNING",
        KAFKA_TOPIC_PREFIX=f"bench-{run}.",
        INGEST_MAX_BODY_BYTES=str(8 * 1024**2),
    )
    idempotence = env.get("KAFKA_ENABLE_IDEMPOTENCE", "true").lower() == "true"
    dsn = env["DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://")
    token = mint_token(
        private.read_bytes(),
        issuer="sailo-local",
        audience="sailo",
        role=Role.PLATFORM,
        subject="bench",
        ttl_seconds=3600,
    )
    events = make_events(EVENTS, run)
    payloads = [json.dumps(e).encode() for e in events]

    command = [sys.executable, "-m", "services.ingest"]
    if os.environ.get("BENCH_PROFILE"):  # e.g. BENCH_PROFILE=/tmp/ingest.txt, with py-spy on PATH
        command = ["py-spy", "record", "--format", "raw", "-o", os.environ["BENCH_PROFILE"], "--", *command]
    # The HTTP side and the record-store consumers in two processes (INGEST_MODE), as one would scale them:
    # one Python process is one core.
    workers = os.environ.get("BENCH_HTTP_WORKERS", "1")
    process = subprocess.Popen(command, env={**env, "INGEST_MODE": "http", "HTTP_WORKERS": workers}, cwd=ROOT)
    consumers = subprocess.Popen(
        [sys.executable, "-m", "services.ingest"],
        env={**env, "INGEST_MODE": "consumers", "INGEST_PORT": str(free_port())},
        cwd=ROOT,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}", process)
        print(
            f"Sailo ingest benchmark: {EVENTS} events, batches of {BATCH}, {CONCURRENCY} concurrent clients; "
            f"ingest as {workers} HTTP worker process(es) and one consumer process"
        )
        warm = make_events(BATCH, run + "-warm")
        await end_to_end(f"http://127.0.0.1:{port}", token, dsn, warm)
        raw = await raw_limit(env["DATABASE_URL"], env["KAFKA_BOOTSTRAP_SERVERS"], payloads, idempotence)
        e2e = await end_to_end(f"http://127.0.0.1:{port}", token, dsn, events)
        print(f"  raw limit   (produce acks=all + consume + COPY): {raw:10.0f} events/s")
        print(f"  end to end  (HTTP batch -> broker -> record store): {e2e:9.0f} events/s")
        print(f"  ratio end-to-end / raw: {e2e / raw:.2f}   (target >= 0.5)")
        if RATE_SECONDS == 0:
            return
        p50, p99, errors, achieved = await latency_at_rate(port, token, run)
        print(
            f"  single-event POST at {RATE}/s offered ({achieved:.0f}/s achieved, {RATE * RATE_SECONDS} events): "
            f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, errors {errors}   (target p99 < 25 ms)"
        )
    finally:
        for child in (process, consumers):
            child.terminate()
        for child in (process, consumers):
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
        if stack is not None:
            stack.stop()


if __name__ == "__main__":
    asyncio.run(main())
