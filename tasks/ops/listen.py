"""Listening sockets of the local servers (`human3r dashboard`, the live feed): bound before serving, so a port in
use is one line naming the flag to change, not a traceback."""

from __future__ import annotations

import socket

from tasks.errors import UsageError

LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def bind(host: str, port: int, *, flag: str = "--port") -> socket.socket:
    """A TCP socket listening on `host`:`port` (0 = any free port), or UsageError saying to pass another `flag`."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as err:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port} ({err.strerror or err}): pass another {flag}, or {flag} 0 "
                         "for any free one") from None
    sock.listen(128)
    return sock


def shown_host(host: str) -> str:
    """`host` as written in a URL (IPv6 in brackets)."""
    return f"[{host.strip('[]')}]" if ":" in host else host
