"""Storage errors as a user meets them, without a gateway: ``[storage.s3]`` tables, S3 answers
mapped to transient or permanent errors, retried commits, and the 503 a client gets while the
chunk store is unreachable (injected with ``FaultyBackend``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
import trio
import trio.testing
from botocore.exceptions import ClientError, EndpointConnectionError, IncompleteReadError
from vault_backends.s3_backend import S3Backend, S3Options
from vault_backends.s3_errors import Where, translate

from tests.api_helpers import init_upload, local_path, register
from vault.app import create_app
from vault.chunks import ChunkBackend, ChunkId, ChunkStore, ChunkWriter, StorageRefused, StorageUnavailable
from vault.chunks.conformance import content, digest
from vault.chunks.loading import backend_options
from vault.chunks.memory import MemoryBackend
from vault.chunks.wrappers import BackendWrapper, FaultyBackend, RetryingBackend
from vault.clock import TrioClock
from vault.config import Config, ConfigError, config_from_mapping

WHERE = Where("http://127.0.0.1:7480", "photos", "node1/")


def client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")


# -- [storage.s3] ------------------------------------------------------------------------------


def test_the_s3_table_is_the_backends_options_and_a_typo_is_named_there() -> None:
    config = config_from_mapping({"storage": {"backend": "s3", "s3": {"bucket": "photos", "prefix": "node1"}}})
    assert config.storage.options == {"bucket": "photos", "prefix": "node1"}
    opts = backend_options(config, S3Backend)
    assert isinstance(opts, S3Options) and opts.bucket == "photos"
    typo = config_from_mapping({"storage": {"backend": "s3", "s3": {"bucket": "photos", "bukcet": "x"}}})
    with pytest.raises(ConfigError, match=r"^config key storage\.s3\.bukcet: "):
        backend_options(typo, S3Backend)
    missing = config_from_mapping({"storage": {"backend": "s3", "s3": {"prefix": "x"}}})
    with pytest.raises(ConfigError, match=r"^config key storage\.s3\.bucket: "):
        backend_options(missing, S3Backend)


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        ({"backend": "fs", "s3": {"bucket": "b"}}, r"a \[storage\.s3\] table, but storage\.backend is 'fs'"),
        ({"backend": "s3", "s3": {"bucket": "b"}, "options": {"bucket": "c"}}, "not both"),
    ],
)
def test_a_table_for_another_backend_or_two_tables_are_refused(storage: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_mapping({"storage": storage})


# -- what an S3 answer means ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "kind", "text"),
    [
        (client_error("SlowDown", 503), StorageUnavailable, "SlowDown (HTTP 503); retrying"),
        (client_error("InternalError", 500), StorageUnavailable, "HTTP 500"),
        (client_error("TooManyRequests", 429), StorageUnavailable, "HTTP 429"),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:7480/photos"), StorageUnavailable, "cannot reach S3"),
        # A body that ended before its Content-Length: the connection, not the configuration.
        (IncompleteReadError(actual_bytes=10, expected_bytes=20), StorageUnavailable, "cannot reach S3"),
        (client_error("SignatureDoesNotMatch", 403), StorageRefused, "refused the credentials"),
        (client_error("InvalidAccessKeyId", 403), StorageRefused, "AWS_SECRET_ACCESS_KEY"),
        (client_error("AccessDenied", 403), StorageRefused, "no permission to upload a chunk in s3://photos/node1/"),
        (client_error("NoSuchBucket", 404), StorageRefused, "bucket 'photos' does not exist"),
        (client_error("NoSuchKey", 404), KeyError, ""),
    ],
    ids=lambda value: getattr(value, "__name__", None) or str(value)[:24],
)
def test_s3_answers_become_transient_permanent_or_absent(error: Exception, kind: type[Exception], text: str) -> None:
    mapped = translate(error, "upload a chunk", WHERE)
    assert isinstance(mapped, kind)
    assert text in str(mapped) and "\n" not in str(mapped)


def test_no_credentials_is_refused_before_any_request(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    backend = S3Backend(tmp_path, {"bucket": "photos", "endpoint": "http://127.0.0.1:9", "attempts": 1})
    with pytest.raises(StorageRefused, match=r"no S3 credentials: set storage\.s3\.access_key and secret_key"):
        trio.run(backend.open)


# -- retries and the client's answer ----------------------------------------------------------------


class _FlakyWriter(ChunkWriter):
    """Fails its first commits as a throttled object store does, keeping the staged bytes."""

    def __init__(self, inner: ChunkWriter, failures: list[str]) -> None:
        self.inner = inner
        self.failures = failures

    async def write(self, data: bytes) -> None:
        await self.inner.write(data)

    async def commit(self, chunk_id: ChunkId) -> None:
        if self.failures:
            raise StorageUnavailable(self.failures.pop())
        await self.inner.commit(chunk_id)

    async def abort(self) -> None:
        await self.inner.abort()


class _FlakyCommits(BackendWrapper):
    def __init__(self, inner: ChunkBackend, failures: list[str]) -> None:
        super().__init__(inner)
        self.failures = failures

    async def begin_put(self) -> ChunkWriter:
        return _FlakyWriter(await self.inner.begin_put(), self.failures)


def test_a_commit_failing_transiently_is_retried_when_the_backend_says_it_can_be() -> None:
    async def scenario() -> int:
        flaky = _FlakyCommits(MemoryBackend(), ["SlowDown", "SlowDown"])
        retrying = RetryingBackend(flaky, also_retry=("commit",), transient=(StorageUnavailable,))
        store = ChunkStore(retrying)
        await store.open()
        data = content(100_000, 1)
        await store.put_bytes(data)
        assert await store.read_all(digest(data)) == data
        await store.close()
        return retrying.retries["commit"]

    assert trio.run(scenario, clock=trio.testing.MockClock(autojump_threshold=0)) == 2


def test_also_retry_names_only_backend_methods() -> None:
    with pytest.raises(ValueError, match="no backend method named comit"):
        RetryingBackend(MemoryBackend(), also_retry=("comit",))


async def test_an_unreachable_chunk_store_answers_503_with_retry_after_and_the_retry_succeeds(
    make_config: Callable[..., Config],
) -> None:
    faulty = FaultyBackend(MemoryBackend())
    app = create_app(make_config(), clock=TrioClock(), periodic=False, backend=faulty)
    data = os.urandom(100_000)
    async with app.test_app():
        client = app.test_client()
        headers = await register(client)
        planned = await init_upload(client, headers, data, chunk_size=64 * 1024)
        first = planned["chunks"][0]
        piece = data[first["start"] : first["end"] + 1]
        faulty.fail_call("commit", faulty.calls["commit"] + 1, lambda: StorageUnavailable("S3 at x could not upload"))
        down = await client.put(local_path(first["uploadUrl"]), headers=headers, data=piece)
        body = await down.get_json()
        assert down.status_code == 503 and body["error"]["code"] == "SERVICE_UNAVAILABLE"
        assert down.headers["Retry-After"] == "5" and "S3 at x" not in body["error"]["message"]
        again = await client.put(local_path(first["uploadUrl"]), headers=headers, data=piece)
        assert again.status_code == 200
