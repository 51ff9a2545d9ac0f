"""Bearer-token authentication and role checks for every Sailo service.

Callers present an OAuth2 bearer token (RFC 6750): a JWT signed with Ed25519 (JWS ``alg`` "EdDSA").
Verification follows the JWT best current practices (RFC 8725):

* only the one expected algorithm is accepted: never ``none``, never an HMAC algorithm, so a public key can
  never be used as an HMAC secret (algorithm confusion);
* ``exp``, ``iat``, ``iss``, ``aud``, ``sub`` and ``role`` must be present; issuer and audience must match the
  settings; clock skew of ``AUTH_CLOCK_SKEW_SECONDS`` is tolerated on ``exp``/``iat``/``nbf``;
* the ``role`` must be one of :class:`Role`; agent tokens carry ``agent_id`` and only agent tokens do.

The verification key is either a PEM public key file (``AUTH_PUBLIC_KEY_FILE``; the embedded default's local
issuer) or the identity provider's JWKS (``AUTH_JWKS_URL``; fetched with :class:`jwt.PyJWKClient`, cached).
Fetching a JWKS is blocking network I/O: :func:`bearer_principal` is a plain ``def`` dependency, which
FastAPI runs in its thread pool, and :meth:`TokenVerifier.verify_async` runs the verification in a worker
thread, so the event loop never waits on the identity provider.

Every refusal raises :class:`AuthError` with a fixed, PII-free reason ("token expired", "wrong audience",
...): no claim value or token fragment ever reaches an exception message, a response or a log line.

Platforms may present an API key instead, as ``X-API-Key: sailo_<id>_<secret>`` (services/ingest/apikeys.py): OpenAPI
declares both schemes as alternatives. A key is checked by ``request.app.state.api_keys`` (an
:class:`ApiKeyAuthenticator`); a service without one refuses every key with 401. When both headers are sent, the
bearer token decides.

The local issuer (:func:`generate_signing_key`, :func:`mint_token`) backs ``sailo token`` in the embedded
default; production uses the identity provider's tokens and never needs a private key.
"""

import base64
import hashlib
import json
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Final, Protocol, runtime_checkable

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from shared.platform.keyfiles import generate_signing_key, load_private_key, local_key_pair
from shared.platform.logging import get_logger
from shared.platform.settings import Environment, Settings

log = get_logger(__name__)

__all__ = [
    "ALGORITHM",
    "REQUIRED_CLAIMS",
    "ApiKeyAuthenticator",
    "AuthError",
    "Principal",
    "PrincipalDep",
    "RateLimit",
    "Role",
    "TokenVerifier",
    "api_key_scheme",
    "bearer_principal",
    "bearer_scheme",
    "generate_signing_key",
    "key_id",
    "mint_token",
    "require_roles",
]

ALGORITHM: Final = "EdDSA"
"""The only JWS algorithm accepted or produced: Ed25519 signatures."""
REQUIRED_CLAIMS: Final = ("exp", "iat", "iss", "aud", "sub", "role")
"""Claims every token must carry."""
MAX_TOKEN_LENGTH: Final = 8192
VERIFIED_TOKEN_CACHE_SIZE: Final = 10_000
"""Longer bearer values are refused before any parsing."""
JWKS_CACHE_SECONDS: Final = 300
JWKS_TIMEOUT_SECONDS: Final = 5
API_KEY_HEADER: Final = "X-API-Key"

_WWW_AUTHENTICATE: Final = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
_WWW_AUTHENTICATE_API_KEY: Final = {"WWW-Authenticate": f'ApiKey header="{API_KEY_HEADER}"'}


class Role(StrEnum):
    PLATFORM = "platform"
    AGENT = "agent"
    MANAGER = "manager"
    ADMIN = "admin"
    CASEWORKER = "caseworker"
    RESEARCH_OFFICER = "research_officer"
    INSTITUTE = "institute"
    AUDITOR = "auditor"
    OPERATOR = "operator"
    LEGAL_CLAIMS = "legal_claims"
    """Handles the establishment, exercise or defence of legal claims: the only role that may process a
    restricted item (GDPR Art. 18(2))."""


_ROLE_VALUES: Final = frozenset(role.value for role in Role)


@dataclass(frozen=True)
class RateLimit:
    """A credential's own rate limit; a field left None takes the service's default."""

    per_second: float | None = None
    burst: int | None = None


@dataclass(frozen=True)
class Principal:
    """Who is calling, as established by a verified token or API key."""

    subject: str
    role: Role
    agent_id: str | None = None
    """Set for (and only for) agents."""
    institute_id: str | None = None
    token_id: str | None = None
    """The token's ``jti``, when it has one."""
    api_key_id: str | None = None
    """The public id of the API key the caller authenticated with (``X-API-Key``); None for bearer tokens."""
    rate_limit: RateLimit | None = None
    """The API key's own rate limit, if it has one; otherwise the service's defaults apply."""


