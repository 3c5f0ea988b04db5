"""Routes outside the mobile API: health, metrics and the OpenAPI document."""

from __future__ import annotations

from quart import Blueprint, Response, current_app

from vault import __version__
from vault.api.compression import json_bytes_response
from vault.api.envelope import json_response
from vault.api.routing import RouteDoc
from vault.metrics import CONTENT_TYPE
from vault.wire import WireAnswer

system = Blueprint("system", __name__)


class Health(WireAnswer, omit_defaults=True):
    status: str  # "healthy" or "unhealthy" (then with a reason, and HTTP 503)
    version: str
    reason: str | None = None


def docs() -> list[RouteDoc]:
    """OpenAPI entries for the routes outside the mobile API."""
    return [
        RouteDoc(
            "GET",
            "/api/health",
            "Liveness and readiness: 503 with a reason when a store cannot be read",
            response=Health,
            auth=False,
            envelope=False,
            tags=["system"],
        ),
        RouteDoc("GET", "/metrics", "Prometheus metrics (text format)", auth=False, envelope=False, tags=["system"]),
    ]


@system.get("/api/health")
async def health() -> Response:
    """Liveness and readiness: 503 with a reason when a store cannot be read."""
    node = current_app.node  # type: ignore[attr-defined]
    reason = await node.health()
    if reason is not None:
        return json_response({"status": "unhealthy", "version": __version__, "reason": reason}, 503)
    return json_response({"status": "healthy", "version": __version__})


@system.get("/metrics")
async def metrics() -> Response:
    """Prometheus text format."""
    node = current_app.node  # type: ignore[attr-defined]
    stats = await node.chunks.stats()
    node.metrics.stored_bytes.set(stats.bytes)
    node.metrics.stored_chunks.set(stats.chunks)
    return Response(node.metrics.render(), content_type=CONTENT_TYPE)


@system.get("/api/mobile/openapi.json")
async def openapi() -> Response:
    """The OpenAPI 3.1 document, generated from the routes' msgspec structs."""
    document: bytes = current_app.openapi_document  # type: ignore[attr-defined]
    return json_bytes_response(document)
