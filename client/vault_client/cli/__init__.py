"""``vault-sync``: sync folders with a MegaVault node from a laptop, a homelab box or a script.

    vault-sync login http://pi.local:8080 --email me@example.com
    vault-sync sync ~/Photos --remote /Photos          # two-way, watching, until Ctrl-C
    vault-sync push report.pdf --to /docs
    vault-sync status

Exit codes are in ``vault_client.cli.exit_codes`` (and the README).
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import trio
from rich.console import Console

from vault_client import __version__
from vault_client.auth import stored_credentials
from vault_client.cli import exit_codes
from vault_client.cli.network import metered_reason
from vault_client.cli.progress_bars import Bars
from vault_client.client import Client
from vault_client.errors import (
    AuthError,
    NetworkNotAllowed,
    NodeError,
    NodeUnreachable,
    NotLoggedIn,
    QuotaExceeded,
    VerificationFailed,
)
from vault_client.progress import Progress
from vault_client.state import State
from vault_client.syncer import RESOLUTIONS, ConflictInfo, RoundReport, Syncer
from vault_client.tasks import open_nursery
from vault_client.uploads import upload_items

_RATE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([kmg]?)(i?b?)?\s*(/s)?\s*$", re.IGNORECASE)


def parse_rate(text: str) -> float:
    """``500K``, ``2M``, ``1.5MiB``, ``800000`` -> bytes per second (K/M/G are powers of 1024)."""
    match = _RATE.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"not a rate: {text!r} (try 500K, 2M, 1MiB)")
    value = float(match.group(1)) * float(1024 ** " kmg".index((match.group(2) or " ").lower()))
    if value <= 0:
        raise argparse.ArgumentTypeError("the rate must be positive")
    return value


def default_state() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "vault-sync" / "state.sqlite3"


class Output:
    """Messages on stderr; a summary line on stdout unless ``--quiet``; bars only on a terminal."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.console = Console(stderr=True)
        self.interactive = sys.stderr.isatty() and not quiet

    def say(self, text: str) -> None:
        if not self.quiet:
            print(text, flush=True)

    def warn(self, text: str) -> None:
        print(f"vault-sync: {text}", file=sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--state", type=Path, default=None, help="state file (default: $XDG_STATE_HOME/vault-sync/state.sqlite3)"
    )
    common.add_argument(
        "--quiet", "-q", action="store_true", help="no progress and no summary (errors still go to stderr)"
    )
    common.add_argument(
        "--limit-rate",
        type=parse_rate,
        default=None,
        metavar="RATE",
        help="at most RATE bytes/s for all transfers (500K, 2M)",
    )
    common.add_argument("--wifi-only", action="store_true", help="refuse to transfer over a metered or cellular link")
    common.add_argument(
        "--parallel",
        type=int,
        default=4,
        metavar="N",
        help="chunk uploads in flight at once, across all files (default 4)",
    )

    parser = argparse.ArgumentParser(prog="vault-sync", description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"vault-sync {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    login = sub.add_parser("login", parents=[common], help="sign this machine in to a node")
    login.add_argument("url", help="the node, e.g. http://pi.local:8080")
    login.add_argument("--email", required=True)
    login.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    login.add_argument("--name", default=None, help="your name (for a new account)")

    sub.add_parser("logout", parents=[common], help="sign this device out and forget its tokens")

    push = sub.add_parser("push", parents=[common], help="upload files or folders (content the node holds is skipped)")
    push.add_argument("paths", nargs="+", type=Path)
    push.add_argument("--to", default="/", help="the node's folder to put them in (default /)")

    pull = sub.add_parser("pull", parents=[common], help="bring a folder up to date with the node (one way)")
    pull.add_argument("dir", type=Path)
    pull.add_argument("--from", dest="remote", default=None, help="the node's folder (default: as bound, else /)")

    sync = sub.add_parser("sync", parents=[common], help="two-way sync of a folder, watching it and the node")
    sync.add_argument("dir", type=Path)
    sync.add_argument("--remote", default=None, help="the node's folder (default: as bound, else /)")
    sync.add_argument("--once", action="store_true", help="one round, then exit (for scripts and cron)")
    sync.add_argument(
        "--poll-wait", type=int, default=60, metavar="S", help="long-poll the node S seconds at a time (max 300)"
    )
    sync.add_argument("--no-watch", action="store_true", help="do not watch the folder (rounds on node changes only)")
    sync.add_argument(
        "--on-conflict",
        choices=["leave", *RESOLUTIONS],
        default="leave",
        help="resolve new conflicts at once this way (default: leave them for `vault-sync resolve`)",
    )

    status = sub.add_parser("status", parents=[common], help="sign-in, synced folders, pending work")
    status.add_argument("--json", action="store_true")

    conflicts = sub.add_parser("conflicts", parents=[common], help="list open conflicts")
    conflicts.add_argument("dir", type=Path, nargs="?")

    resolve = sub.add_parser(
        "resolve", parents=[common], help="resolve a conflict: keep_local, keep_remote or keep_both"
    )
    resolve.add_argument("conflict", help="a conflict id, or 'all'")
    resolve.add_argument("resolution", choices=RESOLUTIONS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) if exc.code in (0, None) else exit_codes.USAGE
    out = Output(args.quiet)
    state = State(args.state or default_state())
    try:
        return trio.run(_run, args, state, out)
    except KeyboardInterrupt:
        out.warn("interrupted")
        return exit_codes.INTERRUPTED
    finally:
        state.close()


class UsageProblem(Exception):
    """Arguments that parse but cannot be carried out as given (exit code ``USAGE``)."""


async def _run(args: argparse.Namespace, state: State, out: Output) -> int:
    command: Callable[[argparse.Namespace, State, Output], Awaitable[int]] = COMMANDS[args.command]
    try:
        if args.wifi_only and args.command in ("push", "pull", "sync"):
            _check_network(state)
        return await command(args, state, out)
    except UsageProblem as exc:
        out.warn(str(exc))
        return exit_codes.USAGE
    except NotLoggedIn as exc:
        out.warn(str(exc))
        return exit_codes.NOT_SIGNED_IN
    except AuthError as exc:
        out.warn(f"the node refused the sign-in: {exc.message}")
        return exit_codes.NOT_SIGNED_IN
    except NodeUnreachable as exc:
        out.warn(f"the node cannot be reached ({exc}); nothing is lost, run again later")
        return exit_codes.OFFLINE
    except NetworkNotAllowed as exc:
        out.warn(str(exc))
        return exit_codes.NETWORK_NOT_ALLOWED
    except QuotaExceeded as exc:
        out.warn(f"storage full: {exc.message}")
        return exit_codes.STORAGE_FULL
    except (NodeError, VerificationFailed) as exc:
        out.warn(str(exc))
        return exit_codes.ERROR


def _check_network(state: State) -> None:
    base = _base_url(state)
    reason = metered_reason(base)
    if reason is not None:
        raise NetworkNotAllowed(f"--wifi-only: not transferring, {reason}")


def _base_url(state: State) -> str:
    found = stored_credentials(state)
    if found is None:
        raise NotLoggedIn("not signed in: run `vault-sync login URL --email EMAIL` first")
    return found.base_url


def _client(
    args: argparse.Namespace, state: State, progress: Progress | None = None, base_url: str | None = None
) -> Client:
    return Client(
        base_url or _base_url(state),
        state=state,
        rate_limit=getattr(args, "limit_rate", None),
        parallel=getattr(args, "parallel", 4),
        progress=progress,
        wifi_only=getattr(args, "wifi_only", False),
    )


# -- commands ----------------------------------------------------------------------------------


async def cmd_login(args: argparse.Namespace, state: State, out: Output) -> int:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = os.environ.get("VAULT_SYNC_PASSWORD") or getpass.getpass(f"Password for {args.email}: ")
    known = stored_credentials(state)
    old = known.base_url if known is not None else None
    if old is not None and old.rstrip("/") != args.url.rstrip("/"):
        state.forget_roots()  # another node: the synced folders' indexes describe the old one
    async with _client(args, state, base_url=args.url) as client:
        credentials = await client.sign_in(args.email, password, name=args.name)
    out.say(f"Signed in to {credentials.base_url} as {credentials.email} (device {credentials.device_name!r}).")
    return exit_codes.OK


async def cmd_logout(args: argparse.Namespace, state: State, out: Output) -> int:
    async with _client(args, state) as client:
        try:
            await client.sign_out()
        except (NodeUnreachable, AuthError):
            client.auth.forget()  # signed out here all the same; the node forgets the device's tokens when removed
    state.forget_roots()
    out.say("Signed out.")
    return exit_codes.OK


async def cmd_push(args: argparse.Namespace, state: State, out: Output) -> int:
    missing = [str(p) for p in args.paths if not p.exists()]
    for path in missing:
        out.warn(f"{path}: no such file or folder")
    items = upload_items([p for p in args.paths if p.exists()], args.to)
    with ExitStack() as stack:
        bars = stack.enter_context(Bars(out.console)) if out.interactive else None
        async with _client(args, state, progress=bars) as client:
            await client.upload_many(items)
            skipped = client.uploader.deduplicated
    out.say(f"{len(items) - skipped} uploaded, {skipped} already on the node.")
    return exit_codes.PARTIAL if missing else exit_codes.OK


async def cmd_pull(args: argparse.Namespace, state: State, out: Output) -> int:
    return await _sync(args, state, out, pull_only=True)


async def cmd_sync(args: argparse.Namespace, state: State, out: Output) -> int:
    return await _sync(args, state, out, pull_only=False)


def _bound_remote(state: State, folder: Path, wanted: str | None) -> str:
    existing = state.find_root(folder)
    if existing is not None and wanted is not None and existing.remote != wanted:
        raise UsageProblem(f"{folder} is already synced with {existing.remote} on the node")
    return existing.remote if existing is not None else (wanted or "/")


async def _sync(args: argparse.Namespace, state: State, out: Output, *, pull_only: bool) -> int:
    remote = _bound_remote(state, args.dir, args.remote)
    once = pull_only or args.once
    resolution = None if pull_only or args.on_conflict == "leave" else args.on_conflict

    def on_conflict(info: ConflictInfo) -> str | None:
        out.warn(f"conflict on {info.path} ({info.reason or 'changed on the node'}): {info.conflict_id}")
        return resolution

    with ExitStack() as stack:
        bars = stack.enter_context(Bars(out.console)) if out.interactive else None
        async with _client(args, state, progress=bars) as client:
            syncer = Syncer(client, args.dir, remote, on_conflict=on_conflict, pull_only=pull_only)
            if once:
                report = await syncer.sync_once()
                _summary(out, report)
                return _round_code(report, syncer)
            stop = trio.Event()
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:

                async def until_signal() -> None:
                    async for _ in signals:
                        stop.set()
                        return

                async with open_nursery() as nursery:
                    nursery.start_soon(until_signal)
                    out.say(f"Syncing {syncer.local} with {remote} on {client.session.base_url} (Ctrl-C stops).")
                    await syncer.run(
                        stop,
                        poll_wait=max(1, min(300, args.poll_wait)),
                        watch=not args.no_watch,
                        on_round=lambda r: _summary(out, r, quiet_when_idle=True),
                        before_round=(lambda: _check_network(state)) if args.wifi_only else None,
                    )
                    nursery.cancel_scope.cancel()
            return exit_codes.CONFLICTS if syncer.conflicts() else exit_codes.OK


def _summary(out: Output, report: RoundReport, *, quiet_when_idle: bool = False) -> None:
    for line in report.rejected:
        out.warn(f"refused by the node: {line}")
    if report.offline:
        out.warn("the node cannot be reached; local changes are kept and sent when it is back")
    if quiet_when_idle and not report.changed_anything and not report.new_conflicts:
        return
    parts = [
        f"{report.uploaded} uploaded",
        f"{report.downloaded + report.copied_locally} downloaded",
        f"{report.deleted_here} deleted here",
        f"{report.moved_here} moved here",
    ]
    if report.new_conflicts:
        parts.append(f"{len(report.new_conflicts)} new conflicts")
    out.say(", ".join(parts) + ".")


def _round_code(report: RoundReport, syncer: Syncer) -> int:
    if report.offline:
        return exit_codes.OFFLINE
    if report.storage_full:
        return exit_codes.STORAGE_FULL
    if syncer.conflicts():
        return exit_codes.CONFLICTS
    if report.rejected:
        return exit_codes.PARTIAL
    return exit_codes.OK


async def cmd_status(args: argparse.Namespace, state: State, out: Output) -> int:
    credentials = stored_credentials(state)
    info: dict[str, Any] = {
        "signedIn": credentials is not None,
        "node": credentials.base_url if credentials else None,
        "email": credentials.email if credentials else None,
        "device": credentials.device_name if credentials else None,
        "reachable": None,
        "folders": [],
        "pendingChanges": state.pending_count(),
        "openUploads": state.upload_count(),
        "openConflicts": len(state.conflicts()),
    }
    for root in state.roots():
        info["folders"].append(
            {"local": root.local, "remote": root.remote, "lastSync": root.last_sync, "files": len(state.index(root.id))}
        )
    if credentials is not None:
        async with _client(args, state) as client:
            try:
                await client.health()
                info["reachable"] = True
            except (NodeUnreachable, NodeError):
                info["reachable"] = False
    if args.json:
        import json

        print(json.dumps(info, indent=2))
    else:
        if credentials is None:
            print("Not signed in (vault-sync login URL --email EMAIL).")
        else:
            reach = "reachable" if info["reachable"] else "NOT reachable"
            print(f"Signed in to {info['node']} ({reach}) as {info['email']}, device {info['device']!r}.")
        for folder in info["folders"]:
            print(f"  {folder['local']} <-> {folder['remote']}: {folder['files']} files")
        pending, uploads, conflicts = info["pendingChanges"], info["openUploads"], info["openConflicts"]
        print(f"Pending changes: {pending}, open uploads: {uploads}, open conflicts: {conflicts}.")
    if credentials is None:
        return exit_codes.NOT_SIGNED_IN
    if not info["reachable"]:
        return exit_codes.OFFLINE
    return exit_codes.CONFLICTS if info["openConflicts"] else exit_codes.OK


async def cmd_conflicts(args: argparse.Namespace, state: State, out: Output) -> int:
    roots = [r for r in state.roots() if args.dir is None or r.local == str(args.dir.resolve())]
    rows = [row for root in roots for row in state.conflicts(root.id)]
    for row in rows:
        local = next(r.local for r in roots if r.id == row.root)
        print(f"{row.conflict_id}\t{row.reason or '-'}\t{row.change.get('action')}\t{local}/{row.path}")
    if not rows:
        out.say("No open conflicts.")
    return exit_codes.CONFLICTS if rows else exit_codes.OK


async def cmd_resolve(args: argparse.Namespace, state: State, out: Output) -> int:
    rows = state.conflicts()
    chosen = rows if args.conflict == "all" else [r for r in rows if r.conflict_id == args.conflict]
    if not chosen:
        out.warn(f"no open conflict {args.conflict!r} (see `vault-sync conflicts`)")
        return exit_codes.USAGE
    roots = {r.id: r for r in state.roots()}
    async with _client(args, state) as client:
        for row in chosen:
            root = roots[row.root]
            syncer = Syncer(client, Path(root.local), root.remote)
            await syncer.resolve(row.conflict_id, args.resolution)
            report = await syncer.sync_once()
            out.say(f"{row.conflict_id}: {args.resolution} ({root.local}/{row.path}).")
            if report.offline:
                return exit_codes.OFFLINE
    return exit_codes.CONFLICTS if state.conflicts() else exit_codes.OK


COMMANDS: dict[str, Callable[[argparse.Namespace, State, Output], Awaitable[int]]] = {
    "login": cmd_login,
    "logout": cmd_logout,
    "push": cmd_push,
    "pull": cmd_pull,
    "sync": cmd_sync,
    "status": cmd_status,
    "conflicts": cmd_conflicts,
    "resolve": cmd_resolve,
}
