"""Which Web Push endpoints the node will POST to: the rules that keep it off its own network.

A Web Push endpoint is a URL chosen by whoever registers a device, so without rules the node
would make requests for strangers: to its loopback services, its LAN, the cloud metadata address.
Two checks share one table of refused addresses. ``url_refusal`` runs on the URL (at register
time and again before each send): scheme, userinfo, host names meaning "this machine", and
literal IP addresses in every spelling the resolver accepts. ``GuardedTrioBackend`` runs when a
connection is opened: it resolves the host itself, refuses it if any address is in a refused
range, and connects to an address it checked, so a name that resolves to a public address at
the first look and to 127.0.0.1 at the second (DNS rebinding) gains nothing.

``allow_private_endpoints`` turns the address and host-name rules off, for a LAN-only setup with
a self-hosted UnifiedPush distributor, and for tests. It also accepts plain http, but only to
loopback and private addresses (``plain_http_refusal``): the LAN's distributor, never a stranger's
server on the internet reached without TLS.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable

import httpcore
import httpx
import trio

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Well-known NAT64 prefix (RFC 6052): the last 32 bits are the IPv4 address reached.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Local-use NAT64 prefixes (RFC 8215) translate into a site's own network.
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
# IPv4-compatible IPv6 (deprecated, RFC 4291 2.5.5.1): ::a.b.c.d.
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")

# A host name after IDNA: letters, digits, hyphens and dots. Anything else (percent-escapes, an
# empty host) is not a name a push service has, and might be read differently by the resolver.
_HOST_NAME = re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)*\.?$")


class EndpointRefused(Exception):
    """A connection the endpoint rules forbid; ``reason`` names the rule, never the URL."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def address_refusal(address: IPAddress) -> str | None:
    """Which refused range ``address`` is in ("a loopback address", …), or ``None`` if public.

    Python's own flags disagree across versions (3.11 calls ff02::1 and 64:ff9b::7f00:1 global),
    so the order and the embedded-IPv4 forms are spelled out here.
    """
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return address_refusal(embedded)
        if address in _NAT64_LOCAL:
            return "a private address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_reserved:  # before private: Python counts 240.0.0.0/4 as both
        return "a reserved address"
    if address.is_private:
        return "a private address"
    if not address.is_global:
        # 100.64.0.0/10 (carrier-grade NAT) and whatever else the registry marks non-global.
        return "a non-public address"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form reaches: IPv4-mapped, 6to4, NAT64 or IPv4-compatible."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def literal_address(host: str) -> IPAddress | None:
    """``host`` as an IP address when it is one, in any spelling the system resolver reads as one.

    glibc's resolver takes ``127.1``, ``2130706433`` and ``0x7f.0.0.1`` as 127.0.0.1 without a
    DNS query (inet_aton rules), so the check must read them the same way.
    """
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            return None
    try:
        return ipaddress.IPv4Address(host)
    except ValueError:
        pass
    if not host or not all(c in "0123456789abcdefx." for c in host.lower()):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def url_refusal(url: httpx.URL, *, allow_private: bool) -> str | None:
    """Why the node will not POST to ``url`` (one line, without the URL's path), or ``None``."""
    allowed_schemes = ("https", "http") if allow_private else ("https",)
    if url.scheme not in allowed_schemes:
        return "the endpoint must be an https URL" if not allow_private else "the endpoint must be an http(s) URL"
    if url.userinfo:
        return "the endpoint URL must not carry a user name or password"
    host = url.host
    address = literal_address(host)
    if address is None and not _HOST_NAME.match(url.raw_host.decode("ascii", "replace").lower()):
        return "the endpoint host is not a valid host name"
    if allow_private:
        if url.scheme == "http" and address is not None and address_refusal(address) is None:
            return PLAIN_HTTP_RULE
        return None
    if address is not None:
        refusal = address_refusal(address)
        return None if refusal is None else f"the endpoint host is {refusal}"
    if _names_this_machine(host):
        return "the endpoint host is a name for this machine (localhost)"
    return None


def _names_this_machine(host: str) -> bool:
    """``localhost`` and its subdomains (RFC 6761), which resolvers answer with loopback."""
    name = host.lower().rstrip(".")
    return name == "localhost" or name.endswith(".localhost")


PLAIN_HTTP_RULE = "a plain http endpoint must be on a loopback or private address (use https)"


async def plain_http_refusal(url: httpx.URL) -> str | None:
    """For an ``http`` endpoint named by host name (allowed only with ``allow_private``): refused
    unless every address the name resolves to is loopback or private. A name that does not
    resolve now is left to the send, which retries. (Web Push bodies are encrypted end to end;
    this keeps the VAPID token and the metadata off the open internet without TLS.)"""
    if url.scheme != "http" or literal_address(url.host) is not None:
        return None
    if _names_this_machine(url.host):
        return None
    try:
        addresses = await _resolve(url.host, url.port or 80)
    except httpcore.ConnectError:
        return None
    if any(address_refusal(ipaddress.ip_address(a.split("%", 1)[0])) is None for a in addresses):
        return PLAIN_HTTP_RULE
    return None


class GuardedTrioBackend(httpcore.TrioBackend):
    """httpcore's Trio network backend that connects only to addresses ``address_refusal`` passes.

    The host is resolved here, once; a single refused address refuses the host (a name with
    one public and one private address could otherwise be steered to the private one), and the
    connection goes to an address that was checked, never to a second resolution.
    """

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface, not ours
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await _resolve(host, port)
        for address in addresses:
            refusal = address_refusal(ipaddress.ip_address(address.split("%", 1)[0]))
            if refusal is not None:
                raise EndpointRefused(f"the endpoint host resolves to {refusal} ({address})")
        deadline = None if timeout is None else trio.current_time() + timeout
        failure: httpcore.ConnectError | None = None
        for address in addresses:
            remaining = None if deadline is None else max(0.0, deadline - trio.current_time())
            try:
                return await super().connect_tcp(address, port, remaining, local_address, socket_options)
            except httpcore.ConnectError as exc:  # the next address may answer (no route over IPv6, say)
                failure = exc
        raise failure or httpcore.ConnectError("the endpoint host has no address")


async def _resolve(host: str, port: int) -> list[str]:
    """The distinct addresses ``host`` resolves to, in the resolver's order of preference."""
    try:
        answers = await trio.socket.getaddrinfo(host, port, type=trio.socket.SOCK_STREAM)
    except OSError as exc:  # gaierror: a DNS failure is usually transient, so it is a retry
        raise httpcore.ConnectError(f"the endpoint host did not resolve ({type(exc).__name__})") from None
    addresses: list[str] = []
    for _family, _type, _proto, _canonname, sockaddr in answers:
        address = str(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


class GuardedTransport(httpx.AsyncHTTPTransport):
    """An httpx transport whose connections go through ``GuardedTrioBackend`` (unless allowed).

    httpx takes no network backend of its own, so the connection pool it built is replaced by
    one with the guarded backend and the same settings; httpx's exception mapping and response
    handling stay as they are.
    """

    def __init__(self, *, allow_private: bool, limits: httpx.Limits | None = None) -> None:
        limits = limits or httpx.Limits()
        super().__init__(limits=limits, trust_env=False)
        if not allow_private:
            self._pool = httpcore.AsyncConnectionPool(
                ssl_context=httpx.create_ssl_context(trust_env=False),
                max_connections=limits.max_connections,
                max_keepalive_connections=limits.max_keepalive_connections,
                keepalive_expiry=limits.keepalive_expiry,
                network_backend=GuardedTrioBackend(),
            )
