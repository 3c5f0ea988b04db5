"""Small helpers for API tests: registering a user and uploading through the real endpoints."""

from __future__ import annotations

from typing import Any

import blake3

from tests.auth_support import REGISTER, register_body


async def register(client: Any, email: str = "alice@example.com", device_id: str = "phone-1") -> dict[str, str]:
    """Register (creating the account if new) and return bearer headers for that device."""
    response = await client.post(REGISTER, json=register_body(email, name="Alice", device_id=device_id))
    body = await response.get_json()
    assert response.status_code == 200, body
    return {"Authorization": f"Bearer {body['tokens']['accessToken']}"}


def b3(data: bytes) -> str:
    return "blake3:" + blake3.blake3(data).hexdigest()


def local_path(url: str) -> str:
    """The path of an absolute ``uploadUrl`` (the in-process client takes paths)."""
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


async def init_upload(
    client: Any,
    headers: dict[str, str],
    data: bytes,
    *,
    name: str = "photo.jpg",
    folder: str = "/photos",
    chunk_size: int = 64 * 1024,
    checksum: str | None = None,
    mime_type: str = "image/jpeg",
) -> dict[str, Any]:
    response = await client.post(
        "/api/mobile/upload/init",
        headers=headers,
        json={
            "files": [
                {
                    "localId": "local_1",
                    "name": name,
                    "size": len(data),
                    "mimeType": mime_type,
                    "folder": folder,
                    "checksum": checksum or b3(data),
                    "priority": "high",
                }
            ],
            "uploadOptions": {"wifiOnly": True, "chunkSize": chunk_size, "maxRetries": 3},
        },
    )
    body = await response.get_json()
    assert response.status_code == 200, body
    planned: dict[str, Any] = body["data"]["files"][0]
    return planned


async def put_chunks(client: Any, headers: dict[str, str], planned: dict[str, Any], data: bytes) -> None:
    for chunk in planned["chunks"]:
        piece = data[chunk["start"] : chunk["end"] + 1]
        response = await client.put(local_path(chunk["uploadUrl"]), headers=headers, data=piece)
        assert response.status_code == 200, await response.get_json()


async def upload_file(client: Any, headers: dict[str, str], data: bytes, **kw: Any) -> dict[str, Any]:
    """The whole flow: init, every chunk, complete; returns the created file entry."""
    planned = await init_upload(client, headers, data, **kw)
    if planned["status"] == "exists":
        existing: dict[str, Any] = planned["file"]
        return existing
    await put_chunks(client, headers, planned, data)
    response = await client.post(
        "/api/mobile/upload/complete",
        headers=headers,
        json={"uploadId": planned["uploadId"], "checksum": b3(data), "metadata": {"location": "1,2"}},
    )
    body = await response.get_json()
    assert response.status_code == 200, body
    entry: dict[str, Any] = body["data"]["file"]
    return entry


class _Answer:
    """An httpx response with the Quart test-client methods the helpers use."""

    def __init__(self, response: Any) -> None:
        self._response = response
        self.status_code = response.status_code
        self.headers = response.headers

    async def get_json(self) -> Any:
        return self._response.json()

    async def get_data(self) -> bytes:
        return bytes(self._response.content)


class HttpClient:
    """Lets the helpers above drive a live node over real HTTP (absolute or relative URLs)."""

    def __init__(self, http: Any) -> None:
        self.http = http

    async def post(self, url: str, *, headers: dict[str, str] | None = None, json: Any = None) -> _Answer:
        return _Answer(await self.http.post(url, headers=headers, json=json))

    async def put(self, url: str, *, headers: dict[str, str] | None = None, data: bytes = b"") -> _Answer:
        return _Answer(await self.http.put(url, headers=headers, content=data))

    async def get(self, url: str, *, headers: dict[str, str] | None = None) -> _Answer:
        return _Answer(await self.http.get(url, headers=headers))
