"""The parts every demo source is made of: patients, studies, their reports (with PHI planted on
purpose) and their DICOM files, which vary as real ones do (12/16-bit, MONOCHROME1, rescale,
window). Deterministic from the seeds they are given."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from umcl.demo.radiograph import render_radiograph
from umcl.demo.reports import Report

FIRST_NAMES = [
    "Harriet",
    "Oswald",
    "Philippa",
    "Desmond",
    "Imogen",
    "Cornelius",
    "Rosalind",
    "Bartholomew",
    "Genevieve",
    "Thaddeus",
    "Marguerite",
    "Leopold",
    "Ottilie",
    "Ambrose",
]
LAST_NAMES = [
    "Abernathy",
    "Blackwood",
    "Castellano",
    "Drummond",
    "Eastwick",
    "Fairbanks",
    "Goodfellow",
    "Hollingsworth",
    "Inglewood",
    "Jorgensen",
    "Kowalczyk",
    "Lindqvist",
    "Montgomery",
    "Northcott",
    "Okonkwo",
    "Pemberton",
    "Quintero",
    "Rutherford",
]


@dataclass(frozen=True)
class Patient:
    name: tuple[str, str]  # first, last
    mrn: str
    birth_date: date


@dataclass(frozen=True)
class ImageJob:
    path: Path
    seed: tuple[int, ...]
    findings: dict[str, str]
    size: int
    patient: Patient
    accession: str
    study_date: date
    # DICOM attributes set over the defaults (ViewPosition, Modality, SOPClassUID, …); an empty
    # string writes the attribute empty.
    header: dict[str, str] = field(default_factory=dict)


def draw_patients(rng: np.random.Generator, n_studies: int, max_per_patient: int) -> list[Patient]:
    """One Patient per study, several studies per patient."""
    per_study: list[Patient] = []
    while len(per_study) < n_studies:
        patient = Patient(
            name=(str(rng.choice(FIRST_NAMES)), str(rng.choice(LAST_NAMES))),
            mrn=f"{rng.integers(1_000_000, 9_999_999)}",
            birth_date=date(1930, 1, 1) + timedelta(days=int(rng.integers(0, 25_000))),
        )
        per_study += [patient] * int(rng.integers(1, max_per_patient + 1))
    return per_study[:n_studies]


def uid(*parts: object) -> str:
    return generate_uid(entropy_srcs=[str(p) for p in parts])


def write_dicom(job: ImageJob) -> dict[str, list[int]]:
    """Render a radiograph and store it with a randomly chosen, realistic encoding; each drawn
    finding's bounding box in the stored pixels, [x0, y0, x1, y1] (ends exclusive)."""
    rng = np.random.default_rng(job.seed)
    masks: dict[str, np.ndarray] = {}
    image = render_radiograph(rng, job.findings, job.size, masks)
    extra = int(rng.integers(0, job.size // 4))  # portrait detectors: taller than wide
    image = np.pad(image, ((extra // 2, extra - extra // 2), (0, 0)), mode="edge")
    boxes = {}
    for label, mask in masks.items():
        rows, columns = np.nonzero(mask)
        if rows.size:
            top = extra // 2
            boxes[label] = [
                int(columns.min()),
                int(rows.min()) + top,
                int(columns.max()) + 1,
                int(rows.max()) + 1 + top,
            ]

    bits = int(rng.choice([12, 16]))
    top = 2**bits - 1
    monochrome1 = rng.random() < 0.25
    stored = np.rint((1.0 - image if monochrome1 else image) * top * 0.9 + top * 0.04).astype(
        np.uint16
    )
    slope, intercept = [(1.0, 0.0), (1.0, -1024.0), (0.5, 0.0), (2.0, -200.0)][rng.integers(4)]

    sop_uid = uid("sop", *job.seed)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"  # Computed Radiography Image
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, sop_uid
    ds.StudyInstanceUID = uid("study", job.accession)
    ds.SeriesInstanceUID = uid("series", *job.seed)
    ds.Modality, ds.ViewPosition, ds.BodyPartExamined = "CR", str(rng.choice(["PA", "AP"])), "CHEST"
    first, last = job.patient.name
    ds.PatientName = f"{last}^{first}"
    ds.PatientID = job.patient.mrn
    ds.PatientBirthDate = job.patient.birth_date.strftime("%Y%m%d")
    ds.AccessionNumber = job.accession
    ds.StudyDate = job.study_date.strftime("%Y%m%d")
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits, bits - 1, 0
    if (slope, intercept) != (1.0, 0.0) or rng.random() < 0.5:
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = f"{slope:g}", f"{intercept:g}", "US"
    if rng.random() < 0.6:  # a window that spans the stored range, in modality units
        ds.WindowCenter = f"{slope * top * 0.5 + intercept:.1f}"
        ds.WindowWidth = f"{slope * top * 1.02:.1f}"
    for keyword, value in job.header.items():
        setattr(ds, keyword, value)
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.PixelData = stored.tobytes()
    job.path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(job.path, enforce_file_format=True)
    return boxes


def report_text(
    report: Report, patient: Patient, accession: str, when: date, rng: np.random.Generator
) -> str:
    first, last = patient.name
    header = (
        "EXAMINATION: CHEST (PA AND LAT)\n"
        f"Patient: {first} {last}  MRN: {patient.mrn}  DOB: {patient.birth_date:%m/%d/%Y}\n"
        f"Accession: {accession}  Date: {when:%m/%d/%Y}\n"
        f"INDICATION: {rng.choice(['Cough.', 'Shortness of breath.', 'Fever.', 'Chest pain.', 'Preoperative evaluation.'])}\n"
    )
    findings = " ".join(report.findings)
    if rng.random() < 0.1:  # PHI in the body too, as in real dictations
        findings += f" Findings discussed with Dr. {rng.choice(LAST_NAMES)} at (617) 555-{rng.integers(1000, 9999)} on {when:%B %d, %Y}."
    impression = " ".join(f"{i + 1}. {line}" for i, line in enumerate(report.impression))
    return f"{header}\nFINDINGS: {findings}\n\nIMPRESSION: {impression}\n"


class FaultPlan:
    """Draws which records of a source carry which planted fault."""

    def __init__(self, rng: np.random.Generator, faults: list[str], n: int, rate: float):
        self.by_record: dict[int, str] = {}
        indices = rng.permutation(n)
        per_kind = max(1, round(rate * n)) if rate > 0 else 0  # any rate plants each kind once
        for k, fault in enumerate(faults):
            for i in indices[k * per_kind : (k + 1) * per_kind]:
                self.by_record[int(i)] = fault

    def fault(self, index: int) -> str | None:
        return self.by_record.get(index)


def draw_studies(rng: np.random.Generator, patients: list[Patient]) -> list[tuple[str, date]]:
    return [
        (
            f"ACC{rng.integers(10_000_000, 99_999_999)}",
            date(2015, 1, 1) + timedelta(days=int(rng.integers(0, 3000))),
        )
        for _ in patients
    ]


def corrupt(path: Path, fault: str, rng: np.random.Generator) -> None:
    data = path.read_bytes()
    if fault == "truncated_dicom":
        path.write_bytes(data[: len(data) * 3 // 5])
    else:  # corrupt: the header survives, the pixel data does not
        path.write_bytes(data[:132] + rng.bytes(200))
