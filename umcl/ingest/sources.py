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

import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import polars as pl

from umcl.config import CsvColumns, SourceSettings, ValidateSettings
from umcl.errors import UMCLError
from umcl.imaging.header import read_header_elements
from umcl.imaging.images import IMAGE_SUFFIXES
from umcl.imaging.limits import DecodeLimits, ImageDecodeError
from umcl.ingest.deid import scrub_text
from umcl.ingest.pacs import header_view, read_dicom_folder
from umcl.ingest.pseudonyms import Pseudonymizer
from umcl.ingest.records import (
    Record,
    Skipped,
    SourceError,
    contained,
    has_surrogates,
    printable,
    read_csv,
    suffix_kind,
    walk_files,
)
from umcl.ingest.reports import findings_and_impression, join_sections
from umcl.ingest.views import FRONTAL, LATERAL, excluded_view, normalise_view
from umcl.labels import LabelSpace, strongest

VALID_LABEL_VALUES = ("1", "0", "-1")
# Ingestion-only columns: validation writes them to the quarantine and the image locator only.
PRIVATE_COLUMNS = ["native_id", "location", "image_path", "problem"]


@dataclass
class SourceRows:
    rows: pl.DataFrame  # the row table, with PRIVATE_COLUMNS
    skipped: dict[str, int]  # reason → count of what the reader passed over


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


def _not_utf8(record: Record) -> Record:
    """A record named by a file or folder name that is not UTF-8: quarantined, never opened
    (tables hold UTF-8 only), its names kept with the odd bytes written out."""
    return replace(
        record,
        native_id=printable(record.native_id),
        patient=printable(record.patient) if record.patient else None,
        location=printable(record.location) if record.location else None,
        image=None,
        problem="path_not_utf8: a file or folder name that is not UTF-8 (rename it)",
    )


def report_text(
    text: str, identifiers: Iterable[str], max_chars: int
) -> tuple[str | None, str | None]:
    """(the de-identified findings and impression, None) of a report, or (None, problem) when
    it is too long to read or de-identification fails on it: that record is quarantined and
    the others go on. A failure's message is never kept (it could quote the report)."""
    if len(text) > max_chars:
        return None, (
            f"report_too_long: {len(text):,} characters, over the {max_chars:,} a report may "
            "have (validate.max_report_chars)"
        )
    try:
        return scrub_text(findings_and_impression(text), identifiers).strip() or None, None
    except (UMCLError, MemoryError):  # the scrubber cannot run at all (its model is missing)
        raise
    except Exception as exc:  # a library's error on one record's text (spaCy, a regex engine)
        return (
            None,
            f"deidentification_failed: {type(exc).__name__} while de-identifying the report",
        )


def to_rows(
    items: Iterable[Record | Skipped],
    source: SourceSettings,
    space: LabelSpace,
    pseudonyms: Pseudonymizer,
    max_report_chars: int = ValidateSettings().max_report_chars,
) -> SourceRows:
    """Records → the common row table, de-identified, labels mapped by name; skips counted."""
    keep_image = source.kind in ("image_text", "image_label")
    keep_text = source.kind in ("image_text", "text_label")
    rows, skipped = [], Counter()
    for record in items:
        if isinstance(record, Skipped):
            skipped[record.reason] += 1
            continue
        if any(has_surrogates(v) for v in (record.native_id, record.patient, record.location)):
            record = _not_utf8(record)
        text = None
        if keep_text and record.text is not None:
            text, problem = report_text(record.text, record.identifiers, max_report_chars)
            if problem is not None:
                record = replace(record, problem=record.problem or problem)
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
        "sample_id": pl.String,
        "source": pl.String,
        "kind": pl.String,
        "patient_id": pl.String,
        "image": pl.String,
        "text": pl.String,
        **dict.fromkeys(space.names, pl.String),
        "label_origin": pl.String,
        **dict.fromkeys(PRIVATE_COLUMNS, pl.String),
    }
    return SourceRows(pl.DataFrame(rows, schema=schema), dict(sorted(skipped.items())))


def _walk_images(root: Path, folder: Path) -> Iterator[tuple[Path, str, str | None] | Skipped]:
    """Image files under `folder` as (file, location inside `root`, problem); every other file
    is a `Skipped` with its reason. A symlink out of `root` is a record with a problem."""
    for path in walk_files(folder):
        if isinstance(path, Skipped):
            yield path
            continue
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            yield Skipped(f"not_an_image_file: {suffix_kind(path)}", path)
            continue
        location = str(path.relative_to(root))
        inside, problem = contained(root, location)
        yield inside, location, problem


