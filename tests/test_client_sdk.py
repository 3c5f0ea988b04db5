"""The SDK against a real node in-process: sign-in and token rotation (with the grace retry),
deduplicated, parallel, resumable uploads, range-resumed verified downloads, retries with backoff
and the rate limit on Trio's fake clock, and the blocking wrapper for scripts."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio
import trio.testing

from tests.client_support import PASSWORD, Rule, Scripted, in_process, is_chunk_put, is_content_get, signed_in
from vault.app import VaultApp, create_app
from vault.clock import TrioClock
from vault_client import wire
from vault_client.auth import stored_credentials
from vault_client.blocking import BlockingClient
from vault_client.client import Client
from vault_client.errors import AuthError, NodeUnreachable, NotLoggedIn, VerificationFailed
from vault_client.hashing import checksum_of_bytes
from vault_client.ratelimit import RateLimit
from vault_client.retry import RetryPolicy, retrying
from vault_client.state import State
from vault_client.uploads import UploadItem

BASE = "http://node.test"
CHUNK = 64 * 1024


def _data(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


async def test_sign_in_registers_the_machine_as_one_device_that_keeps_its_id(app: VaultApp, tmp_path: Path) -> None:
    client = await signed_in(BASE, tmp_path / "s.sqlite3", transport=in_process(app))
    first = client.credentials
    assert first is not None and first.node_device_id.startswith("device_")
    again = await client.sign_in("alice@example.com", PASSWORD)
    assert again.node_device_id == first.node_device_id  # the same deviceId: the same device
    devices: wire.DeviceList = await client.session.call(wire.GET_DEVICES)
    assert [d.id for d in devices.devices] == [first.node_device_id]
    await client.aclose()


async def test_an_expired_or_rejected_access_token_is_renewed_and_the_old_refresh_token_dies(
    make_config: Any, tmp_path: Path
) -> None:
    app = create_app(make_config(auth={"refresh_retry_grace": "0s"}), clock=TrioClock())
    async with app.test_app():
        await _renew_and_reuse(app, tmp_path)


async def _renew_and_reuse(app: VaultApp, tmp_path: Path) -> None:
    state = State(tmp_path / "s.sqlite3")
    client = Client(BASE, state=state, transport=in_process(app))
    await client.sign_in("alice@example.com", PASSWORD)
    before = stored_credentials(state)
    assert before is not None
    # The node refuses the token it holds (as after expiry): the client refreshes and retries once.
    state.put_struct("credentials", msgspec.structs.replace(before, access_token=before.access_token + "x"))
    await client.list_folder("/")
    after = stored_credentials(state)
    assert after is not None and after.refresh_token != before.refresh_token  # rotated
    # The rotated-away token no longer works: presenting it is TOKEN_REUSED.
    body = wire.RefreshBody(refresh_token=before.refresh_token, device_id=before.device_id)
    with pytest.raises(Exception) as refused:
        await client.session.call(wire.POST_AUTH_REFRESH, body)
    assert getattr(refused.value, "code", None) == "TOKEN_REUSED"
    await client.aclose()


async def test_a_refresh_whose_answer_was_lost_is_retried_within_the_grace_and_keeps_the_device_signed_in(
    app: VaultApp, tmp_path: Path
) -> None:
    lose = Rule(lambda r: r.url.path.endswith("/auth/refresh"), "lose")
    transport = Scripted(in_process(app), lose)
    state = State(tmp_path / "s.sqlite3")
    client = Client(BASE, state=state, transport=transport)
    await client.sign_in("alice@example.com", PASSWORD)
    token = client.auth.require().access_token
    renewed = await client.auth.renew(token)
    assert lose.times == 0 and transport.count("POST", "/auth/refresh") == 2  # rotated, lost, retried
    assert renewed != token
    await client.list_folder("/")  # the pair from the retry works
    await client.aclose()


async def test_a_device_signed_out_on_the_node_is_told_so(app: VaultApp, tmp_path: Path) -> None:
    client = await signed_in(BASE, tmp_path / "s.sqlite3", transport=in_process(app))
    await client.session.call(wire.POST_AUTH_LOGOUT)
    with pytest.raises(AuthError) as refused:
        await client.list_folder("/")
    assert refused.value.code == "DEVICE_REVOKED"  # the CLI answers exit code 3: log in again
    await client.sign_out()
    assert client.credentials is None
    with pytest.raises(NotLoggedIn):
        await client.list_folder("/")
    await client.aclose()


async def test_upload_sends_chunks_in_parallel_and_content_the_account_holds_is_not_sent_again(
    app: VaultApp, tmp_path: Path
) -> None:
    transport = Scripted(in_process(app))
    client = await signed_in(BASE, tmp_path / "s.sqlite3", transport=transport, chunk_size=CHUNK, parallel=4)
    data = _data(20 * CHUNK + 123)
    path = tmp_path / "photo.jpg"
    path.write_bytes(data)
    entry = await client.upload(path, folder="/photos")
    assert entry.checksum == checksum_of_bytes(data) and entry.size == len(data)
    assert transport.count("PUT", "/chunks") == 21 and client.uploader.bytes_sent == len(data)
    assert all(r.headers["x-chunk-checksum"].startswith("blake3:") for r in transport.log if is_chunk_put(r))
    again = await client.upload(path, folder="/elsewhere")
    assert again.id == entry.id and client.uploader.bytes_sent == len(data)  # deduplicated: nothing sent
    assert client.uploader.deduplicated == 1
    await client.aclose()


async def test_an_upload_killed_midway_resumes_from_the_nodes_view_and_sends_only_what_is_missing(
    app: VaultApp, tmp_path: Path
) -> None:
    data = _data(16 * CHUNK + 7, seed=2)
    path = tmp_path / "video.mp4"
    path.write_bytes(data)
    hang = Rule(is_chunk_put, "hang", times=10_000, skip=5)  # the 6th chunk PUT on never finishes
    first = Scripted(in_process(app), hang)
    client = await signed_in(BASE, tmp_path / "s.sqlite3", transport=first, chunk_size=CHUNK, parallel=2)
    with trio.CancelScope() as killed:

        async def kill_when_stuck() -> None:
            await hang.hung.wait()
            killed.cancel()  # as if the process died: nothing after this point runs

        async with trio.open_nursery() as nursery:
            nursery.start_soon(kill_when_stuck)
            await client.upload(path, folder="/v")
    assert killed.cancelled_caught
    await client.aclose()

    second = Scripted(in_process(app))
    state = State(tmp_path / "s.sqlite3")
    resumed = Client(BASE, state=state, transport=second, chunk_size=CHUNK)
    upload_id = state.open_upload(f"push:{path.resolve()}->/v/video.mp4", checksum_of_bytes(data), len(data))
    assert upload_id is not None
    held: wire.UploadState = await resumed.session.call(wire.GET_UPLOAD_UPLOAD_ID, path={"upload_id": upload_id})
    assert 0 < held.received_count < 17
    entry = await resumed.upload(path, folder="/v")
    assert entry.checksum == checksum_of_bytes(data)
    assert second.count("GET", "/upload/upload_") >= 1  # asked the node what it holds
    assert second.count("POST", "/upload/init") == 0  # no new upload
    assert second.count("PUT", "/chunks") == held.missing_count  # only the missing chunks
    target = tmp_path / "back.mp4"
    await resumed.download(entry, target)
    assert target.read_bytes() == data
    await resumed.aclose()


async def test_a_download_cut_midway_resumes_with_a_range_and_is_verified(app: VaultApp, tmp_path: Path) -> None:
    data = _data(3 * 1024 * 1024 + 5, seed=3)
    path = tmp_path / "raw.dng"
    path.write_bytes(data)
    uploader = await signed_in(BASE, tmp_path / "u.sqlite3", transport=in_process(app))
    entry = await uploader.upload(path)
    cut = Rule(is_content_get, ("cut", 1_000_000))
    transport = Scripted(in_process(app), cut)
    client = await signed_in(BASE, tmp_path / "d.sqlite3", transport=transport)
    target = tmp_path / "out" / "raw.dng"
    await client.download(entry, target)
    assert target.read_bytes() == data
    gets = [r for r in transport.log if is_content_get(r)]
    assert len(gets) == 2 and "range" not in gets[0].headers and gets[1].headers["range"] == "bytes=1000000-"
    assert client.downloader.bytes_received == len(data)  # nothing fetched twice
    assert not list(target.parent.glob("*.vault-partial"))
    await client.aclose()
    await uploader.aclose()


async def test_a_download_that_does_not_match_its_checksum_never_replaces_the_target(
    app: VaultApp, tmp_path: Path
) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes(b"the real content")
    client = await signed_in(BASE, tmp_path / "s.sqlite3", transport=in_process(app))
    entry = await client.upload(path)
    target = tmp_path / "target.txt"
    target.write_bytes(b"what was here before")
    wrong = msgspec.structs.replace(entry, checksum=checksum_of_bytes(b"something else"))
    with pytest.raises(VerificationFailed):
        await client.download(wrong, target)
    assert target.read_bytes() == b"what was here before"
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".vault-partial")]
    await client.aclose()


async def test_busy_answers_are_retried_after_their_retry_after(app: VaultApp, tmp_path: Path) -> None:
    busy = Rule(is_chunk_put, ("status", 503, {"Retry-After": "0"}), times=3)
    transport = Scripted(in_process(app), busy)
    client = await signed_in(BASE, tmp_path / "s.sqlite3", transport=transport, chunk_size=CHUNK)
    path = tmp_path / "f.bin"
    path.write_bytes(_data(2 * CHUNK))
    entry = await client.upload(path)
    assert busy.times == 0 and entry.size == 2 * CHUNK
    assert transport.count("PUT", "/chunks") == 2 + 3
    await client.aclose()


def test_backoff_is_exponential_with_full_jitter_capped_and_honours_retry_after() -> None:
    policy = RetryPolicy(attempts=10, base=0.5, cap=8.0, rng=random.Random(7))
    for attempt in range(10):
        wait = policy.delay(attempt)
        assert 0 <= wait <= min(8.0, 0.5 * 2**attempt)
    assert policy.delay(0, retry_after=3.0) == 3.0
    spread = {round(RetryPolicy(rng=random.Random(seed)).delay(3), 3) for seed in range(20)}
    assert len(spread) > 10  # clients that failed together do not retry together


async def test_retrying_waits_on_trios_clock(autojump_clock: trio.testing.MockClock) -> None:
    import httpx

    calls: list[float] = []

    async def flaky() -> str:
        calls.append(trio.current_time())
        if len(calls) < 4:
            raise httpx.ReadError("answer lost")
        return "up"

    start = trio.current_time()
    policy = RetryPolicy(attempts=5, base=1.0, cap=100.0, rng=random.Random(1))
    assert await retrying(flaky, policy) == "up"
    replay = RetryPolicy(rng=random.Random(1), base=1.0, cap=100.0)
    expected = sum(replay.delay(n) for n in range(3))
    assert abs((calls[-1] - start) - expected) < 1e-6

    refused: list[float] = []

    async def not_there() -> str:
        refused.append(trio.current_time())
        raise httpx.ConnectError("connection refused")

    with pytest.raises(NodeUnreachable):
        await retrying(not_there, RetryPolicy(attempts=8, base=1.0))
    assert len(refused) == 3  # a node that refuses connections is offline: said in a moment


async def test_the_rate_limit_spreads_bytes_over_time(autojump_clock: trio.testing.MockClock) -> None:
    limit = RateLimit(1024 * 1024, burst=64 * 1024)
    start = trio.current_time()
    for _ in range(64):  # 4 MiB in 64 KiB slices
        await limit.take(64 * 1024)
    elapsed = trio.current_time() - start
    assert 3.9 <= elapsed <= 4.0  # (4 MiB - the 64 KiB burst) / 1 MiB/s


def test_the_blocking_client_works_for_scripts(live_node_sync: Any, tmp_path: Path) -> None:
    base_url = live_node_sync
    with BlockingClient(base_url, state_path=tmp_path / "s.sqlite3") as vault:
        vault.sign_in("bob@example.com", PASSWORD)
        path = tmp_path / "note.txt"
        path.write_bytes(b"from a script")
        entry = vault.upload(path, folder="/notes")
        assert vault.file(entry.id).name == "note.txt"
        folder = tmp_path / "synced"
        report = vault.sync_once(folder, remote="/notes")
        assert report.downloaded == 1 and (folder / "note.txt").read_bytes() == b"from a script"
        vault.download(entry, tmp_path / "copy.txt")
    assert (tmp_path / "copy.txt").read_bytes() == b"from a script"


@pytest.fixture
def live_node_sync(tmp_path: Path) -> Any:
    """A node served over loopback from a thread of its own (the blocking client runs its loop in
    another thread, so this test is not itself async)."""
    import threading

    from hypercorn.trio import serve as hypercorn_serve

    from vault.app import create_app
    from vault.cli.serve import hypercorn_config
    from vault.config import config_from_mapping

    config = config_from_mapping({"storage": {"data_dir": str(tmp_path / "data")}})
    bound: list[str] = []
    ready = threading.Event()
    token: list[trio.lowlevel.TrioToken] = []
    stop_event: list[trio.Event] = []

    async def serve() -> None:
        stop = trio.Event()
        stop_event.append(stop)
        token.append(trio.lowlevel.current_trio_token())
        application = create_app(config)
        hc = hypercorn_config(config)
        hc.bind = ["127.0.0.1:0"]
        async with trio.open_nursery() as nursery:
            urls = await nursery.start(
                lambda task_status: hypercorn_serve(
                    application, hc, shutdown_trigger=stop.wait, task_status=task_status
                )  # type: ignore[arg-type]
            )
            bound.extend(urls)
            ready.set()

    thread = threading.Thread(target=trio.run, args=(serve,), daemon=True)
    thread.start()
    assert ready.wait(30)
    yield bound[0]
    trio.from_thread.run_sync(stop_event[0].set, trio_token=token[0])
    thread.join(30)


def test_state_survives_a_reopen(tmp_path: Path) -> None:
    state = State(tmp_path / "s.sqlite3")
    root = state.root(tmp_path / "folder", "/x")
    with state.transaction() as db:
        state.set_token(db, root.id, "st_abc")
    state.close()
    again = State(tmp_path / "s.sqlite3")
    found = again.find_root(tmp_path / "folder")
    assert found is not None and found.sync_token == "st_abc" and found.remote == "/x"
    assert os.path.exists(tmp_path / "s.sqlite3")
    again.close()


async def test_a_small_file_costs_its_batchs_init_and_one_put(app: VaultApp, tmp_path: Path) -> None:
    transport = Scripted(in_process(app))
    client = await signed_in(BASE, tmp_path / "s.sqlite3", transport=transport, chunk_size=CHUNK)
    paths = []
    for n in range(5):
        paths.append(tmp_path / f"thumb{n}.jpg")
        paths[-1].write_bytes(_data(CHUNK // 3 + n, seed=n))
    entries = await client.uploader.upload_many([UploadItem(p, "/thumbs", p.name) for p in paths])
    assert [e.checksum for e in entries] == [checksum_of_bytes(p.read_bytes()) for p in paths]
    assert transport.count("POST", "/upload/init") == 1 and transport.count("PUT", "/chunks") == 5
    assert transport.count("POST", "/upload/complete") == 0  # each PUT completed its file
    listing = await client.list_folder("/thumbs")
    assert sorted(f.name for f in listing.files) == sorted(p.name for p in paths)
    await client.aclose()


async def test_a_completing_put_whose_answer_was_lost_still_ends_with_the_one_file(
    app: VaultApp, tmp_path: Path
) -> None:
    # The node stored the chunk and made the file; the answer never came. The retry finds the
    # upload complete (409): the client asks the node instead of failing, and gets the file.
    lose = Rule(is_chunk_put, "lose")
    transport = Scripted(in_process(app), lose)
    client = await signed_in(BASE, tmp_path / "s.sqlite3", transport=transport, chunk_size=CHUNK)
    path = tmp_path / "note.txt"
    path.write_bytes(_data(1000))
    entry = await client.upload(path, folder="/")
    assert lose.times == 0 and transport.count("PUT", "/chunks") == 2
    assert entry.checksum == checksum_of_bytes(path.read_bytes()) and entry.version == 1
    assert [f.name for f in (await client.list_folder("/")).files] == ["note.txt"]
    await client.aclose()
