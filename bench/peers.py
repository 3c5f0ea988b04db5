"""Servers the benchmarks start, watch and stop: nginx, ``@tus/server``, the stack's ceiling and the node.

Every server is a child process bound to 127.0.0.1 on a free port, started in its own session (a
Ctrl-C in the terminal reaches only the benchmark, which then stops the servers itself, by PID).
:class:`Sampler` reads each server's process tree from ``/proc`` every ~100 ms: resident memory
(``VmRSS``, split into ``RssAnon`` and ``RssFile``: a server that maps its database file, as LMDB
does, counts the mapped pages it touched in ``VmRSS``) and CPU time (``utime + stime``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Protocol

import httpx

from bench.common import REPO

CLK_TCK = os.sysconf("SC_CLK_TCK")
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
NPM_TIMEOUT = 300.0
TUS_MIN_NODE = (20, 19)  # @tus/server 2.x declares engines.node >= 20.19.0


class BenchError(Exception):
    """A target cannot be measured; the message says why, for the report."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log file, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


# --- /proc readings ---------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may contain spaces: split after it.
    return raw[raw.rindex(")") + 2 :].split()


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of one live process, in seconds (0 when it is gone)."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    # After the name: state(3) ppid(4) ... utime(14) stime(15); index = field number - 3.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


MEMORY_FIELDS = ("VmRSS", "RssAnon", "RssFile")


def proc_memory(pid: int) -> dict[str, int]:
    """VmRSS, RssAnon and RssFile of one live process, in bytes (zeros when it is gone)."""
    out = dict.fromkeys(MEMORY_FIELDS, 0)
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key in out:
                    out[key] = int(value.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return out


def process_tree(root: int) -> list[int]:
    """``root`` and all its live descendants (nginx: master and workers)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))
    tree: list[int] = []
    todo = [root]
    while todo and len(tree) < 10_000:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


# --- processes --------------------------------------------------------------------------------


class ServerProcess:
    """One server started by the benchmark; stopped by PID (SIGTERM, then SIGKILL)."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        *,
        log_path: Path,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.cwd = cwd
        self.env = env
        self.popen: subprocess.Popen[bytes] | None = None
        self._tree: list[int] = []
        self._tree_at = 0.0
        self._lock = threading.Lock()

    @property
    def pid(self) -> int:
        if self.popen is None:
            raise BenchError(f"{self.name} is not running")
        return self.popen.pid

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def wait_ready(self, url: str, *, ok: Callable[[httpx.Response], bool] | None = None) -> None:
        """Poll ``url`` until it answers (any status, unless ``ok`` says otherwise), bounded in time."""
        deadline = time.monotonic() + READY_TIMEOUT
        last = "no answer"
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if not self.alive():
                    raise BenchError(f"{self.name} exited during start-up; log:\n{tail(self.log_path)}")
                try:
                    response = client.get(url)
                except httpx.TransportError as exc:
                    last = repr(exc)
                else:
                    if ok is None or ok(response):
                        return
                    last = f"HTTP {response.status_code}"
                time.sleep(0.1)
        raise BenchError(f"{self.name} not ready after {READY_TIMEOUT:.0f}s ({last}); log:\n{tail(self.log_path)}")

    def tree(self) -> list[int]:
        """The process tree, refreshed at most every 2 s (scanning /proc is not free)."""
        with self._lock:
            now = time.monotonic()
            if not self._tree or now - self._tree_at > 2.0:
                self._tree = process_tree(self.pid) if self.alive() else []
                self._tree_at = now
            return list(self._tree)

    def memory(self) -> dict[str, int]:
        """VmRSS, RssAnon, RssFile summed over the process tree, in bytes."""
        total = dict.fromkeys(MEMORY_FIELDS, 0)
        for pid in self.tree():
            for key, value in proc_memory(pid).items():
                total[key] += value
        return total

    def cpu_seconds(self) -> float:
        return sum(proc_cpu_seconds(pid) for pid in self.tree())

    def stop(self) -> None:
        """SIGTERM the server (nginx's master stops its workers), SIGKILL what is left, by PID."""
        if self.popen is None:
            return
        leftovers = [pid for pid in process_tree(self.popen.pid) if pid != self.popen.pid]
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=STOP_TIMEOUT)
        # Children of ours that outlived their parent (they would be reparented to init).
        for pid in leftovers:
            fields = _stat_fields(pid)
            if fields is not None and fields[0] != "Z":
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self.popen = None