def read_mimic_cxr(
    source: SourceSettings, space: LabelSpace, limits: DecodeLimits
) -> Iterator[Record | Skipped]:
    """MIMIC-CXR: files/pXX/p<subject>/s<study>/<dicom_id>.dcm, reports at s<study>.txt,
    labels from mimic-cxr-2.0.0-chexpert.csv (some studies have none). Views come from
    mimic-cxr-2.0.0-metadata.csv's ViewPosition, else from each DICOM file's header."""
    root = source.path
    if not (root / "files").is_dir():
        raise SourceError(f"{root}: not a MIMIC-CXR folder (no files/ inside)")
    tables = sorted(root.glob("*chexpert.csv"))
    labels: dict[tuple[str, str], dict[str, str]] = {}
    for row in read_csv(tables[0], ["subject_id", "study_id"]) if tables else []:
        study = (row["subject_id"], row["study_id"])
        if study in labels:
            yield Skipped("duplicate_label_row: a second label row for a study (the first is used)")
            continue
        labels[study] = row
    metadata = sorted(root.glob("*metadata.csv"))
    views = (
        {
            r["dicom_id"]: normalise_view(r["ViewPosition"])
            for r in read_csv(metadata[0], ["dicom_id", "ViewPosition"])
        }
        if metadata
        else None
    )
    studies_with_images: set[Path] = set()
    studies_kept: set[Path] = set()
    reports: list[Path] = []
    for item in _walk_images(root, root / "files"):
        if isinstance(item, Skipped):
            if _is_study_report(item.path):  # reports are read with their study's images
                reports.append(item.path)
            else:
                yield item
            continue
        image, location, problem = item
        study_dir = (root / location).parent
        studies_with_images.add(study_dir)
        if problem is None and image is not None:
            view = views.get(image.stem) if views is not None else _dicom_view(image)
            excluded = None if view is _UNREADABLE else excluded_view(view, source.views)
            if excluded:
                yield excluded
                continue
        studies_kept.add(study_dir)
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
    for report in reports:
        if report.with_suffix("") not in studies_with_images:
            yield Skipped("report_without_images: a study report with no image file")
    for _ in studies_with_images - studies_kept:
        yield Skipped("study_without_kept_image: every image of the study was passed over")
    present = {
        (d.parent.name.removeprefix("p"), d.name.removeprefix("s")) for d in studies_with_images
    }
    for _ in set(labels) - present:
        yield Skipped("labels_without_study: a label row for a study with no image file")


_UNREADABLE = "unreadable"  # a header that cannot be read: validation quarantines the image


def _dicom_view(image: Path) -> str | None:
    """The view a DICOM file's header states (None for other formats and when nothing says)."""
    if image.suffix.lower() not in (".dcm", ".dicom"):
        return None
    try:
        header, complete = read_header_elements(image)
    except ImageDecodeError:
        return _UNREADABLE
    return header_view(image, header) if complete else _UNREADABLE


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


def _chexpert_view(row: dict[str, str]) -> str | None:
    direction = normalise_view(row.get("AP/PA"))
    side = normalise_view(row.get("Frontal/Lateral"))
    if side == FRONTAL:
        return direction if direction in ("PA", "AP") else FRONTAL
    if side == LATERAL:
        return direction if direction in ("LL", "RL") else LATERAL
    return direction


def read_chexpert(
    source: SourceSettings, space: LabelSpace, limits: DecodeLimits
) -> Iterator[Record | Skipped]:
    """CheXpert: train.csv (and valid.csv) with Path and label columns in 1/0/-1/blank; the
    view from `Frontal/Lateral` and `AP/PA` (a table without them keeps every image)."""
    tables = [t for t in (source.path / "train.csv", source.path / "valid.csv") if t.is_file()]
    if not tables:
        raise SourceError(f"{source.path}: no train.csv or valid.csv (CheXpert layout)")
    for table in tables:
        for row in read_csv(table, ["Path"]):
            # A table without the view columns says nothing about views: nothing is filtered.
            has_views = "Frontal/Lateral" in row or "AP/PA" in row
            excluded = excluded_view(_chexpert_view(row), source.views) if has_views else None
            if excluded:
                yield excluded
                continue
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


