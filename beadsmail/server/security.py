"""Who may talk to ``bd serve``: loopback by default, tokens elsewhere, same-origin always.

- Bound to a loopback address, the server trusts local processes as the CLI
  does (an HTTP request may name the identity it acts as), but only for
  requests whose ``Host`` is a loopback name, so a web page that rebinds its
  own domain name to 127.0.0.1 is refused (DNS rebinding).
- Bound to any other address, every request must carry an agent token
  (``Authorization: Bearer bdt_...``, or ``?token=`` on a WebSocket, which
  browsers cannot give headers); the token decides the identity, and a request
  naming another identity is refused. ``bd serve`` refuses to start there while
  no token exists.
- A request with an ``Origin`` header (any browser request that could carry
  side effects) must come from the server's own origin, or from one listed with
  ``--allow-origin``; a foreign Origin is refused on HTTP (403) and on the
  WebSocket handshake.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from beadsmail import records
from beadsmail.errors import PermissionDenied
from beadsmail.tokens import TokenBook

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _hostname(host_header: str) -> str:
    if host_header.startswith("["):
        return host_header[1:].split("]", 1)[0]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


class Guard:
    def __init__(self, bind_host: str, tokens: TokenBook, allow_origins: list[str] | None = None,
                 require_tokens: bool | None = None) -> None:
        self.tokens = tokens
        self.require_tokens = (not is_loopback(bind_host)) if require_tokens is None \
            else require_tokens
        self.allow_origins = {o.rstrip("/").lower() for o in allow_origins or ()}

    def check_host(self, host_header: str | None) -> None:
        if self.require_tokens:
            return
        if not host_header or not is_loopback(_hostname(host_header)):
            raise PermissionDenied(f"Host {host_header!r} is not a loopback name; this server "
                                   "only answers requests to 127.0.0.1, ::1 or localhost")

    def check_origin(self, origin: str | None, host_header: str | None) -> None:
        if origin is None:
            return
        origin = origin.rstrip("/").lower()
        if origin in self.allow_origins:
            return
        parts = urlsplit(origin)
        if parts.scheme in ("http", "https") and host_header and \
                parts.netloc == host_header.lower():
            return
        raise PermissionDenied(f"requests from origin {origin!r} are refused: only pages served "
                               "by this server (or --allow-origin) may call it")

    def identity(self, token: str | None, claimed: str | None, default: str) -> str:
        """The identity a request acts as; PermissionDenied for a mismatch or bad token."""
        if claimed is not None:
            records.check_identity(claimed)
        if not self.require_tokens:
            if token:
                agent = self.tokens.verify(token)
                if claimed is not None and claimed != agent:
                    raise PermissionDenied(f"the token acts as {agent}, not {claimed}")
                return agent
            return claimed or default
        agent = self.tokens.verify(token)
        if claimed is not None and claimed != agent:
            raise PermissionDenied(f"the token acts as {agent}; it cannot act as {claimed}")
        return agent


def bearer(headers) -> str | None:
    value = headers.get("authorization")
    if value and value.lower().startswith("bearer "):
        return value[7:].strip()
    return None
