"""Blob storage for large artifacts (encrypted call recordings): a local directory or an S3-compatible bucket.

Both implementations share one contract (`BlobStore`):

* Writes are atomic. `put_stream` consumes an async iterator of byte chunks and the object becomes visible
  under its key only once it is complete: a failed, cancelled or crashed write leaves either the previous
  object or nothing under that key, never a prefix of the new content.
* Keys are relative, slash-separated paths (``recordings/ab/abcdef....bin``). Anything that could escape the
  store's root (absolute paths, ``..``, backslashes, empty segments) is refused with `ValueError` before any
  I/O happens.
* Errors and log lines name keys, sizes and status codes, never object content (which is ciphertext, but is
  still nobody's business in a log).

`open_stream` returns an async generator; a missing object raises `BlobNotFound` when iteration starts,
before any byte is produced. A consumer that stops early should close it (``contextlib.aclosing``) so the file
handle or HTTP connection is released promptly rather than at garbage collection.

`FileBlobStore.open_file` also opens an object for a worker thread that reads it synchronously into buffers of
its own (the research loan's packer); other stores are read through `open_stream`.

`create_blob_store` builds the store named by the BLOB_STORE_URL setting.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import hashlib
import hmac
import os
import re
import stat
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime
from io import BufferedReader
from pathlib import Path
from typing import BinaryIO, Protocol, TypeVar, runtime_checkable
from urllib.parse import quote, unquote, urlsplit
from xml.sax.saxutils import escape

import httpx
import structlog

from shared.platform.settings import Settings

__all__ = [
    "READ_CHUNK_SIZE",
    "S3_DEFAULT_PART_SIZE",
    "S3_MIN_PART_SIZE",
    "BlobNotFound",
    "BlobStore",
    "BlobStoreError",
    "FileBlobStore",
    "S3BlobStore",
    "S3Error",
    "create_blob_store",
    "validate_key",
]

log = structlog.get_logger(__name__)
_T = TypeVar("_T")

READ_CHUNK_SIZE = 1024 * 1024
# FileBlobStore gathers small chunks and hands them to a worker thread in batches of about this size.
_FILE_WRITE_BATCH = 1024 * 1024
S3_MIN_PART_SIZE = 5 * 1024 * 1024  # S3's minimum for every part but the last
S3_DEFAULT_PART_SIZE = 8 * 1024 * 1024
_S3_MAX_PARTS = 10_000
_MAX_KEY_BYTES = 1024  # S3's limit on object key length
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_HASH_OFF_LOOP_FROM = 256 * 1024  # hash bodies at least this large in a worker thread
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_ACCEPTED_URLS = "file:///absolute/path, a plain filesystem path, or s3://bucket/prefix"


class BlobStoreError(Exception):
    """A blob store operation failed."""


class BlobNotFound(BlobStoreError):
    """No object exists under the key."""

    def __init__(self, key: str) -> None:
        super().__init__(f"blob not found: {key!r}")
        self.key = key


class S3Error(BlobStoreError):
    """The S3-compatible service refused a request or could not be reached."""

    def __init__(
        self, operation: str, key: str, *, status: int | None = None, code: str = "", detail: str = ""
    ):
        where = f" for {key!r}" if key else ""
        parts = [f"S3 {operation}{where} failed"]
        if status is not None:
            parts.append(f"HTTP {status}")
        if code:
            parts.append(code)
        if detail:
            parts.append(detail)
        super().__init__(": ".join(parts))
        self.operation = operation
        self.key = key
        self.status = status
        self.code = code


@runtime_checkable
class BlobStore(Protocol):
    async def put_stream(self, key: str, chunks: AsyncIterator[bytes]) -> int:
        """Store the concatenated chunks under key, atomically; return the number of bytes written."""
        ...

    def open_stream(self, key: str) -> AsyncIterator[bytes]:
        """Stream the object's bytes; iteration raises BlobNotFound if there is no such object."""
        ...

    async def delete(self, key: str) -> bool:
        """Remove the object; True if one was there. Deleting a missing object is not an error."""
        ...

    async def exists(self, key: str) -> bool: ...

    async def size(self, key: str) -> int:
        """The object's size in bytes; BlobNotFound if there is no such object."""
        ...

    async def close(self) -> None: ...


