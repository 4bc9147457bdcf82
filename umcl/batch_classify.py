"""`umcl classify SOURCE --out predictions.parquet`: every image file of a folder, a PACS export or
a CSV of paths scored by a saved model, one row per file.

SOURCE is a folder (every file under it, sorted) or a CSV with a `path` column (paths relative to
the CSV's folder, or absolute). Each file is taken as ingestion takes it: a DICOM file (known by its
preamble, whatever its name) is routed by its header (`umcl/ingest/pacs.py: route`: a structured
report, a For Processing image, a modality out of scope, a header cut short), then held to the
views rule (`umcl/ingest/views.py`); a PNG or JPEG by its suffix; then decoded within the decode
limits exactly as `umcl.load(...).classify` decodes it. Every file gets a row:

    path      the file as the folder walk or the CSV gives it (a name that is not UTF-8 with
              its odd bytes as \\xNN)
    file      the absolute path it was read from, links resolved: one file is one row, however
              it was listed
    status    classified | refused (could not be scored: `code` and `message` say why) |
              skipped (not an image to score: a lateral, a report object, a text file)
    study, series, view   from a DICOM header, where it has them
    model     umcl:<version> of the model that scored it (the store's tag for its weights and
              calibration, umcl/registry.py)
    <finding>.probability, <finding>.positive   for each finding, when classified

Resumable: rows are written a batch at a time into `<out>.parts/` (each part written whole, then
renamed into place), and a run that finds parts scores only the files they do not hold; when
every file is scored, the parts become `out` (CSV or Parquet by its suffix). A killed run, run
again, writes no row twice and loses none; resumed with another source, model, findings, views or
decode limits, it is refused (`run.json` in the parts says what it was started with), and a
second run on the same `out` while one is writing is refused (a lock in the parts). `not_in` (a
folder of earlier predictions) leaves out files scored before, by `file`: the scheduled flow
(`flows/score.py`) scores only new files. The walk leaves out `out`, its parts and the
predictions in `not_in`; in a folder source, a link that leads out of the folder or loops gets a
refused row, as ingestion refuses it, and a linked folder a skipped one (FIFOs, sockets and
devices are never opened: counted as `not_listed`, with folders that cannot be listed).

The predictions name the site's files and studies: like the quarantine (data/README.md), they
stay at the site. What is printed or logged is counts.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import multiprocessing
import os
import shutil
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import polars as pl
from tqdm import tqdm

from umcl.atomic import write_text, write_with
from umcl.data.preprocess import decode_to_square
from umcl.errors import InputError, MissingInputError
from umcl.imaging.limits import IMAGE_MISSING, IMAGE_UNREADABLE, DecodeLimits, ImageDecodeError
from umcl.ingest.records import Skipped, contained, read_user_csv, suffix_kind, walk_files
from umcl.ingest.views import excluded_view

log = logging.getLogger(__name__)

PATH_COLUMN = "path"
CLASSIFIED, REFUSED, SKIPPED = "classified", "refused", "skipped"
RASTER_SUFFIXES = {".png", ".jpg", ".jpeg"}  # DICOM files are known by their preamble
FACT_COLUMNS = {
    "path": pl.String,
    "file": pl.String,
    "status": pl.String,
    "code": pl.String,
    "message": pl.String,
    "study": pl.String,
    "series": pl.String,
    "view": pl.String,
    "model": pl.String,
}
FILE_COLUMN = "file"  # the row's key
RUN_FILE = "run.json"  # in the parts folder: what a run started with
LOCK_FILE = ".lock"  # in the parts folder: held while a run writes
PARTS_SUFFIX = ".parts"
PREDICTION_SUFFIXES = {".parquet", ".csv"}
MAX_CSV_BYTES = 256 << 20  # a list of paths larger than this is refused before it is read


@dataclass(frozen=True)
class Listed:
    path: str  # as the walk or the CSV gives it, as text
    file: Path  # where it is read from
    key: str  # the absolute path, links resolved, as text: the row's key
    # Why it is not opened, "code: why": a link out of a folder source or a loop (refused), a
    # linked folder (skipped).
    problem: str | None = None
    refused: bool = False


def as_text(path: str | Path) -> str:
    """A path as text that any table takes: bytes of a name that is not UTF-8 as \\xNN."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def listed(
    given: str | Path, file: Path, problem: str | None = None, refused: bool = False
) -> Listed:
    return Listed(as_text(given), file, as_text(os.path.realpath(file)), problem, refused)


@dataclass
class Examined:
    """One file's row facts and, when it can be scored, its (S, S) square."""

    facts: dict[str, str | None]
    square: np.ndarray | None = None


# -- which files ------------------------------------------------------------------------------------


