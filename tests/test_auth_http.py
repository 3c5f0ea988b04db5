"""Auth and devices over real HTTP against a node served by Hypercorn on a loopback port."""

from __future__ import annotations

from tests.auth_support import DEVICES, LOGOUT, REFRESH, REGISTER, register_body
from tests.conftest import LiveNode


async def test_sign_in_refresh_devices_logout_over_http(live_node: LiveNode) -> None:
    async with live_node.client() as http:
        registered = await http.post(REGISTER, json=register_body())
        assert registered.status_code == 200
        body = registered.json()
        assert set(body) == {"success", "user", "tokens", "device", "syncData"}
        headers = {"Authorization": f"Bearer {body['tokens']['accessToken']}"}

        listing = await http.get(DEVICES, headers=headers)
        assert listing.status_code == 200
        assert listing.json()["data"]["currentDevice"] == body["device"]["id"]
        assert listing.headers["x-request-id"]

        refreshed = await http.post(
            REFRESH, json={"refreshToken": body["tokens"]["refreshToken"], "deviceId": "phone-1"}
        )
        assert refreshed.status_code == 200
        headers = {"Authorization": f"Bearer {refreshed.json()['tokens']['accessToken']}"}

        settings = await http.put(
            f"{DEVICES}/{body['device']['id']}/settings", headers=headers, json={"uploadQuality": "low"}
        )
        assert settings.json()["data"]["device"]["settings"]["uploadQuality"] == "low"

        assert (await http.post(LOGOUT, headers=headers)).status_code == 200
        after = await http.get(DEVICES, headers=headers)
        assert after.status_code == 401
        assert after.json()["error"]["code"] == "DEVICE_REVOKED"


async def test_failed_logins_over_http_get_429_with_retry_after(live_node: LiveNode) -> None:
    async with live_node.client() as http:
        assert (await http.post(REGISTER, json=register_body())).status_code == 200
        codes = [
            (await http.post(REGISTER, json=register_body(password="wrong password!"))).status_code for _ in range(10)
        ]
        assert codes == [401] * 10
        limited = await http.post(REGISTER, json=register_body(password="wrong password!"))
        assert limited.status_code == 429
        assert limited.json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"
        assert 1 <= int(limited.headers["retry-after"]) <= 60
