"""Reader `dicom_folder`: a PACS export joined to a RIS export by accession number.

A PACS export is a tree of DICOM files in a vendor's layout (any folders, any file names, with or
without `.dcm`); the RIS export is a CSV of reports (or labels) keyed by accession number. Every
file is routed by its header alone (`dicom.read_file_meta`, `dicom.read_header_elements`: bounded
reads, no pixel decoded; validation decodes the images kept). Each file ends in exactly one place:

- a record: a CR/DX image of a kept view whose accession has a RIS row; the study's report goes
  with each of its frontal images, and the patient is the RIS patient column, else the DICOM
  PatientID, else the accession (the split is by patient);
- a quarantined record: a file that says it is DICOM but whose header cannot be read or ends
  before the pixel data (a copy cut short), a path that leads out of the source or loops, a name
  that is not UTF-8;
- a counted reason (`metrics/validation.json: skipped`): not DICOM, a DICOMDIR, a structured
  report or another non-image object (by the file meta's class and the dataset's own), a For
  Processing image, a modality out of scope, a view not kept, a second copy of an image, no
  accession, no RIS row; a FIFO, socket or device (never opened) or a folder that cannot be
  listed (`records.walk_files`).

RIS rows are counted too: a second row for an accession, a row without an accession, a report
whose images were all passed over or that has no image at all. Reasons name kinds of things, never
header values: a view or modality is named only when it is one of DICOM's defined terms.

Header values (names, ids, accession numbers) become the record's identifiers, scrubbed from its
report, and its patient and native ids, which `sources.to_rows` turns into pseudonyms.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.uid import UID

from umcl.config import VIEW_NAMES, RisColumns, SourceSettings
from umcl.imaging.header import (
    header_codes,
    header_text,
    header_texts,
    modality_name,
    read_file_meta,
    read_header_elements,
)
from umcl.imaging.limits import DecodeLimits, ImageDecodeError
from umcl.ingest.records import (
    Record,
    Skipped,
    contained,
    has_surrogates,
    read_csv,
    suffix_kind,
    walk_files,
)
from umcl.ingest.reports import join_sections
from umcl.ingest.views import FRONTAL, LATERAL, excluded_view, normalise_view, view_from_words
from umcl.labels import LabelSpace

DICOMDIR_CLASS = "1.2.840.10008.1.3.10"  # Media Storage Directory Storage
STRUCTURED_REPORT = "structured_report: a structured report or key object, not an image"
FOR_PROCESSING = "for_processing: raw detector data, not an image for display"
# ViewCodeSequence codes (SNOMED RT / CT) of the chest projections.
VIEW_CODES = {
    "R-10214": "PA",
    "399348003": "PA",
    "R-10206": "AP",
    "399182002": "AP",
    "R-10236": "LL",
    "399173006": "LL",
    "R-10232": "RL",
    "399198007": "RL",
}
# Free text that may name the view when ViewPosition is empty.
DESCRIPTIONS = ("SeriesDescription", "ProtocolName", "AcquisitionDeviceProcessingDescription")
IDENTIFYING = (
    "PatientName",
    "PatientID",
    "OtherPatientIDs",
    "AccessionNumber",
    "ReferringPhysicianName",
    "PerformingPhysicianName",
    "InstitutionName",
)


@dataclass(frozen=True)
class Routed:
    """An image file's routing facts, from its header (all PHI except `view`)."""

    accession: str | None
    patient: str | None
    instance: str | None
    view: str | None
    identifiers: list[str]
    study: str | None = None  # StudyInstanceUID and SeriesInstanceUID: what batch scoring
    series: str | None = None  # reports a file under (umcl/batch_classify.py)


