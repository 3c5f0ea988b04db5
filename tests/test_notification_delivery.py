"""Notification delivery as a user meets it: storage thresholds up to "Storage full", quiet hours
on a DST night, the runner's bounded concurrency, providers that hang or raise, inbox paging, and
which provider a device gets when it names none.

Everything runs in process on the ``idle_jump_clock`` fake clock (``tests.push_support``), except
the provider choice, which needs only registration and runs real providers against no network.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import trio
from cryptography.hazmat.primitives.asymmetric import ec
from push_fakes import refused_url

from tests.api_helpers import upload_file
from tests.auth_support import bearer, error_code, register
from tests.push_support import INBOX, NOTIFY, Recorder, notify, phone_and_laptop, push_node, sign_in
from tests.test_notifications import _user_id, at, delivery_is, eventually, inbox
from tests.test_push_apns import KEY_ID, TEAM_ID, TOPIC, write_key
from tests.test_push_fcm import rsa_key, write_account
from tests.test_push_webpush import Browser
from vault.app import create_app
from vault.clock import parse_rfc3339
from vault.config import Config
from vault.plugin_api import Delivered, Outcome, PushMessage, PushRegistration
from vault.push.fake import Script

KiB = 1024


async def sent(recorder: Recorder, count: int, *, within: float = 3600) -> None:
    """Until ``recorder`` has sent ``count`` visible messages; in fake time, so a message that never
    comes fails the test at once instead of hanging it."""
    with trio.fail_after(within):
        await recorder.wait_for(count)


# -- storage thresholds ---------------------------------------------------------------------------


async def test_storage_full_is_announced_once_and_freeing_space_below_90_percent_rearms_both(
    make_config: Callable[..., Config], idle_jump_clock: Any
) -> None:
    recorder = Recorder()
    config = make_config(plans={"free": {"quota": "100KiB"}}, files={"trash_retention": "1s"})
    async with push_node(config, recorder, idle_jump_clock) as app:
        client = app.test_client()
        headers, _ = await sign_in(client, "phone-1")
        await notify(client, headers, "phone-1", uploads=False)

        async def titles() -> list[str]:
            await trio.sleep(5)  # fake time: the threshold check runs after each change commits
            return [m.title for _, m, _ in recorder.visible()]

        await upload_file(client, headers, os.urandom(60 * KiB), name="a.bin")
        second = await upload_file(client, headers, os.urandom(33 * KiB), name="b.bin")  # 93%
        await sent(recorder, 1)
        assert await titles() == ["Storage 90% full"]
        # Exactly the bytes left: 100%, which the quota still allows.
        third = await upload_file(client, headers, os.urandom(7 * KiB), name="c.bin")
        await sent(recorder, 2)
        assert await titles() == ["Storage 90% full", "Storage full"]
        full = recorder.visible()[1][1]
        assert full.category == "storage" and full.data == {"used": 100 * KiB, "quota": 100 * KiB, "percent": 100}

        # At 100% nothing more is announced: a refused upload, and deletes (the trash still counts).
        over = await client.post(
            "/api/mobile/upload/init",
            headers=headers,
            json={"files": [{"localId": "x", "name": "one-more.bin", "size": 1, "folder": "/"}]},
        )
        assert over.status_code == 507 and await error_code(over) == "STORAGE_QUOTA_EXCEEDED"
        for file in (third, second):
            assert (await client.delete(f"/api/mobile/files/{file['id']}", headers=headers)).status_code == 200
        assert await titles() == ["Storage 90% full", "Storage full"]
        storage = [e["title"] for e in await inbox(client, headers) if e["category"] == "storage"]
        assert storage == ["Storage full", "Storage 90% full"]

        # The trash purged takes usage to 60%: both thresholds are armed again.
        await trio.sleep(5)  # past the trash's 1 s retention
        await app.node.reclaim()
        user_id = await _user_id(app)

        async def rearmed() -> bool:
            from vault.notifications.storage_alerts import STORAGE_ALERTS

            async with app.node.meta.snapshot() as txn:
                return txn.get_bytes(STORAGE_ALERTS, user_id.encode()) == b"0"

        await eventually(rearmed)
        await upload_file(client, headers, os.urandom(33 * KiB), name="d.bin")  # 93% again
        await sent(recorder, 3)
        await upload_file(client, headers, os.urandom(7 * KiB), name="e.bin")  # 100% again
        await sent(recorder, 4)
        assert await titles() == ["Storage 90% full", "Storage full", "Storage 90% full", "Storage full"]


# -- quiet hours on a DST night -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timezone", "evening", "quiet_end_utc"),
    [
        # Clocks go forward at 02:00 CET: 07:00 that morning is CEST, 05:00 UTC (not 06:00).
        ("Europe/Berlin", "2026-03-28T23:30:00", "2026-03-29T05:00:00Z"),
        # Clocks go back at 02:00 EDT: 07:00 that morning is EST, 12:00 UTC (not 11:00).
        ("America/New_York", "2026-10-31T23:30:00", "2026-11-01T12:00:00Z"),
    ],
)
async def test_quiet_hours_end_at_seven_local_time_on_a_dst_night_but_security_alerts_go_at_once(
    config: Config, idle_jump_clock: Any, timezone: str, evening: str, quiet_end_utc: str
) -> None:
    recorder = Recorder()
    created = at(evening, ZoneInfo(timezone))
    async with push_node(config, recorder, idle_jump_clock, epoch=created) as app:
        client = app.test_client()
        headers, _ = await sign_in(client, "phone-1")
        quiet = {"enabled": True, "start": "22:00", "end": "07:00", "timezone": timezone}
        assert (await notify(client, headers, "phone-1", quietHours=quiet)).status_code == 200
        await upload_file(client, headers, os.urandom(1000), name="night.jpg")
        await sign_in(client, "tablet-1")  # "New device login detected" for phone-1, at the same moment

        await sent(recorder, 1)
        _, first, first_at = recorder.visible()[0]
        assert first.category == "security"
        assert 0 <= first_at - first.created_at < 2  # not held for the quiet hours
        held = next(e for e in await inbox(client, headers) if e["category"] == "uploads")
        assert held["deliveries"][0]["status"] == "held"
        assert held["deliveries"][0]["dueAt"] == quiet_end_utc

        await sent(recorder, 2, within=24 * 3600)
        _, second, second_at = recorder.visible()[1]
        assert second.category == "uploads" and second.title == "Photo upload completed"
        assert second_at == pytest.approx(parse_rfc3339(quiet_end_utc), abs=1)
        assert len(recorder.visible()) == 2

        async def uploads_sent() -> bool:
            entry = next(e for e in await inbox(client, headers) if e["category"] == "uploads")
            return bool(entry["deliveries"][0]["status"] == "sent")

        await eventually(uploads_sent)


# -- the runner's bounded concurrency -------------------------------------------------------------


class Gate(Recorder):
    """Holds every send until ``release`` is set, counting the sends under way."""

    def __init__(self) -> None:
        super().__init__()
        self.release = trio.Event()
        self.started = 0
        self.in_flight = 0
        self.most_in_flight = 0

    async def send(self, registration: PushRegistration, message: PushMessage) -> Outcome:
        self.started += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.release.wait()
        finally:
            self.in_flight -= 1
        return await super().send(registration, message)


@pytest.mark.parametrize("concurrency", [1, 3])
async def test_no_more_sends_than_the_concurrency_are_under_way_and_all_complete_once_released(
    make_config: Callable[..., Config], idle_jump_clock: Any, concurrency: int
) -> None:
    gate = Gate()
    # No send timeout: a held send ends only when the test releases it.
    config = make_config(push={"concurrency": concurrency, "send_timeout": math.inf})
    async with push_node(config, gate, idle_jump_clock) as app:
        client = app.test_client()
        headers, _ = await sign_in(client, "phone-1")
        await notify(client, headers, "phone-1")
        for n in range(5):
            await upload_file(client, headers, os.urandom(1000), name=f"photo-{n}.jpg")

        async def all_slots_taken() -> bool:
            return gate.in_flight >= concurrency

        await eventually(all_slots_taken)
        await trio.sleep(600)  # fake time: the runner had every chance to start more
        assert (gate.started, gate.in_flight) == (concurrency, concurrency)
        statuses = [d["status"] for e in await inbox(client, headers) for d in e["deliveries"]]
        assert sorted(statuses) == ["pending"] * 5

        gate.release.set()
        await sent(gate, 5)
        await trio.sleep(60)
        assert gate.started == 5 and gate.most_in_flight == concurrency
        entries = await inbox(client, headers)
        assert sorted(e["data"]["name"] for e in entries) == [f"photo-{n}.jpg" for n in range(5)]
        assert [(d["status"], d["attempts"]) for e in entries for d in e["deliveries"]] == [("sent", 1)] * 5


# -- providers that hang or raise -----------------------------------------------------------------


class HangsOnce(Recorder):
    """The first send never answers; later ones are delivered."""

    async def send(self, registration: PushRegistration, message: PushMessage) -> Outcome:
        outcome = await super().send(registration, message)
        if len(self.sent) == 1:
            await trio.sleep_forever()
        return outcome


async def test_a_send_that_hangs_past_the_send_timeout_is_retried_and_delivered_later(
    make_config: Callable[..., Config], idle_jump_clock: Any
) -> None:
    recorder = HangsOnce()
    config = make_config(push={"send_timeout": "10s", "retry_backoff": "1m"})
    async with push_node(config, recorder, idle_jump_clock) as app:
        client = app.test_client()
        headers, _ = await sign_in(client, "phone-1")
        await notify(client, headers, "phone-1")
        await sign_in(client, "tablet-1")
        await sent(recorder, 2)
        [(_, first, first_at), (_, again, again_at)] = recorder.visible()
        assert first.title == again.title == "New device login detected"
        # 10 s waiting for the hung send, then the first backoff (1 min, jittered over its upper half).
        assert 10 + 30 <= again_at - first_at <= 10 + 60
        await eventually(delivery_is(client, headers, "sent", attempts=2))


def raises_for(token: str) -> Script:
    def script(n: int, registration: PushRegistration, message: PushMessage) -> Outcome:
        if registration.push_token == token:
            raise RuntimeError("provider bug")
        return Delivered()

    return script


async def test_a_provider_that_raises_is_logged_and_other_devices_still_get_their_deliveries(
    make_config: Callable[..., Config], idle_jump_clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder(raises_for("token-phone-1"))
    # One send at a time: a delivery the failure held up would hold up every other one.
    config = make_config(push={"concurrency": 1, "retry_backoff": "1h"})
    async with push_node(config, recorder, idle_jump_clock) as app:
        client = app.test_client()
        (phone, _), (laptop, laptop_id) = await phone_and_laptop(client)
        _, tablet_id = await sign_in(client, "tablet-1")  # an alert each for phone and laptop
        await eventually(delivery_is(client, laptop, "sent", deviceId=laptop_id))
        assert any(
            r.name == "vault.notifications.delivery"
            and r.levelno == logging.ERROR
            and r.getMessage() == "push provider log raised"
            and r.exc_info is not None
            and isinstance(r.exc_info[1], RuntimeError)
            for r in caplog.records
        )
        [entry] = [e for e in await inbox(client, phone) if e["data"]["deviceId"] == tablet_id]
        by_device = {d["deviceId"]: d for d in entry["deliveries"]}
        assert by_device[laptop_id]["status"] == "sent"
        [phone_delivery] = [d for device, d in by_device.items() if device != laptop_id]
        assert phone_delivery["status"] == "pending"  # to be retried, not lost
        assert phone_delivery["reason"] == "provider error: RuntimeError"
        # The runner is still running: a later notification reaches the laptop too.
        await upload_file(client, phone, os.urandom(1000), name="later.jpg")
        await eventually(lambda: _received(recorder, "token-laptop-1", 2))


async def _received(recorder: Recorder, token: str, count: int) -> bool:
    return sum(1 for r, _, _ in recorder.visible() if r.push_token == token) >= count


# -- inbox paging ---------------------------------------------------------------------------------


async def _page(client: Any, headers: dict[str, str], limit: int, cursor: str | None) -> dict[str, Any]:
    query = f"?limit={limit}" + (f"&cursor={cursor}" if cursor else "")
    response = await client.get(INBOX + query, headers=headers)
    assert response.status_code == 200
    data: dict[str, Any] = (await response.get_json())["data"]
    return data


async def test_inbox_pages_are_newest_first_and_together_hold_every_notification_once(
    config: Config, idle_jump_clock: Any
) -> None:
    async with push_node(config, Recorder(), idle_jump_clock) as app:
        client = app.test_client()
        headers, _ = await sign_in(client, "phone-1")
        names = [f"photo-{n}.jpg" for n in range(7)]
        for name in names:
            await upload_file(client, headers, os.urandom(500), name=name)  # an `uploads` notification each
            await trio.sleep(1)  # fake time: one second apart, so newest first is observable
        first = await _page(client, headers, 3, None)
        assert first["hasMore"] is True and first["nextCursor"]
        # A notification arriving between pages neither shifts nor repeats what follows.
        await upload_file(client, headers, os.urandom(500), name="newer.jpg")
        pages = [first]
        while pages[-1]["hasMore"]:
            assert len(pages) < 10, "paging never ended"
            pages.append(await _page(client, headers, 3, pages[-1]["nextCursor"]))
        assert [len(p["notifications"]) for p in pages] == [3, 3, 1]
        assert pages[-1]["nextCursor"] is None
        listed = [e for p in pages for e in p["notifications"]]
        assert [e["data"]["name"] for e in listed] == names[::-1]
        assert len({e["id"] for e in listed}) == 7
        created = [e["createdAt"] for e in listed]
        assert created == sorted(created, reverse=True) and len(set(created)) == 7
        # Starting over shows the newer one first.
        again = await _page(client, headers, 3, None)
        assert [e["data"]["name"] for e in again["notifications"]] == ["newer.jpg", names[6], names[5]]


# -- the provider a platform gets -----------------------------------------------------------------

# A token of the right shape for each provider (each checks it at registration).
APNS_TOKEN = "a1" * 32
FCM_TOKEN = "fcm-registration-token:APA91bH"
NTFY_TOPIC = "megavault-phone-topic"


def _provider_options(tmp_path: Path, names: list[str]) -> dict[str, Any]:
    """``[push]`` naming ``names``, each configured to reach nothing (nothing is sent here)."""
    nowhere = refused_url()
    push: dict[str, Any] = {"providers": names}
    if "fcm" in names:
        account = write_account(tmp_path / "service-account.json", rsa_key(), f"{nowhere}/token")
        push["fcm"] = {"service_account_file": str(account), "endpoint": nowhere}
    if "apns" in names:
        key = write_key(tmp_path / f"AuthKey_{KEY_ID}.p8", ec.generate_private_key(ec.SECP256R1()))
        push["apns"] = {
            "key_file": str(key),
            "key_id": KEY_ID,
            "team_id": TEAM_ID,
            "topic": TOPIC,
            "endpoint": refused_url("https"),
        }
    if "webhook" in names:
        push["webhook"] = {"url": f"{nowhere}/hook"}
    if "ntfy" in names:
        push["ntfy"] = {"server": nowhere}
    return push


@pytest.mark.parametrize(
    ("configured", "expected"),
    [
        # Every platform's own service, whatever order the providers are listed in.
        (["log", "webhook", "webpush", "fcm", "apns"], {"android": "fcm", "ios": "apns", "web": "webpush"}),
        # Without FCM and APNs: Android falls back to ntfy, iOS to the webhook.
        (["log", "webhook", "webpush", "ntfy"], {"android": "ntfy", "ios": "webhook", "web": "webpush"}),
        # Without ntfy, Android takes Web Push (UnifiedPush); iOS still the webhook.
        (["log", "webhook", "webpush"], {"android": "webpush", "ios": "webhook", "web": "webpush"}),
        # Only the development providers: the webhook before the log.
        (["log", "webhook"], {"android": "webhook", "ios": "webhook", "web": "webhook"}),
        (["log"], {"android": "log", "ios": "log", "web": "log"}),
    ],
)
async def test_a_device_naming_no_provider_gets_its_platforms_preferred_configured_one(
    make_config: Callable[..., Config], tmp_path: Path, configured: list[str], expected: dict[str, str]
) -> None:
    config = make_config(push=_provider_options(tmp_path, configured))
    app = create_app(config)
    async with app.test_app():
        client = app.test_client()
        # Every device signs in first: no device is registered yet, so no sign-in alert is sent.
        signed_in = {p: await register(client, device_id=f"{p}-1", platform=p) for p in expected}
        for platform, provider in expected.items():
            token = {
                "fcm": FCM_TOKEN,
                "apns": APNS_TOKEN,
                "ntfy": NTFY_TOPIC,
                "webpush": Browser().subscription("https://push.example.com/wpush/v2/abc"),
            }.get(provider, f"token-{platform}")
            answer = await client.post(
                NOTIFY,
                headers=bearer(signed_in[platform]),
                json={"deviceId": f"{platform}-1", "pushToken": token, "platform": platform},
            )
            assert answer.status_code == 200, await answer.get_json()
            data = (await answer.get_json())["data"]
            assert data["provider"] == provider, platform
            assert data["deviceId"] == signed_in[platform]["device"]["id"]
        stored = {r.platform: r.provider for r in await _registrations(app)}
        assert stored == expected


async def test_a_platform_no_configured_provider_serves_is_told_so_naming_them(
    make_config: Callable[..., Config], tmp_path: Path
) -> None:
    # APNs and FCM only: a browser naming no provider used to get APNs, then APNs's own 400 about
    # its token. It now hears that nothing here pushes to web devices; phones still register.
    config = make_config(push=_provider_options(tmp_path, ["apns", "fcm"]))
    app = create_app(config)
    async with app.test_app():
        client = app.test_client()
        browser = await register(client, device_id="web-1", platform="web")
        subscription = Browser().subscription("https://push.example.com/wpush/v2/abc")
        answer = await client.post(
            NOTIFY,
            headers=bearer(browser),
            json={"deviceId": "web-1", "pushToken": subscription, "platform": "web"},
        )
        assert answer.status_code == 400
        error = (await answer.get_json())["error"]
        assert error["code"] == "VALIDATION_ERROR" and error["details"]["field"] == "provider"
        assert "web devices" in error["message"] and "apns, fcm" in error["message"]
        phone = await register(client, device_id="android-1", platform="android")
        answer = await client.post(
            NOTIFY, headers=bearer(phone), json={"deviceId": "android-1", "pushToken": FCM_TOKEN, "platform": "android"}
        )
        assert answer.status_code == 200 and (await answer.get_json())["data"]["provider"] == "fcm"
        assert [r.platform for r in await _registrations(app)] == ["android"]


async def _registrations(app: Any) -> list[Any]:
    from vault.devices.push_registrations import REGISTRATIONS

    async with app.node.meta.snapshot() as txn:
        return [r for _, r in txn.scan(REGISTRATIONS)]
