"""Push registration, preferences, quiet hours and delivery through the durable outbox."""

from __future__ import annotations

import base64
import itertools
import os
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import trio

from tests.api_helpers import upload_file
from tests.auth_support import error_code
from tests.push_support import INBOX, NOTIFY, Recorder, notify, phone_and_laptop, push_node, sign_in
from vault.config import Config
from vault.devices.push_registrations import QuietHours
from vault.notifications.quiet_hours import held_until
from vault.plugin_api import Delivered, Failed, RegistrationGone, RetryLater

LA = ZoneInfo("America/Los_Angeles")


def at(text: str, tz: ZoneInfo = LA) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=tz).timestamp()


async def eventually(check: Any, *, step: float = 1.0, tries: int = 200) -> None:
    """Let fake time pass ``step`` at a time until ``check()`` holds: the node's background work
    (an outbox write on the LMDB writer thread) finishes when the machine lets it, not on a
    schedule, so a fixed sleep would race a busy machine."""
    for _ in range(tries):
        if await check():
            return
        await trio.sleep(step)
    raise AssertionError("the node never got there")


def delivery_is(client: Any, headers: dict[str, str], status: str, **more: Any) -> Any:
    async def check() -> bool:
        entries = await inbox(client, headers)
        return any(
            d["status"] == status and all(d.get(k) == v for k, v in more.items())
            for e in entries
            for d in e["deliveries"]
        )

    return check


async def inbox(client: Any, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = await client.get(INBOX, headers=headers)
    assert response.status_code == 200
    return list((await response.get_json())["data"]["notifications"])


# -- registration ---------------------------------------------------------------------------------


async def test_register_answers_the_preferences_and_accepts_the_clients_own_device_id(
    config: Config, idle_jump_clock: Any
) -> None:
    async with push_node(config, Recorder(), idle_jump_clock) as app:
        client = app.test_client()
        headers, device = await sign_in(client, "phone-1")
        quiet = {"enabled": True, "start": "22:00", "end": "07:00", "timezone": "America/Los_Angeles"}
        response = await notify(client, headers, "phone-1", uploads=False, quietHours=quiet)
        assert response.status_code == 200
        data = (await response.get_json())["data"]
        assert data["preferences"] == {
            "uploads": False,
            "shares": True,
            "storage": True,
            "security": True,
            "quietHours": quiet,
        }
        assert data["deviceId"] == device and data["provider"] == "log"
        # The node's own device id works too, and re-registering replaces the token.
        again = await client.post(
            NOTIFY, headers=headers, json={"deviceId": device, "pushToken": "new-token", "platform": "android"}
        )
        assert again.status_code == 200
        assert (await _registration(app, device)).push_token == "new-token"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"platform": "symbian"}, "platform"),
        ({"pushToken": ""}, "pushToken"),
        ({"preferences": {"quietHours": {"enabled": True, "start": "25:00", "end": "07:00"}}}, "start"),
        ({"preferences": {"quietHours": {"enabled": True, "start": "7:00", "end": "08:00"}}}, "start"),
        ({"preferences": {"quietHours": {"enabled": True, "timezone": "Mars/Olympus_Mons"}}}, "timezone"),
        ({"preferences": {"quietHours": {"timezone": "../../etc/passwd"}}}, "timezone"),
        ({"preferences": {"uploads": "yes"}}, "uploads"),
        ({"provider": "pigeon"}, "provider"),
        ({"surprise": 1}, "surprise"),
    ],
)
async def test_a_bad_registration_is_a_validation_error_naming_the_field(
    config: Config, idle_jump_clock: Any, change: dict[str, Any], field: str
) -> None:
    async with push_node(config, Recorder(), idle_jump_clock) as app:
        client = app.test_client()
        headers, _ = await sign_in(client, "phone-1")
        body = {"deviceId": "phone-1", "pushToken": "t", "platform": "android", **change}
        response = await client.post(NOTIFY, headers=headers, json=body)
        assert response.status_code == 400
        assert await error_code(response) == "VALIDATION_ERROR"
        assert field in str(await response.get_json())