def _max(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {k: max(a.get(k, 0), b.get(k, 0)) for k in MEMORY_FIELDS}


class HasMemory(Protocol):
    """What ``Sampler`` watches: a benchmark server or a node (``memory()``: VmRSS, RssAnon and
    RssFile in bytes, zeros once it is gone)."""

    def memory(self) -> dict[str, int]: ...


@dataclass
class _Watch:
    server: HasMemory
    start: dict[str, int]
    peak: dict[str, int]
    window: dict[str, int]


@dataclass
class Sampler:
    """Samples the memory of every watched server every ``interval`` seconds in a daemon thread.

    Each field's peak is tracked on its own (the VmRSS peak and the RssAnon peak may be at
    different moments).
    """

    interval: float = 0.1
    _watches: dict[str, _Watch] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def watch(self, key: str, server: HasMemory) -> None:
        mem = server.memory()
        with self._lock:
            self._watches[key] = _Watch(server, dict(mem), dict(mem), dict(mem))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _sample(self, watch: _Watch, *, reset_window: bool = False) -> dict[str, int]:
        mem = watch.server.memory()
        with self._lock:
            watch.peak = _max(watch.peak, mem)
            watch.window = dict(mem) if reset_window else _max(watch.window, mem)
            return dict(watch.window)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                watches = list(self._watches.values())
            for watch in watches:
                self._sample(watch)

    def open_window(self, key: str) -> None:
        """Start a measurement window: its peaks start from the current values."""
        with self._lock:
            watch = self._watches.get(key)
        if watch is not None:
            self._sample(watch, reset_window=True)

    def close_window(self, key: str) -> dict[str, int]:
        """The peaks since :meth:`open_window`, including a final sample now (zeros if not watched)."""
        with self._lock:
            watch = self._watches.get(key)
        return self._sample(watch) if watch is not None else dict.fromkeys(MEMORY_FIELDS, 0)

    def summary(self, key: str) -> tuple[dict[str, int], dict[str, int]] | None:
        """(memory when watching started, peaks so far), or None if ``key`` is not watched."""
        with self._lock:
            watch = self._watches.get(key)
            return (dict(watch.start), dict(watch.peak)) if watch is not None else None


# --- nginx ------------------------------------------------------------------------------------

NGINX_CONF = """\
# Written by bench/peers.py for the upload benchmark; started as `nginx -c THIS -p PREFIX`.
daemon off;
master_process on;
worker_processes {workers};
{user}pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    # Debian's /etc/nginx/nginx.conf ships both on; they matter only for downloads (static files).
    sendfile {sendfile};
    tcp_nopush {sendfile};
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    client_max_body_size 0;
    # Same filesystem as the store: a finished body is renamed into place, not copied.
    client_body_temp_path {body_temp};
    proxy_temp_path {prefix}/proxy_temp;
    fastcgi_temp_path {prefix}/fastcgi_temp;
    uwsgi_temp_path {prefix}/uwsgi_temp;
    scgi_temp_path {prefix}/scgi_temp;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location = /health {{ return 204; }}
        location /store/ {{
            dav_methods PUT DELETE;
            create_full_put_path on;
            dav_access user:rw group:r all:r;
        }}
        # Plain static files (the download benchmark): ROOT/files/NAME.
        location /files/ {{ }}
    }}
}}
"""


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )


def nginx_version(binary: str) -> str:
    result = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=10, check=False)
    return (result.stderr or result.stdout).strip().removeprefix("nginx version: ")


class _StorePeer:
    """A peer server with a store directory and a ``/health`` route answering 204."""

    process: ServerProcess
    base_url: str
    store: Path

    def start(self) -> None:
        self.process.start()
        self.process.wait_ready(self.base_url + "/health", ok=lambda r: r.status_code == 204)

    def clear_store(self) -> None:
        """Delete stored files between repetitions (an overwriting PUT takes nginx's slower path)."""
        shutil.rmtree(self.store, ignore_errors=True)
        self.store.mkdir(parents=True, exist_ok=True)


class NginxPeer(_StorePeer):
    """Debian's nginx with ``dav_methods PUT``: the store is ``ROOT/store``, bodies land via rename."""

    def __init__(self, workdir: Path, *, workers: int = 1, sendfile: bool = True) -> None:
        binary = nginx_binary()
        if binary is None:
            raise BenchError("nginx is not installed (Debian: apt-get install -y nginx)")
        self.version = nginx_version(binary)
        self.prefix = workdir / "nginx"
        self.root = workdir / "nginx-root"
        self.store = self.root / "store"
        self.files = self.root / "files"  # served as /files/NAME
        self.sendfile = sendfile
        body_temp = workdir / "nginx-body-temp"
        for path in (self.prefix, self.store, self.files, body_temp):
            path.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        conf = self.prefix / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(
                workers=workers,
                sendfile="on" if sendfile else "off",
                # As root, nginx would switch its workers to `nobody`, who cannot write the store.
                user="user root;\n" if os.geteuid() == 0 else "",
                prefix=self.prefix,
                body_temp=body_temp,
                port=self.port,
                root=self.root,
            )
        )
        self.process = ServerProcess(
            "nginx",
            [binary, "-e", str(self.prefix / "error.log"), "-c", str(conf), "-p", str(self.prefix)],
            log_path=self.prefix / "stdout.log",
        )