def header_view(path: Path, ds: Dataset) -> str | None:
    """The projection a header states: ViewPosition; when empty, the ViewCodeSequence; then a
    view named unambiguously in the series, protocol or processing description; then the
    PatientOrientation's row direction (L/R: a frontal image, A/P: a lateral); else None."""
    view = normalise_view(header_text(path, ds, "ViewPosition"))
    if view:  # a vendor's own term ("LAT", "P-A") read as words; else kept as is (not quoted)
        return view if view in VIEW_NAMES else view_from_words([view]) or view
    for value, meaning in header_codes(path, ds, "ViewCodeSequence"):
        coded = VIEW_CODES.get(value.strip()) or view_from_words([meaning])
        if coded:
            return coded
    described = view_from_words(header_text(path, ds, k) for k in DESCRIPTIONS)
    if described:
        return described
    row_direction = (header_text(path, ds, "PatientOrientation") or "").upper()
    return {"L": FRONTAL, "R": FRONTAL, "A": LATERAL, "P": LATERAL}.get(row_direction)


def _not_an_image(sop_class: str) -> str | None:
    """Why a SOP class is not a displayable radiograph, or None (an image, or a class pydicom
    does not know: then the Modality decides)."""
    uid = UID(sop_class)
    if sop_class == DICOMDIR_CLASS:
        return "dicomdir: a media directory (the export's index), not an image"
    if uid.type != "SOP Class":
        return None
    name = uid.name
    if " SR " in f" {name} " or name == "Key Object Selection Document Storage":
        return STRUCTURED_REPORT
    if "Image Storage" not in name:
        return f"not_an_image: {name}"
    if "For Processing" in name:
        return FOR_PROCESSING
    return None


def _image_class(sop_class: str) -> bool:
    uid = UID(sop_class)
    return uid.type == "SOP Class" and "Image Storage" in uid.name


def is_dicom(path: Path) -> bool:
    with path.open("rb") as handle:
        head = handle.read(132)
    return len(head) == 132 and head[128:] == b"DICM"


def _identifiers(path: Path, ds: Dataset) -> list[str]:
    """Every value of the identifying attributes, and each part of a person name ("DOE^JANE",
    "Yamada^Tarou=山田^太郎": its component groups too), to scrub from the report."""
    values = [v for k in IDENTIFYING for v in header_texts(path, ds, k)]
    parts = [p for v in values for p in re.split(r"[\^=\s]+", v) if len(p) > 1]
    return values + parts


def route(path: Path, limits: DecodeLimits) -> Routed | Skipped:
    """Where a file goes, read from its header. ImageDecodeError: a DICOM file whose header
    cannot be read, or ends before the pixel data of what says it is an image (a bad record,
    to quarantine)."""
    if not is_dicom(path):
        return Skipped(f"not_dicom: {suffix_kind(path)}")
    stored_as = header_text(path, read_file_meta(path), "MediaStorageSOPClassUID") or ""
    reason = _not_an_image(stored_as)
    if reason:
        return Skipped(reason)
    ds, complete = read_header_elements(path)
    # The dataset's own class too: a file meta may omit it or say otherwise.
    declared = header_text(path, ds, "SOPClassUID") or ""
    reason = _not_an_image(declared)
    if reason:
        return Skipped(reason)
    cut_short = ImageDecodeError(
        f"{path}: the DICOM header ends before the pixel data (cut short?)"
    )
    if not complete and (_image_class(stored_as) or _image_class(declared)):
        raise cut_short  # an image whose other attributes were never read
    if (header_text(path, ds, "PresentationIntentType") or "").upper() == "FOR PROCESSING":
        return Skipped(FOR_PROCESSING)
    modality = (header_text(path, ds, "Modality") or "").upper()
    if modality in ("SR", "KO"):
        return Skipped(STRUCTURED_REPORT)
    if limits.modalities is not None and modality not in limits.modalities:
        return Skipped(f"modality_out_of_scope: {modality_name(modality)}")
    if not complete:
        raise cut_short
    return Routed(
        accession=header_text(path, ds, "AccessionNumber"),
        patient=header_text(path, ds, "PatientID"),
        instance=header_text(path, ds, "SOPInstanceUID"),
        view=header_view(path, ds),
        identifiers=_identifiers(path, ds),
        study=header_text(path, ds, "StudyInstanceUID"),
        series=header_text(path, ds, "SeriesInstanceUID"),
    )


