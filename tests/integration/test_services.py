"""The four services start on the real infrastructure and answer health, readiness, metrics and OpenAPI;
a bad policy file stops a service at start with the file, the field and the reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from services.dsr.app import create_app as create_dsr
from services.export.app import create_app as create_export
from services.ingest.app import create_app as create_ingest
from services.retention.app import create_app as create_retention
from shared.platform.settings import Settings
from shared.policy.model import PolicyError

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "factory", [create_retention, create_dsr, create_export], ids=["retention", "dsr", "export"]
)
async def test_service_answers_health_readiness_metrics_and_openapi(settings: Settings, factory: Any) -> None:
    app = factory(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://s") as client,
    ):
        assert (await client.get("/healthz")).json()["status"] == "ok"
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert "sailo_http_requests_total" in (await client.get("/metrics")).text
        spec = (await client.get("/openapi.json")).json()
        assert {"/healthz", "/readyz", "/metrics"} <= set(spec["paths"])
        assert (await client.get("/healthz")).headers["x-content-type-options"] == "nosniff"


def test_a_bad_policy_file_stops_the_service_at_start(settings: Settings, tmp_path: Path) -> None:
    source = Path(settings.policy_dir) / "statfi-chat.yaml"
    broken = source.read_text(encoding="utf-8").replace("period: P35D", "period: 35 days", 1)
    assert broken != source.read_text(encoding="utf-8")
    (tmp_path / "statfi-chat.yaml").write_text(broken, encoding="utf-8")
    for factory in (create_ingest, create_retention):
        with pytest.raises(PolicyError) as caught:
            factory(settings.model_copy(update={"policy_dir": tmp_path}))
        message = str(caught.value)
        assert "statfi-chat.yaml" in message
        assert "period" in message
