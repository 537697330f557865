"""Listening addresses: which reach this machine only, how a URL names them, whether a port is
free. One place for the page, the service and the FiftyOne App."""

from __future__ import annotations

import errno
import ipaddress
import socket

from shotlab.core.errors import InputError

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def free_port() -> int:
    """A loopback port free at this moment (for tests and benchmarks that start servers)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def is_loopback(address: str) -> bool:
    """127.0.0.0/8, ::1 or `localhost`: reachable from this machine only."""
    if address.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def http_url(address: str, port: int) -> str:
    """`http://HOST:PORT/`, an IPv6 address in brackets."""
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{port}/"


def ensure_port_free(address: str, port: int, *, address_option: str = "--address",
                     default_port: int | None = None) -> None:
    """Raise InputError unless a server could listen on `address:port` right now (checked
    before a server starts: one would fail, or its printed URL would lead to the other).
    `address_option` and `default_port` are the calling command's, for its messages.

    SO_REUSEADDR, as the servers set it too, so connections of a server that just stopped
    (TIME_WAIT) do not count as busy; a socket still listening there does.
    """
    try:
        infos = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise InputError(f"{address_option} {address}: not an address of this machine "
                         f"({exc.strerror}); use 127.0.0.1, or 0.0.0.0 to serve on every "
                         f"interface") from None
    family, kind, proto, _, sockaddr = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(sockaddr)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise InputError(f"port {port} on {address} is already in use (another App or "
                                 f"server?); choose a free one with --port, e.g. --port "
                                 f"{port + 1 if port < 65535 else default_port or port - 1}"
                                 ) from None
            if exc.errno == errno.EACCES:
                default = f" (default {default_port})" if default_port else ""
                raise InputError(f"port {port} needs administrator rights; choose one above 1023 "
                                 f"with --port{default}") from None
            raise InputError(f"cannot serve on {address}:{port} ({exc.strerror}); use an address "
                             f"of this machine with {address_option}, e.g. 127.0.0.1") from None
