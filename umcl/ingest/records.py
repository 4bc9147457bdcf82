"""What every reader yields and the checks they share: a `Record` per sample, a `Skipped` note
for what a reader passes over, paths kept inside their source, CSV tables read strictly.

A native id, a patient id and a path in a `Record` are raw data: `sources.to_rows` turns them into
pseudonyms, and nothing else may carry them past ingestion.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from umcl.errors import UMCLError


class SourceError(UMCLError, ValueError):
    """A source that cannot be read at all (wrong folder, missing index file)."""


@dataclass
class Record:
    native_id: str
    patient: str | None
    image: Path | None = None  # the file to decode; None when missing or outside the source
    text: str | None = None
    labels: dict[str, object] = field(default_factory=dict)  # dataset column → raw value
    identifiers: list[str] = field(default_factory=list)  # this record's own PHI, to scrub
    location: str | None = None  # the image's path as the source names it, inside its folder
    problem: str | None = None  # why the record cannot be used, found while reading it


@dataclass(frozen=True)
class Skipped:
    """Something a reader passed over that is not a record (a stray file, an orphan row)."""

    reason: str
    path: Path | None = field(default=None, compare=False)  # for the reader's own use only


def contained(root: Path, relative: str | Path) -> tuple[Path | None, str | None]:
    """`root / relative` if it stays inside `root` (symlinks followed), else (None, problem)."""
    if Path(relative).is_absolute():
        return (
            None,
            "path_outside_source: an absolute path; paths must be relative to the source folder",
        )
    candidate = Path(root) / relative
    try:
        resolved = candidate.resolve()
    except (RuntimeError, OSError):  # a symlink loop
        return None, "path_unresolvable: a symlink on the path loops"
    if not resolved.is_relative_to(Path(root).resolve()):
        return (
            None,
            "path_outside_source: the path (or a symlink on it) leads out of the source folder",
        )
    return candidate, None


def walk_files(root: Path) -> Iterator[Path | Skipped]:
    """Every file under `root` (symlinks to files included: `contained` judges them), sorted,
    without recursion, so no depth is too deep. Passed over and counted: a folder that cannot
    be listed, a symlinked folder (not followed), and a FIFO, socket or device, never opened (a
    FIFO would block the reader)."""
    found: list[Path] = []
    pending = [Path(root)]
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(folder) as listing:
                entries = list(listing)
        except OSError:
            yield Skipped("unreadable_folder: a folder that cannot be listed (permissions?)")
            continue
        for entry in entries:
            path = Path(entry.path)
            try:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(path)
                elif entry.is_symlink() and entry.is_dir():
                    yield Skipped("symlinked_folder: not followed", path)
                elif entry.is_file() or entry.is_symlink():  # a dangling link: unreadable later
                    found.append(path)
                else:
                    yield Skipped("not_a_regular_file: a FIFO, socket or device, never opened")
            except OSError:
                if entry.is_symlink():  # a loop: `contained` names it
                    found.append(path)
                else:
                    yield Skipped("unreadable_entry: a file whose type cannot be read")
    yield from sorted(found)


def has_surrogates(text: str | None) -> bool:
    """A str made from a file name that is not UTF-8 (Python keeps its bytes as surrogates)."""
    if text is None:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def printable(text: str) -> str:
    """A name that is not UTF-8, its odd bytes written as backslash-x escapes: storable, readable."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def decode_utf8(path: Path, data: bytes) -> str:
    """Text of a file that must be UTF-8; SourceError naming the file and the first bad byte."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in data:
        # UTF-16 (with or without a BOM) is full of NUL bytes, which no text field may hold.
        raise SourceError(
            f"{path}: holds NUL bytes (UTF-16 text?); re-save it as UTF-8 "
            "(e.g. `iconv -f utf-16 -t utf-8`)"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError(
            f"{path}: not UTF-8 text (byte {exc.start}); re-save it as UTF-8 "
            "(e.g. `iconv -f latin1 -t utf-8`)"
        ) from None


# A report in one cell may be long; the csv module's default cap (128 KB) would stop on it.
csv.field_size_limit(16 * 2**20)


def read_csv(path: Path, required: Iterable[str] = ()) -> list[dict[str, str]]:
    """The rows of a CSV table; an empty, undecodable, malformed or ambiguous one, or one
    without a `required` column, stops with its name (and the line)."""
    if not path.is_file():
        raise SourceError(f"{path}: expected file is missing")
    reader = csv.reader(io.StringIO(decode_utf8(path, path.read_bytes()), newline=""), strict=True)
    try:
        header = next(reader, None) or []
        while header and not header[-1].strip():
            header.pop()  # spreadsheet exports end rows with empty, unnamed columns
        if not header:
            raise SourceError(f"{path}: the table is empty (no header row)")
        repeated = sorted({h for h in header if header.count(h) > 1})
        if repeated:
            raise SourceError(
                f"{path}: columns {repeated} appear more than once; which one is meant is ambiguous"
            )
        missing = [c for c in required if c not in header]
        if missing:
            raise SourceError(f"{path}: columns {missing} are missing (the header has {header})")
        rows = []
        for values in reader:
            if not any(v.strip() for v in values):
                continue  # a blank line (or a spreadsheet's row of empty cells)
            extra = values[len(header) :]
            if len(values) < len(header) or any(v.strip() for v in extra):
                # A short row is a truncated line: padding it would lose its data in silence.
                raise SourceError(
                    f"{path}: line {reader.line_num} has {len(values)} fields, the header {len(header)}"
                )
            rows.append(dict(zip(header, values[: len(header)], strict=True)))
    except csv.Error as exc:  # e.g. an unbalanced quote, which would merge rows silently
        raise SourceError(f"{path}: line {reader.line_num} is not valid CSV ({exc})") from None
    if not rows:
        raise SourceError(f"{path}: the table has a header but no rows")
    return rows


# Suffixes named in counts; any other is "other", since a suffix may be part of a name
# (`Doe.Jane`) or a UID, and counts reach metrics and logs.
_COUNTED_SUFFIXES = {
    ".txt",
    ".csv",
    ".json",
    ".xml",
    ".pdf",
    ".tif",
    ".tiff",
    ".bmp",
    ".gif",
    ".webp",
    ".zip",
    ".gz",
    ".nii",
    ".nrrd",
    ".db",
    ".ini",
    ".md",
}


def read_user_csv(
    path: Path, required: Iterable[str], max_bytes: int, what: str
) -> list[dict[str, str]]:
    """`read_csv` of a table a user hands a command (`what` it is), refused unread when it is over
    `max_bytes`; its problems as InputError, named by the file."""
    from umcl.errors import InputError

    size = path.stat().st_size
    if size > max_bytes:
        raise InputError(f"{path}: {size >> 20} MB; {what} may hold at most {max_bytes >> 20} MB")
    try:
        return read_csv(path, required)
    except SourceError as exc:
        raise InputError(str(exc)) from None


def suffix_kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if not suffix:
        return "no suffix"
    return f"suffix {suffix}" if suffix in _COUNTED_SUFFIXES else "other suffix"
