"""`umcl evaluate`: a packaged model scored on the test split of a triplet table
(`umcl/evaluate.py`), with its model card and the monitor's drift reference."""

from __future__ import annotations

import argparse
from pathlib import Path

from umcl.errors import MissingInputError
from umcl.stages.common import settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, required=True, help="the model's folder")
    parser.add_argument("--triplets", type=Path, required=True, help="the triplet table")
    parser.add_argument(
        "--cache", type=Path, required=True, help="image cache holding the table's images"
    )
    parser.add_argument("--metrics", type=Path, required=True, help="the full report (JSON)")
    parser.add_argument("--headline", type=Path, help="the figures experiments compare (JSON)")
    parser.add_argument(
        "--plots", type=Path, help="folder for ROC curves (one CSV per prompt kind)"
    )
    parser.add_argument(
        "--reliability",
        type=Path,
        help="folder for reliability diagrams (before/after calibration)",
    )
    parser.add_argument("--card", type=Path, help="write a model card (markdown) here")
    parser.add_argument(
        "--reference", type=Path, help="the monitor's drift reference (umcl/monitor/reference.py)"
    )


def run(args: argparse.Namespace) -> None:
    from umcl.evaluate import run_evaluation
    from umcl.model_card import write_model_card
    from umcl.monitor.reference import reference_writer

    params = settings(args)
    for path in (args.model, args.triplets, args.cache):
        if not path.exists():
            raise MissingInputError(f"{path}: not there; run the stages before evaluate")
    scored = (
        reference_writer(args.reference, params.monitor, params.seed) if args.reference else None
    )
    metrics = run_evaluation(
        args.model,
        args.triplets,
        args.cache,
        params.evaluate,
        params.labels.uncertainty,
        params.seed,
        args.metrics,
        args.plots,
        reliability_dir=args.reliability,
        headline_path=args.headline,
        scored=scored,
    )
    if args.card:
        write_model_card(args.model, args.card, metrics)
    shown = [
        f"zero-shot {kind} macro AUROC {r['macro_auroc']:.3f}"
        for kind, r in metrics["zero_shot"].items()
        if r["macro_auroc"] is not None
    ]
    if "retrieval" in metrics:
        shown.append(f"image→text R@5 {metrics['retrieval']['image_to_text']['recall@5']:.3f}")
    if metrics.get("linear_probe", {}).get("macro_auroc") is not None:
        shown.append(f"linear probe macro AUROC {metrics['linear_probe']['macro_auroc']:.3f}")
    print(f"evaluate: {'; '.join(shown)} → {args.metrics}")
