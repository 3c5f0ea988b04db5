"""Failed sign-ins are limited per client address and per account; successful ones never are."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from tests.auth_support import REFRESH, REGISTER, error_code, quiet_node, register, register_body
from vault.config import Config


def _from(address: str) -> dict[str, Any]:
    return {"scope_base": {"client": (address, 40000)}}


async def _attempt(client: Any, address: str = "203.0.113.5", **kw: Any) -> Any:
    return await client.post(REGISTER, json=register_body(**kw), **_from(address))


async def test_too_many_wrong_passwords_from_one_address_are_429_until_the_window_passes(
    config: Config, autojump_clock: Any
) -> None:
    async with quiet_node(config) as app:
        client = app.test_client()
        await register(client)
        for _ in range(10):
            response = await _attempt(client, password="wrong password!")
            assert response.status_code == 401
        limited = await _attempt(client, password="wrong password!")
        assert limited.status_code == 429
        assert await error_code(limited) == "RATE_LIMIT_EXCEEDED"
        retry_after = int(limited.headers["Retry-After"])
        assert 1 <= retry_after <= 60
        # While limited, even the right password is refused, so guessing gains nothing.
        assert (await _attempt(client)).status_code == 429
        await trio.sleep(retry_after)
        assert (await _attempt(client)).status_code == 200


async def test_an_account_is_protected_across_addresses(config: Config, autojump_clock: Any) -> None:
    async with quiet_node(config) as app:
        client = app.test_client()
        await register(client)
        await register(client, "other@example.com")
        for i in range(10):
            response = await _attempt(client, f"198.51.100.{i}", password="wrong password!")
            assert response.status_code == 401
        limited = await _attempt(client, "198.51.100.99")
        assert limited.status_code == 429
        assert "Retry-After" in limited.headers
        # Another account from a fresh address is not affected.
        assert (await _attempt(client, "198.51.100.99", email="other@example.com")).status_code == 200


async def test_an_address_is_limited_across_accounts(make_config: Callable[..., Config], autojump_clock: Any) -> None:
    async with quiet_node(make_config(auth={"signup": "closed"})) as app:
        client = app.test_client()
        for i in range(10):
            response = await _attempt(client, email=f"guess{i}@example.com")
            assert response.status_code == 403  # SIGNUP_DISABLED: unknown emails count as failures
        limited = await _attempt(client, email="guess-again@example.com")
        assert limited.status_code == 429
        assert (await _attempt(client, "192.0.2.77", email="guess-again@example.com")).status_code == 403


async def test_successful_sign_ins_are_never_limited(config: Config, autojump_clock: Any) -> None:
    async with quiet_node(config) as app:
        client = app.test_client()
        for _ in range(15):
            assert (await _attempt(client)).status_code == 200


async def test_the_limit_is_configurable(make_config: Callable[..., Config], autojump_clock: Any) -> None:
    async with quiet_node(make_config(auth={"max_failed_logins_per_minute": 3})) as app:
        client = app.test_client()
        await register(client)
        for _ in range(3):
            assert (await _attempt(client, password="wrong password!")).status_code == 401
        assert (await _attempt(client, password="wrong password!")).status_code == 429


async def test_invalid_refresh_tokens_count_against_the_address(config: Config, autojump_clock: Any) -> None:
    async with quiet_node(config) as app:
        client = app.test_client()
        for _ in range(10):
            response = await client.post(
                REFRESH, json={"refreshToken": "rt_" + "A" * 43, "deviceId": "x"}, **_from("203.0.113.9")
            )
            assert response.status_code == 401
        limited = await client.post(
            REFRESH, json={"refreshToken": "rt_" + "A" * 43, "deviceId": "x"}, **_from("203.0.113.9")
        )
        assert limited.status_code == 429


async def test_memory_stays_bounded_under_a_flood_of_distinct_emails(
    make_config: Callable[..., Config], autojump_clock: Any
) -> None:
    async with quiet_node(make_config(auth={"signup": "closed"})) as app:
        limiter = app.node.auth.limiter
        limiter.by_account.max_keys = 20
        client = app.test_client()
        for i in range(60):
            # A different address each time so the per-address limit does not stop the flood.
            response = await _attempt(client, f"10.1.0.{i}", email=f"flood{i}@example.com")
            assert response.status_code == 403
        assert len(limiter.by_account) == 20
        assert len(limiter.by_address) == 60


async def test_a_concurrent_burst_cannot_get_past_the_limit(config: Config, autojump_clock: Any) -> None:
    async with quiet_node(config) as app:
        client = app.test_client()
        await register(client)
        statuses: list[int] = []

        async def guess(i: int) -> None:
            response = await _attempt(client, password=f"wrong password {i}")
            statuses.append(response.status_code)

        async with trio.open_nursery() as nursery:
            for i in range(30):
                nursery.start_soon(guess, i)
        # Queued guesses are re-checked when a hashing slot frees up: at most the limit plus
        # the hashes already in flight (max_concurrent_hashes = 2) are ever verified.
        assert statuses.count(401) <= 10 + config.auth.max_concurrent_hashes
        assert statuses.count(429) >= 30 - 10 - config.auth.max_concurrent_hashes
        assert set(statuses) == {401, 429}


async def test_a_burst_of_parallel_failed_sign_ins_gets_no_more_checks_than_the_limit(
    make_config: Any,
) -> None:
    config = make_config(auth={"max_failed_logins_per_minute": 3, "max_concurrent_hashes": 2})
    async with quiet_node(config) as app:
        client = app.test_client()
        await register(client)
        statuses: list[int] = []

        async def attempt() -> None:
            statuses.append((await _attempt(client, password="wrong password!")).status_code)

        async with trio.open_nursery() as nursery:
            for _ in range(12):
                nursery.start_soon(attempt)
    assert statuses.count(401) == 3  # exactly the limit's worth of password checks
    assert statuses.count(429) == 9


async def test_a_flood_of_failed_sign_ins_does_not_hold_up_another_users(config: Config, autojump_clock: Any) -> None:
    """200 wrong passwords at once from one address, and behind them another user signs in from
    elsewhere: the refused ones give their place up without a password check, so that user waits
    for at most the limit's worth of checks (plus those already running), not for 200."""
    async with quiet_node(config) as app:
        client = app.test_client()
        await register(client)
        await register(client, "mary@example.com", device_id="marys-phone")
        passwords = app.node.auth.passwords
        checks = 0
        real_verify = passwords._verify_sync

        def counted(password_hash: str, password: str) -> bool:
            nonlocal checks
            checks += 1
            return real_verify(password_hash, password)

        passwords._verify_sync = counted  # type: ignore[method-assign]
        flood: list[int] = []
        checks_before_mary: list[int] = []

        async def guess(i: int) -> None:
            flood.append((await _attempt(client, password=f"wrong password {i}")).status_code)

        async def mary() -> None:
            answer = await _attempt(client, "198.51.100.7", email="mary@example.com", device_id="marys-phone")
            assert answer.status_code == 200
            checks_before_mary.append(checks)

        async with trio.open_nursery() as nursery:
            for i in range(200):
                nursery.start_soon(guess, i)
            while passwords._limiter.statistics().tasks_waiting < 150:  # noqa: ASYNC110 - the flood is queued
                await trio.sleep(0.001)
            nursery.start_soon(mary)
        limit, running = config.auth.max_failed_logins_per_minute, config.auth.max_concurrent_hashes
        assert flood.count(401) <= limit + running and flood.count(429) == 200 - flood.count(401)
        assert checks_before_mary[0] <= limit + running + 1  # her own check included
