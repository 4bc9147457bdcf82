"""The image locator: pseudonymous image key → file, the one place where a key meets a path.

Triplets name images by key only (`pseudonyms.py`); paths inside a source carry native ids
(MIMIC's `p10001263/s5000…`, CheXpert's `patient00001/…`). The locator is written by `validate`
and read only by the stages that decode images (`preprocess`, and the gate when it decodes the
test images again), so it has the sensitivity of the raw data it points into and is never
packaged with a model.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from umcl.atomic import write_with
from umcl.errors import UMCLError

SCHEMA = {"image": pl.String, "path": pl.String}


class LocatorError(UMCLError, ValueError):
    """An image key that the locator does not know: the triplets and the locator disagree."""


def write_locator(directory: Path, source: str, keys: list[str], paths: list[str]) -> None:
    frame = pl.DataFrame({"image": keys, "path": paths}, schema=SCHEMA)
    write_with(directory / f"{source}.parquet", frame.write_parquet)


def read_locator(directory: Path) -> dict[str, str]:
    files = sorted(Path(directory).glob("*.parquet"))
    if not files:
        raise LocatorError(f"{directory}: no image locator; run the validate stage first")
    table = pl.concat([pl.read_parquet(f) for f in files])
    return dict(zip(table["image"], table["path"], strict=True))


def image_files(keys: list[str], directory: Path) -> list[str]:
    """The file of each image key, in order."""
    locator = read_locator(directory)
    unknown = [k for k in keys if k not in locator]
    if unknown:
        raise LocatorError(
            f"{len(unknown)} image keys (e.g. {unknown[0]}) are not in the locator at {directory}; "
            "rerun validate and unify"
        )
    return [locator[k] for k in keys]
