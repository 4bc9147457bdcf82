"""`umcl train`: UMCL pretrained on the train split, resuming from its last checkpoint; with
several devices (or nodes), one worker each under torchrun (`umcl/training/`)."""

from __future__ import annotations

import argparse
import os
from functools import partial
from pathlib import Path

from umcl.errors import UMCLError
from umcl.stages.common import settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--triplets", type=Path, required=True, help="the triplet table")
    parser.add_argument("--cache", type=Path, required=True, help="the image cache")
    parser.add_argument("--out", type=Path, required=True, help="the trained model's folder")
    parser.add_argument("--checkpoints", type=Path, required=True, help="where a run resumes from")
    parser.add_argument("--live", type=Path, required=True, help="dvclive metrics and plots")


def run(args: argparse.Namespace) -> None:
    from umcl.model.pretrained import require_weights
    from umcl.training.launch import launcher_command

    params = settings(args)
    launcher = launcher_command(params.train, args.argv)
    if launcher is not None:  # one worker per device (and node), each running this command
        if params.model is not None:  # before any worker starts: one message, not N
            require_weights(params.model)
        import signal
        import subprocess

        from umcl.training.runtime import signalled_when_parent_dies

        # A SIGTERM to this process alone (a cancelled flow) reaches torchrun, which stops its
        # workers; a SIGKILL of the group reaches all of them (umcl/training/runtime.py).
        stop_with_us = partial(signalled_when_parent_dies, signal.SIGTERM)
        done = subprocess.run(launcher, check=False, preexec_fn=stop_with_us)
        if done.returncode != 0:
            raise UMCLError(
                f"the training processes failed (torchrun exit status {done.returncode}); "
                "their messages are above"
            )
        return
    from umcl.train import train

    summary = train(params, args.triplets, args.cache, args.out, args.checkpoints, args.live)
    if os.environ.get("RANK", "0") != "0":
        return  # rank 0 reports for the whole run
    where = f"{summary['world_size']}× {summary['device']}, {summary['precision']}"
    if summary["resumed_from"] == summary["steps"]:
        print(
            f"train: already trained ({summary['steps']} steps, checkpoint of the same params "
            f"and data); model in {args.out}"
        )
    else:
        print(
            f"train: steps {summary['resumed_from']} → {summary['steps']} on {where}; "
            f"loss {summary['first_loss']:.3f} → {summary['final_loss']:.3f}; model in {args.out}"
        )
    best = summary.get("best_val")
    if best is not None and best["zero_shot_auroc"] is not None:
        print(
            f"train: exported step {summary['exported_step']} (train.select); validation zero-shot "
            f"AUROC {best['zero_shot_auroc']:.3f} at the best step {best['step']}"
        )
