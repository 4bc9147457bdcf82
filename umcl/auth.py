"""Who may call the service, and where it may listen (`umcl/service.py` applies both).

- `UMCL_API_KEY` set: every route but the probes (`/livez`, `/readyz`) needs
  `Authorization: Bearer <key>`, compared in constant time; anything else gets a 401 before the
  body is read. The key is never logged or echoed.
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
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import click

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

KEY_VARIABLE = "UMCL_API_KEY"
MIN_KEY_LENGTH = 16  # characters; `secrets.token_urlsafe(32)` gives 43
OPEN_PATHS = frozenset({"/livez", "/readyz"})  # orchestrators' probes carry no credentials
LOOPBACK_HOST, ALL_INTERFACES = "127.0.0.1", "0.0.0.0"
MAKE_A_KEY = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"


class AuthSetupError(RuntimeError):
    """The service must not start as configured (no key on an exposed host, a weak key)."""


def api_key(environ: MutableMapping[str, str] = os.environ) -> str | None:
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


def default_host(environ: MutableMapping[str, str] = os.environ) -> str:
    """Where the service listens unless `--host` / `BENTOML_HOST` says otherwise: all
    interfaces in a container (unreachable otherwise), loopback on a workstation."""
    return ALL_INTERFACES if environ.get("BENTOML_CONTAINERIZED") == "true" else LOOPBACK_HOST


def requested_host(environ: MutableMapping[str, str] = os.environ) -> str:
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
    probes; with no key configured every request passes (loopback only, see `check_exposure`)."""

    def __init__(self, app: Callable[..., Awaitable[None]], key: str | None) -> None:
        self.app = app
        self.expected = None if key is None else f"Bearer {key}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.expected is None or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)  # lifespan events carry no request
            return
        if scope.get("path", "") in OPEN_PATHS or self._authorised(scope):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # policy violation
            return
        body = json.dumps(
            {"error": f"missing or wrong API key: send `Authorization: Bearer <{KEY_VARIABLE}>`"}
        ).encode()
        await send({
            "type": "http.response.start", "status": 401,
            "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer"),
                        (b"content-length", str(len(body)).encode())],
        })  # fmt: skip
        await send({"type": "http.response.body", "body": body})

    def _authorised(self, scope: Scope) -> bool:
        given = [v for k, v in scope.get("headers", []) if k.lower() == b"authorization"]
        # One header, compared in constant time whatever its length (no timing oracle).
        return len(given) == 1 and hmac.compare_digest(given[0].strip(), self.expected)
