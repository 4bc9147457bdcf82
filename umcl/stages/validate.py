"""`umcl validate`: every source read, de-identified, checked with Great Expectations, bad rows
quarantined with their reasons (`umcl/ingest/validate.py`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from umcl.stages.common import LOCATOR_HELP, settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", type=Path, required=True, help="valid rows, a Parquet file per source"
    )
    parser.add_argument(
        "--quarantine", type=Path, required=True, help="refused rows and their reasons"
    )
    parser.add_argument("--metrics", type=Path, required=True, help="counts per source (JSON)")
    parser.add_argument("--locator", type=Path, required=True, help=LOCATOR_HELP)


def run(args: argparse.Namespace) -> None:
    from umcl.ingest.validate import validate_sources

    report = validate_sources(settings(args), args.out, args.quarantine, args.metrics, args.locator)
    for name, r in report.items():
        print(
            f"validate: {name}: {r['rows_in']} in = {r['rows_valid']} valid + "
            f"{r['rows_quarantined']} quarantined {r['reasons']}; passed over {r['skipped']}"
        )
