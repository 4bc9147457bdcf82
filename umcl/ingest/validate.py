"""Stage `validate`: Great Expectations suites per source kind; failing rows are quarantined.

Each source's rows (from its reader, already de-identified) are checked by a GX suite: required
columns, unique sample ids, label values in {1, 0, -1, blank}, a patient id, non-empty text for
text kinds, an image present and decodable for image kinds. GX has no "decodes as an image"
expectation, so that check decodes every image here and hands GX its verdict as a column
(`image_problem`, which must be empty); so does what the reader found wrong (`problem`: a path
out of the source folder, an undecodable report). Rows that fail anything go to
`quarantine/<source>.parquet` with a `reason`, their native id and their path inside the source
(the quarantine lives beside the raw data, with its sensitivity, so someone can fix the record);
the rest go to `validated/<source>.parquet` with pseudonymous ids only, and the valid rows'
image files to the locator (`locator.py`). `rows_in == rows_valid + rows_quarantined`, always;
what a reader passed over is counted by reason under `skipped` (images of views a source does not
keep also as `excluded_by_view`).
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import polars as pl
from tqdm import tqdm

from umcl.atomic import write_json, write_with
from umcl.config import Settings, SourceKind
from umcl.errors import UMCLError
from umcl.imaging.images import load_image
from umcl.imaging.limits import DecodeLimits, ImageDecodeError
from umcl.imaging.scaled import MIN_DECODED_SIDE
from umcl.ingest.locator import write_locator
from umcl.ingest.pseudonyms import Pseudonymizer, resolve_key
from umcl.ingest.sources import PRIVATE_COLUMNS, VALID_LABEL_VALUES, read_source
from umcl.ingest.views import VIEW_EXCLUDED, VIEW_UNKNOWN
from umcl.labels import LabelSpace

log = logging.getLogger(__name__)
logging.getLogger("great_expectations").setLevel(logging.WARNING)  # its INFO lines are noise here
BASE_COLUMNS = ["sample_id", "source", "kind", "patient_id", "image", "text", "label_origin"]


class ValidationFailed(UMCLError, RuntimeError):
    """A source whose share of bad rows is above `validate.max_bad_fraction`."""


def image_problem(path: str | None, limits: DecodeLimits | None = None) -> str | None:
    """None when the image decodes; otherwise why not (the file is named, no PHI in it)."""
    if path is None:
        return "image_missing: no image path"
    try:
        load_image(path, limits, min_side=MIN_DECODED_SIDE)  # what decodes at full size, too
    except ImageDecodeError as exc:
        code = (
            "image_missing"
            if not Path(path).is_file()
            else getattr(exc, "code", "image_unreadable")
        )
        return f"{code}: {exc}"
    return None


def check_images(
    paths: list[str | None], workers: int = 0, limits: DecodeLimits | None = None
) -> list[str | None]:
    if not paths:
        return []
    workers = workers or os.cpu_count() or 1
    with ProcessPoolExecutor(max_workers=workers) as pool:
        checks = pool.map(partial(image_problem, limits=limits), paths, chunksize=64)
        return list(tqdm(checks, total=len(paths), desc="decode check", unit="img"))


def build_suite(kind: SourceKind, label_names: list[str]):
    """The expectations a source of this kind must meet."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    suite = gx.ExpectationSuite(name=f"umcl_{kind}")
    for column in [*BASE_COLUMNS, *label_names]:
        suite.add_expectation(gxe.ExpectColumnToExist(column=column))
    suite.add_expectation(gxe.ExpectColumnValuesToBeUnique(column="sample_id"))
    suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column="patient_id"))
    suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="problem", value_set=[]))
    for name in label_names:  # blank (null) passes: "not mentioned" is a valid label
        suite.add_expectation(
            gxe.ExpectColumnValuesToBeInSet(column=name, value_set=list(VALID_LABEL_VALUES))
        )
    if kind in ("image_text", "text_label"):
        suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column="text"))
    if kind in ("image_text", "image_label"):
        suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="image_problem", value_set=[]))
    return suite


def _reason(expectation_type: str, column: str, row: dict) -> str:
    if expectation_type == "expect_column_values_to_be_unique":
        return "duplicate_id: sample id appears more than once in the source"
    if column in ("image_problem", "problem"):
        return str(row[column])
    if column == "text":
        return "empty_text: report text is empty or missing"
    if column == "patient_id":
        return "missing_patient: no patient id"
    return f"label_out_of_range: {column} = {row[column]!r}, expected 1, 0, -1 or blank"