def read_chestxray14(
    source: SourceSettings, space: LabelSpace, limits: DecodeLimits
) -> Iterator[Record | Skipped]:
    """NIH ChestX-ray14: Data_Entry_2017.csv with pipe-separated `Finding Labels`.

    Every one of its 15 classes is stated for every image (absent = 0), so the labels it maps
    to are negatives when not listed, and the rest of the label space stays unmentioned. Its
    images are all frontal (`View Position`: PA or AP).
    """
    classes = [
        "Atelectasis",
        "Cardiomegaly",
        "Effusion",
        "Infiltration",
        "Mass",
        "Nodule",
        "Pneumonia",
        "Pneumothorax",
        "Consolidation",
        "Edema",
        "Emphysema",
        "Fibrosis",
        "Pleural_Thickening",
        "Hernia",
        "No Finding",
    ]
    images = source.images or source.path / "images"
    for row in read_csv(source.path / "Data_Entry_2017.csv", ["Image Index", "Finding Labels"]):
        excluded = excluded_view(normalise_view(row.get("View Position")) or FRONTAL, source.views)
        if excluded:
            yield excluded
            continue
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


def read_openi(
    source: SourceSettings, space: LabelSpace, limits: DecodeLimits
) -> Iterator[Record | Skipped]:
    """Open-i / IU X-ray: indiana_reports.csv (+ indiana_projections.csv for the images).

    Reports come without labels: the labeler fills them in at unification. Each report is its
    own patient (the collection has no patient ids). With an `images` folder, each image of a
    kept view (`projection`: Frontal or Lateral) present becomes an image–report pair.
    """
    reports = read_csv(source.path / "indiana_reports.csv", ["uid"])
    frontal: dict[str, list[str]] = {}
    projections = source.path / "indiana_projections.csv"
    uids = {row["uid"] for row in reports}
    if source.images is not None and projections.is_file():
        for row in read_csv(projections, ["uid", "filename", "projection"]):
            if row["uid"] not in uids:
                yield Skipped("projection_without_report: a listed image whose report is absent")
                continue
            excluded = excluded_view(normalise_view(row["projection"]), source.views)
            if excluded:
                yield excluded
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


def read_folders(
    source: SourceSettings, space: LabelSpace, limits: DecodeLimits
) -> Iterator[Record | Skipped]:
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
    source: SourceSettings,
    space: LabelSpace,
    limits: DecodeLimits,
    columns: CsvColumns | None = None,
) -> Iterator[Record | Skipped]:
    """A generic CSV: `source.path` is the file (or a folder holding exactly one CSV). With a
    `view` column, images of views the source does not keep are passed over."""
    columns = columns or source.columns
    assert isinstance(columns, CsvColumns)  # guaranteed by the settings validation
    path = source.path
    if path.is_dir():
        found = sorted(path.glob("*.csv"))
        if len(found) != 1:
            raise SourceError(f"{path}: expected exactly one CSV file, found {len(found)}")
        path = found[0]
    rows = read_csv(path)
    needed = [
        columns.id,
        columns.patient,
        columns.image,
        columns.view,
        *columns.text,
        *columns.labels,
        *columns.identifiers,
    ]
    missing = sorted({c for c in needed if c} - set(rows[0]))  # _read_csv never returns no rows
    if missing:
        raise SourceError(f"{path}: columns {missing} named in params are not in the file")
    for row in rows:
        if columns.view and columns.image and row[columns.image]:
            excluded = excluded_view(normalise_view(row[columns.view]), source.views)
            if excluded:
                yield excluded
                continue
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


Reader = Callable[[SourceSettings, LabelSpace, DecodeLimits], Iterable[Record | Skipped]]
READERS: dict[str, Reader] = {
    "mimic_cxr": read_mimic_cxr,
    "chexpert": read_chexpert,
    "chestxray14": read_chestxray14,
    "openi": read_openi,
    "folders": read_folders,
    "csv": read_csv_source,
    "dicom_folder": read_dicom_folder,
}


def read_source(
    source: SourceSettings,
    space: LabelSpace,
    pseudonyms: Pseudonymizer,
    limits: DecodeLimits | None = None,
    max_report_chars: int = ValidateSettings().max_report_chars,
) -> SourceRows:
    """Read one configured source into de-identified rows; a source with no records stops.
    `limits` are the ones validation decodes with (a `dicom_folder` routes by their modalities)."""
    if not source.path.exists():
        raise SourceError(f"source '{source.name}': {source.path} does not exist")
    items = READERS[source.format](source, space, limits or DecodeLimits())
    read = to_rows(items, source, space, pseudonyms, max_report_chars)
    if read.rows.height == 0:
        passed = f" (passed over: {read.skipped})" if read.skipped else ""
        raise SourceError(f"source '{source.name}': no records found in {source.path}{passed}")
    return read
