"""Everything the service can be told, read once from the environment when it starts
(`ServingSettings.from_env`) and handed to the parts that need it: the access check
(`umcl/auth.py`), the upload guard (`umcl/upload_guard.py`), the decoder's limits, the request
limits of the routes and the monitor's recorder. Reading the environment is all it does: the
params file (`monitor` block) and the model store are read when the service starts, not here."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from umcl.auth import PROXIES_VARIABLE, api_key, requested_host
from umcl.imaging.images import DecodeLimits
from umcl.imaging.limits import env_number
from umcl.monitor.served import MonitorSwitches

MB = 2**20
OFF = frozenset({"0", "false", "no", "off"})


def env_switch(environ: Mapping[str, str], name: str, default: bool) -> bool:
    """A yes/no setting: 1/true/yes/on or 0/false/no/off (any case); anything else names the
    variable in a ValueError."""
    raw = environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in OFF:
        return False
    raise ValueError(f"{name}={raw!r} is not one of on/off, true/false, yes/no, 1/0")


@dataclass(frozen=True)
class RequestLimits:
    """What one request may hold. The upload guard checks the bytes and the count as the body
    streams; the service checks pixels from the images' headers before anything decodes."""

    upload_mb: float = 64  # UMCL_MAX_UPLOAD_MB: one file
    request_mb: float = 256  # UMCL_MAX_REQUEST_MB: the whole body
    images: int = 64  # UMCL_MAX_IMAGES
    request_pixels: int = 256_000_000  # UMCL_MAX_REQUEST_PIXELS: every image's pixels together
    decode_mb: float = 256  # UMCL_MAX_DECODE_MB: decoded samples in flight across requests
    explain_images: int = 4  # UMCL_MAX_EXPLAIN_IMAGES: /explain computes a map per finding

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> RequestLimits:
        default = cls()

        def whole(name: str, value: int) -> int:
            return int(env_number(name, value, integer=True, environ=environ))

        return cls(
            upload_mb=env_number("UMCL_MAX_UPLOAD_MB", default.upload_mb, environ=environ),
            request_mb=env_number("UMCL_MAX_REQUEST_MB", default.request_mb, environ=environ),
            images=whole("UMCL_MAX_IMAGES", default.images),
            request_pixels=whole("UMCL_MAX_REQUEST_PIXELS", default.request_pixels),
            decode_mb=env_number("UMCL_MAX_DECODE_MB", default.decode_mb, environ=environ),
            explain_images=whole("UMCL_MAX_EXPLAIN_IMAGES", default.explain_images),
        )


@dataclass(frozen=True)
class ServingSettings:
    api_key: str | None = None  # UMCL_API_KEY; None: loopback only (umcl/auth.py)
    host: str = "127.0.0.1"  # what `bentoml serve` binds (--host, BENTOML_HOST)
    trusted_proxies: str = ""  # UMCL_TRUSTED_PROXIES: whose X-Forwarded-For the log believes
    model: str | None = None  # UMCL_MODEL; None: the bento's own model, else the champion
    decode: DecodeLimits = field(default_factory=DecodeLimits)  # UMCL_MAX_PIXELS, …_MODALITIES
    requests: RequestLimits = field(default_factory=RequestLimits)
    adaptive_batching: bool = True  # UMCL_ADAPTIVE_BATCHING
    max_batch_size: int = 32  # UMCL_MAX_BATCH_SIZE
    monitor: MonitorSwitches = field(default_factory=MonitorSwitches)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ServingSettings:
        """The settings as the environment gives them; a malformed value raises ValueError (or
        `AuthSetupError` for a weak key) naming the variable."""
        store = environ.get("UMCL_MONITOR_DIR", "").strip()
        return cls(
            api_key=api_key(environ),
            host=requested_host(environ),
            trusted_proxies=environ.get(PROXIES_VARIABLE, "").strip(),
            model=environ.get("UMCL_MODEL", "").strip() or None,
            decode=DecodeLimits.from_env(environ),
            requests=RequestLimits.from_env(environ),
            adaptive_batching=env_switch(environ, "UMCL_ADAPTIVE_BATCHING", True),
            max_batch_size=int(
                env_number("UMCL_MAX_BATCH_SIZE", 32, integer=True, environ=environ)
            ),
            monitor=MonitorSwitches(
                enabled=env_switch(environ, "UMCL_MONITOR", True),
                params_file=Path(environ.get("UMCL_PARAMS", "").strip() or "params.yaml"),
                store=Path(store) if store else None,
            ),
        )
