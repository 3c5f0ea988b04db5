"""``kill -9`` with a delivery still owed: after the restart it is delivered, nothing lost."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from tests.auth_support import register_body
from tests.process_node import free_port as _free_port
from tests.process_node import serve as _serve
from tests.process_node import wait_healthy as _wait_healthy
from tests.push_fakes import serving

pytestmark = pytest.mark.reliability


class FlakyHook:
    """A webhook that answers 503 until ``healthy`` is set, then 204; counts what it got."""

    def __init__(self) -> None:
        self.healthy = False
        self.refused = 0
        self.delivered: list[dict[str, Any]] = []
        self.changed = trio.Event()

    async def __call__(self, scope: dict[str, Any], body: bytes) -> tuple[int, dict[str, str], bytes]:
        if self.healthy:
            self.delivered.append(json.loads(body))
        else:
            self.refused += 1
        self.changed.set()
        self.changed = trio.Event()
        return (204 if self.healthy else 503), {"retry-after": "1"}, b""

    async def until(self, check: Any) -> None:
        with trio.fail_after(60):
            while not check():
                await self.changed.wait()


async def test_a_delivery_owed_at_kill_9_is_made_after_the_restart(tmp_path: Path) -> None:
    hook = FlakyHook()
    async with serving(hook) as hook_base:
        config = tmp_path / "vault.toml"
        config.write_text(
            '[push]\nproviders = ["webhook"]\nretry_backoff = "1s"\nretry_backoff_max = "1s"\n'
            f'[push.webhook]\nurl = "{hook_base}/hook"\n'
        )
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        proc = _serve(config, tmp_path / "data", port)
        try:
            await _wait_healthy(base, proc)
            async with httpx.AsyncClient(base_url=base, timeout=30) as http:
                phone = (await http.post("/api/mobile/auth/register", json=register_body(device_id="p1"))).json()
                headers = {"Authorization": f"Bearer {phone['tokens']['accessToken']}"}
                answer = await http.post(
                    "/api/mobile/notifications/register",
                    headers=headers,
                    json={"deviceId": "p1", "pushToken": "tok-p1", "platform": "android"},
                )
                assert answer.status_code == 200
                signed_in = await http.post("/api/mobile/auth/register", json=register_body(device_id="t1"))
                assert signed_in.status_code == 200
            await hook.until(lambda: hook.refused >= 1)  # owed, and the service is down
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
        hook.healthy = True
        proc = _serve(config, tmp_path / "data", port)
        try:
            await _wait_healthy(base, proc)
            await hook.until(lambda: len(hook.delivered) >= 1)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    [delivered] = hook.delivered
    assert (delivered["category"], delivered["title"], delivered["pushToken"]) == (
        "security",
        "New device login detected",
        "tok-p1",
    )
