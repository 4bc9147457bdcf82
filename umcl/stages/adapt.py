"""`umcl adapt`: a model's thresholds (and optionally its prompts) refitted on a site's labelled
sample (`umcl/adapt.py`); with `--deploy`, then evaluated, gated and packaged as any candidate;
with `--fingerprint`, only the sample's content hash (the DVC stage `site_sample`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from umcl.atomic import write_json, write_text
from umcl.errors import InputError
from umcl.stages.common import LOCATOR_HELP, settings
from umcl.stages.package import add_bento_arguments

if TYPE_CHECKING:
    from umcl.config import Settings

# What `--deploy` evaluates, gates and packages with: the project's own test split and bento.
DEPLOY_INPUTS = ("triplets", "cache", "locator")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="a model directory or umcl:<tag> (not with --fingerprint)")
    parser.add_argument("--labels", type=Path, help="the site's sample CSV (default: adapt.labels)")
    parser.add_argument("--out", type=Path, help="the adapted model's directory (replaced)")
    parser.add_argument(
        "--report", type=Path, help="what was refitted, refused and measured (JSON)"
    )
    parser.add_argument(
        "--prompt-tuning",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also tune the prompt contexts (default: adapt.prompt_tuning)",
    )
    parser.add_argument(
        "--fingerprint", type=Path, help="only write the sample's content hash here"
    )
    deploy = parser.add_argument_group(
        "--deploy: the adapted model through evaluate, gate and package"
    )
    deploy.add_argument("--deploy", type=Path, metavar="DIR", help="their reports' folder")
    deploy.add_argument(
        "--triplets", type=Path, help="the triplet table whose test split is scored"
    )
    deploy.add_argument("--cache", type=Path, help="the image cache")
    deploy.add_argument("--locator", type=Path, help=LOCATOR_HELP)
    add_bento_arguments(parser, required=False)  # needed with --deploy only: checked in `run`


def run(args: argparse.Namespace) -> None:
    params = settings(args)
    labels = args.labels or params.adapt.labels
    if args.fingerprint:  # the DVC stage's trigger: the sample's content, or "none"
        from umcl.site_sample import sample_fingerprint

        write_text(args.fingerprint, sample_fingerprint(labels, params.adapt.max_images) + "\n")
        return
    if labels is None:
        message = "adapt.labels is null: no site sample, nothing adapted"
        if args.report:
            write_json(args.report, {"adapted": False, "reason": message}, indent=None)
        print(f"adapt: {message}")
        return
    if args.out is None or args.model is None:
        raise InputError("umcl adapt needs --model (a directory or umcl:<tag>) and --out DIR")
    if args.deploy:
        missing = [f"--{name}" for name in DEPLOY_INPUTS if getattr(args, name) is None]
        if args.bentofile is None and not args.no_bento:
            missing.append("--bentofile (or --no-bento)")
        if missing:
            raise InputError(f"umcl adapt --deploy needs {', '.join(missing)}")
    from umcl.adapt import adapt_model

    report = adapt_model(str(args.model), labels, args.out, params, args.prompt_tuning)
    refitted = [n for n, f in report["findings"].items() if f["refitted"]]
    kept = {n: f["reason"] for n, f in report["findings"].items() if not f["refitted"]}
    sample = report["sample"]
    tuned = report["prompt_tuning"].get("steps")
    print(
        f"adapt: {sample['rows_in']} rows = {sample['kept']} images used + {sample['refused']} "
        f"refused; refitted {refitted or 'no finding'}"
        + (f"; prompts tuned {tuned} steps" if tuned else "")
        + f" → {args.out}"
    )
    for name, reason in kept.items():
        if name in sample["findings"]:
            print(f"adapt: {name} not refitted: {reason}")
    if args.deploy:
        report["deployed"] = deploy_adapted(args, params)
    if args.report:
        write_json(args.report, {"adapted": True, **report})


def deploy_adapted(args: argparse.Namespace, params: Settings) -> dict:
    """The adapted model through evaluate → gate → package, as any candidate goes."""
    from umcl.evaluate import run_evaluation
    from umcl.gate import run_gate
    from umcl.package import package

    metrics, gate = args.deploy / "eval.json", args.deploy / "gate.json"
    run_evaluation(
        args.out,
        args.triplets,
        args.cache,
        params.evaluate,
        params.labels.uncertainty,
        params.seed,
        metrics,
    )
    run_gate(params, metrics, args.triplets, args.cache, args.locator, gate)
    # The drift reference is the site sample's, written into the model directory by adapt.
    packaged = package(args.out, metrics, gate, args.deploy / "package.json", args.bentofile)
    print(
        f"adapt: {packaged['model']} passed the gate and is the champion "
        f"(was {packaged['previous_champion']})"
    )
    return {key: packaged[key] for key in ("model", "previous_champion", "bento")}
