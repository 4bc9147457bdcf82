"""`umcl preset`: the pipeline with a preset's params laid over params.yaml, as a DVC experiment
(`umcl/dvcops.py`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from umcl.errors import InputError
from umcl.stages.common import DEFAULT_PARAMS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("preset", type=Path, help="a params overlay, e.g. configs/gpu.yaml")
    parser.add_argument("--name", help="the experiment's name (default: the preset's file name)")
    parser.add_argument(
        "--target", default="evaluate", help="the last stage to run (default evaluate)"
    )


def run(args: argparse.Namespace) -> None:
    from umcl.config import dotted, load_settings, read_params
    from umcl.dvcops import exp_run

    if args.params != DEFAULT_PARAMS:
        raise InputError("a preset is laid over params.yaml, the file DVC experiments edit")
    load_settings(args.params, overlay=args.preset)  # refused here, with the key, if invalid
    overrides, replaced = dotted(read_params(args.preset))
    name = args.name or args.preset.stem
    exp_run(Path("."), name, overrides, args.target, replaced)
    print(
        f"preset: experiment {name} ran to {args.target} with {len(overrides)} params from "
        f"{args.preset}; `dvc exp show`, then `dvc exp apply {name}` to keep it"
    )