async def test_another_users_device_cannot_be_registered(config: Config, idle_jump_clock: Any) -> None:
    async with push_node(config, Recorder(), idle_jump_clock) as app:
        client = app.test_client()
        _, bobs_device = await sign_in(client, "bob-phone", email="bob@example.com")
        alice, _ = await sign_in(client, "alice-phone", email="alice@example.com")
        for device in (bobs_device, "bob-phone", "no-such-device"):
            response = await client.post(
                NOTIFY, headers=alice, json={"deviceId": device, "pushToken": "t", "platform": "android"}
            )
            assert response.status_code == 404
            assert await error_code(response) == "NOT_FOUND"


async def test_the_webpush_key_is_a_p256_point_kept_across_restarts(config: Config, idle_jump_clock: Any) -> None:
    keys = []
    for _ in range(2):
        async with push_node(config, Recorder(), idle_jump_clock) as app:
            client = app.test_client()
            headers, _ = await sign_in(client, "phone-1")
            response = await client.get("/api/mobile/notifications/webpush-key", headers=headers)
            assert response.status_code == 200
            keys.append((await response.get_json())["data"]["publicKey"])
    raw = base64.urlsafe_b64decode(keys[0] + "=" * (-len(keys[0]) % 4))
    assert len(raw) == 65 and raw[0] == 4  # uncompressed P-256
    assert keys[0] == keys[1]


# -- delivery ------------------------------------------------------------------------------------


async def test_a_new_device_sign_in_is_pushed_to_the_other_devices_and_shown_in_the_inbox(
    config: Config, idle_jump_clock: Any
) -> None:
    recorder = Recorder()
    async with push_node(config, recorder, idle_jump_clock) as app:
        client = app.test_client()
        headers, first = await sign_in(client, "phone-1")
        assert (await notify(client, headers, "phone-1")).status_code == 200
        await sign_in(client, "tablet-1")
        await recorder.wait_for(1)
        registration, message, _ = recorder.visible()[0]
        assert (registration.device_id, registration.push_token) == (first, "token-phone-1")
        assert (message.category, message.title) == ("security", "New device login detected")
        await eventually(delivery_is(client, headers, "sent"))
        [entry] = await inbox(client, headers)
        assert entry["category"] == "security" and entry["title"] == "New device login detected"
        assert [(d["deviceId"], d["status"], d["attempts"]) for d in entry["deliveries"]] == [(first, "sent", 1)]


async def test_a_category_turned_off_sends_nothing(config: Config, idle_jump_clock: Any) -> None:
    recorder = Recorder()
    async with push_node(config, recorder, idle_jump_clock) as app:
        client = app.test_client()
        headers, _ = await sign_in(client, "phone-1")
        await notify(client, headers, "phone-1", uploads=False)
        await upload_file(client, headers, os.urandom(1000), name="a.jpg")
        await trio.sleep(60)
        assert recorder.visible() == []
        [entry] = await inbox(client, headers)
        assert entry["category"] == "uploads" and entry["deliveries"][0]["status"] == "skipped"


async def test_uploads_wait_for_quiet_hours_to_end_but_security_alerts_do_not(
    config: Config, idle_jump_clock: Any
) -> None:
    recorder = Recorder()
    # 23:30 in Los Angeles; quiet hours 22:00-07:00 there.
    async with push_node(config, recorder, idle_jump_clock, epoch=at("2026-06-10T23:30:00")) as app:
        client = app.test_client()
        headers, _ = await sign_in(client, "phone-1")
        quiet = {"enabled": True, "start": "22:00", "end": "07:00", "timezone": "America/Los_Angeles"}
        await notify(client, headers, "phone-1", quietHours=quiet)
        await upload_file(client, headers, os.urandom(1000), name="night.jpg")
        await sign_in(client, "tablet-1")  # a security alert for phone-1
        await recorder.wait_for(1)
        assert [m.category for _, m, _ in recorder.visible()] == ["security"]
        held = next(e for e in await inbox(client, headers) if e["category"] == "uploads")
        assert held["deliveries"][0]["status"] == "held"
        assert held["deliveries"][0]["dueAt"] == "2026-06-11T14:00:00Z"  # 07:00 PDT
        await recorder.wait_for(2)
        _, message, sent_at = recorder.visible()[1]
        assert message.category == "uploads"
        assert sent_at == pytest.approx(at("2026-06-11T07:00:00"), abs=1)


