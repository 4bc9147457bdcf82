"""`umcl <command>`: the command's module in `umcl/stages/` takes its arguments and does the
work; this module only dispatches. It imports the chosen command's module alone, so `umcl --help`
answers at once and no pipeline stage depends on another command's code, or on this file."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path

from umcl.errors import UMCLError
from umcl.log_privacy import quiet_stage_libraries
from umcl.stages.common import DEFAULT_PARAMS

STAGES = (
    "demo → (key-fingerprint) → validate → unify → preprocess → train → evaluate → gate → package"
    " → (adapt)"
)
# Each command: its module under umcl/stages/ (the name with "_" for "-") and one line of help.
COMMANDS = {
    "demo": "write synthetic demo studies (DICOM, reports, label tables) under data/raw/demo",
    "preset": "run the pipeline with a preset's params laid over params.yaml, as a DVC experiment",
    "validate": "read every source, validate with Great Expectations, quarantine bad rows",
    "key-fingerprint": "write a one-way fingerprint of the pseudonym key (UMCL_PSEUDONYM_KEY), "
    "so DVC reruns ingestion when it changes",
    "unify": "validated sources → the triplet table (labels, patient-level split)",
    "preprocess": "decode every image once into the memory-mapped uint8 cache",
    "train": "pretrain UMCL on the train split; resumes from the last checkpoint",
    "evaluate": "score a packaged model on the test split of a triplet table",
    "gate": "may the candidate replace the champion? thresholds + no regression",
    "package": "store a candidate that passed the gate, promote it, build the bento",
    "models": "the model store: list models, show the champion (JSON), promote one, roll back",
    "drift": "judge a window of the service's records against the served model's reference",
    "adapt": "fit a model's thresholds (and optionally its prompts) to a site's labelled sample",
    "classify": "score every image of a folder, PACS export or CSV of paths: one row per file, "
    "resumable",
    "export": "write the model for ONNX Runtime or Triton: image encoder graph + findings' prompt "
    "matrix",
    "label": "label free-text reports: one column per label (1, 0, -1, blank)",
}


def stage_module(command: str) -> str:
    return f"umcl.stages.{command.replace('-', '_')}"


def chosen_command(argv: list[str]) -> str | None:
    """The command `argv` names: its first word that is not a global option or its value."""
    words = iter(argv)
    for word in words:
        if word == "--params":
            next(words, None)
        elif not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Every command listed; the arguments of `command` only (its module imported here)."""
    # No abbreviated options: `chosen_command` must see `--params` as written to find the command.
    parser = argparse.ArgumentParser(
        prog="umcl", description=f"UMCL pipeline stages: {STAGES}.", allow_abbrev=False
    )
    parser.add_argument(
        "--params", type=Path, default=DEFAULT_PARAMS, help="settings file (default: params.yaml)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_ in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_, description=help_)
        if name == command:
            stage = importlib.import_module(stage_module(name))
            stage.add_arguments(command_parser)
            command_parser.set_defaults(run=stage.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(chosen_command(argv)).parse_args(argv)
    args.argv = argv  # what a launcher hands on to the processes it starts
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    # Library warnings (pydicom's quote header values) reach the stage log only as "withheld".
    quiet_stage_libraries()
    try:
        args.run(args)
    except UMCLError as exc:  # one the user can fix: one line; anything else keeps its traceback
        message = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        print(f"umcl {args.command}: error: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
