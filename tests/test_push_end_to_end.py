"""The node delivering through real providers (webhook, webpush) to local services over HTTP."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import trio

from tests.auth_support import bearer, error_code, register
from tests.test_push_webhook import Receiver, running, verify
from vault.app import create_app
from vault.config import Config

NOTIFY = "/api/mobile/notifications/register"


class Waiting(Receiver):
    """A webhook consumer the test can wait on."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await super().__call__(scope, receive, send)
        if scope["type"] == "http":
            self.arrived.set()
            self.arrived = trio.Event()

    def __init__(self) -> None:
        super().__init__()
        self.arrived = trio.Event()

    async def wait_for(self, count: int) -> None:
        with trio.fail_after(20):
            while len(self.requests) < count:
                await self.arrived.wait()


async def test_a_sign_in_reaches_the_other_device_through_the_webhook_signed(
    make_config: Callable[..., Config],
) -> None:
    consumer = Waiting()
    async with running(consumer) as base:
        config = make_config(push={"providers": ["webhook"], "webhook": {"url": f"{base}/hook", "secret": "s3cret"}})
        app = create_app(config)
        async with app.test_app():
            client = app.test_client()
            phone = await register(client, device_id="phone-1")
            answer = await client.post(
                NOTIFY,
                headers=bearer(phone),
                json={"deviceId": "phone-1", "pushToken": "phone-token", "platform": "android"},
            )
            assert answer.status_code == 200
            assert (await answer.get_json())["data"]["provider"] == "webhook"
            await register(client, device_id="tablet-1", model="Galaxy Tab")
            await consumer.wait_for(1)
    request = consumer.requests[0]
    assert request.path == "/hook" and verify("s3cret", request.body, request.headers.get("x-vault-signature"))
    body = json.loads(request.body)
    assert set(body) == {"category", "title", "body", "pushToken", "deviceId", "platform", "createdAt", "data"}
    assert (body["category"], body["title"], body["pushToken"], body["platform"]) == (
        "security",
        "New device login detected",
        "phone-token",
        "android",
    )
    assert body["deviceId"] == phone["device"]["id"] and body["createdAt"].endswith("Z")


async def test_a_web_push_subscription_is_checked_when_the_device_registers(
    make_config: Callable[..., Config],
) -> None:
    config = make_config(push={"providers": ["log", "webpush"]})
    app = create_app(config)
    async with app.test_app():
        client = app.test_client()
        headers = bearer(await register(client, device_id="browser-1", platform="web"))
        for token in (
            "not json",
            json.dumps({"endpoint": "http://127.0.0.1/push", "keys": {"p256dh": "", "auth": ""}}),
        ):
            response = await client.post(
                NOTIFY, headers=headers, json={"deviceId": "browser-1", "pushToken": token, "platform": "web"}
            )
            assert response.status_code == 400
            assert await error_code(response) == "VALIDATION_ERROR"
            assert "pushToken" in (await response.get_json())["error"]["message"]
        # The web platform defaults to webpush when it is configured.
        refused = await client.post(
            NOTIFY,
            headers=headers,
            json={"deviceId": "browser-1", "pushToken": "x", "platform": "web", "provider": "log"},
        )
        assert refused.status_code == 200 and (await refused.get_json())["data"]["provider"] == "log"