def test_quiet_hours_follow_the_wall_clock_across_a_dst_change() -> None:
    quiet = QuietHours(enabled=True, start="22:00", end="07:00", timezone="America/Los_Angeles")
    # The night of 7-8 March 2026 is an hour shorter (clocks go forward): 23:00 PST to 07:00 PDT is 7 hours.
    start = at("2026-03-07T23:00:00")
    end = held_until(quiet, start)
    assert end == at("2026-03-08T07:00:00")
    assert end is not None and end - start == 7 * 3600
    # And the night of 31 October to 1 November an hour longer: 23:00 PDT to 07:00 PST is 9 hours.
    start = at("2026-10-31T23:00:00")
    end = held_until(quiet, start)
    assert end is not None and (end - start) == 9 * 3600
    # Outside quiet hours nothing is held; quiet hours within one day work too.
    assert held_until(quiet, at("2026-03-08T12:00:00")) is None
    day = QuietHours(enabled=True, start="09:00", end="17:00", timezone="Europe/Berlin")
    berlin = ZoneInfo("Europe/Berlin")
    assert held_until(day, at("2026-03-09T10:00:00", berlin)) == at("2026-03-09T17:00:00", berlin)
    assert held_until(day, at("2026-03-09T08:59:00", berlin)) is None
    assert held_until(QuietHours(enabled=False), at("2026-03-09T10:00:00", berlin)) is None


async def test_a_failed_send_is_retried_with_growing_backoff_and_a_service_delay_is_honoured(
    make_config: Any, idle_jump_clock: Any
) -> None:
    answers: list[Any] = [RetryLater("503"), RetryLater("503"), RetryLater("throttled", delay=300.0), Delivered()]
    recorder = Recorder(lambda n, r, m: answers[n - 1] if n <= len(answers) else Delivered())
    config = make_config(push={"retry_backoff": "10s", "retry_backoff_max": "1h"})
    async with push_node(config, recorder, idle_jump_clock) as app:
        client = app.test_client()
        headers, _ = await sign_in(client, "phone-1")
        await notify(client, headers, "phone-1")
        await sign_in(client, "tablet-1")
        await recorder.wait_for(4)
        times = [t for _, _, t in recorder.visible()]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert 5 <= gaps[0] <= 10 and 10 <= gaps[1] <= 20  # 10 s then 20 s, jittered over the upper half
        assert gaps[2] == pytest.approx(300, abs=1)  # Retry-After wins over the backoff
        await eventually(delivery_is(client, headers, "sent"))
        [entry] = await inbox(client, headers)
        assert entry["deliveries"][0]["status"] == "sent" and entry["deliveries"][0]["attempts"] == 4


async def test_a_delivery_failing_past_its_maximum_age_is_given_up(make_config: Any, idle_jump_clock: Any) -> None:
    recorder = Recorder(lambda n, r, m: RetryLater("down"))
    config = make_config(push={"retry_backoff": "1m", "retry_backoff_max": "10m", "max_age": "1h"})
    async with push_node(config, recorder, idle_jump_clock) as app:
        client = app.test_client()
        headers, _ = await sign_in(client, "phone-1")
        await notify(client, headers, "phone-1")
        await sign_in(client, "tablet-1")
        await eventually(delivery_is(client, headers, "failed"), step=600)
        tries = len(recorder.visible())
        assert 5 <= tries <= 20
        [entry] = await inbox(client, headers)
        assert entry["deliveries"][0]["status"] == "failed"
        assert "gave up" in entry["deliveries"][0]["reason"]
        await trio.sleep(3600)
        assert len(recorder.visible()) == tries  # nothing more once given up


async def test_a_permanent_failure_is_not_retried_and_does_not_block_other_deliveries(
    config: Config, idle_jump_clock: Any
) -> None:
    recorder = Recorder(lambda n, r, m: Failed("payload refused") if r.push_token == "token-phone-1" else Delivered())
    async with push_node(config, recorder, idle_jump_clock) as app:
        client = app.test_client()
        (phone, _), _ = await phone_and_laptop(client)
        _, tablet_id = await sign_in(client, "tablet-1")  # one alert each for phone and laptop
        await recorder.wait_for(2)
        await trio.sleep(3600)
        assert sorted(r.push_token for r, _, _ in recorder.visible()) == ["token-laptop-1", "token-phone-1"]
        [entry] = [e for e in await inbox(client, phone) if e["data"]["deviceId"] == tablet_id]
        states = {d["status"] for d in entry["deliveries"]}
        assert states == {"failed", "sent"}


