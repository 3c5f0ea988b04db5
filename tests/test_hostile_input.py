"""Hostile input on the notification and share endpoints: always a 4xx with the error envelope,
nothing stored, no 500, and the node stays healthy."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api_helpers import register

pytestmark = pytest.mark.reliability

NOTIFY = "/api/mobile/notifications/register"
SHARES = "/api/mobile/shares"
DEEP = b"[" * 10_000 + b"]" * 10_000

BODIES: list[tuple[str, bytes]] = [
    ("not UTF-8", b"\xff\xfe{}"),
    ("nested 10,000 deep", DEEP),
    ("null", b"null"),
    ("an array", b"[]"),
    ("a string", b'"text"'),
    ("truncated", b'{"deviceId": "p'),
    ("huge float for a string", b'{"deviceId": 1e400, "pushToken": "t", "platform": "android"}'),
    ("huge integer", b'{"fileId": ' + b"9" * 5000 + b', "email": "a@b.cc"}'),
    (
        "NUL in the zone",
        b'{"deviceId": "phone-1", "pushToken": "t", "platform": "android", '
        b'"preferences": {"quietHours": {"timezone": "\\u0000"}}}',
    ),
    (
        "path in the zone",
        b'{"deviceId": "phone-1", "pushToken": "t", "platform": "android", '
        b'"preferences": {"quietHours": {"timezone": "../../../etc/localtime"}}}',
    ),
    ("token too long", b'{"deviceId": "phone-1", "pushToken": "' + b"x" * 9000 + b'", "platform": "android"}'),
    (
        "wrong type of preference",
        b'{"deviceId": "phone-1", "pushToken": "t", "platform": "android", "preferences": {"uploads": 1}}',
    ),
    ("unknown field", b'{"fileId": "f", "email": "bob@example.com", "admin": true}'),
    ("email with a bidi override", b'{"fileId": "f", "email": "bob@exa\\u202emple.com"}'),
]


@pytest.mark.parametrize("path", [NOTIFY, SHARES])
@pytest.mark.parametrize(("what", "body"), BODIES, ids=[what for what, _ in BODIES])
async def test_hostile_bodies_get_a_4xx_envelope_and_change_nothing(
    app: Any, client: Any, path: str, what: str, body: bytes
) -> None:
    headers = await register(client)
    response = await client.post(path, headers={**headers, "Content-Type": "application/json"}, data=body)
    assert 400 <= response.status_code < 500, (what, response.status_code)
    answer = await response.get_json()
    assert answer["success"] is False and answer["error"]["code"] and answer["error"]["requestId"]
    async with app.node.meta.snapshot() as txn:
        from vault.devices.push_registrations import REGISTRATIONS
        from vault.files.shares import SHARES as SHARE_TABLE

        assert list(txn.scan(REGISTRATIONS)) == [] and list(txn.scan(SHARE_TABLE)) == []
    assert (await client.get("/api/health")).status_code == 200


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=99999999999999999999",
        "limit=%C2%B2",
        "limit=1.5",
        "limit=-1",
        "cursor=%00%00",
        "cursor=" + "A" * 500,
        "cursor=////",
        "cursor=dXNlcg",
    ],
)
async def test_hostile_inbox_queries_are_validation_errors(client: Any, query: str) -> None:
    headers = await register(client)
    response = await client.get(f"/api/mobile/notifications?{query}", headers=headers)
    assert response.status_code == 400
    assert (await response.get_json())["error"]["code"] == "VALIDATION_ERROR"


@pytest.mark.parametrize("share_id", ["x", "..%2F..%2Fx", "%00", "a" * 5000, "share_" + "0" * 32])
async def test_revoking_an_unknown_or_odd_share_id_is_not_found(client: Any, share_id: str) -> None:
    headers = await register(client)
    response = await client.delete(f"{SHARES}/{share_id}", headers=headers)
    assert response.status_code == 404
