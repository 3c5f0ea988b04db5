"""``vault user …`` and ``vault keys rotate``: accounts, devices and signing keys from the shell.

The commands open the metadata store directly. LMDB lets a second process read and write while
the node runs, and the node reads accounts, devices and the key file per request, so every change
takes effect without a restart.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from vault.auth import accounts
from vault.auth.passwords import MIN_PASSWORD_LENGTH, hash_password_sync
from vault.auth.tokens import KeyRing
from vault.cli.common import CommandError, check_plugins, config_from_args
from vault.clock import rfc3339
from vault.config import Config
from vault.devices import registry as devices
from vault.devices.records import Device
from vault.errors import ValidationError
from vault.meta import MetaStore, Txn
from vault.meta_upgrades import metadata_store
from vault.policies import load_policy


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser
) -> None:
    user = commands.add_parser("user", help="manage accounts and their devices")
    sub = user.add_subparsers(dest="user_command", required=True, metavar="COMMAND")

    add = sub.add_parser("add", parents=[parent], help="create an account")
    add.add_argument("email")
    add.add_argument("--plan", help="plan name (default: [plans] default)")
    add.add_argument("--name", default="", help="display name (default: the email's local part)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.set_defaults(run=run_add)

    set_plan = sub.add_parser("set-plan", parents=[parent], help="move an account to another plan")
    set_plan.add_argument("email")
    set_plan.add_argument("plan")
    set_plan.set_defaults(run=run_set_plan)

    listing = sub.add_parser("list", parents=[parent], help="list accounts")
    listing.set_defaults(run=run_list)

    devs = sub.add_parser("devices", parents=[parent], help="list an account's devices")
    devs.add_argument("email")
    devs.set_defaults(run=run_devices)

    remove = sub.add_parser("remove-device", parents=[parent], help="remove a device and revoke its tokens")
    remove.add_argument("email")
    remove.add_argument(
        "device_id", metavar="DEVICE_ID", help="the node's id (device_…) or the app's deviceId, as `devices` lists them"
    )
    remove.set_defaults(run=run_remove_device)

    keys = commands.add_parser("keys", help="manage the access-token signing keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")
    rotate = keys_sub.add_parser("rotate", parents=[parent], help="start signing with a new key")
    rotate.set_defaults(run=run_rotate)


def _config(args: argparse.Namespace) -> Config:
    """The command's config, refused up front if it names a plugin that is not installed."""
    config = config_from_args(args)
    check_plugins(config)
    return config


@contextmanager
def open_meta(config: Config) -> Iterator[MetaStore]:
    meta = metadata_store(config.data_path)
    meta.open_sync()
    try:
        yield meta
    finally:
        meta.close_sync()


def _email(raw: str) -> str:
    try:
        return accounts.normalise_email(raw)
    except ValidationError as exc:
        raise CommandError(f"{raw!r}: {exc.message}") from None


def _check_plan(config: Config, plan: str) -> str:
    names = load_policy(config).plan_names()
    if plan not in names:
        raise CommandError(f"no plan named {plan!r} (plans: {', '.join(names)})")
    return plan


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat password: ") != password:
            raise CommandError("passwords do not match")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise CommandError(f"the password must be at least {MIN_PASSWORD_LENGTH} characters")
    return password


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def run_add(args: argparse.Namespace) -> int:
    config = _config(args)
    email = _email(args.email)
    plan = _check_plan(config, args.plan or config.plans.default)
    password = _read_password(args.password_stdin)
    password_hash = hash_password_sync(password)
    with open_meta(config) as meta:
        user = meta.write_sync(
            lambda txn: accounts.create_user(
                txn,
                email=email,
                name=args.name.strip(),
                password_hash=password_hash,
                plan=plan,
                now=time.time(),
            )
        )
    if user.password_hash != password_hash:
        raise CommandError(f"an account for {email} already exists ({user.id})")
    print(f"created {user.id} {user.email} on plan {user.plan}")
    return 0


def run_set_plan(args: argparse.Namespace) -> int:
    config = _config(args)
    email = _email(args.email)
    plan = _check_plan(config, args.plan)
    with open_meta(config) as meta:
        user = meta.write_sync(lambda txn: accounts.set_plan(txn, email, plan))
    if user is None:
        raise CommandError(f"no account for {email}")
    print(f"{user.email} is now on plan {plan}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    config = _config(args)
    with open_meta(config) as meta, meta.read() as txn:
        users = accounts.all_users(txn)
        counts = {u.id: len(devices.list_devices(txn, u.id)) for u in users}
    rows = [(u.id, u.email, u.name, u.plan, str(counts[u.id]), rfc3339(u.created_at)) for u in users]
    _table(("ID", "EMAIL", "NAME", "PLAN", "DEVICES", "CREATED"), rows)
    return 0


def run_devices(args: argparse.Namespace) -> int:
    config = _config(args)
    email = _email(args.email)
    with open_meta(config) as meta, meta.read() as txn:
        user = accounts.find_by_email(txn, email)
        if user is None:
            raise CommandError(f"no account for {email}")
        found = devices.list_devices(txn, user.id)
    rows = [
        (
            d.id,
            d.client_id,
            d.name,
            d.platform,
            d.model,
            rfc3339(d.registered_at),
            rfc3339(d.last_active_at),
            "yes" if d.session_id else "no",
        )
        for d in found
    ]
    _table(("ID", "APP DEVICE ID", "NAME", "PLATFORM", "MODEL", "REGISTERED", "LAST ACTIVE", "SIGNED IN"), rows)
    return 0


def run_remove_device(args: argparse.Namespace) -> int:
    config = _config(args)
    email = _email(args.email)
    with open_meta(config) as meta:
        with meta.read() as txn:
            user = accounts.find_by_email(txn, email)
        if user is None:
            raise CommandError(f"no account for {email}")
        removed = meta.write_sync(lambda txn: _remove_device(txn, user.id, args.device_id))
    if removed is None:
        raise CommandError(f"{email} has no device {args.device_id}")
    print(f"removed {removed.id} ({removed.name}); its tokens no longer work")
    return 0


def _remove_device(txn: Txn, user_id: str, device_or_app_id: str) -> Device | None:
    device = devices.find_device(txn, user_id, device_or_app_id)
    return None if device is None else devices.remove_device(txn, user_id, device.id)


def run_rotate(args: argparse.Namespace) -> int:
    config = _config(args)
    ring = KeyRing(config.data_path / "keys.json")
    kid = ring.rotate(time.time(), keep_retired_for=float(config.auth.access_token_ttl))
    print(f"new signing key {kid}; tokens signed with older keys stay valid until they expire")
    return 0
