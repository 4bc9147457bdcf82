"""`umcl unify`: the validated sources as one triplet table, labelled and split by patient
(`umcl/ingest/unify.py`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from umcl.stages.common import settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--validated", type=Path, required=True, help="validate's valid rows")
    parser.add_argument("--out", type=Path, required=True, help="the triplet table (Parquet)")
    parser.add_argument(
        "--metrics", type=Path, required=True, help="counts by split and kind (JSON)"
    )


def run(args: argparse.Namespace) -> None:
    from umcl.ingest.unify import unify

    summary = unify(settings(args), args.validated, args.out, args.metrics)
    print(
        f"unify: {summary['rows']} triplets, {summary['patients']} patients, "
        f"splits {summary['by_split']}, kinds {summary['by_kind']}"
    )
