"""Unit tests for shared.security.auth: the local issuer, token verification (RFC 8725), the FastAPI dependencies."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import Depends, FastAPI
from jwt.algorithms import OKPAlgorithm

from shared.platform.keyfiles import generate_signing_key
from shared.platform.settings import Settings
from shared.security.auth import (
    ALGORITHM,
    REQUIRED_CLAIMS,
    AuthError,
    Principal,
    PrincipalDep,
    Role,
    TokenVerifier,
    key_id,
    mint_token,
    require_roles,
)

ISSUER = "sailo-test"
AUDIENCE = "sailo"
SKEW = 30


@pytest.fixture
def key_files(tmp_path: Path) -> tuple[Path, Path]:
    private_path, public_path = tmp_path / "keys" / "signing.pem", tmp_path / "keys" / "signing.pub.pem"
    generate_signing_key(private_path, public_path)
    return private_path, public_path


@pytest.fixture
def private_pem(key_files: tuple[Path, Path]) -> bytes:
    return key_files[0].read_bytes()


@pytest.fixture
def public_pem(key_files: tuple[Path, Path]) -> bytes:
    return key_files[1].read_bytes()


@pytest.fixture
def settings(key_files: tuple[Path, Path]) -> Settings:
    return Settings(
        _env_file=None,
        auth_issuer=ISSUER,
        auth_audience=AUDIENCE,
        auth_public_key_file=key_files[1],
        auth_private_key_file=key_files[0],
        auth_clock_skew_seconds=SKEW,
    )


@pytest.fixture
def verifier(settings: Settings) -> TokenVerifier:
    return TokenVerifier.from_settings(settings)


def _mint(private_pem: bytes, role: Role = Role.MANAGER, **kwargs: Any) -> str:
    if role is Role.AGENT:
        kwargs.setdefault("agent_id", "agent-7")
    if role is Role.INSTITUTE:
        kwargs.setdefault("institute_id", "inst-1")
    return mint_token(private_pem, issuer=ISSUER, audience=AUDIENCE, role=role, subject="user-1", **kwargs)


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(datetime.now(UTC).timestamp())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-1",
        "iat": now,
        "exp": now + 600,
        "role": "manager",
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def _sign(private_pem: bytes, claims: dict[str, Any]) -> str:
    key = serialization.load_pem_private_key(private_pem, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned_parts(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"


def _refused(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(AuthError) as caught:
        verifier.verify(token)
    return caught.value.reason


# -- the local issuer ----------------------------------------------------------------------------------------


def test_generated_private_key_is_private_and_both_are_pem(key_files: tuple[Path, Path]) -> None:
    private_path, public_path = key_files
    assert stat.S_IMODE(private_path.stat().st_mode) == 0o600
    assert private_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert public_path.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")


def test_generate_signing_key_never_overwrites(key_files: tuple[Path, Path]) -> None:
    private_path, public_path = key_files
    before = private_path.read_bytes(), public_path.read_bytes()
    generate_signing_key(private_path, public_path)
    assert (private_path.read_bytes(), public_path.read_bytes()) == before


def test_generate_signing_key_restores_a_missing_public_key(key_files: tuple[Path, Path]) -> None:
    private_path, public_path = key_files
    original = public_path.read_bytes()
    public_path.unlink()
    generate_signing_key(private_path, public_path)
    assert public_path.read_bytes() == original


def test_generate_signing_key_refuses_a_public_key_without_its_private_key(
    key_files: tuple[Path, Path],
) -> None:
    private_path, public_path = key_files
    private_path.unlink()
    with pytest.raises(FileExistsError):
        generate_signing_key(private_path, public_path)
    assert not private_path.exists()


def test_minted_token_carries_the_expected_header_and_claims(private_pem: bytes) -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    token = _mint(private_pem, Role.INSTITUTE, institute_id="inst-3", ttl_seconds=120, now=now)
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    private_key = serialization.load_pem_private_key(private_pem, password=None)
    assert isinstance(private_key, Ed25519PrivateKey)
    assert header["alg"] == "EdDSA"
    assert header["kid"] == key_id(private_key.public_key())
    assert claims["iat"] == int(now.timestamp())
    assert claims["exp"] == int(now.timestamp()) + 120
    assert claims["role"] == "institute"
    assert claims["institute_id"] == "inst-3"
    assert "agent_id" not in claims
    assert claims["jti"]


@pytest.mark.parametrize(
    ("role", "agent_id"),
    [(Role.AGENT, None), (Role.AGENT, ""), (Role.MANAGER, "agent-1")],
)
def test_mint_token_refuses_inconsistent_agent_ids(
    private_pem: bytes, role: Role, agent_id: str | None
) -> None:
    with pytest.raises(ValueError):
        mint_token(private_pem, issuer=ISSUER, audience=AUDIENCE, role=role, subject="u", agent_id=agent_id)


def test_mint_token_refuses_a_naive_now(private_pem: bytes) -> None:
    with pytest.raises(ValueError):
        _mint(private_pem, now=datetime(2030, 1, 1))


# -- verification --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", list(Role))
def test_round_trip_for_every_role(private_pem: bytes, verifier: TokenVerifier, role: Role) -> None:
    principal = verifier.verify(_mint(private_pem, role))
    assert principal.subject == "user-1"
    assert principal.role is role
    assert principal.institute_id == ("inst-1" if role is Role.INSTITUTE else None)
    assert principal.token_id
    assert principal.agent_id == ("agent-7" if role is Role.AGENT else None)


def test_agent_id_is_carried(private_pem: bytes, verifier: TokenVerifier) -> None:
    principal = verifier.verify(_mint(private_pem, Role.AGENT, agent_id="agent-42"))
    assert principal == Principal(
        subject="user-1", role=Role.AGENT, agent_id="agent-42", institute_id=None, token_id=principal.token_id
    )


def test_token_expired_beyond_the_skew_is_refused(private_pem: bytes, verifier: TokenVerifier) -> None:
    issued = datetime.now(UTC) - timedelta(seconds=60 + SKEW + 10)
    assert _refused(verifier, _mint(private_pem, ttl_seconds=60, now=issued)) == "token expired"


def test_token_expired_within_the_skew_is_accepted(private_pem: bytes, verifier: TokenVerifier) -> None:
    issued = datetime.now(UTC) - timedelta(seconds=60 + SKEW // 2)
    assert verifier.verify(_mint(private_pem, ttl_seconds=60, now=issued)).role is Role.MANAGER


def test_token_issued_in_the_future_beyond_the_skew_is_refused(
    private_pem: bytes, verifier: TokenVerifier
) -> None:
    issued = datetime.now(UTC) + timedelta(seconds=SKEW + 60)
    assert _refused(verifier, _mint(private_pem, now=issued)) == "token not yet valid"


def test_wrong_issuer_is_refused(private_pem: bytes, verifier: TokenVerifier) -> None:
    token = mint_token(private_pem, issuer="someone-else", audience=AUDIENCE, role=Role.ADMIN, subject="u")
    assert _refused(verifier, token) == "wrong issuer"


def test_wrong_audience_is_refused(private_pem: bytes, verifier: TokenVerifier) -> None:
    token = mint_token(private_pem, issuer=ISSUER, audience="another-api", role=Role.ADMIN, subject="u")
    assert _refused(verifier, token) == "wrong audience"


def test_tampered_payload_is_refused(private_pem: bytes, verifier: TokenVerifier) -> None:
    header, payload, signature = _mint(private_pem, Role.AGENT).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"], claims["agent_id"] = "admin", None
    forged = f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"
    assert _refused(verifier, forged) == "signature invalid"


def test_token_signed_by_another_key_is_refused(tmp_path: Path, verifier: TokenVerifier) -> None:
    generate_signing_key(tmp_path / "other.pem", tmp_path / "other.pub.pem")
    token = _mint((tmp_path / "other.pem").read_bytes())
    assert _refused(verifier, token) == "signature invalid"


def test_hs256_token_keyed_with_the_public_key_is_refused(public_pem: bytes, verifier: TokenVerifier) -> None:
    # Algorithm confusion: a verifier that let the token pick its algorithm would check this HMAC with the
    # public key bytes as the secret, and accept it.
    signing_input = _unsigned_parts({"alg": "HS256", "typ": "JWT"}, _claims(role="admin"))
    signature = _b64(hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest())
    assert _refused(verifier, f"{signing_input}.{signature}") == "unsupported algorithm"


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_unsigned_token_is_refused(verifier: TokenVerifier, alg: str) -> None:
    token = _unsigned_parts({"alg": alg, "typ": "JWT"}, _claims(role="admin")) + "."
    assert _refused(verifier, token) == "unsupported algorithm"


def test_token_without_alg_is_refused(private_pem: bytes, verifier: TokenVerifier) -> None:
    _, payload, signature = _mint(private_pem).split(".")
    token = f"{_b64(json.dumps({'typ': 'JWT'}).encode())}.{payload}.{signature}"
    assert _refused(verifier, token) == "unsupported algorithm"


@pytest.mark.parametrize("claim", REQUIRED_CLAIMS)
def test_token_missing_a_required_claim_is_refused(
    private_pem: bytes, verifier: TokenVerifier, claim: str
) -> None:
    assert _refused(verifier, _sign(private_pem, _claims(**{claim: None}))) == f"missing {claim} claim"


def test_missing_role_claim_is_refused(private_pem: bytes, verifier: TokenVerifier) -> None:
    assert _refused(verifier, _sign(private_pem, _claims(role=None))) == "missing role claim"


@pytest.mark.parametrize("role", ["superuser", "MANAGER", "", 3, ["admin"]])
def test_unknown_role_is_refused(private_pem: bytes, verifier: TokenVerifier, role: object) -> None:
    assert _refused(verifier, _sign(private_pem, _claims(role=role))) == "unknown role"


def test_agent_token_without_agent_id_is_refused(private_pem: bytes, verifier: TokenVerifier) -> None:
    assert _refused(verifier, _sign(private_pem, _claims(role="agent"))) == "missing agent_id claim"


def test_agent_id_on_a_non_agent_token_is_refused(private_pem: bytes, verifier: TokenVerifier) -> None:
    token = _sign(private_pem, _claims(role="manager", agent_id="agent-1"))
    assert _refused(verifier, token) == "agent_id on a non-agent token"


@pytest.mark.parametrize("garbage", ["", "garbage", "a.b.c", "x" * 10_000])
def test_malformed_tokens_are_refused(verifier: TokenVerifier, garbage: str) -> None:
    assert _refused(verifier, garbage) == "malformed token"


def test_refusal_reasons_carry_no_claim_values(private_pem: bytes, verifier: TokenVerifier) -> None:
    token = _sign(private_pem, _claims(role="jane.doe@example.org"))
    with pytest.raises(AuthError) as caught:
        verifier.verify(token)
    assert "jane" not in str(caught.value)
    assert caught.value.__cause__ is None


def test_from_settings_needs_a_key_source() -> None:
    with pytest.raises(ValueError):
        TokenVerifier.from_settings(Settings(_env_file=None, auth_jwks_url="", auth_public_key_file=None))


# -- JWKS ----------------------------------------------------------------------------------------------------


@pytest.fixture
def jwks_url(public_pem: bytes) -> Iterator[str]:
    public_key = serialization.load_pem_public_key(public_pem)
    jwk = json.loads(OKPAlgorithm.to_jwk(public_key))  # type: ignore[arg-type]
    jwk.update(kid=key_id(public_key), alg=ALGORITHM, use="sig")  # type: ignore[arg-type]
    body = json.dumps({"keys": [jwk]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def jwks_verifier(jwks_url: str) -> TokenVerifier:
    return TokenVerifier.from_settings(
        Settings(_env_file=None, auth_issuer=ISSUER, auth_audience=AUDIENCE, auth_jwks_url=jwks_url)
    )


def test_jwks_verifier_accepts_tokens_of_a_published_key(
    private_pem: bytes, jwks_verifier: TokenVerifier
) -> None:
    assert jwks_verifier.verify(_mint(private_pem, Role.AUDITOR)).role is Role.AUDITOR


async def test_jwks_verifier_verifies_off_the_event_loop(
    private_pem: bytes, jwks_verifier: TokenVerifier
) -> None:
    principal = await jwks_verifier.verify_async(_mint(private_pem, Role.AGENT, agent_id="a-1"))
    assert principal.agent_id == "a-1"


def test_jwks_verifier_refuses_an_unpublished_key(tmp_path: Path, jwks_verifier: TokenVerifier) -> None:
    generate_signing_key(tmp_path / "other.pem", tmp_path / "other.pub.pem")
    token = _mint((tmp_path / "other.pem").read_bytes())
    assert _refused(jwks_verifier, token) == "signing key not found"


def test_jwks_verifier_refuses_an_unavailable_key_set(private_pem: bytes) -> None:
    verifier = TokenVerifier(
        issuer=ISSUER, audience=AUDIENCE, jwks_client=jwt.PyJWKClient("http://127.0.0.1:9/")
    )
    assert _refused(verifier, _mint(private_pem)) == "key set unavailable"


# -- FastAPI -------------------------------------------------------------------------------------------------


@pytest.fixture
async def client(verifier: TokenVerifier) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.state.token_verifier = verifier

    @app.get("/reports")
    def reports(principal: Principal = Depends(require_roles(Role.MANAGER, Role.ADMIN))) -> dict[str, str]:
        return {"subject": principal.subject, "role": principal.role}

    @app.get("/me")
    def me(principal: PrincipalDep) -> dict[str, str | None]:
        return {"subject": principal.subject, "agent_id": principal.agent_id}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sailo.test") as http:
        yield http


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_guarded_route_without_a_header_answers_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/reports")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert response.json() == {"detail": "missing bearer token or API key"}


@pytest.mark.parametrize("headers", [_bearer("garbage"), {"Authorization": "Basic dXNlcjpwYXNz"}])
async def test_guarded_route_with_garbage_answers_401(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.get("/reports", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


async def test_guarded_route_with_an_expired_token_answers_401_with_the_reason(
    client: httpx.AsyncClient, private_pem: bytes
) -> None:
    token = _mint(private_pem, ttl_seconds=60, now=datetime.now(UTC) - timedelta(hours=1))
    response = await client.get("/reports", headers=_bearer(token))
    assert response.status_code == 401
    assert response.json() == {"detail": "token expired"}


async def test_guarded_route_answers_403_to_an_agent(client: httpx.AsyncClient, private_pem: bytes) -> None:
    response = await client.get("/reports", headers=_bearer(_mint(private_pem, Role.AGENT)))
    assert response.status_code == 403
    assert response.json()["detail"].startswith("role agent may not")


@pytest.mark.parametrize("role", [Role.MANAGER, Role.ADMIN])
async def test_guarded_route_answers_200_to_a_manager_or_admin(
    client: httpx.AsyncClient, private_pem: bytes, role: Role
) -> None:
    response = await client.get("/reports", headers=_bearer(_mint(private_pem, role)))
    assert response.status_code == 200
    assert response.json() == {"subject": "user-1", "role": role.value}


async def test_principal_dependency_gives_the_agent_id(client: httpx.AsyncClient, private_pem: bytes) -> None:
    response = await client.get("/me", headers=_bearer(_mint(private_pem, Role.AGENT, agent_id="agent-9")))
    assert response.json() == {"subject": "user-1", "agent_id": "agent-9"}


async def test_openapi_declares_the_bearer_scheme(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["HTTPBearer"]["type"] == "http"
    assert schemes["HTTPBearer"]["scheme"] == "bearer"
    assert schemes["HTTPBearer"]["bearerFormat"] == "JWT"
    # The API key is the alternative (tests/unit/test_api_key_auth.py).
    assert document["paths"]["/reports"]["get"]["security"] == [{"HTTPBearer": []}, {"ApiKey": []}]
    assert document["paths"]["/me"]["get"]["security"] == [{"HTTPBearer": []}, {"ApiKey": []}]


def test_require_roles_needs_a_role() -> None:
    with pytest.raises(ValueError):
        require_roles()


def test_an_institute_token_names_its_institute_and_only_institutes_carry_one(
    private_pem: bytes, verifier: TokenVerifier
) -> None:
    with pytest.raises(ValueError, match="institute token needs"):
        mint_token(private_pem, issuer=ISSUER, audience=AUDIENCE, role=Role.INSTITUTE, subject="i")
    with pytest.raises(ValueError, match="only institute tokens"):
        _mint(private_pem, Role.MANAGER, institute_id="inst-1")
    claim_rules = [
        (_claims(role="institute"), "missing institute_id claim"),
        (_claims(role="manager", institute_id="inst-1"), "institute_id on a non-institute token"),
    ]
    for claims, reason in claim_rules:
        with pytest.raises(AuthError, match=reason):
            verifier.verify(_sign(private_pem, claims))
