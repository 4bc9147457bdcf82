"""The monitor's store: what the service saw, one Parquet file per written batch, in day folders
(`<store>/date=YYYY-MM-DD/`). A record says how an image was encoded and what the model made of
it, never whose it is: time, model tag, the outcome (classified, or refused with a reason code),
decode facts that carry no identity (format, bits stored, photometric interpretation, a DICOM
modality as a defined term, a size class), the image embedding and the calibrated probability
of each of the model's findings. No file name, header value or pixel is ever recorded.

Writes are atomic (a hidden temporary file renamed into place), so readers never see half a
file; every writer names its files by host, process and a random suffix, so concurrent workers
never write the same file. A crash loses only the records still in memory.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from umcl.atomic import write_with

log = logging.getLogger(__name__)

CLASSIFIED, REFUSED = "classified", "refused"
SIZE_CLASSES = ((512, "<512"), (1536, "512-1535"), (3072, "1536-3071"))
LARGEST_SIZE_CLASS = ">=3072"
PARTITION = "date="
BUFFERED_BATCHES = 20  # while writes fail, at most this many batches wait in memory


def size_class(width: int, height: int) -> str:
    """The long side's bin: enough to see a new detector's resolution, too coarse to identify."""
    side = max(width, height)
    return next((name for limit, name in SIZE_CLASSES if side < limit), LARGEST_SIZE_CLASS)


def schema() -> pa.Schema:
    """Every column a record can hold; nothing else can be written."""
    return pa.schema(
        [
            ("time", pa.timestamp("us", tz="UTC")),
            ("model", pa.string()),
            ("outcome", pa.string()),  # classified | refused
            ("reason", pa.string()),  # a refusal's reason code (umcl/imaging/limits.py), else null
            ("format", pa.string()),  # PNG | JPEG | DICOM
            ("bits", pa.int16()),
            ("photometric", pa.string()),
            ("modality", pa.string()),  # a DICOM defined term, "none" or "other"
            ("size_class", pa.string()),
            ("embedding", pa.list_(pa.float32())),
            ("probabilities", pa.list_(pa.float32())),  # in the model's label order
        ]
    )


def _day_folder(store: Path, day: date) -> Path:
    return store / f"{PARTITION}{day.isoformat()}"


def write_day(store: Path, rows: list[dict]) -> Path:
    """Write the rows of one UTC day as one file, atomically; a failed write leaves nothing."""
    folder = _day_folder(store, rows[0]["time"].astimezone(UTC).date())
    name = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:12]}.parquet"
    table = pa.Table.from_pylist(rows, schema=schema())
    return write_with(
        folder / name, lambda temporary: pq.write_table(table, temporary, compression="zstd")
    )


def _same_day(records: list[dict]) -> list[dict]:
    """The leading records that fall on the first one's UTC day."""
    day = records[0]["time"].astimezone(UTC).date()
    count = next(
        (i for i, r in enumerate(records) if r["time"].astimezone(UTC).date() != day), len(records)
    )
    return records[:count]


def write_batch(store: Path, records: list[dict]) -> list[Path]:
    """Write `records`, one file per UTC day they fall on; returns the files."""
    written = []
    while records:
        day = _same_day(records)
        written.append(write_day(store, day))
        records = records[len(day) :]
    return written


def delete_expired(store: Path, retention_days: int, today: date | None = None) -> list[str]:
    """Delete the day folders older than `retention_days`; returns the names of those gone."""
    oldest = (today or datetime.now(UTC).date()) - timedelta(days=retention_days)
    deleted = []
    for folder in store.glob(f"{PARTITION}*"):
        try:
            day = date.fromisoformat(folder.name.removeprefix(PARTITION))
        except ValueError:
            continue
        if day < oldest:
            shutil.rmtree(folder, ignore_errors=True)  # another worker may be deleting it too
            if not folder.exists():
                deleted.append(folder.name)
    return deleted