def join_key(accession: str | None) -> str:
    """An accession number as both exports are joined by: RIS systems and PACS headers differ
    in case and padding, never in meaning."""
    return (accession or "").strip().upper()


def _ris_reports(
    source: SourceSettings, columns: RisColumns
) -> Iterator[tuple[str, dict] | Skipped]:
    """(accession, row) of each usable RIS row; the others as Skipped."""
    assert source.reports is not None  # guaranteed by the settings validation
    required = [columns.accession, *columns.text, *columns.labels, *columns.identifiers]
    seen: set[str] = set()
    for row in read_csv(source.reports, required + ([columns.patient] if columns.patient else [])):
        accession = join_key(row[columns.accession])
        if not accession:
            yield Skipped("report_without_accession: a RIS row with no accession number")
        elif accession in seen:
            yield Skipped(
                "duplicate_accession: a second RIS row for an accession (the first is used)"
            )
        else:
            seen.add(accession)
            yield accession, row


def read_dicom_folder(
    source: SourceSettings, space: LabelSpace, limits: DecodeLimits
) -> Iterator[Record | Skipped]:
    """Records of a PACS export joined to its RIS export (see the module docstring)."""
    columns = source.columns
    assert isinstance(columns, RisColumns)  # guaranteed by the settings validation
    reports: dict[str, dict] = {}
    for item in _ris_reports(source, columns):
        if isinstance(item, Skipped):
            yield item
        else:
            reports[item[0]] = item[1]
    imaged: set[str] = set()  # accessions with an image file of any view
    used: set[str] = set()  # accessions with a kept image
    instances: set[str] = set()
    for path in walk_files(source.path):
        if isinstance(path, Skipped):
            yield path
            continue
        location = str(path.relative_to(source.path))
        inside, problem = contained(source.path, location)
        if inside is None or has_surrogates(location):  # never opened (to_rows says why)
            yield Record(native_id=location, patient=None, location=location, problem=problem)
            continue
        try:
            routed = route(inside, limits)
        except ImageDecodeError as exc:
            problem = f"{exc.code}: {exc}"
        except OSError:
            problem = "image_unreadable: the file cannot be read"
        if problem is not None:
            yield Record(
                native_id=location, patient=None, image=inside, location=location, problem=problem
            )
            continue
        if isinstance(routed, Skipped):
            yield routed
            continue
        accession = join_key(routed.accession)
        if accession:
            imaged.add(accession)
        excluded = excluded_view(routed.view, source.views)
        if excluded:
            yield excluded
            continue
        if routed.instance and routed.instance in instances:
            yield Skipped("duplicate_instance: a second file of the same image (SOP Instance UID)")
            continue
        if routed.instance:
            instances.add(routed.instance)
        if not accession:
            yield Skipped("image_without_accession: no AccessionNumber to join a report by")
            continue
        row = reports.get(accession)
        if row is None:
            yield Skipped("image_without_report: no RIS row has the image's accession number")
            continue
        used.add(accession)
        ris_patient = row[columns.patient].strip() if columns.patient else ""
        patient = ris_patient or routed.patient or routed.accession
        yield Record(
            native_id=routed.instance or location,
            patient=patient,
            image=inside,
            text=join_sections(*(row[c] for c in columns.text)) if columns.text else None,
            labels={c: row[c] for c in columns.labels},
            identifiers=[*(row[c] for c in columns.identifiers), *routed.identifiers, patient],
            location=location,
        )
    for accession in reports.keys() - used:
        if accession in imaged:
            yield Skipped("report_without_kept_image: every image of the study was passed over")
        else:
            yield Skipped("report_without_images: no image in the export has the accession number")
