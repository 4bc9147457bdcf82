"""`umcl drift`: a window of the service's records judged against the served model's reference
(`umcl/monitor/`)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from umcl.stages.common import settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--since", default="24h", help="window start: 24h, 7d, … before now, or ISO time"
    )
    parser.add_argument("--until", help="window end (default: now)")
    parser.add_argument("--model", help="umcl:<version> (default: the champion)")
    parser.add_argument(
        "--store", type=Path, help="the records (default: UMCL_MONITOR_DIR, else monitor.store)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("metrics/drift.json"), help="the drift report (JSON)"
    )
    parser.add_argument(
        "--plots", type=Path, default=Path("plots/drift"), help="positive-rate plot"
    )


def run(args: argparse.Namespace) -> None:
    from datetime import UTC, datetime

    from umcl.monitor.report import drift_report, moment, write_report
    from umcl.monitor.served import store_folder

    monitor = settings(args).monitor
    now = datetime.now(UTC)
    until = moment(args.until, now) if args.until else now
    named = os.environ.get("UMCL_MONITOR_DIR", "").strip()
    project = Path(args.params).resolve().parent
    store = args.store or store_folder(monitor, project, Path(named) if named else None)
    report = drift_report(store, monitor, moment(args.since, until), until, args.model)
    write_report(report, args.out, args.plots)
    why = f": {'; '.join(report['reasons'])}" if report.get("reasons") else ""
    why += f" ({report['note']})" if report.get("note") else ""
    print(
        f"drift: {report['verdict']} for {report['model']} over {report['images']} images{why} "
        f"→ {args.out}"
    )