def validate_key(key: str) -> str:
    """Return key unchanged if it is a safe relative object key, else raise ValueError.

    Refused: empty keys, absolute paths, backslashes, NUL and other control characters, empty segments
    (``a//b``, a trailing slash), ``.`` and ``..`` segments, and keys longer than 1024 bytes in UTF-8.
    """
    if not isinstance(key, str):
        raise TypeError(f"blob key must be str, got {type(key).__name__}")
    if not key:
        raise ValueError("blob key must not be empty")
    if key.startswith("/"):
        raise ValueError(f"blob key must be a relative path, got {key!r}")
    if "\\" in key:
        raise ValueError(f"blob key must not contain backslashes, got {key!r}")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in key):
        raise ValueError(f"blob key must not contain control characters, got {key!r}")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise ValueError(f"blob key must not contain empty, '.' or '..' segments, got {key!r}")
    if len(key.encode("utf-8")) > _MAX_KEY_BYTES:
        raise ValueError(f"blob key must be at most {_MAX_KEY_BYTES} bytes long")
    return key


def _as_bytes(chunk: object) -> bytes:
    if isinstance(chunk, bytes):
        return chunk
    if isinstance(chunk, bytearray | memoryview):
        return bytes(chunk)  # a copy: the producer may reuse its buffer
    raise TypeError(f"put_stream chunks must be bytes, got {type(chunk).__name__}")


# ---------------------------------------------------------------------------------------------------------
# Filesystem


