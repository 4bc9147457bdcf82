"""Who may call the service, and where it may listen (`umcl/service.py` applies both).

- `UMCL_API_KEY` set: every route but the probes (`/livez`, `/readyz`) needs
  `Authorization: Bearer <key>`, compared in constant time; anything else gets a 401 before the
  body is read. The key is never logged or echoed. With no key, a request that arrives on any
  address but loopback gets a 403, however the server was configured to listen.
- The listening host is what `bentoml serve --host` (or `BENTOML_HOST`) says, else all
  interfaces inside a container built by `bentoml containerize` (which sets
  `BENTOML_CONTAINERIZED=true`), else loopback. The service refuses to start on a host other
  machines can reach while no key is set.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

import click

from umcl.errors import UMCLError
from umcl.keys import MAKE_A_KEY, MIN_KEY_LENGTH

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

KEY_VARIABLE = "UMCL_API_KEY"
# Orchestrators' probes carry no credentials; the try-it page (umcl/page.py) holds no data and
# asks for the key itself.
OPEN_PATHS = frozenset({"/livez", "/readyz", "/ui", "/ui/"})
LOOPBACK_HOST, ALL_INTERFACES = "127.0.0.1", "0.0.0.0"


class AuthSetupError(UMCLError, RuntimeError):
    """The service must not start as configured (no key on an exposed host, a weak key)."""


def api_key(environ: Mapping[str, str] = os.environ) -> str | None:
    """The key from the environment, None when unset; a key too short to resist guessing is
    refused."""
    key = environ.get(KEY_VARIABLE, "").strip()
    if not key:
        return None
    if len(key) < MIN_KEY_LENGTH:
        raise AuthSetupError(
            f"{KEY_VARIABLE} has {len(key)} characters; use at least {MIN_KEY_LENGTH}, e.g. "
            f"from `{MAKE_A_KEY}`"
        )
    return key


def default_host(environ: Mapping[str, str] = os.environ) -> str:
    """Where the service listens unless `--host` / `BENTOML_HOST` says otherwise: all
    interfaces in a container (unreachable otherwise), loopback on a workstation."""
    return ALL_INTERFACES if environ.get("BENTOML_CONTAINERIZED") == "true" else LOOPBACK_HOST


def requested_host(environ: Mapping[str, str] = os.environ) -> str:
    """The host this `bentoml serve` binds: its `--host` option (click also reads
    `BENTOML_HOST` into it), else `BENTOML_HOST`, else `default_host`."""
    context = click.get_current_context(silent=True)
    host = context.params.get("host") if context is not None else None
    return host or environ.get("BENTOML_HOST") or default_host(environ)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def check_exposure(host: str, key: str | None) -> None:
    """Refuse a host other machines can reach while no key is set."""
    if key is None and not is_loopback(host):
        raise AuthSetupError(
            f"refusing to serve on {host} without {KEY_VARIABLE}: any machine that can reach "
            f"it could send images and read results. Set {KEY_VARIABLE} (e.g. from "
            f"`{MAKE_A_KEY}`) and give clients `Authorization: Bearer <key>`, or serve on "
            f"{LOOPBACK_HOST}"
        )


class BearerAuth:
    """ASGI middleware: a request without the right bearer token gets a 401, except the
    probes. With no key configured, only requests that arrive on a loopback address pass:
    whatever configuration made the server listen wider (a BentoML config file, say), it
    answers no other machine (403)."""

    def __init__(self, app: Callable[..., Awaitable[None]], key: str | None) -> None:
        self.app = app
        self.expected = None if key is None else key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)  # lifespan events carry no request
            return
        if self.expected is None:
            server = scope.get("server") or (LOOPBACK_HOST, 0)
            if is_loopback(str(server[0])):
                await self.app(scope, receive, send)
            else:
                await _refuse(
                    scope,
                    send,
                    403,
                    f"this service has no {KEY_VARIABLE}: it answers loopback only",
                )
            return
        if scope.get("path", "") in OPEN_PATHS or self._authorised(scope):
            await self.app(scope, receive, send)
            return
        await _refuse(
            scope,
            send,
            401,
            f"missing or wrong API key: send `Authorization: Bearer <{KEY_VARIABLE}>`",
        )

    def _authorised(self, scope: Scope) -> bool:
        given = [v for k, v in scope.get("headers", []) if k.lower() == b"authorization"]
        if len(given) != 1:
            return False
        scheme, _, token = given[0].strip().partition(b" ")
        # The scheme is case-insensitive (RFC 9110); the token is compared in constant time.
        return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.expected)


async def _refuse(scope: Scope, send: Send, status: int, message: str) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})  # policy violation
        return
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


PROXIES_VARIABLE = "UMCL_TRUSTED_PROXIES"


def trust_only_listed_proxies(proxies: str, environ: MutableMapping[str, str] = os.environ) -> None:
    """The client address the server logs is the socket's: uvicorn would otherwise take any
    loopback caller's X-Forwarded-For as the address. Proxies in front of the service are named
    in UMCL_TRUSTED_PROXIES (`proxies`: comma-separated addresses or networks); none by default.
    Set before the worker configures uvicorn, which reads FORWARDED_ALLOW_IPS then."""
    environ["FORWARDED_ALLOW_IPS"] = proxies
