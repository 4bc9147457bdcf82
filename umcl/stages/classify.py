"""`umcl classify`: every image of a folder, PACS export or CSV of paths scored into one row per
file, resumable (`umcl/batch_classify.py`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from umcl.stages.common import settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", type=Path, help="a folder, or a CSV with a `path` column")
    parser.add_argument("--out", type=Path, required=True, help="predictions .parquet or .csv")
    parser.add_argument("--model", default="umcl:champion", help="a model directory or umcl:<tag>")
    parser.add_argument("--findings", nargs="+", help="finding names (default: the model's labels)")
    parser.add_argument(
        "--views",
        nargs="+",
        default=["PA", "AP", "UNKNOWN"],
        help="views scored (a source's `views`; default: frontal and unstated)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=64, help="files per forward pass and part"
    )
    parser.add_argument("--workers", type=int, default=1, help="decode processes (1: in this one)")
    parser.add_argument(
        "--not-in",
        type=Path,
        metavar="DIR",
        help="leave out files in the predictions already in DIR",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="score again into an existing --out"
    )


def run(args: argparse.Namespace) -> None:
    from umcl.batch_classify import BatchSettings, classify_source
    from umcl.config import normalise_view
    from umcl.imaging.limits import DecodeLimits

    batch = BatchSettings(
        batch_size=args.batch_size,
        workers=args.workers,
        overwrite=args.overwrite,
        views=tuple(normalise_view(v) for v in args.views),
        limits=DecodeLimits.from_settings(settings(args).decode),
    )
    counts = classify_source(args.source, args.out, args.model, args.findings, args.not_in, batch)
    print(json.dumps({"out": str(args.out), **counts}))
