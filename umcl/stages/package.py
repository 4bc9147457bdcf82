"""`umcl package`: a candidate that passed the gate stored, promoted and built into a bento
(`umcl/package.py`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_bento_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """`--bentofile FILE` or `--no-bento`, not both: the bento's spec is named, never assumed
    (`required`: one of them must be given)."""
    bento = parser.add_mutually_exclusive_group(required=required)
    bento.add_argument("--bentofile", type=Path, help="the bento's spec (bentofile.yaml)")
    bento.add_argument("--no-bento", action="store_true", help="store and promote only")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, required=True, help="the candidate's folder")
    parser.add_argument("--metrics", type=Path, required=True, help="its `umcl evaluate` metrics")
    parser.add_argument("--gate", type=Path, required=True, help="its `umcl gate` report")
    parser.add_argument("--out", type=Path, required=True, help="what was stored and built (JSON)")
    add_bento_arguments(parser)
    parser.add_argument(
        "--reference", type=Path, help="the drift reference `umcl evaluate` wrote, stored with it"
    )


def run(args: argparse.Namespace) -> None:
    from umcl.package import package

    report = package(
        args.model, args.metrics, args.gate, args.out, args.bentofile, reference=args.reference
    )
    stored = "stored" if report["stored"] else "already in the store"
    before = f" (was {report['previous_champion']})" if report["previous_champion"] else ""
    bento = f"; bento {report['bento']}" if report["bento"] else ""
    print(f"package: {report['model']} {stored}, now the champion{before}{bento}")