async def test_a_token_the_service_no_longer_knows_is_unregistered(config: Config, idle_jump_clock: Any) -> None:
    recorder = Recorder(lambda n, r, m: RegistrationGone("UNREGISTERED"))
    async with push_node(config, recorder, idle_jump_clock) as app:
        client = app.test_client()
        headers, device = await sign_in(client, "phone-1")
        await notify(client, headers, "phone-1")
        await sign_in(client, "tablet-1")
        await recorder.wait_for(1)

        async def unregistered() -> bool:
            return await _registration(app, device) is None

        await eventually(unregistered)
        await sign_in(client, "tablet-2")
        await trio.sleep(60)
        assert len(recorder.visible()) == 1  # nothing more is sent to the gone token
        newest = (await inbox(client, headers))[0]
        assert newest["deliveries"][0]["status"] == "skipped"


async def _user_id(app: Any) -> str:
    from vault.auth.records import USERS

    async with app.node.meta.snapshot() as txn:
        [user] = [u for _, u in txn.scan(USERS)]
    return str(user.id)


async def _registration(app: Any, device_id: str) -> Any:
    from vault.devices.push_registrations import REGISTRATIONS

    async with app.node.meta.snapshot() as txn:
        found = [r for _, r in txn.scan(REGISTRATIONS) if r.device_id == device_id]
    return found[0] if found else None


async def test_removing_a_device_or_logging_it_out_removes_its_registration_at_once(
    config: Config, idle_jump_clock: Any
) -> None:
    async with push_node(config, Recorder(), idle_jump_clock) as app:
        client = app.test_client()
        phone, phone_id = await sign_in(client, "phone-1")
        tablet, tablet_id = await sign_in(client, "tablet-1")
        await notify(client, phone, "phone-1")
        await notify(client, tablet, "tablet-1")
        assert await _registration(app, phone_id) is not None
        removed = await client.delete(f"/api/mobile/devices/{tablet_id}", headers=phone)
        assert removed.status_code == 200
        assert await _registration(app, tablet_id) is None
        assert (await client.post("/api/mobile/auth/logout", headers=phone)).status_code == 200
        assert await _registration(app, phone_id) is None


async def test_queued_deliveries_survive_a_restart(config: Config, idle_jump_clock: Any) -> None:
    first = Recorder(lambda n, r, m: RetryLater("service down", delay=600.0))
    async with push_node(config, first, idle_jump_clock) as app:
        client = app.test_client()
        headers, _ = await sign_in(client, "phone-1")
        await notify(client, headers, "phone-1")
        await sign_in(client, "tablet-1")
        await first.wait_for(1)
        await trio.sleep(1)
    second = Recorder()
    async with push_node(config, second, idle_jump_clock) as app:
        await second.wait_for(1)
        assert second.visible()[0][1].title == "New device login detected"
        await eventually(delivery_is(app.test_client(), headers, "sent", attempts=2))
        [entry] = await inbox(app.test_client(), headers)
        assert entry["deliveries"][0]["status"] == "sent" and entry["deliveries"][0]["attempts"] == 2


async def test_changes_send_one_collapsed_silent_hint_to_the_other_devices(
    make_config: Any, idle_jump_clock: Any
) -> None:
    recorder = Recorder()
    config = make_config(push={"sync_hint_interval": "30s"})
    async with push_node(config, recorder, idle_jump_clock) as app:
        client = app.test_client()
        (phone, phone_id), (_, laptop_id) = await phone_and_laptop(client, uploads=False, security=False)
        for n in range(6):
            await upload_file(client, phone, os.urandom(500), name=f"burst-{n}.jpg")
        await trio.sleep(120)
        hints = [(r.device_id, m) for r, m, _ in recorder.sent if m.silent]
        assert {device for device, _ in hints} == {laptop_id}  # never the device that made the change
        assert 1 <= len(hints) <= 2  # six changes, collapsed
        assert all(m.category == "sync" and m.data == {"type": "sync"} for _, m in hints)
        await upload_file(client, phone, os.urandom(500), name="later.jpg")
        await trio.sleep(120)
        assert len([m for _, m, _ in recorder.sent if m.silent]) == len(hints) + 1
        assert phone_id not in {r.device_id for r, m, _ in recorder.sent if m.silent}