class AuthError(Exception):
    """A token or API key was refused. ``reason`` is a fixed phrase, safe to return to the caller and to log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ------------------------------------------------------------------------------------------------------------
# The local issuer.


def _load_public_key(pem: bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the verification key must be an Ed25519 public key")
    return key


def key_id(public_key: Ed25519PublicKey) -> str:
    """The RFC 7638 JWK thumbprint (SHA-256, base64url) of an Ed25519 public key: the kid of minted tokens."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    jwk = {"crv": "Ed25519", "kty": "OKP", "x": _b64url(raw)}
    canonical = json.dumps(jwk, separators=(",", ":"), sort_keys=True).encode()
    return _b64url(hashlib.sha256(canonical).digest())


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def mint_token(
    private_key_pem: bytes,
    *,
    issuer: str,
    audience: str,
    role: Role,
    subject: str,
    agent_id: str | None = None,
    institute_id: str | None = None,
    ttl_seconds: int = 3600,
    now: datetime | None = None,
) -> str:
    """Sign a bearer token the way :class:`TokenVerifier` expects it (EdDSA, all required claims, a jti)."""
    role = Role(role)
    if not subject:
        raise ValueError("subject must not be empty")
    if role is Role.AGENT and not agent_id:
        raise ValueError("an agent token needs an agent_id")
    if role is not Role.AGENT and agent_id is not None:
        raise ValueError("only agent tokens carry an agent_id")
    if role is Role.INSTITUTE and not institute_id:
        raise ValueError("an institute token needs an institute_id")
    if role is not Role.INSTITUTE and institute_id is not None:
        raise ValueError("only institute tokens carry an institute_id")
    if ttl_seconds <= 0:
        raise ValueError("ttl_seconds must be positive")
    issued = now if now is not None else datetime.now(UTC)
    if issued.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    iat = int(issued.timestamp())
    private_key = load_private_key(private_key_pem)
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "iat": iat,
        "nbf": iat,
        "exp": iat + ttl_seconds,
        "jti": uuid.uuid4().hex,
        "role": role.value,
    }
    if agent_id is not None:
        claims["agent_id"] = agent_id
    if institute_id is not None:
        claims["institute_id"] = institute_id
    return jwt.encode(
        claims, private_key, algorithm=ALGORITHM, headers={"kid": key_id(private_key.public_key())}
    )


# ------------------------------------------------------------------------------------------------------------
# Verification.

# Most specific first: several of these subclass DecodeError or each other.
_REASONS: Final[tuple[tuple[type[jwt.PyJWTError], str], ...]] = (
    (jwt.ExpiredSignatureError, "token expired"),
    (jwt.ImmatureSignatureError, "token not yet valid"),
    (jwt.InvalidAudienceError, "wrong audience"),
    (jwt.InvalidIssuerError, "wrong issuer"),
    (jwt.InvalidIssuedAtError, "invalid iat claim"),
    (jwt.exceptions.InvalidSubjectError, "invalid sub claim"),
    (jwt.exceptions.InvalidJTIError, "invalid jti claim"),
    (jwt.InvalidSignatureError, "signature invalid"),
    (jwt.InvalidAlgorithmError, "unsupported algorithm"),
    (jwt.InvalidKeyError, "signing key unusable"),
    (jwt.DecodeError, "malformed token"),
)


