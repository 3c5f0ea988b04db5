"""Helpers for the auth and device tests: request bodies, sign-in, and a node for clock-driven tests."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from quart_trio.testing import TrioTestApp

from vault.app import VaultApp, create_app
from vault.clock import TrioClock
from vault.config import Config

PASSWORD = "correct horse battery"
REGISTER = "/api/mobile/auth/register"
REFRESH = "/api/mobile/auth/refresh"
LOGOUT = "/api/mobile/auth/logout"
DEVICES = "/api/mobile/devices"


def register_body(
    email: str = "john@example.com",
    *,
    password: str = PASSWORD,
    name: str | None = "John Doe",
    device_id: str = "phone-1",
    model: str = "Pixel 7",
    platform: str = "android",
    **device_extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "email": email,
        "password": password,
        "deviceInfo": {
            "platform": platform,
            "model": model,
            "osVersion": "14",
            "appVersion": "1.2.0",
            "deviceId": device_id,
            "pushToken": "fcm_token_here",
            **device_extra,
        },
    }
    if name is not None:
        body["name"] = name
    return body


async def register(client: Any, email: str = "john@example.com", **kw: Any) -> dict[str, Any]:
    """Register and return the body; fails the test unless it answered 200."""
    response = await client.post(REGISTER, json=register_body(email, **kw))
    body: dict[str, Any] = await response.get_json()
    assert response.status_code == 200, body
    return body


def bearer(body_or_token: dict[str, Any] | str) -> dict[str, str]:
    token = body_or_token if isinstance(body_or_token, str) else body_or_token["tokens"]["accessToken"]
    return {"Authorization": f"Bearer {token}"}


async def error_code(response: Any) -> str:
    body = await response.get_json()
    assert body["success"] is False, body
    return str(body["error"]["code"])


@asynccontextmanager
async def quiet_node(config: Config) -> AsyncIterator[VaultApp]:
    """An in-process node whose clock moves only when the test sleeps (with ``autojump_clock``).

    The autojump clock jumps to the next pending deadline whenever every task waits, and waiting
    for a worker thread (an LMDB commit, an argon2 hash) counts as waiting. So any deadline alive
    during a request makes time leap: a periodic background task, and the lifespan timeouts of
    ``app.test_app()`` (which then fire at startup). This node runs without periodic tasks and
    with lifespan waits that have no deadline.
    """
    app = create_app(config, clock=TrioClock(), periodic=False)
    app.config["BACKGROUND_TASK_SHUTDOWN_TIMEOUT"] = math.inf
    async with TrioTestApp(app, startup_timeout=math.inf, shutdown_timeout=math.inf):  # type: ignore[arg-type]
        yield app


def data_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]
