"""Health, request ids, the error envelope, compression, OpenAPI and metrics."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import LiveNode
from vault.app import create_app
from vault.config import Config


async def test_health_reports_healthy_with_version(client: Any) -> None:
    response = await client.get("/api/health")
    assert response.status_code == 200
    body = await response.get_json()
    assert body["status"] == "healthy"
    assert body["version"]


async def test_request_id_is_echoed_when_well_formed(client: Any) -> None:
    response = await client.get("/api/health", headers={"X-Request-Id": "abc.DEF-123_x"})
    assert response.headers["X-Request-Id"] == "abc.DEF-123_x"


async def test_request_id_is_replaced_when_malformed(client: Any) -> None:
    response = await client.get("/api/health", headers={"X-Request-Id": "bad id with spaces"})
    rid = response.headers["X-Request-Id"]
    assert rid != "bad id with spaces" and rid


async def test_unknown_route_uses_error_envelope(client: Any) -> None:
    response = await client.get("/api/mobile/nope", headers={"X-Request-Id": "r1"})
    assert response.status_code == 404
    body = await response.get_json()
    assert body["success"] is False
    assert body["error"]["code"] == "NOT_FOUND"
    assert body["error"]["requestId"] == "r1"


async def test_wrong_method_is_405_in_envelope(client: Any) -> None:
    response = await client.delete("/api/health")
    assert response.status_code == 405
    body = await response.get_json()
    assert body["error"]["code"] == "METHOD_NOT_ALLOWED"


async def test_openapi_document_is_31(client: Any) -> None:
    response = await client.get("/api/mobile/openapi.json")
    assert response.status_code == 200
    doc = await response.get_json()
    assert doc["openapi"].startswith("3.1")
    assert "paths" in doc and "components" in doc


async def test_metrics_exposes_request_counts_and_store_size(client: Any) -> None:
    await client.get("/api/health")
    response = await client.get("/metrics")
    assert response.status_code == 200
    text = (await response.get_data()).decode()
    assert 'vault_http_requests_total{method="GET",route="/api/health",status="200"}' in text
    assert "vault_chunk_store_bytes" in text
    assert "vault_chunk_store_chunks" in text


async def test_large_json_is_gzipped_when_accepted(live_node: LiveNode) -> None:
    async with live_node.client() as http:
        plain = await http.get("/api/mobile/openapi.json", headers={"Accept-Encoding": "identity"})
        packed = await http.get("/api/mobile/openapi.json", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in plain.headers
    assert packed.headers["content-encoding"] == "gzip"
    assert json.loads(packed.content) == json.loads(plain.content)
    assert int(packed.headers["content-length"]) < len(plain.content)


async def test_health_is_503_with_a_reason_when_the_chunk_store_is_unreadable(
    make_config: Callable[..., Config],
) -> None:
    config = make_config(storage={"backend": "fs"})
    app = create_app(config)
    async with app.test_app():
        client = app.test_client()
        assert (await client.get("/api/health")).status_code == 200
        chunks = Path(config.storage.data_dir) / "chunks"
        shutil.rmtree(chunks)
        chunks.write_text("not a directory")
        response = await client.get("/api/health")
        body = await response.get_json()
        assert response.status_code == 503
        assert body["status"] == "unhealthy"
        assert "chunk store" in body["reason"]
        assert str(chunks) not in json.dumps(body)
        chunks.unlink()
        chunks.mkdir()


async def test_logs_never_carry_tokens_or_passwords(client: Any, caplog: Any) -> None:
    import logging

    from vault.logs import JsonFormatter

    caplog.set_level(logging.DEBUG)
    password = "correct horse battery staple"
    register = await client.post(
        "/api/mobile/auth/register",
        json={
            "email": "log@example.com",
            "password": password,
            "deviceInfo": {"platform": "ios", "model": "iPhone", "deviceId": "d-1", "pushToken": "apns-secret-token"},
        },
    )
    tokens = (await register.get_json())["tokens"]
    await client.get("/api/mobile/devices", headers={"Authorization": f"Bearer {tokens['accessToken']}"})
    await client.post("/api/mobile/auth/refresh", json={"refreshToken": tokens["refreshToken"], "deviceId": "d-1"})
    await client.post("/api/mobile/auth/refresh", json={"refreshToken": tokens["refreshToken"], "deviceId": "d-1"})
    formatter = JsonFormatter()
    text = "\n".join(formatter.format(record) for record in caplog.records)
    assert '"route": "/api/mobile/auth/refresh"' in text  # requests were logged at all
    for secret in (password, tokens["accessToken"], tokens["refreshToken"], "apns-secret-token"):
        assert secret not in text


async def test_the_openapi_document_describes_tus_health_metrics_and_head_on_content(client: Any) -> None:
    doc = await (await client.get("/api/mobile/openapi.json")).get_json()
    paths = doc["paths"]
    assert set(paths["/api/mobile/tus/"]) == {"options", "post"}
    assert set(paths["/api/mobile/tus/{upload_id}"]) == {"head", "patch", "delete", "options"}
    assert "head" in paths["/api/mobile/files/{file_id}/content"]
    assert "get" in paths["/api/health"] and "get" in paths["/metrics"]