class TokenVerifier:
    """Turns a bearer token into a :class:`Principal`, or refuses it with :class:`AuthError`.

    Give exactly one key source: ``public_key`` (an Ed25519 public key) or ``jwks_client``.
    """

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        leeway_seconds: int = 0,
        public_key: Ed25519PublicKey | None = None,
        jwks_client: jwt.PyJWKClient | None = None,
    ) -> None:
        if (public_key is None) == (jwks_client is None):
            raise ValueError("give exactly one of public_key and jwks_client")
        if not issuer or not audience:
            raise ValueError("issuer and audience must not be empty")
        if leeway_seconds < 0:
            raise ValueError("leeway_seconds must not be negative")
        self.issuer = issuer
        self.audience = audience
        self.leeway_seconds = leeway_seconds
        self._public_key = public_key
        self._jwks_client = jwks_client
        # A platform sends the same token with every request: a verified token is remembered until it
        # expires, so the signature is checked once, not a thousand times a second.
        self._verified: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    @classmethod
    def from_settings(cls, settings: Settings) -> "TokenVerifier":
        """The PEM key file when ``AUTH_PUBLIC_KEY_FILE`` is set, else the JWKS at ``AUTH_JWKS_URL``."""
        common: dict[str, Any] = {
            "issuer": settings.auth_issuer,
            "audience": settings.auth_audience,
            "leeway_seconds": settings.auth_clock_skew_seconds,
        }
        if settings.auth_public_key_file is not None:
            return cls(public_key=_load_public_key(settings.auth_public_key_file.read_bytes()), **common)
        if settings.auth_jwks_url:
            client = jwt.PyJWKClient(
                settings.auth_jwks_url,
                cache_keys=True,
                cache_jwk_set=True,
                lifespan=JWKS_CACHE_SECONDS,
                timeout=JWKS_TIMEOUT_SECONDS,
            )
            return cls(jwks_client=client, **common)
        raise ValueError("AUTH_PUBLIC_KEY_FILE or AUTH_JWKS_URL must be set to verify bearer tokens")

    def verify(self, token: str) -> Principal:
        """Verify ``token``; may block on a JWKS fetch (use :meth:`verify_async` on the event loop)."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise AuthError("malformed token")
        remembered = self._verified.get(token)
        if remembered is not None:
            if remembered[1] + self.leeway_seconds > time.time():
                return remembered[0]
            del self._verified[token]
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError("malformed token") from None
        if header.get("alg") != ALGORITHM:
            raise AuthError("unsupported algorithm")
        key = self._verification_key(token)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_seconds,
                options={"require": list(REQUIRED_CLAIMS), "verify_signature": True},
            )
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(f"missing {exc.claim} claim") from None
        except jwt.PyJWTError as exc:
            raise AuthError(_reason(exc)) from None
        principal = _principal(claims)
        self._verified[token] = (principal, float(claims["exp"]))
        if len(self._verified) > VERIFIED_TOKEN_CACHE_SIZE:
            self._verified.popitem(last=False)
        return principal

    async def verify_async(self, token: str) -> Principal:
        """:meth:`verify` for async code: with a JWKS, verification (maybe fetching) runs in a thread."""
        if self._jwks_client is None:
            return self.verify(token)
        return await run_in_threadpool(self.verify, token)

    def _verification_key(self, token: str) -> Ed25519PublicKey:
        if self._public_key is not None:
            return self._public_key
        assert self._jwks_client is not None
        try:
            jwk = self._jwks_client.get_signing_key_from_jwt(token)
        except jwt.PyJWKClientConnectionError:
            raise AuthError("key set unavailable") from None
        except jwt.PyJWTError:
            raise AuthError("signing key not found") from None
        if jwk.algorithm_name != ALGORITHM or not isinstance(jwk.key, Ed25519PublicKey):
            raise AuthError("signing key unusable")
        return jwk.key


def _reason(exc: jwt.PyJWTError) -> str:
    for kind, reason in _REASONS:
        if isinstance(exc, kind):
            return reason
    return "token invalid"


def _optional_str(claims: dict[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise AuthError(f"invalid {name} claim")
    return value


def _principal(claims: dict[str, Any]) -> Principal:
    subject = claims["sub"]
    if not isinstance(subject, str) or not subject:
        raise AuthError("invalid sub claim")
    raw_role = claims["role"]
    if not isinstance(raw_role, str) or raw_role not in _ROLE_VALUES:
        raise AuthError("unknown role")
    role = Role(raw_role)
    agent_id = _optional_str(claims, "agent_id")
    if role is Role.AGENT and agent_id is None:
        raise AuthError("missing agent_id claim")
    if role is not Role.AGENT and agent_id is not None:
        raise AuthError("agent_id on a non-agent token")
    institute_id = _optional_str(claims, "institute_id")
    # An institute's record rule (its own loans only) needs to know which institute it is.
    if role is Role.INSTITUTE and institute_id is None:
        raise AuthError("missing institute_id claim")
    if role is not Role.INSTITUTE and institute_id is not None:
        raise AuthError("institute_id on a non-institute token")
    return Principal(
        subject=subject,
        role=role,
        agent_id=agent_id,
        institute_id=institute_id,
        token_id=_optional_str(claims, "jti"),
    )


# ------------------------------------------------------------------------------------------------------------
# FastAPI integration.

bearer_scheme = HTTPBearer(
    auto_error=False,
    bearerFormat="JWT",
    description="An EdDSA-signed JWT from the configured issuer, as `Authorization: Bearer <token>`.",
)
"""Declares the bearer security scheme in OpenAPI; errors are handled by :func:`bearer_principal` (401)."""


api_key_scheme = APIKeyHeader(
    name=API_KEY_HEADER,
    scheme_name="ApiKey",
    auto_error=False,
    description="A platform's API key, as `X-API-Key: sailo_<key id>_<secret>` (`sailo apikey create`).",
)
"""Declares the API key security scheme in OpenAPI, as an alternative to the bearer one."""


@runtime_checkable
class ApiKeyAuthenticator(Protocol):
    """What ``app.state.api_keys`` must be (services.ingest.apikeys.ApiKeyStore): a presented key to a principal."""

    async def authenticate(self, key: str) -> Principal:
        """The key's :class:`Principal`; :class:`AuthError` with a fixed reason if it is refused."""
        ...


