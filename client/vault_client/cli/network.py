"""``--wifi-only``: transfer only over an unmetered link, as a phone app's "Wi-Fi only" does.

The interface the node is reached through is found by asking the kernel for the route (a UDP
socket ``connect`` sends nothing), then judged: loopback, wired and Wi-Fi are fine; cellular
modems (``wwan*``, ``ppp*``, ``rmnet*``, ``ccmni*``) and links NetworkManager marks metered are
not. ``VAULT_SYNC_NETWORK=metered|unmetered`` overrides the guess (tests, unusual setups).
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import shutil
import socket
import struct
import subprocess
from urllib.parse import urlsplit

_CELLULAR = ("wwan", "ppp", "rmnet", "ccmni", "wwp")
_SIOCGIFADDR = 0x8915
IF_INET6 = "/proc/net/if_inet6"  # Linux: each IPv6 address (32 hex digits) and its interface


def local_address_for(host: str, port: int) -> str | None:
    """The local address a connection to ``host`` leaves from (IPv4 or IPv6, the first address
    the name resolves to, as the connection would take it); ``None`` with no route."""
    try:
        family, _, _, _, target = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_DGRAM)[0]
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect(target)
            return str(probe.getsockname()[0])
    except OSError:
        return None


def interface_of(address: str) -> str | None:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # a link-local address may carry %zone
    if ip.is_loopback:
        return "lo"
    if ip.version == 6:
        return _interface_of_v6(ip.packed.hex())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        for _, name in socket.if_nameindex():
            try:
                packed = fcntl.ioctl(probe.fileno(), _SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
            except OSError:
                continue
            if socket.inet_ntoa(packed[20:24]) == address:
                return name
    return None


def _interface_of_v6(packed_hex: str) -> str | None:
    try:
        with open(IF_INET6, encoding="ascii") as table:
            for line in table:
                fields = line.split()
                if len(fields) >= 6 and fields[0].lower() == packed_hex:
                    return fields[5]
    except OSError:
        return None
    return None


def _nm_metered(interface: str) -> bool:
    if shutil.which("nmcli") is None:
        return False
    try:
        out = subprocess.run(
            ["nmcli", "-g", "GENERAL.METERED", "device", "show", interface],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.strip().lower().startswith("yes")


def metered_reason(base_url: str) -> str | None:
    """Why the link to the node counts as metered, or ``None`` when it does not."""
    forced = os.environ.get("VAULT_SYNC_NETWORK", "").strip().lower()
    if forced in ("metered", "unmetered"):
        return "VAULT_SYNC_NETWORK=metered" if forced == "metered" else None
    parts = urlsplit(base_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = local_address_for(parts.hostname or "127.0.0.1", port)
    if address is None:
        return None  # no route: the transfer fails as offline, not as metered
    interface = interface_of(address)
    if interface is None or interface == "lo":
        return None
    if interface.startswith(_CELLULAR):
        return f"{interface} is a cellular link"
    if _nm_metered(interface):
        return f"NetworkManager marks {interface} as metered"
    return None
