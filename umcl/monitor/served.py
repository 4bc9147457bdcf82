"""The service's side of monitoring: which settings and store it records with, and the facts of
an upload that may be recorded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from umcl.config import ConfigError, MonitorSettings, read_params
from umcl.imaging.images import ImageInfo
from umcl.monitor.store import Recorder, size_class


@dataclass(frozen=True)
class MonitorSwitches:
    """Where the service's monitor takes its settings and keeps its records: `params_file`'s
    `monitor` block when that file exists (UMCL_PARAMS, else ./params.yaml), `store` overriding
    its folder (UMCL_MONITOR_DIR); `enabled` False (UMCL_MONITOR=off) records nothing."""

    enabled: bool = True
    params_file: Path = Path("params.yaml")
    store: Path | None = None


def monitor_settings(switches: MonitorSwitches) -> tuple[MonitorSettings, Path] | None:
    """The settings and the store's folder of a service started here, or None when recording is
    off (`monitor.enabled: false` or UMCL_MONITOR=off). The params file's `monitor` block when it
    is here (a project checkout), else the defaults with the store under BentoML's home (a bento
    serves from its own folder); UMCL_MONITOR_DIR names the store in either case."""
    if not switches.enabled:
        return None
    params = switches.params_file
    block = read_params(params).get("monitor", {}) if params.is_file() else {}
    try:
        settings = MonitorSettings.model_validate(block or {})
    except ValueError as exc:
        raise ConfigError(f"{params}: monitor: {exc}") from None
    if not settings.enabled:
        return None
    if params.is_file():
        return settings, store_folder(settings, params.resolve().parent, switches.store)
    from umcl.registry import bentoml_home

    return settings, (switches.store or bentoml_home() / "monitor").resolve()


def store_folder(settings: MonitorSettings, project: Path, named: Path | None = None) -> Path:
    """Where a project's records are: `named` (UMCL_MONITOR_DIR), else `monitor.store` (relative
    to the project)."""
    return (named or project / settings.store).resolve()


def start_recorder(switches: MonitorSwitches) -> Recorder | None:
    chosen = monitor_settings(switches)
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
