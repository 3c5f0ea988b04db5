"""One line per request, and its metrics: the same for Quart routes and raw streaming routes."""

from __future__ import annotations

import logging

from vault.metrics import Metrics

log = logging.getLogger("vault.api")

# What a route is called in logs and metrics when the client went away before it was answered.
CLIENT_GONE = 499


def log_request(metrics: Metrics, *, request_id: str, method: str, route: str, status: int, seconds: float) -> None:
    metrics.observe(method, route, status, seconds)
    log.info(
        "request",
        extra={
            "request_id": request_id,
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
        },
    )