# --- @tus/server ------------------------------------------------------------------------------

TUS_SCRIPT = """\
// Written by bench/peers.py: @tus/server with @tus/file-store on 127.0.0.1 for the upload benchmark.
import http from "node:http";
import { Server } from "@tus/server";
import { FileStore } from "@tus/file-store";

const [port, directory] = process.argv.slice(2);
const tus = new Server({ path: "/files", datastore: new FileStore({ directory }) });
const server = http.createServer((req, res) => {
  if (req.url === "/health") { res.writeHead(204); res.end(); return; }
  tus.handle(req, res);
});
server.keepAliveTimeout = 75000;
server.listen(Number(port), "127.0.0.1", () => console.log(`listening on 127.0.0.1:${port}`));
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => { server.close(); process.exit(0); });
"""


def node_version() -> tuple[int, int, int] | None:
    node = shutil.which("node")
    if node is None:
        return None
    result = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10, check=False)
    try:
        major, minor, patch = (int(p) for p in result.stdout.strip().lstrip("v").split(".")[:3])
    except ValueError:
        return None
    return major, minor, patch


def _installed_version(package_dir: Path) -> str | None:
    try:
        meta = json.loads((package_dir / "package.json").read_text())
    except (OSError, ValueError):
        return None
    version = meta.get("version")
    return version if isinstance(version, str) else None


@dataclass(frozen=True)
class TusInstall:
    path: Path
    server_version: str
    file_store_version: str
    note: str  # why a major version other than 2 was chosen, if it was