def list_source(source: Path, leave_out: Callable[[Listed], bool]) -> tuple[list[Listed], int]:
    """The files a source holds, each once (by `key`), but those `leave_out` names; and how many
    entries the walk passed over without a path to give a row to (a FIFO, socket or device, a
    folder that cannot be listed)."""
    if source.is_dir():
        found, passed = [], 0
        for item in walk_files(source):
            if isinstance(item, Skipped) and item.path is None:
                passed += 1
            elif isinstance(item, Skipped):  # a linked folder: a skipped row
                found.append(listed(item.path, item.path, item.reason))
            else:
                _, problem = contained(source, item.relative_to(source))
                found.append(listed(item, item, problem, refused=problem is not None))
    elif source.is_file() and source.suffix.lower() == ".csv":
        found, passed = _listed_in_csv(source), 0
    elif source.exists():
        raise InputError(f"{source}: neither a folder nor a CSV with a `{PATH_COLUMN}` column")
    else:
        raise MissingInputError(f"{source}: no such folder or CSV")
    unique = {}
    for item in found:  # a file listed twice (two spellings, a link) is one file: scored once
        if not leave_out(item):
            unique.setdefault(item.key, item)
    return list(unique.values()), passed


def _listed_in_csv(table: Path) -> list[Listed]:
    rows = read_user_csv(table, [PATH_COLUMN], MAX_CSV_BYTES, "a list of paths")
    found = []
    for row in rows:
        given = row[PATH_COLUMN].strip()
        if given:
            file = Path(given)
            found.append(listed(given, file if file.is_absolute() else table.parent / file))
    return found


# -- one file -----------------------------------------------------------------------------------------


def facts_row(
    item: Listed,
    status: str,
    code: str | None = None,
    message: str | None = None,
    **header: str | None,
) -> dict[str, str | None]:
    return {
        "path": item.path,
        "file": item.key,
        "status": status,
        "code": code,
        "message": message,
        "study": header.get("study"),
        "series": header.get("series"),
        "view": header.get("view"),
    }


def coded(reason: str) -> tuple[str, str | None]:
    """A reason "code: why" (records.Skipped) as (code, why)."""
    code, _, why = reason.partition(": ")
    return code, why or None


def examine(item: Listed, size: int, limits: DecodeLimits, views: list[str]) -> Examined:
    """A file → its row facts and square: routed, held to the views, decoded within the limits.
    Runs in the decode workers; a bad file is a row, never an exception."""
    from umcl.ingest.pacs import Routed, is_dicom, route

    header: dict[str, str | None] = {}
    if item.problem is not None:  # never opened
        return Examined(facts_row(item, REFUSED if item.refused else SKIPPED, *coded(item.problem)))
    try:
        if not item.file.is_file():  # a link to a device or FIFO is never opened either
            why = (
                "a folder"
                if item.file.is_dir()
                else "not a regular file (a device, FIFO or socket)"
                if item.file.exists()
                else "missing"
            )
            return Examined(facts_row(item, REFUSED, IMAGE_MISSING, f"the file is {why}"))
        if is_dicom(item.file):
            routed = route(item.file, limits)
            if isinstance(routed, Skipped):
                return Examined(facts_row(item, SKIPPED, *coded(routed.reason)))
            assert isinstance(routed, Routed)
            header = {"study": routed.study, "series": routed.series, "view": routed.view}
        elif item.file.suffix.lower() not in RASTER_SUFFIXES:
            why = f"not an image file ({suffix_kind(item.file)}, not DICOM)"
            return Examined(facts_row(item, SKIPPED, "not_an_image", why))
        excluded = excluded_view(header.get("view"), views)
        if excluded is not None:
            return Examined(facts_row(item, SKIPPED, *coded(excluded.reason), **header))
        square = decode_to_square(item.file, size, limits)
    except ImageDecodeError as exc:
        return Examined(facts_row(item, REFUSED, exc.code, as_text(str(exc)), **header))
    except OSError as exc:  # permissions, a file gone since the walk, a dangling link
        why = exc.strerror or type(exc).__name__
        return Examined(facts_row(item, REFUSED, IMAGE_UNREADABLE, why, **header))
    return Examined(facts_row(item, CLASSIFIED, **header), square)


def examined(jobs: list[Listed], work: partial, workers: int) -> Iterator[Examined]:
    """`work` of each job, in order; with workers > 1, in that many processes, a bounded number
    of files ahead of the model (a year's back-fill never piles up in memory)."""
    if workers <= 1:
        yield from map(work, jobs)
        return
    # spawn: the parent holds torch's thread pools, which a forked child must not inherit
    context = multiprocessing.get_context("spawn")
    ahead: deque = deque()
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        for job in jobs:
            ahead.append(pool.submit(work, job))
            if len(ahead) >= 8 * workers:
                yield ahead.popleft().result()
        while ahead:
            yield ahead.popleft().result()


