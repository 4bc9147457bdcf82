"""The service's side of monitoring: which settings and store it records with, and the facts of
an upload that may be recorded."""

from __future__ import annotations

import os
from pathlib import Path

from umcl.config import ConfigError, MonitorSettings, read_params
from umcl.imaging.images import ImageInfo
from umcl.monitor.store import Recorder, size_class

OFF = {"0", "false", "no", "off"}


def params_file() -> Path:
    """The params file a service reads its `monitor` block from: UMCL_PARAMS, else ./params.yaml."""
    return Path(os.environ.get("UMCL_PARAMS") or "params.yaml")


def monitor_settings(params: Path | None = None) -> tuple[MonitorSettings, Path] | None:
    """The settings and the store's folder of a service started here, or None when recording is
    off (`monitor.enabled: false` or UMCL_MONITOR=off). The params file's `monitor` block when it
    is here (a project checkout), else the defaults with the store under BentoML's home (a bento
    serves from its own folder); UMCL_MONITOR_DIR names the store in either case."""
    if os.environ.get("UMCL_MONITOR", "on").strip().lower() in OFF:
        return None
    params = params or params_file()
    block = read_params(params).get("monitor", {}) if params.is_file() else {}
    try:
        settings = MonitorSettings.model_validate(block or {})
    except ValueError as exc:
        raise ConfigError(f"{params}: monitor: {exc}") from None
    if not settings.enabled:
        return None
    if params.is_file():
        return settings, store_folder(settings, params.resolve().parent)
    from umcl.registry import bentoml_home

    default = bentoml_home() / "monitor"
    return settings, Path(os.environ.get("UMCL_MONITOR_DIR") or default).resolve()


def store_folder(settings: MonitorSettings, project: Path) -> Path:
    """Where a project's records are: UMCL_MONITOR_DIR, else `monitor.store` (relative to the
    project)."""
    if os.environ.get("UMCL_MONITOR_DIR"):
        return Path(os.environ["UMCL_MONITOR_DIR"]).resolve()
    return (project / settings.store).resolve()


def start_recorder(params: Path | None = None) -> Recorder | None:
    chosen = monitor_settings(params)
    if chosen is None:
        return None
    settings, store = chosen
    return Recorder(
        store,
        flush_records=settings.flush_records,
        flush_seconds=settings.flush_seconds,
        retention_days=settings.retention_days,
    )


def decode_facts(info: ImageInfo) -> dict:
    """How an upload was encoded, in terms that say nothing of whose image it is."""
    return {
        "format": info.format,
        "bits": info.bits,
        "photometric": info.photometric,
        "modality": info.modality,
        "size_class": size_class(info.width, info.height),
    }