class FileBlobStore:
    """Objects as files under root. Writes go to a temporary file in the target directory, which is fsynced
    and then renamed over the final name (``os.replace``), so a reader or a crash never sees a partial object.

    Temporary files are named ``.<final name>.<random>.tmp`` and created with mode 0600. A process killed
    mid-write can leave one behind (never under the final name); they are safe to remove.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"FileBlobStore(root={str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*validate_key(key).split("/"))

    async def put_stream(self, key: str, chunks: AsyncIterator[bytes]) -> int:
        final = self._path(key)
        handle, temp = await asyncio.to_thread(_open_temp, final)
        total = 0
        batch: list[bytes] = []
        batch_size = 0
        try:
            async for chunk in chunks:
                data = _as_bytes(chunk)
                if not data:
                    continue
                batch.append(data)
                batch_size += len(data)
                total += len(data)
                if batch_size >= _FILE_WRITE_BATCH:
                    await _in_thread(_write_batch, handle, batch)
                    batch = []
                    batch_size = 0
            await _in_thread(_commit, handle, batch, temp, final)
        except BaseException as exc:
            # Also on cancellation (_in_thread has let any running write finish first). If a cancellation
            # arrived while the rename itself ran, the new object may be in place: the write happened.
            await asyncio.to_thread(_discard, handle, temp)
            log.warning("blobstore.put_failed", store="file", key=key, error=type(exc).__name__)
            raise
        return total

    def open_stream(self, key: str) -> AsyncIterator[bytes]:
        return self._read(key, self._path(key))

    def open_file(self, key: str) -> BufferedReader:
        """The object opened for reading, for a worker thread (this blocks); BlobNotFound if it does not exist.

        A thread that reads into a reused buffer (`readinto`) spares a fresh piece of memory and a trip through
        the event loop per read, which is most of what reading costs beside decrypting the same bytes.
        """
        try:
            return _open_for_read(self._path(key))
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise BlobNotFound(key) from None

    async def _read(self, key: str, path: Path) -> AsyncIterator[bytes]:
        try:
            handle = await asyncio.to_thread(_open_for_read, path)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise BlobNotFound(key) from None
        try:
            while True:
                chunk = await asyncio.to_thread(handle.read, READ_CHUNK_SIZE)
                if not chunk:
                    return
                yield chunk
        finally:
            handle.close()

    async def delete(self, key: str) -> bool:
        return await asyncio.to_thread(_unlink, self._path(key))

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(_regular_file_size, self._path(key)) is not None

    async def size(self, key: str) -> int:
        found = await asyncio.to_thread(_regular_file_size, self._path(key))
        if found is None:
            raise BlobNotFound(key)
        return found

    async def close(self) -> None:
        return None


async def _in_thread(func: Callable[..., _T], *args: object) -> _T:
    """Run a blocking call in a worker thread. If the caller is cancelled meanwhile, wait for the call to
    finish before propagating the cancellation, so that cleanup never races with a write still running."""
    job = asyncio.ensure_future(asyncio.to_thread(func, *args))
    try:
        return await asyncio.shield(job)
    except asyncio.CancelledError:
        await asyncio.wait({job})
        raise


def _open_temp(final: Path) -> tuple[BinaryIO, Path]:
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp")
    return os.fdopen(fd, "wb"), Path(name)


def _write_all(handle: BinaryIO, chunks: Sequence[bytes]) -> None:
    for chunk in chunks:
        handle.write(chunk)


def _write_batch(handle: BinaryIO, chunks: Sequence[bytes]) -> None:
    """A batch of a growing object: written, and its writeback started (the last batch is fsynced instead)."""
    _write_all(handle, chunks)
    handle.flush()
    _start_writeback(handle.fileno())


def _load_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (AttributeError, OSError):  # not Linux
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_sync_file_range = _load_sync_file_range()
_SYNC_FILE_RANGE_WRITE = 2


def _start_writeback(fd: int) -> None:
    """Ask the kernel to start writing what is written so far to disk, without waiting for it.

    The fsync before the rename must otherwise wait for every page of the object at once: for a large object
    (a research loan's package of 100 MB) that wait was a sixth of the whole write. Started as the object
    grows, the disk works while the producer makes the next pieces, and fsync finds little left to do. Only a
    hint: fsync still decides durability, so an error here is ignored.
    """
    if _sync_file_range is not None:
        _sync_file_range(fd, 0, 0, _SYNC_FILE_RANGE_WRITE)


def _commit(handle: BinaryIO, chunks: Sequence[bytes], temp: Path, final: Path) -> None:
    _write_all(handle, chunks)
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()
    os.replace(temp, final)
    _fsync_dir(final.parent)


def _discard(handle: BinaryIO, temp: Path) -> None:
    with contextlib.suppress(OSError):
        handle.close()
    temp.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _open_for_read(path: Path) -> BufferedReader:
    return path.open("rb")


def _regular_file_size(path: Path) -> int | None:
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def _unlink(path: Path) -> bool:
    if _regular_file_size(path) is None:
        return False  # nothing there, or a directory (which is not a blob)
    try:
        path.unlink()
    except (FileNotFoundError, NotADirectoryError):
        return False  # removed concurrently
    return True


# ---------------------------------------------------------------------------------------------------------
# S3-compatible object storage


def _uri_encode(value: str, *, keep_slash: bool) -> str:
    # SigV4 encoding: everything but A-Z a-z 0-9 - _ . ~ is percent-encoded (quote never encodes those).
    return quote(value, safe="/" if keep_slash else "")


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def _sigv4_authorization(
    *,
    method: str,
    canonical_uri: str,
    canonical_query: str,
    headers: Mapping[str, str],
    payload_hash: str,
    access_key: str,
    secret_key: str,
    region: str,
    amz_date: str,
    service: str = "s3",
) -> str:
    """The Authorization header value for AWS Signature Version 4, signing every header given.

    canonical_uri and canonical_query must already be SigV4-encoded, exactly as sent on the wire.
    """
    items = sorted((name.strip().lower(), " ".join(value.strip().split())) for name, value in headers.items())
    canonical_headers = "".join(f"{name}:{value}\n" for name, value in items)
    signed_headers = ";".join(name for name, _ in items)
    canonical_request = "\n".join(
        [method, canonical_uri, canonical_query, canonical_headers, signed_headers, payload_hash]
    )
    day = amz_date[:8]
    scope = f"{day}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()]
    )
    signing_key = _hmac(
        _hmac(_hmac(_hmac(f"AWS4{secret_key}".encode(), day), region), service), "aws4_request"
    )
    signature = hmac.new(signing_key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    return (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope},"
        f"SignedHeaders={signed_headers},Signature={signature}"
    )


def _local_name(tag: str) -> str:
    return tag.rpartition("}")[2]


def _parse_xml(body: bytes) -> ET.Element | None:
    if not body.strip():
        return None
    try:
        # The document comes from the configured storage endpoint, and the standard library parser does not
        # resolve external entities.
        return ET.fromstring(body)  # noqa: S314
    except ET.ParseError:
        return None


def _xml_text(root: ET.Element | None, name: str) -> str:
    if root is None:
        return ""
    if _local_name(root.tag) == name:
        return (root.text or "").strip()
    for element in root.iter():
        if _local_name(element.tag) == name:
            return (element.text or "").strip()
    return ""


class S3BlobStore:
    """Objects in an S3-compatible bucket, under an optional key prefix, over path-style URLs
    (``{endpoint}/{bucket}/{prefix}/{key}``) signed with AWS Signature Version 4.

    `put_stream` buffers one part at a time (``part_size``, at least 5 MiB). A stream that ends within the
    first part is stored with a single PutObject; a longer one with a multipart upload whose parts are all
    ``part_size`` bytes except the last, completed only after the input is exhausted and aborted on any error.
    Either way S3 shows the object only complete. An abort that itself fails (or a killed process) leaves an
    invisible incomplete upload: give the bucket an AbortIncompleteMultipartUpload lifecycle rule.

    Every body is signed with its SHA-256, so the service rejects a part corrupted in transit.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str,
        endpoint_url: str,
        access_key: str,
        secret_key: str,
        region: str = "us-east-1",
        *,
        session_token: str = "",
        part_size: int = S3_DEFAULT_PART_SIZE,
        timeout: float = 60.0,
    ) -> None:
        if not bucket or "/" in bucket:
            raise ValueError("S3 bucket name must be non-empty and contain no '/'")
        prefix = prefix.strip("/")
        if prefix:
            validate_key(prefix)
        endpoint = httpx.URL(endpoint_url.rstrip("/"))
        if endpoint.scheme not in ("http", "https") or not endpoint.host:
            raise ValueError("S3 endpoint URL must be an http:// or https:// URL with a host")
        if endpoint.query or endpoint.fragment:
            raise ValueError("S3 endpoint URL must not have a query or fragment")
        if not access_key or not secret_key:
            raise ValueError("S3 access key and secret key must both be set")
        if not region:
            raise ValueError("S3 region must be set")
        if part_size < S3_MIN_PART_SIZE:
            raise ValueError(f"S3 part_size must be at least {S3_MIN_PART_SIZE} bytes (5 MiB)")
        self.bucket = bucket
        self.prefix = prefix
        self.region = region
        self.part_size = part_size
        self._access_key = access_key
        self._secret_key = secret_key
        self._session_token = session_token
        self._origin = f"{endpoint.scheme}://{endpoint.netloc.decode('ascii')}"
        self._host = endpoint.netloc.decode("ascii")
        self._bucket_path = endpoint.path.rstrip("/") + "/" + _uri_encode(bucket, keep_slash=False)
        self.endpoint_url = self._origin + endpoint.path.rstrip("/")
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)))

    def __repr__(self) -> str:
        return f"S3BlobStore(endpoint={self.endpoint_url!r}, bucket={self.bucket!r}, prefix={self.prefix!r})"

    # -- requests ----------------------------------------------------------------------------------------

    def _object_key(self, key: str) -> str:
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _build(
        self,
        method: str,
        object_key: str | None,
        query: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
        payload_hash: str = _EMPTY_SHA256,
        extra_headers: Mapping[str, str] | None = None,
    ) -> httpx.Request:
        path = self._bucket_path
        if object_key is not None:
            path += "/" + _uri_encode(object_key, keep_slash=True)
        canonical_query = "&".join(
            f"{k}={v}"
            for k, v in sorted(
                (_uri_encode(k, keep_slash=False), _uri_encode(v, keep_slash=False)) for k, v in query
            )
        )
        amz_date = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        signed: dict[str, str] = {
            "host": self._host,
            "x-amz-content-sha256": payload_hash,
            "x-amz-date": amz_date,
        }
        if self._session_token:
            signed["x-amz-security-token"] = self._session_token
        if extra_headers:
            signed.update({k.lower(): v for k, v in extra_headers.items()})
        authorization = _sigv4_authorization(
            method=method,
            canonical_uri=path,
            canonical_query=canonical_query,
            headers=signed,
            payload_hash=payload_hash,
            access_key=self._access_key,
            secret_key=self._secret_key,
            region=self.region,
            amz_date=amz_date,
        )
        headers = {**signed, "authorization": authorization}
        if method == "GET":
            headers["accept-encoding"] = "identity"  # the stored bytes, not a transfer-compressed form
        url = self._origin + path + (f"?{canonical_query}" if canonical_query else "")
        return self._client.build_request(method, url, headers=headers, content=body if body else None)

    async def _send(
        self,
        operation: str,
        key: str,
        method: str,
        object_key: str | None,
        query: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
        extra_headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        if not body:
            payload_hash = _EMPTY_SHA256
        elif len(body) >= _HASH_OFF_LOOP_FROM:
            payload_hash = await asyncio.to_thread(lambda: hashlib.sha256(body).hexdigest())
        else:
            payload_hash = hashlib.sha256(body).hexdigest()
        request = self._build(method, object_key, query, body, payload_hash, extra_headers)
        try:
            return await self._client.send(request)
        except httpx.HTTPError as exc:
            raise S3Error(operation, key, detail=type(exc).__name__) from exc

    @staticmethod
    def _error(operation: str, key: str, response: httpx.Response, root: ET.Element | None = None) -> S3Error:
        if root is None and response.request.method != "HEAD":
            root = _parse_xml(response.content)
        message = _xml_text(root, "Message")[:200]
        return S3Error(
            operation, key, status=response.status_code, code=_xml_text(root, "Code"), detail=message
        )

    # -- BlobStore ---------------------------------------------------------------------------------------

    async def put_stream(self, key: str, chunks: AsyncIterator[bytes]) -> int:
        object_key = self._object_key(key)
        buffer = bytearray()
        total = 0
        upload_id: str | None = None
        etags: list[str] = []
        try:
            async for chunk in chunks:
                data = _as_bytes(chunk)
                buffer += data
                total += len(data)
                while len(buffer) >= self.part_size:
                    if upload_id is None:
                        upload_id = await self._create_multipart(key, object_key)
                    with memoryview(buffer) as view:
                        part = bytes(view[: self.part_size])
                    del buffer[: self.part_size]
                    etags.append(await self._upload_part(key, object_key, upload_id, len(etags) + 1, part))
            if upload_id is None:
                await self._put_object(key, object_key, bytes(buffer))
            else:
                if buffer:
                    etags.append(
                        await self._upload_part(key, object_key, upload_id, len(etags) + 1, bytes(buffer))
                    )
                await self._complete_multipart(key, object_key, upload_id, etags)
        except BaseException as exc:
            if upload_id is not None:
                await self._abort_multipart(key, object_key, upload_id)
            log.warning("blobstore.put_failed", store="s3", key=key, error=type(exc).__name__)
            raise
        return total

    async def _put_object(self, key: str, object_key: str, body: bytes) -> None:
        response = await self._send("PutObject", key, "PUT", object_key, body=body)
        if response.status_code != 200:
            raise self._error("PutObject", key, response)

    async def _create_multipart(self, key: str, object_key: str) -> str:
        response = await self._send("CreateMultipartUpload", key, "POST", object_key, [("uploads", "")])
        if response.status_code != 200:
            raise self._error("CreateMultipartUpload", key, response)
        upload_id = _xml_text(_parse_xml(response.content), "UploadId")
        if not upload_id:
            raise S3Error("CreateMultipartUpload", key, status=200, detail="response has no UploadId")
        return upload_id

    async def _upload_part(self, key: str, object_key: str, upload_id: str, number: int, body: bytes) -> str:
        if number > _S3_MAX_PARTS:
            raise S3Error("UploadPart", key, detail=f"more than {_S3_MAX_PARTS} parts; raise part_size")
        query = [("partNumber", str(number)), ("uploadId", upload_id)]
        response = await self._send("UploadPart", key, "PUT", object_key, query, body)
        if response.status_code != 200:
            raise self._error("UploadPart", key, response)
        etag = str(response.headers.get("etag", ""))
        if not etag:
            raise S3Error("UploadPart", key, status=200, detail="response has no ETag")
        return etag

    async def _complete_multipart(self, key: str, object_key: str, upload_id: str, etags: list[str]) -> None:
        parts = "".join(
            f"<Part><PartNumber>{number}</PartNumber><ETag>{escape(etag)}</ETag></Part>"
            for number, etag in enumerate(etags, start=1)
        )
        body = f'<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{parts}</CompleteMultipartUpload>'
        response = await self._send(
            "CompleteMultipartUpload",
            key,
            "POST",
            object_key,
            [("uploadId", upload_id)],
            body.encode("utf-8"),
            {"content-type": "application/xml"},
        )
        root = _parse_xml(response.content)
        # S3 can answer 200 and still fail: the error then arrives in the body.
        if response.status_code != 200 or root is None or _local_name(root.tag) == "Error":
            raise self._error("CompleteMultipartUpload", key, response, root)

    async def _abort_multipart(self, key: str, object_key: str, upload_id: str) -> None:
        try:
            response = await self._send(
                "AbortMultipartUpload", key, "DELETE", object_key, [("uploadId", upload_id)]
            )
            if response.status_code not in (200, 204, 404):
                raise self._error("AbortMultipartUpload", key, response)
        except Exception as exc:  # the caller gets the original error, not this one
            log.warning("blobstore.s3_abort_failed", key=key, upload_id=upload_id, error=str(exc))

    def open_stream(self, key: str) -> AsyncIterator[bytes]:
        return self._get(key, self._object_key(key))

    async def _get(self, key: str, object_key: str) -> AsyncIterator[bytes]:
        request = self._build("GET", object_key)
        try:
            response = await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise S3Error("GetObject", key, detail=type(exc).__name__) from exc
        try:
            if response.status_code != 200:
                await response.aread()  # an error document, never object content
                if response.status_code == 404 and _xml_text(_parse_xml(response.content), "Code") in (
                    "NoSuchKey",
                    "",
                ):
                    raise BlobNotFound(key)
                raise self._error("GetObject", key, response)
            try:
                async for chunk in response.aiter_bytes(READ_CHUNK_SIZE):
                    yield chunk
            except httpx.HTTPError as exc:
                raise S3Error("GetObject", key, detail=type(exc).__name__) from exc
        finally:
            await response.aclose()

    async def _head(self, key: str) -> int | None:
        response = await self._send("HeadObject", key, "HEAD", self._object_key(key))
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._error("HeadObject", key, response)
        try:
            return int(response.headers["content-length"])
        except (KeyError, ValueError):
            raise S3Error("HeadObject", key, status=200, detail="response has no Content-Length") from None

    async def delete(self, key: str) -> bool:
        # S3's DeleteObject answers 204 whether or not the key existed, so ask first. Two concurrent deletes
        # of one key may therefore both report True.
        if await self._head(key) is None:
            return False
        response = await self._send("DeleteObject", key, "DELETE", self._object_key(key))
        if response.status_code not in (200, 204):
            if response.status_code == 404 and _xml_text(_parse_xml(response.content), "Code") == "NoSuchKey":
                return False
            raise self._error("DeleteObject", key, response)
        return True

    async def exists(self, key: str) -> bool:
        return await self._head(key) is not None

    async def size(self, key: str) -> int:
        found = await self._head(key)
        if found is None:
            raise BlobNotFound(key)
        return found

    async def close(self) -> None:
        await self._client.aclose()

    # -- administration ----------------------------------------------------------------------------------

    async def ensure_bucket(self) -> bool:
        """Create the bucket if it does not exist (for development and tests); True if it was created."""
        response = await self._send("HeadBucket", "", "HEAD", None)
        if response.status_code == 200:
            return False
        if response.status_code != 404:
            raise self._error("HeadBucket", "", response)
        body = b""
        if self.region != "us-east-1":
            body = (
                '<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                f"<LocationConstraint>{escape(self.region)}</LocationConstraint></CreateBucketConfiguration>"
            ).encode()
        response = await self._send("CreateBucket", "", "PUT", None, body=body)
        if response.status_code == 200:
            return True
        root = _parse_xml(response.content)
        if _xml_text(root, "Code") in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            return False
        raise self._error("CreateBucket", "", response, root)


# ---------------------------------------------------------------------------------------------------------
# Configuration


def create_blob_store(url: str, *, s3_endpoint_url: str = "") -> BlobStore:
    """The store named by BLOB_STORE_URL.

    * ``file:///absolute/path`` or a plain filesystem path: `FileBlobStore`.
    * ``s3://bucket/prefix``: `S3BlobStore`, with the endpoint from s3_endpoint_url, else AWS_ENDPOINT_URL,
      else AWS's regional endpoint; credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and
      AWS_SESSION_TOKEN if set); region from AWS_REGION, else AWS_DEFAULT_REGION, else us-east-1.

    Messages never repeat the URL itself, which could carry credentials.
    """
    value = url.strip()
    if not value:
        raise ValueError(f"BLOB_STORE_URL is empty; accepted forms: {_ACCEPTED_URLS}")
    match = _SCHEME.match(value)
    if match is None:
        return FileBlobStore(Path(value))
    scheme = match.group(1).lower()
    if scheme == "file":
        return FileBlobStore(_file_url_path(value))
    if scheme == "s3":
        return _s3_from_url(value, s3_endpoint_url)
    raise ValueError(f"BLOB_STORE_URL has unsupported scheme {scheme!r}; accepted forms: {_ACCEPTED_URLS}")


def _file_url_path(url: str) -> Path:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise ValueError(f"BLOB_STORE_URL file URL must not name a host; accepted forms: {_ACCEPTED_URLS}")
    if parts.query or parts.fragment:
        raise ValueError(
            f"BLOB_STORE_URL file URL must not have a query or fragment; accepted: {_ACCEPTED_URLS}"
        )
    path = unquote(parts.path)
    if not path.startswith("/"):
        raise ValueError(
            f"BLOB_STORE_URL file URL must hold an absolute path; accepted forms: {_ACCEPTED_URLS}"
        )
    return Path(path)


def _s3_from_url(url: str, s3_endpoint_url: str) -> S3BlobStore:
    parts = urlsplit(url)
    bucket = parts.netloc
    if "@" in bucket or ":" in bucket:
        raise ValueError("BLOB_STORE_URL s3 URL must not carry credentials or a port; use AWS_* variables")
    if not _BUCKET.match(bucket):
        raise ValueError(f"BLOB_STORE_URL s3 URL needs a valid bucket name; accepted forms: {_ACCEPTED_URLS}")
    if parts.query or parts.fragment:
        raise ValueError(
            f"BLOB_STORE_URL s3 URL must not have a query or fragment; accepted: {_ACCEPTED_URLS}"
        )
    prefix = unquote(parts.path).strip("/")
    if prefix:
        try:
            validate_key(prefix)
        except ValueError:
            raise ValueError(
                "BLOB_STORE_URL s3 prefix must be a relative path without '..' or '//'"
            ) from None
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    endpoint = s3_endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or f"https://s3.{region}.amazonaws.com"
    access_key = os.environ.get("AWS_ACCESS_KEY_ID", "")
    secret_key = os.environ.get("AWS_SECRET_ACCESS_KEY", "")
    if not access_key or not secret_key:
        raise ValueError(
            "BLOB_STORE_URL is an s3:// URL but AWS_ACCESS_KEY_ID or AWS_SECRET_ACCESS_KEY is unset"
        )
    return S3BlobStore(
        bucket,
        prefix,
        endpoint,
        access_key,
        secret_key,
        region,
        session_token=os.environ.get("AWS_SESSION_TOKEN", ""),
    )


def blob_store_from_settings(settings: Settings) -> BlobStore:
    """The deployment's blob store: BLOB_STORE_URL (a local directory by default), with its S3 endpoint."""
    return create_blob_store(settings.resolved_blob_store_url, s3_endpoint_url=settings.blob_s3_endpoint_url)
