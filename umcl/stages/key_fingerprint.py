"""`umcl key-fingerprint`: a one-way fingerprint of the pseudonym key, so that DVC reruns
ingestion when the key changes (`umcl/ingest/pseudonyms.py`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from umcl.atomic import write_text
from umcl.stages.common import settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="the fingerprint (one line)")


def run(args: argparse.Namespace) -> None:
    from umcl.ingest.pseudonyms import fingerprint, resolve_key

    params = settings(args)
    key = resolve_key([s.path for s in params.data.sources], params.demo.folder)
    write_text(args.out, fingerprint(key) + "\n")
