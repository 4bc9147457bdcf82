"""`umcl drift`: one window of the store judged against the served model's reference, written as
`metrics/drift.json`, a plot of each finding's positive rate (reference beside window) and a
markdown summary (the monitor flow's Prefect artifact)."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from umcl import registry
from umcl.atomic import write_json
from umcl.config import MonitorSettings
from umcl.errors import InputError
from umcl.monitor.drift import DRIFT, TOO_FEW, Window, detect, window_of
from umcl.monitor.reference import model_reference
from umcl.monitor.store import record_batches, window_files

SPAN = re.compile(r"^(\d+)\s*([mhdw])$")
UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def moment(text: str, now: datetime | None = None) -> datetime:
    """ "24h", "7d", "30m", "2w" (that long before `now`) or an ISO 8601 time (UTC unless it
    says otherwise), in UTC as the store keeps times."""
    now = now or datetime.now(UTC)
    span = SPAN.match(text.strip().lower())
    try:
        if span:
            return now - timedelta(**{UNITS[span.group(2)]: int(span.group(1))})
        parsed = datetime.fromisoformat(text.strip())
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    except ValueError:
        raise InputError(
            f"{text[:40]!r} is not a time: give a span before now (24h, 7d, 30m, 2w) or an ISO "
            "time (2026-11-29T08:00)"
        ) from None
    except OverflowError:  # a span too long, or a time whose UTC falls outside years 1–9999
        raise InputError(f"{text[:40]!r} lies outside the calendar's years 1 to 9999") from None


def drift_report(
    store: Path,
    settings: MonitorSettings,
    since: datetime,
    until: datetime,
    model: str | None = None,
    seed: int = 0,
) -> dict:
    """The report of [since, until) for `model` (default: the champion), with the window of the
    same length before it as the mix's baseline."""
    if until <= since:
        raise InputError(
            f"the window is empty: {since.isoformat()} is not before {until.isoformat()}"
        )
    entry = registry.get(model) if model else registry.champion()
    if entry is None:
        raise InputError("no champion in the model store: name a model with --model")
    reference = model_reference(entry.path, entry.tag)
    dim = reference.mean.shape[0]
    try:
        start_before = since - (until - since)
    except OverflowError:
        raise InputError(
            f"the window from {since.isoformat()} is too long to have one before it"
        ) from None
    unreadable: set[str] = set()

    def window(start: datetime, end: datetime) -> Window:
        files = window_files(store, start, end)  # the same files for both passes

        def batches() -> Iterator[pa.Table]:
            return record_batches(store, files, entry.tag, start, end, unreadable)

        return window_of(batches, dim, reference.thresholds, settings.max_images, seed)

    current, before = window(since, until), window(start_before, since)
    report = detect(
        reference, current, before, settings, model=entry.tag, since=since, until=until, seed=seed
    )
    report["unreadable_files"] = sorted(unreadable)
    if current.records == 0 and before.records == 0:
        # Most often the service records elsewhere (a bento serves from $BENTOML_HOME/monitor).
        report["note"] = (
            f"no records of {entry.tag} in {store} in this window or the one before: is the "
            "service recording there (UMCL_MONITOR_DIR, monitor.enabled)?"
        )
    return report


def write_report(report: dict, out: Path, plot_dir: Path | None) -> None:
    write_json(out, report)
    if plot_dir is None or "prediction" not in report:
        return
    plot_dir.mkdir(parents=True, exist_ok=True)
    with (plot_dir / "positive_rate.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["finding", "source", "positive_rate"])
        for name, row in report["prediction"]["findings"].items():
            writer.writerow([name, "reference", row["reference_rate"]])
            writer.writerow([name, "window", row["window_rate"]])


def markdown(report: dict) -> str:
    """The report as people read it: verdict, why, and the three tests."""
    lines = [
        f"## Drift: {report['verdict']}",
        "",
        f"Model `{report['model']}`, window {report['since']} → {report['until']}: "
        f"{report['images']} classified images, {report['quality']['uploads']} uploads.",
        "",
    ]
    if report["verdict"] == TOO_FEW:
        lines.append(f"Fewer than {report['min_images']} images: no input or prediction test.")
    if report.get("note"):
        lines.append(f"**Note:** {report['note']}")
    for reason in report.get("reasons", []):
        lines.append(f"- **{reason}**")
    if "input" in report:
        i = report["input"]
        each = ", ".join(f"{name} p = {t['p_value']:.3g}" for name, t in i["tests"].items())
        lines += [
            "",
            f"Input: {each} against {i['reference_images']} reference images "
            f"(together p = {i['p_value']:.3g}).",
        ]
    if "prediction" in report:
        lines += ["", "| finding | reference rate | window rate | p |", "|---|---:|---:|---:|"]
        for name, row in report["prediction"]["findings"].items():
            mark = " **drift**" if name in report["prediction"]["drifted"] else ""
            lines.append(
                f"| {name}{mark} | {row['reference_rate']:.3f} | {row['window_rate']:.3f} | "
                f"{row['p_value']:.2g} |"
            )
    quality = report["quality"]
    lines += [
        "",
        f"Refused uploads: {quality['failure_rate']:.1%} {quality['refused'] or ''}",
        f"Input mix: {quality['mix']}",
    ]
    if quality["unusable_records"]:
        lines.append(f"Records without finite embeddings (left out): {quality['unusable_records']}")
    if report.get("unreadable_files"):
        lines.append(f"Unreadable store files (left out): {report['unreadable_files']}")
    return "\n".join(lines) + "\n"


def drifted(report: dict) -> bool:
    return report["verdict"] == DRIFT