def run_suite(rows: pl.DataFrame, kind: SourceKind, label_names: list[str]) -> dict[str, list[str]]:
    """Validate with GX; return sample_id → reasons for every failing row."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = context.data_sources.add_pandas("umcl").add_dataframe_asset(name="rows")
    batch = asset.add_batch_definition_whole_dataframe("all").get_batch(
        batch_parameters={"dataframe": rows.to_pandas()}
    )
    result = batch.validate(
        build_suite(kind, label_names),
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["sample_id"]},
    )
    by_id = {r["sample_id"]: r for r in rows.iter_rows(named=True)}
    reasons: dict[str, list[str]] = {}
    for outcome in result.results:
        if outcome.success:
            continue
        config = outcome.expectation_config
        column = config.kwargs.get("column", "")
        if config.type == "expect_column_to_exist":
            raise ValidationFailed(f"required column '{column}' is missing")
        for entry in outcome.result.get("unexpected_index_list") or []:
            sample_id = entry["sample_id"]
            reason = _reason(config.type, column, by_id[sample_id])
            reasons.setdefault(sample_id, [])
            if reason not in reasons[sample_id]:
                reasons[sample_id].append(reason)
    return reasons


def validate_rows(
    rows: pl.DataFrame,
    kind: SourceKind,
    label_names: list[str],
    workers: int = 0,
    limits: DecodeLimits | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split rows into (valid, quarantined-with-reason). Both keep the reader's private columns."""
    if kind in ("image_text", "image_label"):
        # A record the reader already refused (e.g. its path leaves the source) is not opened.
        unchecked = [
            p
            for p, problem in zip(rows["image_path"], rows["problem"], strict=True)
            if problem is None
        ]
        found = iter(check_images(unchecked, workers, limits))
        problems = [None if problem is not None else next(found) for problem in rows["problem"]]
    else:
        problems = [None] * rows.height
    checked = rows.with_columns(pl.Series("image_problem", problems, dtype=pl.String))
    reasons = run_suite(checked, kind, label_names) if rows.height else {}
    reason_column = pl.Series(
        "reason",
        ["; ".join(reasons.get(s, [])) or None for s in checked["sample_id"]],
        dtype=pl.String,
    )
    checked = checked.with_columns(reason_column).drop("image_problem")
    bad = checked["reason"].is_not_null()
    return checked.filter(~bad).drop("reason"), checked.filter(bad)


def split_reasons(joined: str) -> list[str]:
    """A row's reasons, joined by "; " — only where a new `code: ` follows, since a reason's own
    message may hold a semicolon."""
    return re.split(r"; (?=[a-z_]+: )", joined)


def reason_code(reason: str) -> str:
    return reason.split(":", 1)[0]


def validate_sources(
    settings: Settings, out_dir: Path, quarantine_dir: Path, metrics_path: Path, locator_dir: Path
) -> dict:
    """Validate every configured source; write outputs, counts, and fail on too many bad rows."""
    space = LabelSpace.from_settings(settings.labels)
    workers = settings.preprocess.workers
    out_dir.mkdir(parents=True, exist_ok=True)
    quarantine_dir.mkdir(parents=True, exist_ok=True)
    for stale in Path(locator_dir).glob("*.parquet"):  # a source dropped from params leaves none
        stale.unlink()
    key = resolve_key([s.path for s in settings.data.sources], settings.demo.folder)
    pseudonyms = Pseudonymizer(key)
    limits = DecodeLimits.from_settings(settings.decode)
    report: dict[str, dict] = {}
    for source in settings.data.sources:
        read = read_source(source, space, pseudonyms, limits, settings.validate_.max_report_chars)
        rows = read.rows
        valid, quarantined = validate_rows(rows, source.kind, list(space.names), workers, limits)
        with_images = valid.filter(pl.col("image").is_not_null())
        write_locator(
            locator_dir,
            source.name,
            with_images["image"].to_list(),
            with_images["image_path"].to_list(),
        )
        write_with(out_dir / f"{source.name}.parquet", valid.drop(PRIVATE_COLUMNS).write_parquet)
        kept_apart = quarantined.drop("image_path", "problem")
        write_with(quarantine_dir / f"{source.name}.parquet", kept_apart.write_parquet)
        codes = Counter(
            reason_code(r) for reasons in quarantined["reason"] for r in split_reasons(reasons)
        )
        report[source.name] = {
            "kind": source.kind,
            "rows_in": rows.height,
            "rows_valid": valid.height,
            "rows_quarantined": quarantined.height,
            "reasons": dict(sorted(codes.items())),
            "skipped": read.skipped,
            "excluded_by_view": sum(
                n
                for r, n in read.skipped.items()
                if reason_code(r) in (VIEW_EXCLUDED, VIEW_UNKNOWN)
            ),
        }
        assert rows.height == valid.height + quarantined.height  # nothing is dropped silently
        log.info(
            "%s: %d rows in, %d valid, %d quarantined %s, passed over %s",
            source.name,
            rows.height,
            valid.height,
            quarantined.height,
            dict(codes),
            read.skipped,
        )
    write_json(metrics_path, report)

    limit = settings.validate_.max_bad_fraction
    over = {
        n: r
        for n, r in report.items()
        if r["rows_in"] and r["rows_quarantined"] / r["rows_in"] > limit
    }
    if over:
        details = ", ".join(
            f"{n}: {r['rows_quarantined']}/{r['rows_in']} quarantined {r['reasons']}"
            for n, r in over.items()
        )
        raise ValidationFailed(
            f"bad-row fraction above validate.max_bad_fraction={limit}: {details}. "
            f"See {quarantine_dir}/<source>.parquet for each row and its reason."
        )
    return report
