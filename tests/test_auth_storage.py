"""No password or token is stored in plain form anywhere in the data directory."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from tests.auth_support import LOGOUT, REFRESH, bearer, data_files, register
from vault.app import create_app
from vault.auth.refresh import decode_token
from vault.config import Config

PASSWORDS = ["first-Secret-passphrase-1", "second-Secret-passphrase-2"]


def _forms(token: str) -> list[bytes]:
    """Every way a token could plausibly be written down: as sent, and its secret in raw/base64/hex."""
    forms = [token.encode()]
    secret = decode_token(token)
    if secret is not None:
        forms += [secret, secret.hex().encode(), base64.b64encode(secret), token[3:].encode()]
    else:  # an access token: its signature is the secret part
        forms.append(token.rsplit(".", 1)[1].encode())
    return forms


def _read_all(root: Path) -> list[tuple[Path, bytes]]:
    return [(path, path.read_bytes()) for path in data_files(root)]


async def test_no_password_or_token_is_stored_in_plain_form(config: Config) -> None:
    issued: list[str] = []
    app = create_app(config)
    async with app.test_app():
        client = app.test_client()
        for i, password in enumerate(PASSWORDS):
            body = await register(client, f"user{i}@example.com", password=password, device_id=f"phone-{i}")
            issued += [body["tokens"]["refreshToken"], body["tokens"]["accessToken"]]
        again = await register(client, "user0@example.com", password=PASSWORDS[0], device_id="tablet")
        issued += [again["tokens"]["refreshToken"], again["tokens"]["accessToken"]]
        token = again["tokens"]["refreshToken"]
        for _ in range(3):
            response = await client.post(REFRESH, json={"refreshToken": token, "deviceId": "tablet"})
            tokens: dict[str, Any] = (await response.get_json())["tokens"]
            issued += [tokens["refreshToken"], tokens["accessToken"]]
            token = tokens["refreshToken"]
        await client.post(LOGOUT, headers=bearer(tokens["accessToken"]))
    files = _read_all(Path(config.storage.data_dir))
    assert any(path.name == "keys.json" for path, _ in files)
    # The scan does see what is stored in plain form (so it would see a leaked secret too).
    assert any(b"user0@example.com" in content for _, content in files)
    for path, content in files:
        for password in PASSWORDS:
            assert password.encode() not in content, f"password in {path}"
            assert password.encode("utf-16-le") not in content, f"password in {path}"
        for token in issued:
            for form in _forms(token):
                assert form not in content, f"token material in {path}"
