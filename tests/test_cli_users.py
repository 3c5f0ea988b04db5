"""``vault user …`` and ``vault keys rotate``, including against a running node.

While a node runs in this process, the commands run as separate processes, exactly as an
operator would run them (and because one process must not open an LMDB environment twice).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jwt
import pytest
import trio

from tests.auth_support import DEVICES, PASSWORD, REGISTER, bearer, error_code, register, register_body
from vault import plugins
from vault.app import VaultApp, create_app
from vault.cli import main
from vault.config import Config

CLI = [sys.executable, "-c", "import sys; from vault.cli import main; sys.exit(main())"]


async def vault(*args: str, stdin: bytes = b"", check: bool = True) -> subprocess.CompletedProcess[bytes]:
    """Run the ``vault`` command line in its own process."""
    done = await trio.run_process([*CLI, *args], stdin=stdin, capture_stdout=True, capture_stderr=True, check=False)
    if check:
        assert done.returncode == 0, done.stderr.decode()
    return done


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def _data_dir(config: Config) -> str:
    return str(config.storage.data_dir)


async def test_user_add_then_the_account_signs_in(config: Config) -> None:
    data = _data_dir(config)
    done = await vault(
        "user",
        "add",
        "Ann@Example.com",
        "--plan",
        "pro",
        "--password-stdin",
        "--data-dir",
        data,
        stdin=f"{PASSWORD}\n".encode(),
    )
    assert b"ann@example.com" in done.stdout and b"pro" in done.stdout
    app = create_app(config)
    async with app.test_app():
        client = app.test_client()
        body = await register(client, "ann@example.com")
        assert body["user"]["email"] == "ann@example.com"
        wrong = await client.post(REGISTER, json=register_body("ann@example.com", password="not it at all"))
        assert await error_code(wrong) == "INVALID_CREDENTIALS"
        # Ten devices on pro, not three.
        for i in range(4):
            await register(client, "ann@example.com", device_id=f"d{i}")


async def test_set_plan_takes_effect_on_the_running_nodes_next_registration(app: VaultApp) -> None:
    client = app.test_client()
    for i in range(3):
        await register(client, device_id=f"dev-{i}")
    refused = await client.post(REGISTER, json=register_body(device_id="dev-3"))
    assert await error_code(refused) == "DEVICE_LIMIT_REACHED"
    done = await vault("user", "set-plan", "john@example.com", "pro", "--data-dir", _data_dir(app.node.config))
    assert b"pro" in done.stdout
    await register(client, device_id="dev-3")


async def test_remove_device_locks_it_out_of_the_running_node(app: VaultApp) -> None:
    client = app.test_client()
    phone = await register(client)
    tablet = await register(client, device_id="tablet-1")
    data = _data_dir(app.node.config)
    listed = await vault("user", "devices", "john@example.com", "--data-dir", data)
    assert tablet["device"]["id"].encode() in listed.stdout and b"John's Pixel 7" in listed.stdout
    await vault("user", "remove-device", "john@example.com", tablet["device"]["id"], "--data-dir", data)
    locked = await client.get(DEVICES, headers=bearer(tablet))
    assert await error_code(locked) == "DEVICE_REVOKED"
    remaining = (await (await client.get(DEVICES, headers=bearer(phone))).get_json())["data"]["devices"]
    assert [d["id"] for d in remaining] == [phone["device"]["id"]]


async def test_devices_shows_the_apps_device_id_and_remove_device_accepts_it(app: VaultApp) -> None:
    client = app.test_client()
    phone = await register(client)
    tablet = await register(client, device_id="tablet-1")
    data = _data_dir(app.node.config)
    listed = (await vault("user", "devices", "john@example.com", "--data-dir", data)).stdout.decode().splitlines()
    assert listed[0].split()[:4] == ["ID", "APP", "DEVICE", "ID"]
    rows = {line.split()[0]: line.split()[1] for line in listed[1:]}
    assert rows == {phone["device"]["id"]: "phone-1", tablet["device"]["id"]: "tablet-1"}
    done = await vault("user", "remove-device", "john@example.com", "tablet-1", "--data-dir", data)
    assert tablet["device"]["id"].encode() in done.stdout
    locked = await client.get(DEVICES, headers=bearer(tablet))
    assert await error_code(locked) == "DEVICE_REVOKED"
    remaining = (await (await client.get(DEVICES, headers=bearer(phone))).get_json())["data"]["devices"]
    assert [d["id"] for d in remaining] == [phone["device"]["id"]]
    again = await vault("user", "remove-device", "john@example.com", "tablet-1", "--data-dir", data, check=False)
    assert again.returncode == 2 and b"has no device tablet-1" in again.stderr


async def test_keys_rotate_on_a_running_node(app: VaultApp) -> None:
    client = app.test_client()
    before = (await register(client))["tokens"]["accessToken"]
    done = await vault("keys", "rotate", "--data-dir", _data_dir(app.node.config))
    new_kid = done.stdout.decode().split()[3].rstrip(";")
    after = (await register(client, device_id="tablet-1"))["tokens"]["accessToken"]
    assert jwt.get_unverified_header(after)["kid"] == new_kid != jwt.get_unverified_header(before)["kid"]
    assert (await client.get(DEVICES, headers=bearer(before))).status_code == 200
    assert _mode(Path(_data_dir(app.node.config)) / "keys.json") == 0o600


async def test_commands_read_the_config_file_placed_after_the_subcommand(app: VaultApp, tmp_path: Path) -> None:
    await register(app.test_client())
    toml = tmp_path / "vault.toml"
    toml.write_text(f'[storage]\ndata_dir = "{_data_dir(app.node.config)}"\n[plans.team]\ndevices = 5\n')
    await vault("user", "set-plan", "john@example.com", "team", "--config", str(toml))
    listed = await vault("user", "list", "--config", str(toml))
    assert b"john@example.com" in listed.stdout and b"team" in listed.stdout


def test_list_and_devices_print_tables(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    data = _data_dir(config)
    assert main(["user", "list", "--data-dir", data]) == 0
    assert capsys.readouterr().out.split() == ["ID", "EMAIL", "NAME", "PLAN", "DEVICES", "CREATED"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["user", "set-plan", "nobody@example.com", "pro"], "no account"),
        (["user", "set-plan", "nobody@example.com", "platinum"], "no plan named 'platinum'"),
        (["user", "devices", "nobody@example.com"], "no account"),
        (["user", "remove-device", "nobody@example.com", "device_x"], "no account"),
        (["user", "devices", "not-an-email"], "not a valid email"),
    ],
)
def test_mistakes_are_reported_without_a_traceback(
    config: Config, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main([*argv, "--data-dir", _data_dir(config)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


async def test_adding_an_existing_or_weak_account_is_refused(config: Config) -> None:
    data = _data_dir(config)
    await vault("user", "add", "a@b.c", "--password-stdin", "--data-dir", data, stdin=f"{PASSWORD}\n".encode())
    again = await vault(
        "user",
        "add",
        "a@b.c",
        "--password-stdin",
        "--data-dir",
        data,
        stdin=f"{PASSWORD}\n".encode(),
        check=False,
    )
    assert again.returncode == 2 and b"already exists" in again.stderr
    weak = await vault("user", "add", "b@b.c", "--password-stdin", "--data-dir", data, stdin=b"short\n", check=False)
    assert weak.returncode == 2 and b"at least 8" in weak.stderr


@pytest.mark.parametrize(
    ("toml", "key", "group", "name"),
    [
        ('[plans]\npolicy = "ldap"\n', "plans.policy", plugins.POLICIES, "ldap"),
        ('[push]\nproviders = ["pigeon"]\n', "push.providers", plugins.PUSH, "pigeon"),
    ],
)
@pytest.mark.parametrize(
    "command",
    [
        ["user", "add", "ann@example.com", "--password-stdin"],
        ["user", "set-plan", "ann@example.com", "pro"],
        ["user", "list"],
        ["user", "devices", "ann@example.com"],
        ["user", "remove-device", "ann@example.com", "phone-1"],
    ],
)
def test_an_unknown_plugin_name_stops_user_commands_with_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
    toml: str,
    key: str,
    group: str,
    name: str,
) -> None:
    path = tmp_path / "vault.toml"
    path.write_text(toml)
    data = tmp_path / "data"
    assert main([*command, "--config", str(path), "--data-dir", str(data)]) == 2
    out, err = capsys.readouterr()
    installed = ", ".join(plugins.available(group))
    assert err.splitlines() == [f"vault: config key {key}: no {group} plugin named {name!r} (available: {installed})"]
    assert out == ""
    assert not data.exists()  # refused before it opened anything
