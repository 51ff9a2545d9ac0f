"""Blob stores: the filesystem store always, the S3 store against moto's S3-compatible server.

The S3 tests run moto in-process (ThreadedMotoServer) with signature checking switched on, so every request
our hand-written SigV4 signer makes is verified by an independent implementation (botocore's, inside moto).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from shared.storage.blobstore import (
    READ_CHUNK_SIZE,
    S3_MIN_PART_SIZE,
    BlobNotFound,
    BlobStore,
    FileBlobStore,
    S3BlobStore,
    S3Error,
    _sigv4_authorization,
    create_blob_store,
    validate_key,
)

try:
    import boto3
    from moto.server import ThreadedMotoServer

    HAVE_MOTO = True
except ImportError:  # pragma: no cover - depends on the environment
    HAVE_MOTO = False

requires_moto = pytest.mark.skipif(
    not HAVE_MOTO,
    reason="moto is not importable: install the dev dependency 'moto[server]>=5.0' to run the S3 tests",
)

MiB = 1024 * 1024
MARKER = b"SAILO-CONTENT-MARKER-7f3a"  # planted in content; must never show up in errors or logs

BAD_KEYS = [
    "",
    "/etc/passwd",
    "/recordings/a.bin",
    "..",
    "../outside.bin",
    "recordings/../../outside.bin",
    "recordings/..",
    "recordings//a.bin",
    "recordings/a.bin/",
    "recordings/./a.bin",
    ".",
    "recordings\\..\\a.bin",
    "recordings\\a.bin",
    "recordings/a\x00.bin",
    "recordings/a\n.bin",
    "a" * 1025,
]


def random_bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def uneven_pieces(data: bytes, seed: int = 1) -> list[bytes]:
    """data cut at irregular sizes, from single bytes to several of the 64 KiB encryption chunks."""
    rng = random.Random(seed)
    sizes = [1, 7, 4095, 65_537, 1, 300_001, 13]
    pieces: list[bytes] = []
    offset = 0
    while offset < len(data):
        size = rng.choice(sizes) if rng.random() < 0.7 else rng.randint(1, 3 * 65_536)
        pieces.append(data[offset : offset + size])
        offset += size
    return pieces


async def stream(pieces: list[bytes], *, fail_after: int | None = None) -> AsyncIterator[bytes]:
    for index, piece in enumerate(pieces):
        if fail_after is not None and index == fail_after:
            raise RuntimeError("producer failed")
        yield piece
        if index % 16 == 0:
            await asyncio.sleep(0)


async def read_all(store: BlobStore, key: str) -> tuple[bytes, list[int]]:
    sizes: list[int] = []
    parts: list[bytes] = []
    async with aclosing(store.open_stream(key)) as chunks:  # type: ignore[type-var]
        async for chunk in chunks:
            sizes.append(len(chunk))
            parts.append(chunk)
    return b"".join(parts), sizes


def all_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


# ---------------------------------------------------------------------------------------------------------
# Keys and configuration


@pytest.mark.parametrize("key", BAD_KEYS)
def test_validate_key_rejects_traversal_and_malformed_keys(key: str) -> None:
    with pytest.raises(ValueError):
        validate_key(key)


@pytest.mark.parametrize("key", ["recordings/ab/abcdef0123.bin", "a", "a/b/c.d.e", "x/.hidden", "ü/ä b+c=1"])
def test_validate_key_accepts_relative_keys(key: str) -> None:
    assert validate_key(key) == key


def test_sigv4_matches_the_aws_documentation_example() -> None:
    # "Example: GET Object" from the S3 Signature Version 4 header-based authentication documentation.
    authorization = _sigv4_authorization(
        method="GET",
        canonical_uri="/test.txt",
        canonical_query="",
        headers={
            "Host": "examplebucket.s3.amazonaws.com",
            "Range": "bytes=0-9",
            "x-amz-content-sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "x-amz-date": "20130524T000000Z",
        },
        payload_hash="e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        access_key="AKIAIOSFODNN7EXAMPLE",
        secret_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        region="us-east-1",
        amz_date="20130524T000000Z",
    )
    assert authorization == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )


async def test_factory_builds_file_stores(tmp_path: Path) -> None:
    store = create_blob_store(tmp_path.as_uri())
    assert isinstance(store, FileBlobStore) and store.root == tmp_path
    store = create_blob_store(str(tmp_path / "plain"))
    assert isinstance(store, FileBlobStore) and store.root == tmp_path / "plain"
    store = create_blob_store("relative/blobs")
    assert isinstance(store, FileBlobStore) and store.root == Path("relative/blobs")
    assert isinstance(store, BlobStore)


async def test_factory_builds_s3_store_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_REGION", "eu-north-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://env-endpoint:9000")
    store = create_blob_store("s3://sailo-blobs/prod/recordings/")
    try:
        assert isinstance(store, S3BlobStore)
        assert (store.bucket, store.prefix, store.region) == ("sailo-blobs", "prod/recordings", "eu-north-1")
        assert store.endpoint_url == "http://env-endpoint:9000"
    finally:
        await store.close()
    store = create_blob_store("s3://sailo-blobs", s3_endpoint_url="https://minio.internal")
    try:
        assert isinstance(store, S3BlobStore)
        assert (store.prefix, store.endpoint_url) == ("", "https://minio.internal")
    finally:
        await store.close()


@pytest.mark.parametrize(
    "url",
    ["", "   ", "gs://bucket/x", "http://example.org/blobs", "file://otherhost/srv/blobs", "file:relative"],
)
def test_factory_rejects_other_forms_naming_the_setting(url: str) -> None:
    with pytest.raises(ValueError, match="BLOB_STORE_URL") as caught:
        create_blob_store(url)
    if url.strip():
        assert "s3://bucket/prefix" in str(caught.value) or "file" in str(caught.value)


def test_factory_rejects_bad_s3_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    for url in ["s3://", "s3://user:pw@bucket/x", "s3://bucket/a/../b", "s3://Bad_Bucket/x"]:
        with pytest.raises(ValueError, match="BLOB_STORE_URL") as caught:
            create_blob_store(url)
        assert "pw" not in str(caught.value)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(ValueError, match="AWS_SECRET_ACCESS_KEY"):
        create_blob_store("s3://bucket/x")


# ---------------------------------------------------------------------------------------------------------
# FileBlobStore


@pytest.fixture
def file_store(tmp_path: Path) -> FileBlobStore:
    return FileBlobStore(tmp_path / "blobs")


async def test_file_round_trip_of_uneven_multi_chunk_stream(file_store: FileBlobStore) -> None:
    data = random_bytes(3 * READ_CHUNK_SIZE, seed=11)  # read back in several chunks
    pieces = uneven_pieces(data)
    assert len(pieces) > 10
    key = "recordings/ab/abcdef0123456789.bin"

    assert await file_store.put_stream(key, stream(pieces)) == len(data)

    assert await file_store.exists(key)
    assert await file_store.size(key) == len(data)
    content, sizes = await read_all(file_store, key)
    assert content == data
    assert max(sizes) == READ_CHUNK_SIZE and len(sizes) == len(data) // READ_CHUNK_SIZE
    assert all_files(file_store.root) == [file_store.root / "recordings" / "ab" / "abcdef0123456789.bin"]
    with file_store.open_file(key) as opened:  # as a worker thread reads it
        assert opened.read() == data


async def test_file_empty_object_and_overwrite(file_store: FileBlobStore) -> None:
    assert await file_store.put_stream("a/empty.bin", stream([])) == 0
    assert await file_store.size("a/empty.bin") == 0
    assert (await read_all(file_store, "a/empty.bin"))[0] == b""

    assert await file_store.put_stream("a/x.bin", stream([b"first version"])) == 13
    # Producers may hand over reusable buffers; they are copied before the producer continues.
    buffers: list[bytes] = [b"second", bytearray(b" "), memoryview(b"one")]  # type: ignore[list-item]
    assert await file_store.put_stream("a/x.bin", stream(buffers)) == 10
    assert (await read_all(file_store, "a/x.bin"))[0] == b"second one"


async def test_file_failed_write_leaves_no_object_and_no_temp_file(file_store: FileBlobStore) -> None:
    data = random_bytes(3 * MiB, seed=12)
    pieces = uneven_pieces(data)
    key = "recordings/cd/failing.bin"

    with pytest.raises(RuntimeError, match="producer failed"):
        await file_store.put_stream(key, stream(pieces, fail_after=len(pieces) - 2))

    assert not await file_store.exists(key)
    with pytest.raises(BlobNotFound):
        await file_store.size(key)
    assert all_files(file_store.root) == []


async def test_file_failed_overwrite_keeps_the_previous_object(file_store: FileBlobStore) -> None:
    key = "recordings/ef/kept.bin"
    await file_store.put_stream(key, stream([b"old content"]))
    pieces = uneven_pieces(random_bytes(2 * MiB, seed=13))

    with pytest.raises(RuntimeError):
        await file_store.put_stream(key, stream(pieces, fail_after=len(pieces) - 1))

    assert (await read_all(file_store, key))[0] == b"old content"
    assert all_files(file_store.root) == [file_store.root / "recordings" / "ef" / "kept.bin"]


async def test_file_write_in_progress_is_invisible_and_cancel_cleans_up(file_store: FileBlobStore) -> None:
    key = "recordings/gh/slow.bin"
    final = file_store.root / "recordings" / "gh" / "slow.bin"
    release = asyncio.Event()
    flushed = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield random_bytes(2 * MiB, seed=14)  # more than one write batch: reaches the temporary file
        yield b"x"
        flushed.set()
        await release.wait()
        yield b"never"

    task = asyncio.create_task(file_store.put_stream(key, slow()))
    await asyncio.wait_for(flushed.wait(), 10)
    # Mid-write (as after a crash at this point): bytes are on disk, but only under a temporary name.
    temp_files = all_files(file_store.root)
    assert len(temp_files) == 1 and temp_files[0] != final and temp_files[0].name.startswith(".slow.bin.")
    assert temp_files[0].stat().st_size >= 2 * MiB
    assert not final.exists() and not await file_store.exists(key)

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert all_files(file_store.root) == []


async def test_file_delete_is_idempotent(file_store: FileBlobStore) -> None:
    key = "recordings/ij/deleted.bin"
    await file_store.put_stream(key, stream([b"abc"]))
    assert await file_store.delete(key) is True
    assert await file_store.delete(key) is False
    assert await file_store.delete("never/written.bin") is False
    assert not await file_store.exists(key)
    # A key that names a directory (a prefix of other keys) is not a blob.
    await file_store.put_stream("dir/child.bin", stream([b"c"]))
    assert await file_store.delete("dir") is False
    assert not await file_store.exists("dir")
    assert await file_store.exists("dir/child.bin")


async def test_file_missing_object_raises_blob_not_found(file_store: FileBlobStore) -> None:
    with pytest.raises(BlobNotFound) as caught:
        await read_all(file_store, "recordings/zz/missing.bin")
    assert caught.value.key == "recordings/zz/missing.bin"
    with pytest.raises(BlobNotFound):
        await file_store.size("recordings/zz/missing.bin")
    assert await file_store.exists("recordings/zz/missing.bin") is False
    await file_store.put_stream("f.bin", stream([b"1"]))
    with pytest.raises(BlobNotFound):  # a path through a file
        await read_all(file_store, "f.bin/child")
    for missing in ("recordings/zz/missing.bin", "f.bin/child", "recordings"):
        with pytest.raises(BlobNotFound):
            file_store.open_file(missing)


@pytest.mark.parametrize("key", BAD_KEYS)
async def test_file_traversal_keys_rejected_by_every_operation(key: str, tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "root" / "blobs")
    with pytest.raises(ValueError):
        await store.put_stream(key, stream([b"escape"]))
    with pytest.raises(ValueError):
        store.open_stream(key)
    with pytest.raises(ValueError):
        await store.delete(key)
    with pytest.raises(ValueError):
        await store.exists(key)
    with pytest.raises(ValueError):
        await store.size(key)
    assert all_files(tmp_path) == []


async def test_file_errors_and_logs_do_not_carry_content(
    file_store: FileBlobStore, capsys: pytest.CaptureFixture[str]
) -> None:
    async def failing() -> AsyncIterator[bytes]:
        yield MARKER * 1000
        raise RuntimeError("producer failed")

    with pytest.raises(RuntimeError) as caught:
        await file_store.put_stream("secret/one.bin", failing())
    output = capsys.readouterr()
    assert MARKER.decode() not in str(caught.value) + output.out + output.err


# ---------------------------------------------------------------------------------------------------------
# S3BlobStore against moto


@dataclass(frozen=True)
class Moto:
    endpoint: str
    access_key: str
    secret_key: str

    def client(self) -> object:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
        )


@pytest.fixture(scope="module")
def moto() -> Iterator[Moto]:
    if not HAVE_MOTO:
        pytest.skip("moto is not importable: install the dev dependency 'moto[server]>=5.0'")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        # An IAM user whose key moto will check signatures against once authentication is switched on.
        iam = boto3.client(
            "iam",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="bootstrap",
            aws_secret_access_key="bootstrap",
        )
        iam.create_user(UserName="sailo-blobstore")
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
        }
        iam.put_user_policy(UserName="sailo-blobstore", PolicyName="s3", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="sailo-blobstore")["AccessKey"]
        httpx.post(f"{endpoint}/moto-api/reset-auth", content=b"0").raise_for_status()
        yield Moto(endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        httpx.post(f"{endpoint}/moto-api/reset-auth", content=b"inf")
        server.stop()


BUCKET = "sailo-test-blobs"


@pytest.fixture
async def s3_store(moto: Moto, request: pytest.FixtureRequest) -> AsyncIterator[S3BlobStore]:
    store = S3BlobStore(
        BUCKET,
        f"t/{request.node.name[:60]}",
        moto.endpoint,
        moto.access_key,
        moto.secret_key,
        part_size=S3_MIN_PART_SIZE,
    )
    await store.ensure_bucket()
    try:
        yield store
    finally:
        await store.close()


def pending_uploads(moto: Moto) -> list[object]:
    uploads: list[object] = moto.client().list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])  # type: ignore[attr-defined]
    return uploads


@requires_moto
async def test_s3_ensure_bucket_is_idempotent(s3_store: S3BlobStore) -> None:
    assert await s3_store.ensure_bucket() is False


@requires_moto
async def test_s3_multipart_round_trip(s3_store: S3BlobStore, moto: Moto) -> None:
    data = random_bytes(12 * MiB + 12345, seed=21)  # two full 5 MiB parts and a short last one
    pieces = uneven_pieces(data, seed=2)
    key = "recordings/ab/abcdef0123456789.bin"

    assert await s3_store.put_stream(key, stream(pieces)) == len(data)

    assert await s3_store.exists(key)
    assert await s3_store.size(key) == len(data)
    content, sizes = await read_all(s3_store, key)
    assert content == data
    assert max(sizes) <= READ_CHUNK_SIZE
    head = moto.client().head_object(Bucket=BUCKET, Key=f"{s3_store.prefix}/{key}")  # type: ignore[attr-defined]
    assert head["ETag"].strip('"').endswith("-3"), "expected a three-part multipart upload"
    assert pending_uploads(moto) == []


@requires_moto
async def test_s3_small_and_empty_objects_and_odd_key_characters(s3_store: S3BlobStore, moto: Moto) -> None:
    key = "recordings/ü ä/a+b=c&d~e(1).bin"
    assert await s3_store.put_stream(key, stream([b"small ", b"object"])) == 12
    assert (await read_all(s3_store, key))[0] == b"small object"
    listed = moto.client().list_objects_v2(Bucket=BUCKET, Prefix=s3_store.prefix)  # type: ignore[attr-defined]
    assert [o["Key"] for o in listed["Contents"]] == [f"{s3_store.prefix}/{key}"]

    assert await s3_store.put_stream("empty.bin", stream([])) == 0
    assert await s3_store.size("empty.bin") == 0
    assert (await read_all(s3_store, "empty.bin"))[0] == b""

    # Exactly one part: a single PutObject; overwrite replaces.
    exact = random_bytes(S3_MIN_PART_SIZE, seed=22)
    assert await s3_store.put_stream(key, stream(uneven_pieces(exact))) == len(exact)
    assert (await read_all(s3_store, key))[0] == exact


@requires_moto
async def test_s3_interrupted_upload_leaves_no_object(s3_store: S3BlobStore, moto: Moto) -> None:
    pieces = uneven_pieces(random_bytes(11 * MiB, seed=23), seed=3)
    key = "recordings/cd/interrupted.bin"

    with pytest.raises(RuntimeError, match="producer failed"):  # after two parts were uploaded
        await s3_store.put_stream(key, stream(pieces, fail_after=len(pieces) - 2))

    assert not await s3_store.exists(key)
    with pytest.raises(BlobNotFound):
        await read_all(s3_store, key)
    assert pending_uploads(moto) == [], "the multipart upload was not aborted"


@requires_moto
async def test_s3_failed_overwrite_keeps_the_previous_object(s3_store: S3BlobStore, moto: Moto) -> None:
    key = "recordings/ef/kept.bin"
    await s3_store.put_stream(key, stream([b"old content"]))
    pieces = uneven_pieces(random_bytes(7 * MiB, seed=24))

    with pytest.raises(RuntimeError):
        await s3_store.put_stream(key, stream(pieces, fail_after=len(pieces) - 1))

    assert (await read_all(s3_store, key))[0] == b"old content"
    assert pending_uploads(moto) == []


@requires_moto
async def test_s3_cancelled_upload_is_aborted(s3_store: S3BlobStore, moto: Moto) -> None:
    uploaded = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield random_bytes(S3_MIN_PART_SIZE + 1, seed=25)
        uploaded.set()  # the first part has gone up by the time the producer is asked again
        await asyncio.Event().wait()
        yield b"never"

    task = asyncio.create_task(s3_store.put_stream("recordings/gh/cancelled.bin", slow()))
    await asyncio.wait_for(uploaded.wait(), 30)
    assert len(pending_uploads(moto)) == 1
    assert not await s3_store.exists("recordings/gh/cancelled.bin")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pending_uploads(moto) == []


@requires_moto
async def test_s3_delete_exists_size(s3_store: S3BlobStore) -> None:
    key = "recordings/ij/deleted.bin"
    assert await s3_store.exists(key) is False
    with pytest.raises(BlobNotFound):
        await s3_store.size(key)
    await s3_store.put_stream(key, stream([b"abc", b"de"]))
    assert await s3_store.exists(key) is True
    assert await s3_store.size(key) == 5
    assert await s3_store.delete(key) is True
    assert await s3_store.delete(key) is False
    assert await s3_store.exists(key) is False
    with pytest.raises(BlobNotFound):
        await read_all(s3_store, key)


@requires_moto
async def test_s3_traversal_keys_rejected(s3_store: S3BlobStore) -> None:
    for key in BAD_KEYS:
        with pytest.raises(ValueError):
            await s3_store.put_stream(key, stream([b"escape"]))
        with pytest.raises(ValueError):
            s3_store.open_stream(key)
        with pytest.raises(ValueError):
            await s3_store.delete(key)
        with pytest.raises(ValueError):
            await s3_store.exists(key)
        with pytest.raises(ValueError):
            await s3_store.size(key)


@requires_moto
async def test_s3_signatures_are_checked_and_errors_carry_no_content(
    moto: Moto, capsys: pytest.CaptureFixture[str]
) -> None:
    store = S3BlobStore(BUCKET, "t/badsig", moto.endpoint, moto.access_key, "wrong-secret")
    try:
        with pytest.raises(S3Error) as caught:
            await store.put_stream("secret/one.bin", stream([MARKER * 1000]))
        assert caught.value.code == "SignatureDoesNotMatch"
        assert caught.value.status == 403
        with pytest.raises(S3Error):
            await read_all(store, "secret/one.bin")
    finally:
        await store.close()
    output = capsys.readouterr()
    assert MARKER.decode() not in str(caught.value) + output.out + output.err


@requires_moto
async def test_s3_missing_bucket_is_an_error_not_a_missing_blob(moto: Moto) -> None:
    store = S3BlobStore("no-such-bucket-here", "", moto.endpoint, moto.access_key, moto.secret_key)
    try:
        with pytest.raises(S3Error) as caught:
            await read_all(store, "a.bin")
        assert not isinstance(caught.value, BlobNotFound)
        assert caught.value.code == "NoSuchBucket"
    finally:
        await store.close()
