"""``--wifi-only``'s judgement of the link to the node (``vault_client.cli.network``): the
override, loopback, cellular interface names, NetworkManager's "metered" flag, and no route."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from vault_client.cli import network
from vault_client.cli.network import interface_of, local_address_for, metered_reason

NODE = "http://192.0.2.10:8080"  # a documentation address: never reached, only routed in the fakes


def _route_through(
    monkeypatch: pytest.MonkeyPatch, interface: str | None, address: str | None = "192.0.2.99"
) -> list[tuple[str, int]]:
    """Make the kernel's answer "the node is reached from ``address`` on ``interface``"."""
    asked: list[tuple[str, int]] = []

    def fake_local_address_for(host: str, port: int) -> str | None:
        asked.append((host, port))
        return address

    monkeypatch.setattr(network, "local_address_for", fake_local_address_for)
    monkeypatch.setattr(network, "interface_of", lambda found: interface if found == address else None)
    return asked


def _no_nmcli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def _fake_nmcli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, answer: str) -> Path:
    """An ``nmcli`` first on PATH that prints ``answer`` and writes its arguments to a file."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    called = tmp_path / "nmcli-args"
    script = bin_dir / "nmcli"
    script.write_text(f'#!/bin/sh\necho "$@" > "{called}"\necho "{answer}"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ.get('PATH', '')}")
    return called


@pytest.fixture(autouse=True)
def _no_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VAULT_SYNC_NETWORK", raising=False)


def test_the_environment_overrides_the_guess(monkeypatch: pytest.MonkeyPatch) -> None:
    _route_through(monkeypatch, "wwan0")
    monkeypatch.setenv("VAULT_SYNC_NETWORK", "metered")
    assert metered_reason("http://127.0.0.1:8080") == "VAULT_SYNC_NETWORK=metered"
    monkeypatch.setenv("VAULT_SYNC_NETWORK", " Unmetered ")
    assert metered_reason(NODE) is None  # a cellular modem, but the user said otherwise
    monkeypatch.setenv("VAULT_SYNC_NETWORK", "sometimes")
    assert metered_reason(NODE) == "wwan0 is a cellular link"  # garbage is ignored: the guess decides


def test_a_node_on_this_machine_is_never_metered(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _fake_nmcli(monkeypatch, tmp_path, "yes")  # even if NetworkManager said so, loopback is not asked
    assert metered_reason("http://127.0.0.1:8080") is None
    assert metered_reason("http://localhost:8080") is None
    assert not (tmp_path / "nmcli-args").exists()


@pytest.mark.parametrize("interface", ["wwan0", "ppp0", "rmnet_data0"])
def test_cellular_modems_are_metered(monkeypatch: pytest.MonkeyPatch, interface: str) -> None:
    asked = _route_through(monkeypatch, interface)
    assert metered_reason(NODE) == f"{interface} is a cellular link"
    assert asked == [("192.0.2.10", 8080)]


def test_the_route_is_asked_for_the_urls_port(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _no_nmcli(monkeypatch, tmp_path)
    asked = _route_through(monkeypatch, "eth0")
    metered_reason("https://vault.example.org/")
    metered_reason("http://vault.example.org")
    assert asked == [("vault.example.org", 443), ("vault.example.org", 80)]


@pytest.mark.parametrize("interface", ["eth0", "wlan0"])
def test_wired_and_wifi_without_networkmanager_are_fine(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, interface: str
) -> None:
    _no_nmcli(monkeypatch, tmp_path)
    _route_through(monkeypatch, interface)
    assert metered_reason(NODE) is None


def test_a_wifi_networkmanager_marks_metered_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    called = _fake_nmcli(monkeypatch, tmp_path, "yes (guessed)")
    _route_through(monkeypatch, "wlan0")
    assert metered_reason(NODE) == "NetworkManager marks wlan0 as metered"
    assert called.read_text().split() == ["-g", "GENERAL.METERED", "device", "show", "wlan0"]


def test_a_wifi_networkmanager_calls_unmetered_is_fine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    called = _fake_nmcli(monkeypatch, tmp_path, "no")
    _route_through(monkeypatch, "wlan0")
    assert metered_reason(NODE) is None
    assert called.exists()  # it was asked, and its "no" was heard


def test_no_route_to_the_node_is_left_to_fail_as_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    _route_through(monkeypatch, "wwan0", address=None)
    assert metered_reason(NODE) is None


def test_an_address_no_interface_holds_is_not_judged(monkeypatch: pytest.MonkeyPatch) -> None:
    _route_through(monkeypatch, None)
    assert metered_reason(NODE) is None


def test_the_kernel_routes_loopback_through_lo() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        port = server.getsockname()[1]
    assert local_address_for("127.0.0.1", port) == "127.0.0.1"
    assert interface_of("127.0.0.1") == "lo"


def test_an_ipv6_route_is_judged_by_its_interface_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # An IPv6-only cellular link must be refused under --wifi-only like an IPv4 one.
    table = tmp_path / "if_inet6"
    table.write_text(
        "00000000000000000000000000000001 01 80 10 80       lo\n"
        "2a0104b8000000000000000000000042 03 40 00 00    wwan0\n"
        "fe800000000000000000000000000007 04 40 20 80    wlan0\n"
    )
    monkeypatch.setattr(network, "IF_INET6", str(table))
    monkeypatch.setattr(network, "local_address_for", lambda host, port: "2a01:4b8::42")
    assert network.interface_of("2a01:4b8::42") == "wwan0"
    assert network.interface_of("fe80::7%wlan0") == "wlan0"
    assert network.interface_of("::1") == "lo"
    assert network.interface_of("2a01:4b8::99") is None
    assert metered_reason("http://[2a01:db8::1]:8080") == "wwan0 is a cellular link"
