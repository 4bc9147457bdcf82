"""`umcl models`: the model store — list, show the champion, promote, roll back
(`umcl/registry.py`)."""

from __future__ import annotations

import argparse
import json

from umcl.errors import InputError, MissingInputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["list", "champion", "promote", "rollback"])
    parser.add_argument("tag", nargs="?", help="umcl:<version> (promote)")


def run(args: argparse.Namespace) -> None:
    from umcl import registry

    if args.action == "list":
        list_models()
    elif args.action == "promote":
        if not args.tag:
            raise InputError("umcl models promote needs a TAG (see `umcl models list`)")
        entry = registry.promote(args.tag)
        print(
            f"models: {entry.tag} is the champion; "
            f"`bentoml build --arg model={entry.tag}` makes its bento"
        )
    elif args.action == "champion":
        champion = registry.champion()
        if champion is None:
            raise MissingInputError(f"no champion in the model store ({registry.store_path()})")
        keys = ("data_version", "params_sha256", "git", "gate")
        print(json.dumps({"tag": champion.tag, **{k: champion.metadata.get(k) for k in keys}}))
    else:
        restored, demoted = registry.rollback()
        print(f"models: rolled back {demoted.tag}; {restored.tag} is the champion again")


def list_models() -> None:
    from umcl import registry
    from umcl.gate import gated_metrics

    rows = registry.entries()
    if not rows:
        print(f"no UMCL models in the store ({registry.store_path()})")
        return
    print(f"{'tag':<28} {'created (UTC)':<19} {'zero-shot AUROC':>15} {'R@5':>6}  champion")
    for e in rows:
        scores = e.metadata.get("gate") or gated_metrics(e.metadata.get("metrics", {}))
        shown = [
            f"{scores.get(k):.3f}" if scores.get(k) is not None else "-"
            for k in ("zero_shot_macro_auroc", "recall_at_5")
        ]
        rolled_back = e.labels.get(registry.ROLLED_BACK) == "true"
        mark = "*" if e.champion else ("rolled back" if rolled_back else "")
        print(f"{e.tag:<28} {e.created:%Y-%m-%d %H:%M:%S} {shown[0]:>15} {shown[1]:>6}  {mark}")
