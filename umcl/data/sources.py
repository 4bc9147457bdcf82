"""Readers: one per raw-data format, each turning a dataset into de-identified rows.

Every reader yields `Record`s (native id, native patient id, image path, raw report, raw label
values keyed by the dataset's own column names); `to_rows` turns them into the common row table
(the triplet columns before validation). De-identification happens here, at ingestion: report
text is scrubbed and patient ids are pseudonymised, so no later stage ever sees PHI. Labels are
mapped by name through the label space; a value outside {1, 0, -1} is kept as written so that
validation can quarantine the row with a reason instead of losing it.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from umcl.config import CsvColumns, SourceSettings
from umcl.data.deid import pseudonym, scrub_text
from umcl.data.reports import findings_and_impression, join_sections
from umcl.labels import LabelSpace, strongest

IMAGE_SUFFIXES = {".dcm", ".dicom", ".png", ".jpg", ".jpeg"}
VALID_LABEL_VALUES = ("1", "0", "-1")


class SourceError(ValueError):
    """A source that cannot be read at all (wrong folder, missing index file)."""


@dataclass
class Record:
    native_id: str
    patient: str | None
    image: Path | None = None
    text: str | None = None
    labels: dict[str, object] = field(default_factory=dict)  # dataset column → raw value
    identifiers: list[str] = field(default_factory=list)  # this record's own PHI, to scrub


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


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise SourceError(f"{path}: expected file is missing")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def to_rows(records: Iterable[Record], source: SourceSettings, space: LabelSpace, key: str) -> pl.DataFrame:
    """Records → the common row table, de-identified, labels mapped by name."""
    keep_image = source.kind in ("image_text", "image_label")
    keep_text = source.kind in ("image_text", "text_label")
    rows = []
    for record in records:
        text = None
        if keep_text and record.text is not None:
            text = scrub_text(findings_and_impression(record.text), record.identifiers).strip() or None
        mapping = space.map_columns(list(record.labels))
        labels = {
            name: _combine([normalise_label_value(record.labels[c]) for c in mapping.get(name, [])])
            for name in space.names
        }
        patient = record.patient if record.patient else record.native_id
        rows.append(
            {
                "sample_id": f"{source.name}:{record.native_id}",
                "source": source.name,
                "kind": source.kind,
                "patient_id": pseudonym(patient, source.name, key),
                "image": str(record.image) if keep_image and record.image is not None else None,
                "text": text,
                **labels,
                "label_origin": "dataset" if mapping else "none",
            }
        )
    schema = {
        "sample_id": pl.String, "source": pl.String, "kind": pl.String, "patient_id": pl.String,
        "image": pl.String, "text": pl.String, **dict.fromkeys(space.names, pl.String),
        "label_origin": pl.String,
    }  # fmt: skip
    return pl.DataFrame(rows, schema=schema)


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def read_mimic_cxr(source: SourceSettings, space: LabelSpace) -> Iterator[Record]:
    """MIMIC-CXR: files/pXX/p<subject>/s<study>/<dicom_id>.dcm, reports at s<study>.txt,
    labels from mimic-cxr-2.0.0-chexpert.csv (some studies have none)."""
    root = source.path
    if not (root / "files").is_dir():
        raise SourceError(f"{root}: not a MIMIC-CXR folder (no files/ inside)")
    tables = sorted(root.glob("*chexpert.csv"))
    labels = {(r["subject_id"], r["study_id"]): r for r in _read_csv(tables[0])} if tables else {}
    for image in _image_files(root / "files"):
        study_dir = image.parent
        subject, study = study_dir.parent.name.removeprefix("p"), study_dir.name.removeprefix("s")
        report = study_dir.with_suffix(".txt")
        row = labels.get((subject, study), {})
        yield Record(
            native_id=image.stem,
            patient=subject,
            image=image,
            text=report.read_text(errors="replace") if report.is_file() else None,
            labels={k: v for k, v in row.items() if k not in ("subject_id", "study_id")},
        )


def _chexpert_image(root: Path, relative: str) -> Path:
    """CheXpert's Path column starts with the dataset folder's own name; accept both layouts."""
    direct = root / relative
    if direct.exists():
        return direct
    parts = Path(relative).parts
    return root.joinpath(*parts[1:]) if len(parts) > 1 else direct


def read_chexpert(source: SourceSettings, space: LabelSpace) -> Iterator[Record]:
    """CheXpert: train.csv (and valid.csv) with Path and label columns in 1/0/-1/blank."""
    tables = [t for t in (source.path / "train.csv", source.path / "valid.csv") if t.is_file()]
    if not tables:
        raise SourceError(f"{source.path}: no train.csv or valid.csv (CheXpert layout)")
    for table in tables:
        for row in _read_csv(table):
            relative = row["Path"]
            match = re.search(r"(?:train|valid)/(.+?)(?:\.\w+)?$", relative)
            patient = re.search(r"(patient\d+)", relative)
            yield Record(
                native_id=match.group(1) if match else relative,
                patient=patient.group(1) if patient else None,
                image=_chexpert_image(source.path, relative),
                labels={k: v for k, v in row.items() if space.resolve(k)},
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
    for row in _read_csv(source.path / "Data_Entry_2017.csv"):
        found = {f.strip() for f in row["Finding Labels"].split("|")}
        yield Record(
            native_id=Path(row["Image Index"]).stem,
            patient=row.get("Patient ID"),
            image=images / row["Image Index"],
            labels={c: "1" if c in found else "0" for c in classes},
        )


def read_openi(source: SourceSettings, space: LabelSpace) -> Iterator[Record]:
    """Open-i / IU X-ray: indiana_reports.csv (+ indiana_projections.csv for the images).

    Reports come without labels: the labeler fills them in at unification. Each report is its
    own patient (the collection has no patient ids). With an `images` folder, each frontal
    image present becomes an image–report pair.
    """
    reports = _read_csv(source.path / "indiana_reports.csv")
    frontal: dict[str, list[str]] = {}
    projections = source.path / "indiana_projections.csv"
    if source.images is not None and projections.is_file():
        for row in _read_csv(projections):
            if row["projection"] == "Frontal" and (source.images / row["filename"]).is_file():
                frontal.setdefault(row["uid"], []).append(row["filename"])
    for row in reports:
        text = join_sections(*(row.get(c) for c in source.text_columns))
        files = frontal.get(row["uid"], [])
        for filename in files:
            yield Record(f"{row['uid']}/{Path(filename).stem}", row["uid"], source.images / filename, text)
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
        for image in _image_files(folder):
            match = pattern.search(image.name) if pattern else None
            yield Record(
                native_id=f"{folder.name}/{image.stem}",
                patient=match.group(1) if match else f"{folder.name}/{image.stem}",
                image=image,
                labels={f.name: "1" if f == folder else "0" for f in folders},
            )


def read_csv_source(source: SourceSettings, space: LabelSpace, columns: CsvColumns | None = None) -> Iterator[Record]:
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
    needed = [columns.id, columns.patient, columns.image, *columns.text, *columns.labels, *columns.identifiers]
    missing = sorted({c for c in needed if c} - set(rows[0] if rows else needed))
    if missing:
        raise SourceError(f"{path}: columns {missing} named in params are not in the file")
    for row in rows:
        yield Record(
            native_id=row[columns.id],
            patient=row[columns.patient] if columns.patient else None,
            image=path.parent / row[columns.image] if columns.image and row[columns.image] else None,
            text=join_sections(*(row[c] for c in columns.text)) if columns.text else None,
            labels={c: row[c] for c in columns.labels},
            identifiers=[row[c] for c in columns.identifiers],
        )


DEMO_REPORT_COLUMNS = CsvColumns(
    id="report_id", patient="mrn", text=["report"], identifiers=["mrn", "patient_name", "exam_date"]
)


def read_demo(source: SourceSettings, space: LabelSpace) -> Iterator[Record]:
    """The demo's RIS report export (reports.csv): a CSV with known columns and PHI."""
    return read_csv_source(source, space, DEMO_REPORT_COLUMNS)


READERS: dict[str, Callable[[SourceSettings, LabelSpace], Iterable[Record]]] = {
    "demo": read_demo,
    "mimic_cxr": read_mimic_cxr,
    "chexpert": read_chexpert,
    "chestxray14": read_chestxray14,
    "openi": read_openi,
    "folders": read_folders,
    "csv": read_csv_source,
}


def read_source(source: SourceSettings, space: LabelSpace, key: str) -> pl.DataFrame:
    """Read one configured source into de-identified rows."""
    if not source.path.exists():
        raise SourceError(f"source '{source.name}': {source.path} does not exist")
    return to_rows(READERS[source.format](source, space), source, space, key)