# -- rows on disk ---------------------------------------------------------------------------------


def schema(findings: list[str]) -> dict[str, pl.DataType]:
    columns: dict[str, pl.DataType] = dict(FACT_COLUMNS)
    for name in findings:
        columns[f"{name}.probability"] = pl.Float64
        columns[f"{name}.positive"] = pl.Boolean
    return columns


def parts_folder(out: Path) -> Path:
    return out.with_name(out.name + PARTS_SUFFIX)


def write_table(frame: pl.DataFrame, path: Path) -> None:
    """A table written whole, as CSV or Parquet by its suffix."""
    csv = path.suffix.lower() == ".csv"
    write_with(path, frame.write_csv if csv else frame.write_parquet)


def read_predictions(path: Path) -> pl.DataFrame:
    return (
        pl.read_csv(path, infer_schema=False)
        if path.suffix.lower() == ".csv"
        else (pl.read_parquet(path))
    )


def prediction_files(folder: Path, besides: Path | None = None) -> list[Path]:
    """Every predictions file in `folder` and every part of an unfinished run there (but
    `besides` and its parts, the run's own)."""
    if not folder.is_dir():
        return []  # no run has written there yet
    files = [f for f in folder.iterdir() if f.suffix.lower() in PREDICTION_SUFFIXES]
    for parts in folder.glob(f"*{PARTS_SUFFIX}"):
        if besides is None or parts != parts_folder(besides):
            files += list(parts.glob("*.parquet"))
    return [f for f in files if f.is_file() and f != besides and not f.name.startswith(".")]


def scored_files(files: list[Path]) -> set[str]:
    """The keys (`file`) of every row in `files`; a file that is not a readable predictions
    file (corrupt, someone else's table) is passed over with a warning."""
    found: set[str] = set()
    for file in files:
        try:
            found.update(read_predictions(file).get_column(FILE_COLUMN).to_list())
        except (pl.exceptions.PolarsError, OSError) as exc:
            log.warning(
                "%s: not a readable predictions file, passed over (%s)", file, type(exc).__name__
            )
    return found


# -- the run --------------------------------------------------------------------------------------


@dataclass
class BatchSettings:
    batch_size: int = 64  # files per forward pass and per part
    workers: int = 1  # decode processes; 1 decodes in this process
    views: tuple[str, ...] = ("PA", "AP", "UNKNOWN")  # as a source's `views`; laterals skipped
    limits: DecodeLimits = field(default_factory=DecodeLimits)  # ingestion's: params `decode`
    overwrite: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        from umcl.config import VIEW_NAMES

        if self.batch_size < 1 or self.workers < 1:
            raise InputError("batch size and workers must be at least 1")
        unknown = [v for v in self.views if v not in VIEW_NAMES]
        if unknown or not self.views:
            raise InputError(f"views {unknown or '(none)'}: name views of {sorted(VIEW_NAMES)}")


def classify_source(
    source: Path,
    out: Path,
    model: str = "umcl:champion",
    findings: Iterable[str] | None = None,
    not_in: Path | None = None,
    settings: BatchSettings | None = None,
) -> dict:
    """Score every file of `source` into `out` (see the module docstring); the counts."""
    # Here, not at the top: the decode workers import this module and need no torch.
    from umcl.inference import Predictor, resolve
    from umcl.model.umcl import UMCLModel
    from umcl.registry import model_digest, version_tag

    settings = settings or BatchSettings()
    parts = check_out(out, source, settings.overwrite)
    directory = resolve(model)
    predictor = Predictor(UMCLModel.from_pretrained(directory), settings.limits)
    names = predictor.finding_names(findings)
    columns = schema(names)
    earlier_files = prediction_files(not_in, besides=out) if not_in else []
    own = {os.path.realpath(f) for f in [out, *earlier_files]}
    listed, passed = list_source(
        source,
        lambda item: item.key in own or Path(item.key).is_relative_to(os.path.realpath(parts)),
    )
    tag = version_tag(model_digest(directory))
    run = {
        "source": as_text(os.path.realpath(source)),
        "model": tag,
        "findings": names,
        "views": list(settings.views),
        "limits": limits_record(settings.limits),
    }
    with exclusive(parts, out):
        started_with(parts, run)
        resumed = scored_files(prediction_files(parts))
        earlier = scored_files(earlier_files)
        todo = [item for item in listed if item.key not in resumed | earlier]
        score_into(parts, todo, predictor, names, columns, tag, settings)
        counts = finish(out, parts, columns)
    keys = {item.key for item in listed}
    return {
        **counts,
        "resumed": len(resumed & keys),
        "scored_before": len(earlier & keys),
        "not_listed": passed,
    }


