"""`umcl preprocess`: every image decoded once into the memory-mapped cache
(`umcl/data/preprocess.py`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from umcl.stages.common import LOCATOR_HELP, settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--triplets", type=Path, required=True, help="the triplet table")
    parser.add_argument("--locator", type=Path, required=True, help=LOCATOR_HELP)
    parser.add_argument("--out", type=Path, required=True, help="the image cache's folder")


def run(args: argparse.Namespace) -> None:
    from umcl.data.preprocess import build_cache
    from umcl.imaging.limits import DecodeLimits

    params = settings(args)
    meta = build_cache(
        args.triplets,
        args.out,
        params.preprocess.image_size,
        args.locator,
        params.preprocess.workers,
        DecodeLimits.from_settings(params.decode),
    )
    print(
        f"preprocess: {meta['count']} images cached at {meta['size']}×{meta['size']} in {args.out}"
    )
