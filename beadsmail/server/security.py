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

What a caller may *read* once it is let in is ``access``. The limits every
caller meets before any work is done on its behalf are here too (``Limits``):
the token is checked before a request body is read, the body is bounded while it
is read (413 as soon as it is over, never buffered whole), request headers must
arrive within a deadline (``runner``), and JSON nested deeper than
``max_depth`` is refused before it is parsed (400 over HTTP, an error frame on
the bus), so no input can exhaust the parser's recursion; the bound is the
boundary's ``depth``, so the server never writes a record that clones refuse.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from beadsmail import boundary, records
from beadsmail.errors import BeadsError, InvalidInput, PermissionDenied
from beadsmail.tokens import TokenBook

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


@dataclass
class Limits:
    """What one client may send; every bound of ``bd serve`` in one place."""

    max_frame: int = 256 * 1024       # bytes of a WebSocket frame; larger ones are closed (1009)
    rate: float = 100.0               # frames a second, sustained
    burst: int = 400                  # frames at once
    max_refused: int = 200            # rate-limited frames before the connection is closed
    observer_queue: int = 2000        # records buffered for a slow page before it is dropped
    max_body: int = 1 << 20           # bytes of an HTTP request body (413 beyond)
    max_depth: int = boundary.Limits().depth  # JSON nesting in a body or frame, as the boundary
    header_timeout: float = 10.0      # seconds for a request's headers to arrive in full
    body_timeout: float = 30.0        # seconds for a request's body to arrive in full (408)


class TooLarge(BeadsError):
    code = "too_large"


class TooSlow(BeadsError):
    code = "timeout"


@dataclass(frozen=True)
class Principal:
    """Who a request acts as, and whether a token decided it (then reads are scoped)."""

    identity: str
    token: bool = False


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

    def identity(self, token: str | None, claimed: str | None, default: str) -> Principal:
        """Who a request acts as; PermissionDenied for a missing or bad token or a mismatch."""
        if self.require_tokens and not token:
            raise PermissionDenied("this server requires an agent token: send 'Authorization: "
                                   "Bearer <token>' (create one with 'bd agent token create "
                                   "NAME')", status=401)
        if claimed is not None:
            records.check_identity(claimed)
        if not token:
            return Principal(claimed or default)
        agent = self.tokens.verify(token)
        if claimed is not None and claimed != agent:
            raise PermissionDenied(f"the token acts as {agent}; it cannot act as {claimed}")
        return Principal(agent, token=True)


def bearer(headers) -> str | None:
    value = headers.get("authorization")
    if value and value.lower().startswith("bearer "):
        return value[7:].strip()
    return None


# -- bodies and JSON ---------------------------------------------------------------

async def read_body(headers: Mapping[str, str], chunks: AsyncIterator[bytes],
                    limits: Limits) -> bytes:
    """A request body, refused as soon as it is over ``max_body`` (an announced length
    before any of it is read) or slower than ``body_timeout``."""
    declared = headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limits.max_body:
        raise TooLarge(f"request body of {int(declared)} bytes is over the {limits.max_body}-byte "
                       "limit; send less")
    body = bytearray()

    async def gather() -> None:
        async for chunk in chunks:
            if len(body) + len(chunk) > limits.max_body:
                raise TooLarge(f"request body over the {limits.max_body}-byte limit; send less")
            body.extend(chunk)

    try:
        await asyncio.wait_for(gather(), limits.body_timeout)
    except TimeoutError:
        raise TooSlow(f"the request body did not arrive within {limits.body_timeout:g} s; "
                      "send it at once") from None
    return bytes(body)


def loads(text: str | bytes, max_depth: int, what: str) -> Any:
    """Parse JSON from a client: InvalidInput for bad UTF-8, bad JSON or nesting too deep."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"{what} is not valid UTF-8; send UTF-8 JSON") from None
    if boundary.too_deep(text.encode("utf-8", "surrogatepass"), max_depth):
        raise InvalidInput(f"{what} is nested deeper than {max_depth} levels of arrays and "
                           "objects; flatten it")
    try:
        return json.loads(text)
    except ValueError as exc:
        reason = getattr(exc, "msg", str(exc))
        raise InvalidInput(f"{what} is not valid JSON ({reason}); send one JSON object") from None