def ensure_tus_installed(cache_dir: Path, log: Callable[[str], None]) -> TusInstall:
    """Install ``@tus/server`` + ``@tus/file-store`` with npm into ``cache_dir`` (once)."""
    cache_dir = cache_dir.resolve()  # node runs with the install dir as its cwd
    if shutil.which("npm") is None:
        raise BenchError("npm is not installed")
    version = node_version()
    if version is None:
        raise BenchError("node is not installed")
    if version[:2] >= TUS_MIN_NODE:
        major, note = "2", ""
    else:
        major = "1"
        note = f"Node {'.'.join(map(str, version))} < 20.19: using @tus/server 1.x (2.x needs Node >= 20.19)"
    install = cache_dir / f"tus-server-{major}"
    install.mkdir(parents=True, exist_ok=True)
    server_pkg = install / "node_modules" / "@tus" / "server"
    installed = _installed_version(server_pkg)
    store_installed = _installed_version(install / "node_modules" / "@tus" / "file-store")
    if installed is None or store_installed is None or not installed.startswith(major + "."):
        (install / "package.json").write_text(
            json.dumps(
                {
                    "name": "megavault-bench-tus-peer",
                    "private": True,
                    "description": "Installed by bench/peers.py; safe to delete.",
                    "dependencies": {"@tus/server": f"^{major}", "@tus/file-store": f"^{major}"},
                },
                indent=2,
            )
            + "\n"
        )
        log(f"installing @tus/server@^{major} and @tus/file-store@^{major} with npm into {install} ...")
        try:
            result = subprocess.run(
                ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=install,
                capture_output=True,
                text=True,
                timeout=NPM_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise BenchError(f"npm install did not finish in {NPM_TIMEOUT:.0f}s") from None
        if result.returncode != 0:
            raise BenchError(f"npm install failed ({result.returncode}): {result.stderr.strip()[-800:]}")
        installed = _installed_version(server_pkg)
        store_installed = _installed_version(install / "node_modules" / "@tus" / "file-store")
        if installed is None or store_installed is None:
            raise BenchError("npm install finished but @tus/server or @tus/file-store is missing")
    (install / "server.mjs").write_text(TUS_SCRIPT)
    return TusInstall(install, installed, store_installed, note)


class TusPeer(_StorePeer):
    """The official tus server: ``@tus/server`` + ``@tus/file-store`` under plain ``node:http``."""

    def __init__(self, workdir: Path, cache_dir: Path, log: Callable[[str], None]) -> None:
        installed = ensure_tus_installed(cache_dir, log)
        install = installed.path
        self.version, self.file_store_version, self.note = (
            installed.server_version,
            installed.file_store_version,
            installed.note,
        )
        node_v = node_version()
        self.node_version = ".".join(map(str, node_v)) if node_v else "?"
        self.store = workdir / "tus-store"
        self.store.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.endpoint = self.base_url + "/files"
        node = shutil.which("node") or "node"
        self.process = ServerProcess(
            "@tus/server",
            [node, str(install / "server.mjs"), str(self.port), str(self.store)],
            log_path=workdir / "tus-server.log",
            cwd=install,
        )


# --- the stack's ceiling (bench/ceiling.py) ---------------------------------------------------


class CeilingPeer(_StorePeer):
    """``python -m bench.ceiling``: a bare ASGI app on Hypercorn-trio that hashes, writes, fsyncs."""

    def __init__(self, workdir: Path) -> None:
        self.store = workdir / "ceiling-store"
        self.store.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.version = _hypercorn_version()
        self.process = ServerProcess(
            "ceiling",
            [sys.executable, "-m", "bench.ceiling", str(self.port), str(self.store)],
            log_path=workdir / "ceiling.log",
            cwd=REPO,
            env=checkout_env(),
        )


def _hypercorn_version() -> str:
    try:
        v = metadata.version
        return f"Hypercorn {v('hypercorn')} (trio), h11 {v('h11')}, blake3 {v('blake3')}"
    except metadata.PackageNotFoundError:
        return "Hypercorn (trio)"


# --- the node ---------------------------------------------------------------------------------

NODE_TOML = """\
# Written by bench/peers.py for the upload benchmark.
[server]
bind = "127.0.0.1:{port}"
log_level = "{log_level}"
[storage]
data_dir = "{data_dir}"
backend = "{backend}"
[auth]
max_failed_logins_per_minute = 1000
[plans]
default = "free"
[plans.free]
devices = 0
quota = "0"
"""


def checkout_env() -> dict[str, str]:
    """The environment of a child that must run this checkout's code (the node, the ceiling peer).

    The child is this interpreter with the checkout's packages first on ``PYTHONPATH``: a
    worktree benchmarked with another checkout's venv (whose ``vault`` command is an editable
    install of that checkout) still measures its own code.
    """
    env = dict(os.environ)
    paths = [str(REPO), str(REPO / "backends"), str(REPO / "plugins")]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


class NodeServer:
    """``vault serve`` on a temporary data dir, with a bench user registered over the API."""

    EMAIL = "bench@example.com"
    PASSWORD = "bench-password-0123456789"

    def __init__(self, workdir: Path, *, backend: str = "lmdb", log_level: str = "info") -> None:
        self.data_dir = workdir / "node-data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.backend = backend
        config = workdir / "vault.toml"
        config.write_text(
            NODE_TOML.format(port=self.port, data_dir=self.data_dir, backend=backend, log_level=log_level)
        )
        self.process = ServerProcess(
            "node",
            [sys.executable, "-m", "vault.cli", "serve", "--config", str(config)],
            log_path=workdir / "node.log",
            cwd=workdir,
            env=checkout_env(),
        )
        self.token = ""
        self.version = "?"

    def start(self) -> None:
        self.process.start()
        self.process.wait_ready(self.base_url + "/api/health", ok=lambda r: r.status_code == 200)
        with contextlib.suppress(ValueError, httpx.HTTPError):
            self.version = str(httpx.get(self.base_url + "/api/health", timeout=5).json().get("version", "?"))

    def register(self) -> str:
        """Register the bench user and device (API.md, Auth); returns the access token."""
        body = {
            "email": self.EMAIL,
            "password": self.PASSWORD,
            "deviceInfo": {
                "platform": "android",
                "model": "Bench",
                "osVersion": "14",
                "appVersion": "1.0.0",
                "deviceId": "bench-device-1",
                "pushToken": "bench-push-token",
            },
        }
        response = httpx.post(self.base_url + "/api/mobile/auth/register", json=body, timeout=30)
        if response.status_code == 404:
            raise BenchError("POST /api/mobile/auth/register answers 404: the node has no auth API yet")
        if response.status_code != 200:
            raise BenchError(f"register answered HTTP {response.status_code}: {response.text[:300]}")
        try:
            token = response.json()["tokens"]["accessToken"]
        except (ValueError, KeyError, TypeError):
            raise BenchError(f"register answered without tokens.accessToken: {response.text[:300]}") from None
        if not isinstance(token, str) or not token:
            raise BenchError("register answered an empty access token")
        self.token = token
        return token


def b64(text: str) -> str:
    """A value for tus ``Upload-Metadata``."""
    return base64.b64encode(text.encode()).decode("ascii")