async def bearer_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)] = None,
    api_key: Annotated[str | None, Depends(api_key_scheme)] = None,
) -> Principal:
    """FastAPI dependency: the caller's :class:`Principal` from a bearer token or an API key, or 401.

    The verifier is ``request.app.state.token_verifier``. With a JWKS the verification runs in a thread, so a
    key fetch never blocks the event loop; with a local key it runs inline (no thread hop per request).
    API keys are checked by ``request.app.state.api_keys``; without one, every key is refused.
    """
    try:
        return await _principal_of(request, credentials, api_key)
    except HTTPException as exc:
        await _audit_refused(request, str(exc.detail))
        raise


ANONYMOUS_ACTOR: Final = uuid.UUID(int=0)
"""The actor of an audit entry for credentials that were refused: nobody was identified."""


async def _audit_refused(request: Request, reason: str) -> None:
    """Record the refused credentials in the audit log: the reason as a code, never the credential."""
    from shared.audit.chain import Action, Outcome
    from shared.audit.log import record_now

    runtime = getattr(request.app.state, "runtime", None)
    if runtime is None:
        return
    try:
        await record_now(
            runtime.sessionmaker,
            actor=ANONYMOUS_ACTOR,
            role="anonymous",
            action=Action.LOGIN_REFUSED,
            object_type="credentials",
            outcome=Outcome.DENIED,
            reason=re.sub(r"[^a-z0-9]+", "_", reason.lower()).strip("_")[:64] or "refused",
            service=runtime.settings.service_name,
            occurred_at=runtime.clock.now(),
        )
    except Exception as exc:  # the caller gets its 401 even when the audit database does not answer
        log.warning("auth.refusal_not_audited", error=type(exc).__name__)


async def _principal_of(
    request: Request, credentials: HTTPAuthorizationCredentials | None, api_key: str | None
) -> Principal:
    verifier = getattr(request.app.state, "token_verifier", None)
    if not isinstance(verifier, TokenVerifier):
        raise RuntimeError("app.state.token_verifier is not set to a TokenVerifier")
    if credentials is None and api_key is not None:
        return await _api_key_principal(request, api_key)
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, detail="missing bearer token or API key", headers=_WWW_AUTHENTICATE
        )
    try:
        return await verifier.verify_async(credentials.credentials)
    except AuthError as exc:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, detail=exc.reason, headers=_WWW_AUTHENTICATE
        ) from None


async def _api_key_principal(request: Request, api_key: str) -> Principal:
    authenticator = getattr(request.app.state, "api_keys", None)
    try:
        if not isinstance(authenticator, ApiKeyAuthenticator):
            raise AuthError("API keys are not accepted by this service")
        return await authenticator.authenticate(api_key)
    except AuthError as exc:
        # The reason is fixed by the authenticator: never the key or a part of it.
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, detail=exc.reason, headers=_WWW_AUTHENTICATE_API_KEY
        ) from None


PrincipalDep = Annotated[Principal, Depends(bearer_principal)]


def require_roles(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """Dependency factory: the caller's :class:`Principal` if its role is one of ``roles``, else 403."""
    if not roles:
        raise ValueError("require_roles needs at least one role")
    allowed = frozenset(Role(role) for role in roles)

    async def dependency(principal: PrincipalDep) -> Principal:
        if principal.role not in allowed:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, detail=f"role {principal.role.value} may not use this endpoint"
            )
        return principal

    return dependency


def local_issuer_keys(data_dir: Path) -> tuple[Path, Path]:
    """The local issuer's key pair, created on first use; several processes starting together agree on one."""
    return local_key_pair(data_dir, "auth")


def install_auth(app: FastAPI, settings: Settings) -> None:
    """Bearer-token verification: the identity provider's keys in production; outside production without
    configured keys, the local issuer's key pair under SAILO_DATA_DIR/keys (what `sailo token` signs with)."""
    if settings.auth_public_key_file is None and not settings.auth_jwks_url:
        if settings.sailo_env is Environment.PRODUCTION:
            raise ValueError("AUTH_JWKS_URL or AUTH_PUBLIC_KEY_FILE must be set in production")
        _private, public = local_issuer_keys(settings.sailo_data_dir)
        settings = settings.model_copy(update={"auth_public_key_file": public})
    app.state.token_verifier = TokenVerifier.from_settings(settings)
