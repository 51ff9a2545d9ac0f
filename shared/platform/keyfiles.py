"""Ed25519 key pairs as PEM files: the local token issuer's and the audit log's signing keys outside production.

Files are created once and never replaced (O_EXCL), with the private key readable by its owner only, so several
processes starting together agree on one pair.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def generate_signing_key(private_path: Path, public_path: Path) -> None:
    """Create an Ed25519 key pair as PEM files: a PKCS#8 private key (mode 0600) and its public key (SPKI).

    Never overwrites: when both files exist nothing happens; when only the private key exists its public key
    is written next to it; a public key without its private key raises :class:`FileExistsError`.
    """
    private_exists, public_exists = private_path.exists(), public_path.exists()
    if private_exists and public_exists:
        return
    if public_exists:
        raise FileExistsError(f"{public_path} exists but its private key {private_path} does not")
    if private_exists:
        private_key = load_private_key(private_path.read_bytes())
    else:
        private_key = Ed25519PrivateKey.generate()
        private_pem = private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        _write_new_file(private_path, private_pem, 0o600)
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _write_new_file(public_path, public_pem, 0o644)


def _write_new_file(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL: never replace a file created meanwhile; the mode applies from creation on.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have narrowed or (for 0600) must not have widened it
        with os.fdopen(fd, "wb") as handle:
            fd = -1
            handle.write(data)
    finally:
        if fd != -1:
            os.close(fd)


def load_private_key(pem: bytes) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the signing key must be an Ed25519 private key")
    return key


def local_key_pair(data_dir: Path, name: str) -> tuple[Path, Path]:
    """The Ed25519 pair ``{name}-private.pem`` / ``{name}-public.pem`` under SAILO_DATA_DIR/keys, created on
    first use; several processes starting together agree on one."""
    private, public = data_dir / "keys" / f"{name}-private.pem", data_dir / "keys" / f"{name}-public.pem"
    for _attempt in range(50):
        try:
            generate_signing_key(private, public)
            if public.exists() and public.stat().st_size > 0:
                return private, public
        except (FileExistsError, ValueError):
            pass  # another process is writing the pair right now
        time.sleep(0.1)
    raise RuntimeError(f"could not create or read the {name} key pair under {data_dir / 'keys'}")
