"""Readers: one per raw-data format, each turning a dataset into de-identified rows.

Every reader yields `Record`s (native id, native patient id, image path, raw report, raw label
values keyed by the dataset's own column names) and `Skipped` notes for what it passes over;
`to_rows` turns them into the common row table (the triplet columns before validation).
De-identification happens here, at ingestion: report text is scrubbed, and sample, patient and
image ids become keyed pseudonyms (`pseudonyms.py`), so no later stage sees a native id. The
native id, the path inside the source and the image file travel only in the `PRIVATE_COLUMNS`,
which validation keeps for the quarantine and the image locator and drops from everything else.

Every input is accounted for: a record whose path leaves its source folder (`..`, absolute, a
symlink out) or whose report is not UTF-8 carries a `problem` and is quarantined; files and rows
a reader passes over are counted by reason; an empty, undecodable or ambiguous table stops the
run with a message naming the file. Labels are mapped by name through the label space; a value
outside {1, 0, -1} is kept as written so that validation can quarantine the row with a reason.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from umcl.config import CsvColumns, SourceSettings
from umcl.data.deid import scrub_text
from umcl.data.pseudonyms import Pseudonymizer
from umcl.data.reports import findings_and_impression, join_sections
from umcl.labels import LabelSpace, strongest

IMAGE_SUFFIXES = {".dcm", ".dicom", ".png", ".jpg", ".jpeg"}
VALID_LABEL_VALUES = ("1", "0", "-1")
# Ingestion-only columns: validation writes them to the quarantine and the image locator only.
PRIVATE_COLUMNS = ["native_id", "location", "image_path", "problem"]


class SourceError(ValueError):
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


@dataclass
class SourceRows:
    rows: pl.DataFrame  # the row table, with PRIVATE_COLUMNS
    skipped: dict[str, int]  # reason → count of what the reader passed over


def contained(root: Path, relative: str | Path) -> tuple[Path | None, str | None]:
    """`root / relative` if it stays inside `root` (symlinks followed), else (None, problem)."""
    if Path(relative).is_absolute():
        return (
            None,
            "path_outside_source: an absolute path; paths must be relative to the source folder",
        )
    candidate = Path(root) / relative
    if not candidate.resolve().is_relative_to(Path(root).resolve()):
        return (
            None,
            "path_outside_source: the path (or a symlink on it) leads out of the source folder",
        )
    return candidate, None


def _image_record_path(root: Path, relative: str) -> tuple[Path | None, str, str | None]:
    """(file, location, problem) of an image a table names relative to `root`."""
    path, problem = contained(root, relative)
    return path, relative, problem


def normalise_label_value(raw: object) -> str | None:
    """'1.0' → '1', '' → None; anything that is not a number is kept verbatim for validation."""
    if raw is None:
        return None
    text = str(raw).strip()
    if text == "" or text.lower() in ("nan", "none", "null"):
        return None
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else text


def _combine(values: list[str | None]) -> str | None:
    """Several dataset columns → one label (Nodule + Mass → Lung Lesion)."""
    invalid = [v for v in values if v is not None and v not in VALID_LABEL_VALUES]
    if invalid:
        return invalid[0]
    value = strongest(int(v) for v in values if v is not None)
    return None if value is None else str(value)


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


def _read_csv(path: Path, required: Iterable[str] = ()) -> list[dict[str, str]]:
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


def to_rows(
    items: Iterable[Record | Skipped],
    source: SourceSettings,
    space: LabelSpace,
    pseudonyms: Pseudonymizer,
) -> SourceRows:
    """Records → the common row table, de-identified, labels mapped by name; skips counted."""
    keep_image = source.kind in ("image_text", "image_label")
    keep_text = source.kind in ("image_text", "text_label")
    rows, skipped = [], Counter()
    for record in items:
        if isinstance(record, Skipped):
            skipped[record.reason] += 1
            continue
        text = None
        if keep_text and record.text is not None:
            text = (
                scrub_text(findings_and_impression(record.text), record.identifiers).strip() or None
            )
        mapping = space.map_columns(list(record.labels))
        labels = {
            name: _combine([normalise_label_value(record.labels[c]) for c in mapping.get(name, [])])
            for name in space.names
        }
        patient = record.patient if record.patient else record.native_id
        has_image = keep_image and (record.image is not None or record.location is not None)
        location = record.location or (str(record.image) if record.image is not None else None)
        rows.append(
            {
                "sample_id": pseudonyms.record(source.name, record.native_id),
                "source": source.name,
                "kind": source.kind,
                "patient_id": pseudonyms.patient(source.name, patient),
                "image": pseudonyms.image(source.name, location)
                if has_image and location
                else None,
                "text": text,
                **labels,
                "label_origin": "dataset" if mapping else "none",
                "native_id": record.native_id,
                "location": location,
                "image_path": str(record.image) if has_image and record.image is not None else None,
                "problem": record.problem,
            }
        )
    schema = {
        "sample_id": pl.String, "source": pl.String, "kind": pl.String, "patient_id": pl.String,
        "image": pl.String, "text": pl.String, **dict.fromkeys(space.names, pl.String),
        "label_origin": pl.String, **dict.fromkeys(PRIVATE_COLUMNS, pl.String),
    }  # fmt: skip
    return SourceRows(pl.DataFrame(rows, schema=schema), dict(sorted(skipped.items())))


# Suffixes named in counts; any other is "other", since a suffix may be part of a name
# (`Doe.Jane`) or a UID, and counts reach metrics and logs.
_COUNTED_SUFFIXES = {".txt", ".csv", ".json", ".xml", ".pdf", ".tif", ".tiff", ".bmp", ".gif",
                     ".webp", ".zip", ".gz", ".nii", ".nrrd", ".db", ".ini", ".md"}  # fmt: skip


def _suffix_kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if not suffix:
        return "no suffix"
    return f"suffix {suffix}" if suffix in _COUNTED_SUFFIXES else "other suffix"


def _walk_images(root: Path, folder: Path) -> Iterator[tuple[Path, str, str | None] | Skipped]:
    """Image files under `folder` as (file, location inside `root`, problem); every other file
    is a `Skipped` with its reason. A symlink out of `root` is a record with a problem."""
    for path in sorted(folder.rglob("*")):
        if path.is_dir():
            if path.is_symlink():  # rglob does not descend into it: say so
                yield Skipped("symlinked_folder: not followed", path)
            continue
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            yield Skipped(f"not_an_image_file: {_suffix_kind(path)}", path)
            continue
        location = str(path.relative_to(root))
        inside, problem = contained(root, location)
        yield inside, location, problem


def read_mimic_cxr(source: SourceSettings, space: LabelSpace) -> Iterator[Record]:
    """MIMIC-CXR: files/pXX/p<subject>/s<study>/<dicom_id>.dcm, reports at s<study>.txt,
    labels from mimic-cxr-2.0.0-chexpert.csv (some studies have none)."""
    root = source.path
    if not (root / "files").is_dir():
        raise SourceError(f"{root}: not a MIMIC-CXR folder (no files/ inside)")
    tables = sorted(root.glob("*chexpert.csv"))
    labels: dict[tuple[str, str], dict[str, str]] = {}
    for row in _read_csv(tables[0], ["subject_id", "study_id"]) if tables else []:
        study = (row["subject_id"], row["study_id"])
        if study in labels:
            yield Skipped("duplicate_label_row: a second label row for a study (the first is used)")
            continue
        labels[study] = row
    studies_with_images: set[Path] = set()
    for item in _walk_images(root, root / "files"):
        if isinstance(item, Skipped):
            if not _is_study_report(item.path):  # reports are read with their study's images
                yield item
            continue
        image, location, problem = item
        study_dir = (root / location).parent
        studies_with_images.add(study_dir)
        subject, study = study_dir.parent.name.removeprefix("p"), study_dir.name.removeprefix("s")
        text, text_problem = _study_report(root, study_dir.with_suffix(".txt"))
        row = labels.get((subject, study), {})
        yield Record(
            native_id=Path(location).stem,
            patient=subject,
            image=image,
            text=text,
            labels={k: v for k, v in row.items() if k not in ("subject_id", "study_id")},
            location=location,
            problem=problem or text_problem,
        )
    for report in sorted((root / "files").rglob("s*.txt")):
        if _is_study_report(report) and report.with_suffix("") not in studies_with_images:
            yield Skipped("report_without_images: a study report with no image file")
    present = {
        (d.parent.name.removeprefix("p"), d.name.removeprefix("s")) for d in studies_with_images
    }
    for _ in set(labels) - present:
        yield Skipped("labels_without_study: a label row for a study with no image file")


def _is_study_report(path: Path | None) -> bool:
    return path is not None and re.fullmatch(r"s\d+\.txt", path.name) is not None


def _study_report(root: Path, path: Path) -> tuple[str | None, str | None]:
    """A study's report text, or the problem with it (absent reports are not a problem here:
    validation quarantines an image–text record without text)."""
    if not path.is_file():
        return None, None
    inside, problem = contained(root, path.relative_to(root))
    if inside is None:
        return None, problem
    try:
        return path.read_bytes().decode("utf-8-sig"), None
    except UnicodeDecodeError:
        return None, "text_undecodable: the report file is not UTF-8"


def _chexpert_image(root: Path, relative: str) -> tuple[Path | None, str, str | None]:
    """CheXpert's Path column starts with the dataset folder's own name; accept both layouts."""
    path, problem = contained(root, relative)
    if path is None or path.exists():
        return path, relative, problem
    parts = Path(relative).parts
    if len(parts) > 1:
        return _image_record_path(root, str(Path(*parts[1:])))
    return path, relative, problem


def read_chexpert(source: SourceSettings, space: LabelSpace) -> Iterator[Record]:
    """CheXpert: train.csv (and valid.csv) with Path and label columns in 1/0/-1/blank."""
    tables = [t for t in (source.path / "train.csv", source.path / "valid.csv") if t.is_file()]
    if not tables:
        raise SourceError(f"{source.path}: no train.csv or valid.csv (CheXpert layout)")
    for table in tables:
        for row in _read_csv(table, ["Path"]):
            relative = row["Path"]
            match = re.search(r"(?:train|valid)/(.+?)(?:\.\w+)?$", relative)
            patient = re.search(r"(patient\d+)", relative)
            image, location, problem = _chexpert_image(source.path, relative)
            yield Record(
                native_id=match.group(1) if match else relative,
                patient=patient.group(1) if patient else None,
                image=image,
                labels={k: v for k, v in row.items() if space.resolve(k)},
                location=location,
                problem=problem,
            )


def read_chestxray14(source: SourceSettings, space: LabelSpace) -> Iterator[Record]:
    """NIH ChestX-ray14: Data_Entry_2017.csv with pipe-separated `Finding Labels`.

    Every one of its 15 classes is stated for every image (absent = 0), so the labels it maps
    to are negatives when not listed, and the rest of the label space stays unmentioned.
    """
    classes = ["Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule",
               "Pneumonia", "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis",
               "Pleural_Thickening", "Hernia", "No Finding"]  # fmt: skip
    images = source.images or source.path / "images"
    for row in _read_csv(source.path / "Data_Entry_2017.csv", ["Image Index", "Finding Labels"]):
        found = {f.strip() for f in row["Finding Labels"].split("|")}
        image, location, problem = _image_record_path(images, row["Image Index"])
        yield Record(
            native_id=Path(row["Image Index"]).stem,
            patient=row.get("Patient ID"),
            image=image,
            labels={c: "1" if c in found else "0" for c in classes},
            location=location,
            problem=problem,
        )


def read_openi(source: SourceSettings, space: LabelSpace) -> Iterator[Record]:
    """Open-i / IU X-ray: indiana_reports.csv (+ indiana_projections.csv for the images).

    Reports come without labels: the labeler fills them in at unification. Each report is its
    own patient (the collection has no patient ids). With an `images` folder, each frontal
    image present becomes an image–report pair.
    """
    reports = _read_csv(source.path / "indiana_reports.csv", ["uid"])
    frontal: dict[str, list[str]] = {}
    projections = source.path / "indiana_projections.csv"
    uids = {row["uid"] for row in reports}
    if source.images is not None and projections.is_file():
        for row in _read_csv(projections, ["uid", "filename", "projection"]):
            if row["uid"] not in uids:
                yield Skipped("projection_without_report: a listed image whose report is absent")
                continue
            if row["projection"] != "Frontal":
                yield Skipped("not_frontal: a lateral or other projection")
            elif (source.images / row["filename"]).is_file():
                frontal.setdefault(row["uid"], []).append(row["filename"])
            else:
                yield Skipped("projection_without_image: a listed image file is absent")
    for row in reports:
        text = join_sections(*(row.get(c) for c in source.text_columns))
        files = frontal.get(row["uid"], [])
        for filename in files:
            image, location, problem = _image_record_path(source.images, filename)
            yield Record(
                f"{row['uid']}/{Path(filename).stem}",
                row["uid"],
                image,
                text,
                location=location,
                problem=problem,
            )
        if not files:
            yield Record(row["uid"], row["uid"], None, text)


def read_folders(source: SourceSettings, space: LabelSpace) -> Iterator[Record]:
    """One folder per class (e.g. NORMAL/, PNEUMONIA/): the folder is positive, the other
    classes are negative (the classes are exclusive). Folder names map by name/synonym."""
    folders = sorted(p for p in source.path.iterdir() if p.is_dir()) if source.path.is_dir() else []
    if not folders:
        raise SourceError(f"{source.path}: no class folders found")
    unknown = [f.name for f in folders if space.resolve(f.name) is None]
    if unknown:
        raise SourceError(
            f"{source.path}: class folders {unknown} match no label; add them to labels.synonyms"
        )
    pattern = re.compile(source.patient_pattern) if source.patient_pattern else None
    for folder in folders:
        for item in _walk_images(source.path, folder):
            if isinstance(item, Skipped):
                yield item
                continue
            image, location, problem = item
            name = Path(location).name
            match = pattern.search(name) if pattern else None
            yield Record(
                native_id=str(Path(location).with_suffix("")),
                patient=match.group(1) if match else str(Path(location).with_suffix("")),
                image=image,
                labels={f.name: "1" if f == folder else "0" for f in folders},
                location=location,
                problem=problem,
            )


def read_csv_source(
    source: SourceSettings, space: LabelSpace, columns: CsvColumns | None = None
) -> Iterator[Record]:
    """A generic CSV: `source.path` is the file (or a folder holding exactly one CSV)."""
    columns = columns or source.columns
    assert columns is not None  # guaranteed by the settings validation
    path = source.path
    if path.is_dir():
        found = sorted(path.glob("*.csv"))
        if len(found) != 1:
            raise SourceError(f"{path}: expected exactly one CSV file, found {len(found)}")
        path = found[0]
    rows = _read_csv(path)
    needed = [
        columns.id,
        columns.patient,
        columns.image,
        *columns.text,
        *columns.labels,
        *columns.identifiers,
    ]
    missing = sorted({c for c in needed if c} - set(rows[0]))  # _read_csv never returns no rows
    if missing:
        raise SourceError(f"{path}: columns {missing} named in params are not in the file")
    for row in rows:
        image, location, problem = (
            _image_record_path(path.parent, row[columns.image])
            if columns.image and row[columns.image]
            else (None, None, None)
        )
        yield Record(
            native_id=row[columns.id],
            patient=row[columns.patient] if columns.patient else None,
            image=image,
            text=join_sections(*(row[c] for c in columns.text)) if columns.text else None,
            labels={c: row[c] for c in columns.labels},
            identifiers=[row[c] for c in columns.identifiers],
            location=location,
            problem=problem,
        )


DEMO_REPORT_COLUMNS = CsvColumns(
    id="report_id", patient="mrn", text=["report"], identifiers=["mrn", "patient_name", "exam_date"]
)


def read_demo(source: SourceSettings, space: LabelSpace) -> Iterator[Record]:
    """The demo's RIS report export (reports.csv): a CSV with known columns and PHI."""
    return read_csv_source(source, space, DEMO_REPORT_COLUMNS)


READERS: dict[str, Callable[[SourceSettings, LabelSpace], Iterable[Record | Skipped]]] = {
    "demo": read_demo,
    "mimic_cxr": read_mimic_cxr,
    "chexpert": read_chexpert,
    "chestxray14": read_chestxray14,
    "openi": read_openi,
    "folders": read_folders,
    "csv": read_csv_source,
}


def read_source(source: SourceSettings, space: LabelSpace, pseudonyms: Pseudonymizer) -> SourceRows:
    """Read one configured source into de-identified rows; a source with no records stops."""
    if not source.path.exists():
        raise SourceError(f"source '{source.name}': {source.path} does not exist")
    read = to_rows(READERS[source.format](source, space), source, space, pseudonyms)
    if read.rows.height == 0:
        passed = f" (passed over: {read.skipped})" if read.skipped else ""
        raise SourceError(f"source '{source.name}': no records found in {source.path}{passed}")
    return read
