"""A site's labelled sample for `umcl adapt`: a CSV with a `path` column (image files: PNG, JPEG
or DICOM, relative to the CSV's folder) and one column per finding (1, 0 or blank; -1, an
uncertain label, counts as unknown), optionally a `patient` column that keeps one patient's
images together in cross-validation and the bootstrap.

Every row is accounted for: it is kept, or refused with its row number and the reason (a label
that is not 1 / 0 / -1 / blank, no finding labelled, an image that cannot be decoded, the same
image twice). The patient values and paths stay here; what leaves is the embeddings, the labels
and a content hash of the sample (images and labels, not names).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from umcl.errors import InputError, MissingInputError

PATH_COLUMN = "path"
PATIENT_COLUMN = "patient"
MAX_CSV_BYTES = 64 << 20  # checked before the table is read
MAX_FILE_BYTES = 2 << 30  # an image file larger than this is refused before it is hashed
MIN_IMAGES = 2  # a drift reference needs two
LABEL_VALUES = {"1": 1.0, "0": 0.0, "-1": float("nan")}  # -1, uncertain: unknown here


@dataclass(frozen=True)
class Refusal:
    row: int  # 1-based data row of the CSV (the header is row 0)
    reason: str


@dataclass
class SiteSample:
    names: list[str]  # the finding columns, in the model's label order
    squares: np.ndarray  # (n, S, S) uint8, the model's input
    labels: torch.Tensor  # (n, F) float: 1, 0, NaN unknown; columns are `names`
    groups: np.ndarray  # (n,) int: rows of one patient share a group
    rows: list[int]  # each kept image's CSV row
    digest: str  # sha256 of the images' bytes and their labels, in no particular order
    rows_in: int
    refused: list[Refusal] = field(default_factory=list)

    def report(self) -> dict:
        """Counts that reconcile (rows in = kept + refused) and each refusal."""
        return {
            "rows_in": self.rows_in,
            "kept": len(self.rows),
            "refused": len(self.refused),
            "refusals": [{"row": r.row, "reason": r.reason} for r in self.refused],
        }


def read_table(csv_path: Path, label_names: list[str], max_images: int) -> list[dict[str, str]]:
    """The CSV's rows (umcl/ingest/records.py `read_csv`: one strict reader for every table), after
    checking its size, its columns and its row count."""
    from umcl.ingest.records import read_user_csv

    if not csv_path.is_file():
        raise MissingInputError(f"{csv_path}: not a file (the site sample's labels CSV)")
    table = read_user_csv(csv_path, [PATH_COLUMN], MAX_CSV_BYTES, "a site sample's table")
    findings = [c for c in table[0] if c not in (PATH_COLUMN, PATIENT_COLUMN)]
    unknown = [c for c in findings if c not in label_names]
    if unknown:
        raise InputError(
            f"{csv_path}: columns {unknown} are not findings of this model; its findings are "
            f"{label_names} (besides `{PATH_COLUMN}` and `{PATIENT_COLUMN}`)"
        )
    if not findings:
        raise InputError(f"{csv_path}: no finding column; name at least one of {label_names}")
    if len(table) > max_images:
        raise InputError(f"{csv_path}: {len(table)} rows, over adapt.max_images ({max_images})")
    return table


def _labels(row: dict[str, str], names: list[str]) -> tuple[list[float], str | None]:
    from umcl.ingest.sources import normalise_label_value

    values = []
    for name in names:
        text = normalise_label_value(row.get(name))
        if text is not None and text not in LABEL_VALUES:
            # The cell is not echoed: a misplaced column can hold a name or a record number.
            return [], f"the {name} cell is not 1, 0, -1 or blank"
        values.append(float("nan") if text is None else LABEL_VALUES[text])
    if all(np.isnan(values)):
        return [], "no finding labelled 1 or 0"
    return values, None


def file_digest(path: Path) -> str:
    """sha256 of a file, read in blocks; one over MAX_FILE_BYTES is refused unread."""
    if path.stat().st_size > MAX_FILE_BYTES:
        raise InputError(f"the file is over {MAX_FILE_BYTES >> 30} GB")
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def read_sample(csv_path: Path, label_names: list[str], square, max_images: int) -> SiteSample:
    """Read and decode the sample: `square(path, row)` turns one image file into the model's
    (S, S) uint8 input or raises an error naming it. Paths are relative to the CSV's folder, or
    absolute (a site's archive elsewhere on its own machine)."""
    from umcl.imaging.images import ImageDecodeError

    table = read_table(csv_path, label_names, max_images)
    names = [n for n in label_names if n in table[0]]
    squares, labels, rows, patients, refused, hashes = [], [], [], [], [], {}
    for number, row in enumerate(table, start=1):
        values, why = _labels(row, names)
        path_text = row[PATH_COLUMN].strip()
        if why is None and not path_text:
            why = "the path is empty"
        if why is not None:
            refused.append(Refusal(number, why))
            continue
        path = Path(path_text)
        path = path if path.is_absolute() else csv_path.parent / path
        try:
            image = square(path, number)  # the decoder checks the pixel budget from the header
            content = file_digest(path)
        except (ImageDecodeError, InputError, ValueError) as exc:
            refused.append(Refusal(number, _without_path(str(exc), path)))
            continue
        except OSError as exc:  # its message quotes the path as repr(): only its cause is kept
            refused.append(Refusal(number, f"image {number}: {exc.strerror or 'unreadable file'}"))
            continue
        if content in hashes:
            refused.append(Refusal(number, f"the same image as row {hashes[content]}"))
            continue
        hashes[content] = number
        squares.append(image)
        labels.append(values)
        rows.append(number)
        # A row without a patient is its own group; "\0" keeps it apart from any stripped cell.
        patients.append(row.get(PATIENT_COLUMN, "").strip() or f"\0row {number}")
    if len(rows) < MIN_IMAGES:
        shown = "; ".join(f"row {r.row}: {r.reason}" for r in refused[:5])
        raise InputError(
            f"{csv_path}: {len(rows)} usable rows of {len(table)}; adapting needs at "
            f"least {MIN_IMAGES} ({len(refused)} refused: {shown})"
        )
    _, groups = np.unique(np.array(patients), return_inverse=True)
    digest = hashlib.sha256()
    for line in sorted(
        f"{content}:{values}" for content, values in zip(hashes, labels, strict=True)
    ):
        digest.update(line.encode())
    digest.update(",".join(names).encode())
    return SiteSample(
        names=names,
        squares=np.stack(squares),
        labels=torch.tensor(labels, dtype=torch.float32),
        groups=groups,
        rows=rows,
        digest=digest.hexdigest(),
        rows_in=len(table),
        refused=refused,
    )


def sample_fingerprint(csv_path: Path | None, max_images: int) -> str:
    """sha256 of the table and of every file it lists (what `dvc repro` reruns the adapt stage
    on), or "none" without a sample. Nothing is decoded; a missing file is hashed as missing."""
    from umcl.ingest.records import SourceError, read_csv

    if csv_path is None:
        return "none"
    csv_path = Path(csv_path)
    if not csv_path.is_file() or csv_path.stat().st_size > MAX_CSV_BYTES:
        return "unreadable"  # `umcl adapt` names what is wrong with it
    digest = hashlib.sha256(csv_path.read_bytes())
    try:
        table = read_csv(csv_path, required=[PATH_COLUMN])[:max_images]
    except SourceError:
        return digest.hexdigest()
    for row in table:
        text = row[PATH_COLUMN].strip()
        path = Path(text) if Path(text).is_absolute() else csv_path.parent / text
        try:
            digest.update(file_digest(path).encode() if text and path.is_file() else b"-")
        except (InputError, OSError):
            digest.update(b"unreadable")
    return digest.hexdigest()


def _without_path(message: str, path: Path) -> str:
    """A decoder's message without the file's path (it may carry a name): the row says which."""
    message = message.replace(f"{path}: ", "")
    return message.replace(str(path), "the file")
