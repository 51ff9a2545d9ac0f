"""Unit tests for API keys: their format, and `X-API-Key` beside bearer tokens in the principal dependency."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from services.ingest.apikeys import INVALID_KEY, KEY_PATTERN, _new_key_id, parse_api_key
from shared.platform.keyfiles import generate_signing_key
from shared.platform.logging import scrub_text
from shared.platform.settings import Settings
from shared.security.auth import AuthError, Principal, PrincipalDep, Role, TokenVerifier, mint_token

KEY_ID = "0123456789abcdef"
GOOD_KEY = f"sailo_{KEY_ID}_{'a1' * 32}"


def test_a_well_formed_key_parses_into_id_and_secret() -> None:
    assert parse_api_key(GOOD_KEY) == (KEY_ID, "a1" * 32)


@pytest.mark.parametrize(
    "key",
    [
        "",
        "sailo_",
        GOOD_KEY[:-1],
        GOOD_KEY + "0",
        GOOD_KEY.upper(),
        GOOD_KEY.replace("sailo_", "other_"),
        f"sailo_{KEY_ID}-{'a1' * 32}",
        f" {GOOD_KEY}",
        GOOD_KEY + "\n",
        "sailo_" + "x" * 10_000,
    ],
)
def test_malformed_keys_do_not_parse(key: str) -> None:
    assert parse_api_key(key) is None


def test_secret_scanners_pattern_finds_a_key_in_text() -> None:
    leaked = f"config: SAILO_KEY={GOOD_KEY} # prod"
    assert KEY_PATTERN.search(leaked) is not None


def test_key_ids_survive_the_log_scrubber() -> None:
    # Key ids go into logs and metrics; an all-digit id would be taken for a phone or card number.
    ids = {_new_key_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(re.fullmatch(r"[0-9a-f]{16}", key_id) and scrub_text(key_id) == key_id for key_id in ids)


# -- the FastAPI dependency ---------------------------------------------------------------------------------------


class FakeKeys:
    """Accepts GOOD_KEY only; counts the calls."""

    def __init__(self) -> None:
        self.calls = 0

    async def authenticate(self, key: str) -> Principal:
        self.calls += 1
        if key != GOOD_KEY:
            raise AuthError(INVALID_KEY)
        return Principal(subject="platform:genesys", role=Role.PLATFORM, api_key_id=KEY_ID)


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    private, public = tmp_path / "private.pem", tmp_path / "public.pem"
    generate_signing_key(private, public)
    return private, public


def make_app(keys: tuple[Path, Path], api_keys: object | None) -> FastAPI:
    app = FastAPI()
    app.state.token_verifier = TokenVerifier.from_settings(
        Settings(_env_file=None, auth_public_key_file=keys[1])  # type: ignore[call-arg]
    )
    if api_keys is not None:
        app.state.api_keys = api_keys

    @app.get("/me")
    async def me(principal: PrincipalDep) -> dict[str, str | None]:
        return {
            "subject": principal.subject,
            "role": principal.role.value,
            "api_key_id": principal.api_key_id,
        }

    return app


@pytest.fixture
def fake_keys() -> FakeKeys:
    return FakeKeys()


@pytest.fixture
async def client(keys: tuple[Path, Path], fake_keys: FakeKeys) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=make_app(keys, fake_keys))
    async with httpx.AsyncClient(transport=transport, base_url="http://sailo.test") as http:
        yield http


def bearer(keys: tuple[Path, Path], role: Role = Role.MANAGER) -> dict[str, str]:
    token = mint_token(
        keys[0].read_bytes(), issuer="sailo-local", audience="sailo", role=role, subject="user-1"
    )
    return {"Authorization": f"Bearer {token}"}


async def test_an_api_key_makes_a_platform_principal(client: httpx.AsyncClient) -> None:
    response = await client.get("/me", headers={"X-API-Key": GOOD_KEY})
    assert response.status_code == 200
    assert response.json() == {"subject": "platform:genesys", "role": "platform", "api_key_id": KEY_ID}


@pytest.mark.parametrize("key", ["garbage", GOOD_KEY[:-1] + "b", "sailo_" + "0" * 81])
async def test_a_refused_key_is_401_with_a_fixed_reason_and_never_echoed(
    client: httpx.AsyncClient, key: str
) -> None:
    response = await client.get("/me", headers={"X-API-Key": key})
    assert response.status_code == 401
    assert response.json() == {"detail": INVALID_KEY}
    assert response.headers["WWW-Authenticate"] == 'ApiKey header="X-API-Key"'
    assert key not in response.text


async def test_the_bearer_token_decides_when_both_are_sent(
    client: httpx.AsyncClient, keys: tuple[Path, Path], fake_keys: FakeKeys
) -> None:
    both = {**bearer(keys), "X-API-Key": GOOD_KEY}
    assert (await client.get("/me", headers=both)).json()["subject"] == "user-1"
    garbage_bearer = {"Authorization": "Bearer garbage", "X-API-Key": GOOD_KEY}
    assert (await client.get("/me", headers=garbage_bearer)).status_code == 401
    assert fake_keys.calls == 0


async def test_a_basic_authorization_header_does_not_hide_the_api_key(client: httpx.AsyncClient) -> None:
    headers = {"Authorization": "Basic dXNlcjpwYXNz", "X-API-Key": GOOD_KEY}
    assert (await client.get("/me", headers=headers)).json()["role"] == "platform"


async def test_without_either_credential_the_answer_names_both(client: httpx.AsyncClient) -> None:
    response = await client.get("/me")
    assert response.status_code == 401
    assert response.json() == {"detail": "missing bearer token or API key"}
    assert response.headers["WWW-Authenticate"]


@pytest.mark.parametrize("store", [None, "not an authenticator"])
async def test_a_service_without_a_key_store_refuses_every_key(
    keys: tuple[Path, Path], store: object
) -> None:
    transport = httpx.ASGITransport(app=make_app(keys, store))
    async with httpx.AsyncClient(transport=transport, base_url="http://sailo.test") as http:
        response = await http.get("/me", headers={"X-API-Key": GOOD_KEY})
        assert response.status_code == 401
        assert GOOD_KEY not in response.text
        assert (await http.get("/me", headers=bearer(keys))).status_code == 200


async def test_openapi_offers_the_bearer_token_and_the_api_key_as_alternatives(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/openapi.json")).json()
    assert document["components"]["securitySchemes"]["ApiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": document["components"]["securitySchemes"]["ApiKey"]["description"],
    }
    # One requirement object per scheme: either satisfies the operation (both in one object would mean both).
    assert document["paths"]["/me"]["get"]["security"] == [{"HTTPBearer": []}, {"ApiKey": []}]
