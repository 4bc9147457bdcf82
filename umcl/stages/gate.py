"""`umcl gate`: may the candidate replace the champion? Thresholds, and no regression against the
champion re-scored on the same test split (`umcl/gate.py`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from umcl.stages.common import LOCATOR_HELP, settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--metrics", type=Path, required=True, help="the candidate's `umcl evaluate` metrics"
    )
    parser.add_argument("--triplets", type=Path, required=True, help="the triplet table")
    parser.add_argument("--cache", type=Path, required=True, help="the image cache")
    parser.add_argument("--locator", type=Path, required=True, help=LOCATOR_HELP)
    parser.add_argument("--out", type=Path, required=True, help="the gate's report (JSON)")
    parser.add_argument(
        "--verdict", type=Path, help="the verdict as a number: {passed: 1 | 0} (JSON)"
    )


def run(args: argparse.Namespace) -> None:
    from umcl.gate import run_gate

    report = run_gate(
        settings(args),
        args.metrics,
        args.triplets,
        args.cache,
        args.locator,
        args.out,
        args.verdict,
    )
    champion = report["champion"]
    against = f"champion {champion['tag']}" if champion else "thresholds only (no champion yet)"
    checks = ", ".join(
        f"{c['name']} {c['value']:.3f} ≥ {c['threshold']:.3f}" for c in report["checks"]
    )
    print(f"gate: passed against {against}: {checks or 'every check switched off'} → {args.out}")
