"""Who may call the service and where it listens: the bearer-key middleware in-process against
a real ASGI client, and the real `bentoml serve` with a key on all interfaces, and refusing to
start exposed without one."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, saved_random_model
from tests.serving import served, small_png
from umcl import registry
from umcl.auth import (
    AuthSetupError,
    BearerAuth,
    api_key,
    check_exposure,
    default_host,
    is_loopback,
)
from umcl.package import build_bento, locked_versions


async def ok_app(scope, receive, send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def client(key: str | None, server: str = "127.0.0.1") -> httpx.AsyncClient:
    """The ASGI scope's `server` is the address a request arrived on: the URL's host here."""
    transport = httpx.ASGITransport(app=BearerAuth(ok_app, key=key))
    return httpx.AsyncClient(transport=transport, base_url=f"http://{server}")


def test_the_key_is_required_everywhere_but_the_probes() -> None:
    asyncio.run(key_required())


async def key_required() -> None:
    key = secrets.token_urlsafe(32)
    async with client(key) as http:
        for path in ("/livez", "/readyz", "/ui", "/ui/"):  # the page holds no data
            assert (await http.get(path)).status_code == 200
        for path in ("/classify", "/embed_text", "/metrics", "/", "/docs.json", "/livez/"):
            refused = await http.post(path)
            assert refused.status_code == 401, path
            assert refused.headers["www-authenticate"] == "Bearer"
            assert key not in refused.text
        wrong = [f"Bearer {key[:-1]}", f"Bearer {key}x", key, f"Basic {key}", f"bearer{key}", ""]
        for header in wrong:
            assert (
                await http.get("/classify", headers={"Authorization": header})
            ).status_code == 401
        doubled = [("authorization", f"Bearer {key}"), ("authorization", f"Bearer {key}")]
        assert (await http.get("/classify", headers=doubled)).status_code == 401
        good = await http.post("/classify", headers={"Authorization": f"Bearer {key}"})
        assert (good.status_code, good.text) == (200, "ok")
        for scheme in ("bearer", "BEARER"):  # the scheme is case-insensitive
            headers = {"Authorization": f"{scheme}  {key} "}
            assert (await http.post("/classify", headers=headers)).status_code == 200
    for loopback in ("127.0.0.1", "[::1]"):  # no key: requests that arrive on loopback pass
        async with client(None, loopback) as http:
            assert (await http.post("/classify")).status_code == 200
    async with client(None, "192.0.2.7") as http:  # ... and no other, however it was bound
        for path in ("/classify", "/readyz"):
            refused = await http.post(path)
            assert refused.status_code == 403 and "UMCL_API_KEY" in refused.text


def test_exposure_rules() -> None:
    assert all(map(is_loopback, ["127.0.0.1", "127.8.0.1", "::1", "[::1]", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "10.0.0.5", "example.org", ""]))
    check_exposure("127.0.0.1", None)
    check_exposure("0.0.0.0", "k" * 16)
    with pytest.raises(
        AuthSetupError, match=r"refusing to serve on 0\.0\.0\.0 without UMCL_API_KEY"
    ):
        check_exposure("0.0.0.0", None)
    assert default_host({}) == "127.0.0.1"
    assert default_host({"BENTOML_CONTAINERIZED": "true"}) == "0.0.0.0"
    assert api_key({}) is None and api_key({"UMCL_API_KEY": "  "}) is None
    with pytest.raises(AuthSetupError, match="5 characters; use at least 16"):
        api_key({"UMCL_API_KEY": "short"})


def serve_env(**extra: str) -> dict[str, str]:
    kept = {"UMCL_MONITOR_DIR"}  # the session's own (tests/conftest.py)
    env = {
        k: v
        for k, v in os.environ.items()
        if k in kept or not k.startswith(("UMCL_", "BENTOML_HOST"))
    }
    return env | {"BENTOML_DO_NOT_TRACK": "true"} | extra


@pytest.mark.parametrize(
    ("args", "extra"),
    [
        (["--host", "0.0.0.0"], {}),
        ([], {"BENTOML_HOST": "0.0.0.0"}),
        ([], {"BENTOML_CONTAINERIZED": "true"}),  # what `bentoml containerize` images set
    ],
    ids=["--host", "BENTOML_HOST", "container"],
)
def test_bentoml_serve_refuses_an_exposed_host_without_a_key(args: list[str], extra: dict) -> None:
    bentoml = Path(sys.executable).parent / "bentoml"
    finished = subprocess.run(
        [str(bentoml), "serve", "umcl.service:UMCL", "--port", "1", *args],
        cwd=REPO,
        env=serve_env(**extra),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert finished.returncode != 0
    assert "refusing to serve on 0.0.0.0 without UMCL_API_KEY" in finished.stdout + finished.stderr


def non_loopback_address() -> str | None:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("10.255.255.255", 1))  # no packet is sent: this only picks a route
            address = probe.getsockname()[0]
    except OSError:
        return None
    return None if address.startswith("127.") else address


def test_a_keyed_bento_in_a_container_listens_on_all_interfaces(
    tiny_pipeline: dict, tmp_path: Path
) -> None:
    """A built bento as a `bentoml containerize` image runs it (`BENTOML_CONTAINERIZED=true`,
    no `--host`): reachable from other interfaces, only with the key, and serving the model
    UMCL_MODEL names rather than the one the bento was built with."""
    built, chosen = (
        registry.add(saved_random_model(tiny_pipeline, tmp_path / name, seed=seed), {"test": True})[
            0
        ]
        for name, seed in (("built", 5), ("chosen", 6))
    )
    bento = build_bento(REPO / "bentofile.yaml", built.tag)
    # The image installs what requirements.lock pins, transitive packages included.
    import bentoml

    packed = (Path(bentoml.bentos.get(bento).path) / "env/python/requirements.txt").read_text()
    locked = locked_versions(REPO / "requirements.lock")
    for name in ("transformers", "huggingface-hub", "pydantic-core", "numpy", "sympy"):
        assert f"{name}=={locked[name]}" in packed.splitlines(), name
    assert "torch==2.13.0" in packed.splitlines()
    key = secrets.token_urlsafe(32)
    env = serve_env(UMCL_API_KEY=key, UMCL_MODEL=chosen.tag, BENTOML_CONTAINERIZED="true")
    with served(env, tmp_path / "serve.log", target=bento) as server:
        files = [("images", ("a.png", small_png(), "image/png"))]
        hosts = [server.url] + [
            f"http://{a}:{server.port}" for a in [non_loopback_address()] if a is not None
        ]
        for url in hosts:
            assert httpx.get(f"{url}/readyz", timeout=10).status_code == 200
            assert httpx.post(f"{url}/classify", files=files, timeout=60).status_code == 401
            wrong = {"Authorization": f"Bearer {secrets.token_urlsafe(32)}"}
            assert (
                httpx.post(f"{url}/classify", files=files, headers=wrong, timeout=60).status_code
                == 401
            )
            answer = httpx.post(
                f"{url}/classify",
                files=files,
                headers={"Authorization": f"Bearer {key}"},
                timeout=60,
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["model"] == chosen.tag != built.tag
    assert key not in (tmp_path / "serve.log").read_text()