def limits_record(limits: DecodeLimits) -> dict:
    """The decode limits as `run.json` compares them (the same on every run: modalities sorted)."""
    modalities = None if limits.modalities is None else sorted(limits.modalities)
    return {"max_pixels": limits.max_pixels, "modalities": modalities}


def check_out(out: Path, source: Path, overwrite: bool) -> Path:
    """`out`'s parts folder, after refusing an `out` that cannot be written as asked. Nothing is
    deleted here: an existing `out` is replaced only when the new one is whole."""
    if out.suffix.lower() not in PREDICTION_SUFFIXES:
        raise InputError(f"{out}: predictions are written as .parquet or .csv (by the suffix)")
    if out.is_dir():
        raise InputError(f"{out} is a folder; name the predictions file")
    if out.exists() and os.path.realpath(out) == os.path.realpath(source):
        raise InputError(f"{out} is the source itself; write the predictions elsewhere")
    parts = parts_folder(out)
    if out.exists() and not parts.exists() and not overwrite:
        raise InputError(f"{out} exists: pass --overwrite to score again, or another --out")
    return parts


@contextlib.contextmanager
def exclusive(parts: Path, out: Path) -> Iterator[None]:
    """Held while a run writes `out`'s parts; a second run is refused, not interleaved (the lock
    goes with the process, so a killed run leaves none)."""
    parts.mkdir(parents=True, exist_ok=True)
    with (parts / LOCK_FILE).open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(
                f"another `umcl classify` is writing {out} now; wait for it to end, "
                "or choose another --out"
            ) from None
        yield


def score_into(
    parts: Path,
    todo: list[Listed],
    predictor,
    names: list[str],
    columns: dict,
    tag: str,
    settings: BatchSettings,
) -> None:
    """Score `todo` a batch at a time, each batch's rows written as the next part."""
    scorer = predictor.scorer(names)
    work = partial(
        examine, size=predictor.image_size, limits=settings.limits, views=list(settings.views)
    )
    number = 1 + max((int(p.stem) for p in parts.glob("*.parquet") if p.stem.isdigit()), default=-1)
    batch: list[Examined] = []

    def flush() -> None:
        nonlocal number
        squares = [e.square for e in batch if e.square is not None]
        scores = iter(())
        if squares:
            probabilities, positives = scorer(predictor.embed_squares(np.stack(squares)))
            scores = iter(zip(probabilities.tolist(), positives.tolist(), strict=True))
        rows = []
        for item in batch:
            row = dict(item.facts, model=tag)
            if item.square is not None:
                p_row, d_row = next(scores)
                for name, p, d in zip(names, p_row, d_row, strict=True):
                    row[f"{name}.probability"], row[f"{name}.positive"] = p, d
            rows.append(row)
        write_table(pl.DataFrame(rows, schema=columns), parts / f"{number:06d}.parquet")
        number += 1
        batch.clear()

    with tqdm(total=len(todo), unit="file", desc="classify", disable=not settings.progress) as bar:
        for item in examined(todo, work, settings.workers):
            batch.append(item)
            if len(batch) >= settings.batch_size:
                bar.update(len(batch))
                flush()
        if batch:
            bar.update(len(batch))
            flush()


def started_with(parts: Path, run: dict) -> None:
    """Record what a run starts with, or refuse to resume an unfinished run started otherwise."""
    record = parts / RUN_FILE
    if record.is_file():
        earlier = json.loads(record.read_text())
        if earlier != run:
            changed = [key for key in run if earlier.get(key) != run[key]]
            raise InputError(
                f"{parts} holds an unfinished run with another {' and '.join(changed)} "
                f"({', '.join(f'{k}: {earlier.get(k)}' for k in changed)}): finish it with the "
                "same, or delete that folder to start again"
            )
        return
    write_text(record, json.dumps(run))


def finish(out: Path, parts: Path, columns: dict) -> dict[str, int]:
    """The parts as one predictions file, then the parts removed; its rows by status."""
    frames = [pl.read_parquet(p) for p in sorted(parts.glob("*.parquet"))]
    table = pl.concat(frames) if frames else pl.DataFrame(schema=columns)
    write_table(table, out)
    shutil.rmtree(parts)
    counts = table.get_column("status").value_counts()
    by_status = dict(zip(counts["status"].to_list(), counts["count"].to_list(), strict=True))
    return {
        "files": table.height,
        **{s: by_status.get(s, 0) for s in (CLASSIFIED, REFUSED, SKIPPED)},
    }