class Recorder:
    """Buffers records in memory and writes them from a background thread: `add` only appends,
    so the request that classified an image never waits for the disk. A batch is written when
    it holds `flush_records` records or its oldest is `flush_seconds` old; `close` writes the
    rest. Records leave the buffer only once they are on disk; while writes fail (a full disk)
    the writer backs off, and at most BUFFERED_BATCHES batches wait, the oldest given up first."""

    def __init__(
        self, store: Path, *, flush_records: int, flush_seconds: float, retention_days: int
    ) -> None:
        self.store = Path(store)
        self.flush_records, self.flush_seconds = flush_records, flush_seconds
        self.retention_days = retention_days
        self.buffer: list[dict] = []
        self.in_flight = 0  # the buffer's leading records being written now
        self.oldest: float | None = None
        self.lock = threading.Lock()  # guards the buffer
        self.writing = threading.Lock()  # one batch at a time, so none is written twice
        self.wake = threading.Event()
        self.stopping = False
        self.expired_on: date | None = None
        self.dropped = 0  # records given up while writes failed (logged)
        self.failures = 0  # writes failed in a row
        self.retry_at = 0.0
        self.thread = threading.Thread(target=self._run, name="umcl-monitor", daemon=True)
        self.thread.start()

    def add(self, records: Iterable[dict]) -> None:
        with self.lock:
            self.buffer.extend(records)
            excess = len(self.buffer) - BUFFERED_BATCHES * self.flush_records
            if excess > 0:  # the oldest not being written go first
                del self.buffer[self.in_flight : self.in_flight + excess]
                self.dropped += excess
            if self.oldest is None and self.buffer:
                self.oldest = time.monotonic()
            if len(self.buffer) >= self.flush_records:
                self.wake.set()

    def _due(self) -> bool:
        with self.lock:
            if not self.buffer or time.monotonic() < self.retry_at:
                return False
            age = time.monotonic() - (self.oldest or 0)
            return len(self.buffer) >= self.flush_records or age >= self.flush_seconds

    def _run(self) -> None:
        while not self.stopping:
            # Woken by a full batch, else often enough that a batch is written soon after it
            # reaches flush_seconds of age.
            self.wake.wait(timeout=min(self.flush_seconds / 4, 1.0))
            self.wake.clear()
            if self._due():
                self.flush()

    def flush(self) -> None:
        """Write what is buffered now, a day's file at a time (callable from any thread)."""
        with self.writing:
            with self.lock:
                pending = len(self.buffer)
            while pending > 0:
                with self.lock:
                    batch = _same_day(self.buffer[:pending]) if self.buffer else []
                    self.in_flight = len(batch)
                if not batch:
                    return
                try:
                    write_day(self.store, batch)
                except Exception as exc:  # a full disk must not take the service down
                    self._failed(len(batch), exc)
                    return
                finally:
                    with self.lock:
                        self.in_flight = 0
                with self.lock:
                    del self.buffer[: len(batch)]
                    self.oldest = time.monotonic() if self.buffer else None
                    self.failures, self.retry_at = 0, 0.0
                pending -= len(batch)
            self._expire()

    def _failed(self, count: int, exc: Exception) -> None:
        self.failures += 1
        self.retry_at = time.monotonic() + min(60.0, 2.0**self.failures)
        if self.failures == 1:
            log.exception("monitor: could not write %d records to %s", count, self.store)
        else:
            log.warning(
                "monitor: writing to %s failed %d times in a row (%s); %d records given up so far",
                self.store,
                self.failures,
                type(exc).__name__,
                self.dropped,
            )

    def _expire(self) -> None:
        today = datetime.now(UTC).date()
        if self.expired_on != today:  # once a day per worker is enough
            self.expired_on = today
            deleted = delete_expired(self.store, self.retention_days, today)
            if deleted:
                log.info("monitor: deleted %d day folders past retention", len(deleted))

    def close(self) -> None:
        self.stopping = True
        self.wake.set()
        self.thread.join(timeout=10)
        self.retry_at = 0.0  # a last try, whatever the back-off said
        self.flush()


def record_time() -> datetime:
    return datetime.now(UTC)


def classified_records(
    model: str, facts: list[dict], embeddings: np.ndarray, probabilities: np.ndarray
) -> list[dict]:
    """One record per classified image (facts: `decode_facts` of each)."""
    now = record_time()
    return [
        {
            "time": now,
            "model": model,
            "outcome": CLASSIFIED,
            "reason": None,
            **fact,
            "embedding": embedding.tolist(),
            "probabilities": probability.tolist(),
        }
        for fact, embedding, probability in zip(facts, embeddings, probabilities, strict=True)
    ]


def refused_record(model: str, reason: str) -> dict:
    """A refused upload: only the reason code (never the message, which can name the file)."""
    return {
        "time": record_time(),
        "model": model,
        "outcome": REFUSED,
        "reason": reason,
        "format": None,
        "bits": None,
        "photometric": None,
        "modality": None,
        "size_class": None,
        "embedding": None,
        "probabilities": None,
    }


def day_folders(store: Path, since: datetime, until: datetime) -> list[Path]:
    folders = []
    for folder in sorted(Path(store).glob(f"{PARTITION}*")):
        try:
            day = date.fromisoformat(folder.name.removeprefix(PARTITION))
        except ValueError:
            continue
        if since.date() <= day <= until.date():
            folders.append(folder)
    return folders


def _utc(moment: datetime) -> datetime:
    """An aware time in UTC; a naive one is read as UTC (as `umcl drift` reads its arguments)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


READ_BATCH_ROWS = 16_384  # records decoded at a time: what reading a window holds in memory


def window_files(store: Path, since: datetime, until: datetime) -> list[Path]:
    """The store's files that can hold records of [since, until) (written whole: a file being
    written is a hidden one until it is complete)."""
    return [
        file
        for folder in day_folders(store, _utc(since), _utc(until))
        for file in sorted(folder.glob("*.parquet"))
        if not file.name.startswith(".")
    ]


def record_batches(
    store: Path,
    files: list[Path],
    model: str,
    since: datetime,
    until: datetime,
    unreadable: set[str],
) -> Iterator[pa.Table]:
    """`model`'s records in [since, until) of `files`, a batch at a time; a file that cannot be
    read is added to `unreadable` (named, and left out: one damaged file never hides the rest)."""
    expected = schema()
    start, end = (pa.scalar(_utc(t), pa.timestamp("us", tz="UTC")) for t in (since, until))
    for file in files:
        try:
            for batch in pq.ParquetFile(file).iter_batches(batch_size=READ_BATCH_ROWS):
                table = pa.Table.from_batches([batch])
                if not table.schema.equals(expected):
                    table = table.select(expected.names).cast(expected)
                keep = pc.and_(
                    pc.equal(table.column("model"), model),
                    pc.and_(
                        pc.greater_equal(table.column("time"), start),
                        pc.less(table.column("time"), end),
                    ),
                )
                kept = table.filter(pc.fill_null(keep, False))
                if kept.num_rows:
                    yield kept
        except Exception as exc:  # pyarrow raises several kinds for a damaged file
            unreadable.add(f"{file.relative_to(store)}: {type(exc).__name__}")


def read_records(
    store: Path, model: str, since: datetime, until: datetime
) -> tuple[pa.Table | None, list[str]]:
    """`model`'s records in [since, until) in one table, and the files that could not be read."""
    unreadable: set[str] = set()
    files = window_files(store, since, until)
    tables = list(record_batches(store, files, model, since, until, unreadable))
    return (pa.concat_tables(tables) if tables else None), sorted(unreadable)
