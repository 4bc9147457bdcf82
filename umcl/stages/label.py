"""`umcl label`: free-text reports labelled, one column per finding (1, 0, -1, blank), by the
project's labeler (`umcl/ingest/labeler.py`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from umcl.atomic import write_with
from umcl.errors import InputError, MissingInputError
from umcl.stages.common import DEFAULT_PARAMS, settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="CSV with an id column and report text columns")
    parser.add_argument("--id-column", required=True)
    parser.add_argument("--text-columns", nargs="+", required=True)
    parser.add_argument("--out", type=Path, required=True)


def run(args: argparse.Namespace) -> None:
    import polars as pl

    from umcl.ingest.labeler import label_reports
    from umcl.ingest.reports import join_sections
    from umcl.labels import LabelSpace

    if not args.input.is_file():
        raise MissingInputError(f"{args.input}: no such file")
    table = pl.read_csv(args.input, infer_schema=False)
    missing = [c for c in [args.id_column, *args.text_columns] if c not in table.columns]
    if missing:
        raise InputError(f"{args.input}: no column(s) {missing}; columns are {table.columns}")
    texts = [
        join_sections(*(row[c] for c in args.text_columns)) for row in table.iter_rows(named=True)
    ]
    # The label space of --params (its `labels.custom` findings too); outside a project, with no
    # params.yaml, the 14 CheXpert observations.
    no_project = args.params == DEFAULT_PARAMS and not args.params.exists()
    space = LabelSpace() if no_project else LabelSpace.from_settings(settings(args).labels)
    labels = label_reports(texts, space.names, space.phrases)
    out = pl.DataFrame({args.id_column: table[args.id_column]}).with_columns(
        pl.Series(name, [r[name] for r in labels], dtype=pl.Int8) for name in space.names
    )
    write_with(args.out, out.write_csv)
    print(f"label: {out.height} reports labelled → {args.out}")