async def test_storage_notifications_come_once_per_threshold_crossing(make_config: Any, idle_jump_clock: Any) -> None:
    recorder = Recorder()
    config = make_config(plans={"free": {"quota": "100KiB"}}, files={"trash_retention": "1s"})
    async with push_node(config, recorder, idle_jump_clock) as app:
        client = app.test_client()
        headers, _ = await sign_in(client, "phone-1")
        user_id = await _user_id(app)
        await notify(client, headers, "phone-1", uploads=False)
        await upload_file(client, headers, os.urandom(60 * 1024), name="a.bin")
        await trio.sleep(5)
        assert recorder.visible() == []
        second = await upload_file(client, headers, os.urandom(33 * 1024), name="b.bin")  # 93%
        await recorder.wait_for(1)
        await upload_file(client, headers, os.urandom(1024), name="c.bin")  # 94%: no second warning
        await trio.sleep(5)
        assert [m.title for _, m, _ in recorder.visible()] == ["Storage 90% full"]
        # Freed space re-arms the warning (a deleted file counts until the trash lets it go).
        deleted = await client.delete(f"/api/mobile/files/{second['id']}", headers=headers)
        assert deleted.status_code == 200
        await trio.sleep(5)  # past the trash's 1 s retention
        await app.node.reclaim()

        async def rearmed() -> bool:
            from vault.notifications.storage_alerts import STORAGE_ALERTS

            async with app.node.meta.snapshot() as txn:
                return txn.get_bytes(STORAGE_ALERTS, user_id.encode()) == b"0"

        await eventually(rearmed)
        await upload_file(client, headers, os.urandom(35 * 1024), name="d.bin")
        await recorder.wait_for(2)
        assert [m.title for _, m, _ in recorder.visible()] == ["Storage 90% full", "Storage 90% full"]


async def test_a_crossing_missed_while_the_node_was_down_is_announced_when_it_starts(
    make_config: Any, idle_jump_clock: Any
) -> None:
    # The check runs after a change commits: a crash in between, or a plan's quota lowered while
    # the node was stopped, leaves a crossing nobody announced. The next start finds it.
    recorder = Recorder()
    async with push_node(make_config(plans={"free": {"quota": "1MiB"}}), recorder, idle_jump_clock) as app:
        client = app.test_client()
        headers, _ = await sign_in(client, "phone-1")
        await notify(client, headers, "phone-1", uploads=False)
        await upload_file(client, headers, os.urandom(60 * 1024), name="a.bin")
        await trio.sleep(5)
        assert recorder.visible() == []
    restarted = Recorder()
    async with push_node(make_config(plans={"free": {"quota": "64KiB"}}), restarted, idle_jump_clock):
        with trio.fail_after(600):  # fake time: fails at once, instead of hanging, when nothing comes
            await restarted.wait_for(1)
        await trio.sleep(5)
        assert [m.title for _, m, _ in restarted.visible()] == ["Storage 90% full"]
    # Announced once: a third start with nothing changed says nothing again.
    again = Recorder()
    async with push_node(make_config(plans={"free": {"quota": "64KiB"}}), again, idle_jump_clock):
        await trio.sleep(5)
        assert again.visible() == []


def test_a_wrong_key_in_a_providers_table_is_refused_naming_it(make_config: Any) -> None:
    from vault.config import ConfigError
    from vault.push.loading import make_providers

    config = make_config(push={"providers": ["webhook"], "webhook": {"urll": "https://x.example"}})
    with pytest.raises(ConfigError, match=r"push\.webhook\.urll"):
        make_providers(config.push)
    # A table of a provider that is not listed is kept but not used.
    quiet = make_config(push={"providers": ["log"], "webhook": {"urll": "https://x.example"}})
    assert list(make_providers(quiet.push)) == ["log"]
