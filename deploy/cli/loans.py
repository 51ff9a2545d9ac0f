"""`sailo loan fetch`: an institute downloads its delivered loan, unpacks it and checks it against the manifest."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, TextIO
from uuid import UUID

if TYPE_CHECKING:
    import httpx

    from services.export.package import UnpackReport


class LoanFetchError(Exception):
    """`sailo loan fetch` could not get the package or its key; the message names the step and the HTTP status,
    with the service's field and reason if it gave them."""


class ProgressBar:
    """A one-line text progress bar (bytes done of the total, and percent), redrawn in place with a carriage
    return at most every `interval` seconds and at each whole percent."""

    def __init__(self, stream: TextIO, total: int | None, *, width: int = 30, interval: float = 0.1) -> None:
        self.stream = stream
        self.total = total
        self.width = width
        self.interval = interval
        self.done = 0
        self._drawn_at = 0.0
        self._drawn_percent = -1

    def advance(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if now - self._drawn_at >= self.interval or self._percent() != self._drawn_percent:
            self.draw()
            self._drawn_at = now

    def _percent(self) -> int:
        return min(100, self.done * 100 // self.total) if self.total else 0

    def line(self) -> str:
        done_mb = self.done / 1_000_000
        if not self.total:
            return f"{done_mb:,.1f} MB"
        filled = min(self.width, self.done * self.width // self.total)
        bar = "#" * filled + "-" * (self.width - filled)
        return f"[{bar}] {done_mb:,.1f} / {self.total / 1_000_000:,.1f} MB {self._percent():3d}%"

    def draw(self) -> None:
        self._drawn_percent = self._percent()
        self.stream.write("\r" + self.line())
        self.stream.flush()

    def finish(self) -> None:
        self.draw()
        self.stream.write("\n")
        self.stream.flush()


def _refusal(step: str, response: httpx.Response) -> LoanFetchError:
    detail = ""
    try:
        body = response.json()
        errors = (body.get("errors") or []) if isinstance(body, dict) else []
        detail = "; ".join(f"{e.get('field')}: {e.get('reason')}" for e in errors if isinstance(e, dict))
        if not detail and isinstance(body, dict) and isinstance(body.get("title"), str):
            detail = body["title"]
    except ValueError:
        pass
    return LoanFetchError(f"{step} refused: HTTP {response.status_code}" + (f" ({detail})" if detail else ""))


async def fetch_loan(
    client: httpx.AsyncClient, loan_id: UUID, out_dir: Path, *, progress: TextIO | None = None
) -> UnpackReport:
    """Fetch a delivered loan's package key, then download the package, decrypting and unpacking it into
    `out_dir` as it arrives and checking every recording against the manifest (services.export.package).

    `client` carries the export service's base URL and the institute's token. The download's SHA-256 is checked
    against the one the service gives with the package and with the key; a difference is reported as a
    mismatch. Raises LoanFetchError when the service refuses a step, and DecryptionError when the package does
    not open with its key.
    """
    import base64
    import hashlib

    from services.export.package import unpack_package

    key_response = await client.get(f"/v1/loans/{loan_id}/package-key")
    if key_response.status_code != 200:
        raise _refusal("the package key request was", key_response)
    key_body = key_response.json()
    package_key = base64.b64decode(key_body["key"], validate=True)
    digest = hashlib.sha256()
    async with client.stream("GET", f"/v1/loans/{loan_id}/package") as response:
        if response.status_code != 200:
            await response.aread()
            raise _refusal("the package download was", response)
        length = response.headers.get("content-length")
        bar = (
            ProgressBar(progress, int(length) if length and length.isdigit() else None) if progress else None
        )

        async def received() -> AsyncIterator[bytes]:
            async for piece in response.aiter_bytes(1024 * 1024):
                digest.update(piece)
                if bar is not None:
                    bar.advance(len(piece))
                yield piece

        try:
            report = await unpack_package(
                received(), package_key=package_key, loan_id=loan_id, out_dir=out_dir
            )
        finally:
            if bar is not None:
                bar.finish()
        announced = response.headers.get("x-package-sha256")
    for source, expected in (
        ("the download's header", announced),
        ("the key's record", key_body.get("package_sha256")),
    ):
        if expected is not None and expected != digest.hexdigest():
            report.mismatches.append(f"the package's SHA-256 differs from {source}")
    return report


def cmd_loan_fetch(args: argparse.Namespace) -> int:
    """Download a delivered loan's package and its key, unpack it into --out and verify it."""
    import asyncio
    import uuid

    import httpx

    from shared.platform.crypto import DecryptionError

    try:
        loan_id = uuid.UUID(args.loan_id)
    except ValueError:
        print("sailo loan fetch: LOAN_ID is the loan's id (a UUID)", file=sys.stderr)
        return 2
    token = args.token or os.environ.get("SAILO_TOKEN")
    if not token:
        print("sailo loan fetch: give --token or set SAILO_TOKEN", file=sys.stderr)
        return 2
    progress = sys.stderr if args.progress or sys.stderr.isatty() else None

    async def run() -> UnpackReport:
        async with httpx.AsyncClient(
            base_url=args.export_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(30.0, read=300.0),
        ) as client:
            return await fetch_loan(client, loan_id, Path(args.out), progress=progress)

    try:
        report = asyncio.run(run())
    except LoanFetchError as exc:
        print(f"sailo loan fetch: {exc}", file=sys.stderr)
        return 2
    except httpx.HTTPError as exc:
        print(
            f"sailo loan fetch: the export service could not be reached ({type(exc).__name__})",
            file=sys.stderr,
        )
        return 2
    except DecryptionError:
        print(
            "sailo loan fetch: the package does not open with its key (a wrong key, or it was altered or cut "
            "short on the way); nothing was unpacked",
            file=sys.stderr,
        )
        return 1
    except OSError as exc:
        print(f"sailo loan fetch: cannot write into {args.out} ({type(exc).__name__})", file=sys.stderr)
        return 2
    print(
        f"loan {loan_id}: {report.verified} of {report.items} recordings verified "
        f"({report.audio_bytes / 1_000_000:,.1f} MB of audio), package {report.ciphertext_bytes:,} bytes, "
        f"SHA-256 {report.ciphertext_sha256}; unpacked into {args.out}"
    )
    for problem in report.mismatches:
        print(f"MISMATCH {problem}", file=sys.stderr)
    if not report.ok:
        print(
            f"sailo loan fetch: the package does NOT match its manifest ({len(report.mismatches)} problem(s))",
            file=sys.stderr,
        )
        return 1
    return 0
