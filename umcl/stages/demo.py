"""`umcl demo`: the synthetic demo studies (`umcl/demo/generator.py`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from umcl.errors import InputError
from umcl.stages.common import settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, help="override demo.out")


def run(args: argparse.Namespace) -> None:
    from umcl.demo.generator import generate_demo

    params = settings(args)
    out = args.out or params.demo.folder
    if out is None:
        raise InputError("demo.out is [] (the demo is off): name a folder with --out")
    manifest = generate_demo(params.demo, out, params.seed, params.preprocess.workers)
    print(
        f"demo: wrote {len(manifest['records'])} image studies and the report exports under {out} "
        f"({len(manifest['faults'])} planted faults listed in manifest.json)"
    )
