"""`umcl demo`: synthetic chest X-ray studies in three real-world shapes.

- `mimic/`: image–report pairs laid out like MIMIC-CXR (`files/pXX/pNNNNNNNN/sNNNNNNNN/*.dcm`,
  one report `sNNNNNNNN.txt` per study, a `mimic-cxr-2.0.0-chexpert.csv` for part of them);
- `chexpert/`: images with labels like CheXpert (`train.csv`: `Path` + 1.0/0.0/-1.0/blank);
- `reports/`: a RIS export of reports with no images (`reports.csv`).

Images are real DICOM files that vary as real ones do (12/16-bit, MONOCHROME1, rescale, window).
PHI is planted on purpose (names, MRNs, birth dates, accession numbers, phone numbers) in DICOM
headers, report headers and CSV columns, and so is a small rate of faults. `manifest.json` lists
both so tests can prove each was caught. Everything is deterministic from the seed.
"""

from __future__ import annotations

import csv
import json
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from tqdm import tqdm

from umcl.config import DemoSettings
from umcl.data.demo_reports import Report, describe, sample_findings
from umcl.data.pseudonyms import DEMO_GENERATOR, MANIFEST
from umcl.data.radiograph import render_radiograph
from umcl.labels import CHEXPERT_LABELS

# Column orders of the real files: MIMIC's label table is alphabetical, CheXpert's CSV puts Lung
# Opacity before Lung Lesion. Readers must map by name; these orders make sure they do.
MIMIC_LABEL_ORDER = sorted(CHEXPERT_LABELS)
CHEXPERT_CSV_ORDER = [
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion",
    "Edema", "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion",
    "Pleural Other", "Fracture", "Support Devices",
]  # fmt: skip
FIRST_NAMES = ["Harriet", "Oswald", "Philippa", "Desmond", "Imogen", "Cornelius", "Rosalind",
               "Bartholomew", "Genevieve", "Thaddeus", "Marguerite", "Leopold", "Ottilie", "Ambrose"]  # fmt: skip
LAST_NAMES = ["Abernathy", "Blackwood", "Castellano", "Drummond", "Eastwick", "Fairbanks",
              "Goodfellow", "Hollingsworth", "Inglewood", "Jorgensen", "Kowalczyk", "Lindqvist",
              "Montgomery", "Northcott", "Okonkwo", "Pemberton", "Quintero", "Rutherford"]  # fmt: skip
FAULTS = {
    "mimic": ["corrupt_dicom", "truncated_dicom", "empty_report", "label_value_7"],
    "chexpert": ["missing_file", "corrupt_dicom", "label_value_7", "duplicated_id"],
    "reports": ["empty_report", "duplicated_id"],
}


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


def _patients(rng: np.random.Generator, n_studies: int, max_per_patient: int) -> list[Patient]:
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


def _uid(*parts: object) -> str:
    return generate_uid(entropy_srcs=[str(p) for p in parts])


def write_dicom(job: ImageJob) -> None:
    """Render a radiograph and store it with a randomly chosen, realistic encoding."""
    rng = np.random.default_rng(job.seed)
    image = render_radiograph(rng, job.findings, job.size)
    extra = int(rng.integers(0, job.size // 4))  # portrait detectors: taller than wide
    image = np.pad(image, ((extra // 2, extra - extra // 2), (0, 0)), mode="edge")

    bits = int(rng.choice([12, 16]))
    top = 2**bits - 1
    monochrome1 = rng.random() < 0.25
    stored = np.rint((1.0 - image if monochrome1 else image) * top * 0.9 + top * 0.04).astype(np.uint16)
    slope, intercept = [(1.0, 0.0), (1.0, -1024.0), (0.5, 0.0), (2.0, -200.0)][rng.integers(4)]

    sop_uid = _uid("sop", *job.seed)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"  # Computed Radiography Image
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, sop_uid
    ds.StudyInstanceUID = _uid("study", job.accession)
    ds.SeriesInstanceUID = _uid("series", *job.seed)
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
    ds.PixelData = stored.tobytes()
    job.path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(job.path, enforce_file_format=True)


def _report_text(report: Report, patient: Patient, accession: str, when: date, rng: np.random.Generator) -> str:
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


def _label_cell(value: int | None) -> str:
    return "" if value is None else f"{float(value):.1f}"


class _Planner:
    """Draws which records of a source carry which planted fault."""

    def __init__(self, rng: np.random.Generator, source: str, n: int, rate: float):
        self.by_record: dict[int, str] = {}
        indices = rng.permutation(n)
        per_kind = max(1, round(rate * n)) if rate > 0 else 0  # any rate plants each kind once
        for k, fault in enumerate(FAULTS[source]):
            for i in indices[k * per_kind : (k + 1) * per_kind]:
                self.by_record[int(i)] = fault

    def fault(self, index: int) -> str | None:
        return self.by_record.get(index)


def _study_meta(rng: np.random.Generator, patients: list[Patient]) -> list[tuple[str, date]]:
    return [
        (f"ACC{rng.integers(10_000_000, 99_999_999)}", date(2015, 1, 1) + timedelta(days=int(rng.integers(0, 3000))))
        for _ in patients
    ]


def _corrupt(path: Path, fault: str, rng: np.random.Generator) -> None:
    data = path.read_bytes()
    if fault == "truncated_dicom":
        path.write_bytes(data[: len(data) * 3 // 5])
    else:  # corrupt: the header survives, the pixel data does not
        path.write_bytes(data[:132] + rng.bytes(200))


def generate_demo(settings: DemoSettings, seed: int, workers: int = 0) -> dict:
    """Write the three demo sources under `settings.out`; return the manifest."""
    out = settings.out
    if out.exists() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        # The folder is replaced whole: never one that holds something other than demo data.
        raise ValueError(f"{out} holds files that `umcl demo` did not write; choose an empty demo.out")
    if out.exists():
        shutil.rmtree(out)
    rng = np.random.default_rng(seed)
    # `folders` marks what is synthetic: only these may use the public demo pseudonym key.
    manifest: dict = {"generator": DEMO_GENERATOR, "folders": sorted(FAULTS), "seed": seed, "phi": {"names": [], "mrns": [], "birth_dates": [], "accessions": [], "phones": []}, "faults": [], "records": {}}
    jobs: list[ImageJob] = []
    post: list[tuple[Path, str, tuple[int, ...]]] = []

    def plant(patients: list[Patient], metas: list[tuple[str, date]]) -> None:
        for p in patients:
            manifest["phi"]["names"].append(f"{p.name[0]} {p.name[1]}")
            manifest["phi"]["mrns"].append(p.mrn)
            manifest["phi"]["birth_dates"] += [f"{p.birth_date:%m/%d/%Y}", f"{p.birth_date:%Y%m%d}"]
        manifest["phi"]["accessions"] += [a for a, _ in metas]

    # --- MIMIC-CXR-like image–report pairs -------------------------------------------------
    n = settings.image_text_studies
    patients = _patients(rng, n, settings.max_studies_per_patient)
    metas = _study_meta(rng, patients)
    plant(patients, metas)
    faults = _Planner(rng, "mimic", n, settings.fault_rate)
    subject_of = {p.mrn: 10_000_000 + i for i, p in enumerate(dict.fromkeys(patients))}
    label_rows = []
    root = out / "mimic"
    for i, (patient, (accession, when)) in enumerate(zip(patients, metas, strict=True)):
        findings = sample_findings(rng, settings.no_finding_fraction)
        report = describe(findings, rng)
        subject, study = subject_of[patient.mrn], 50_000_000 + i
        folder = root / "files" / f"p{str(subject)[:2]}" / f"p{subject}"
        dicom_id = "-".join(rng.bytes(4).hex() for _ in range(5))
        fault = faults.fault(i)
        text = "   \n" if fault == "empty_report" else _report_text(report, patient, accession, when, rng)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"s{study}.txt").write_text(text)
        job = ImageJob(folder / f"s{study}" / f"{dicom_id}.dcm", (seed, 1, i), findings, settings.image_size, patient, accession, when)
        jobs.append(job)
        labels = dict(report.labels)
        if fault == "label_value_7" or rng.random() < settings.labelled_fraction:
            if fault == "label_value_7":
                labels[str(rng.choice(CHEXPERT_LABELS))] = 7
            label_rows.append([subject, study, *(_label_cell(labels[name]) for name in MIMIC_LABEL_ORDER)])
        if fault in ("corrupt_dicom", "truncated_dicom"):
            post.append((job.path, fault, job.seed))
        if fault:
            manifest["faults"].append({"source": "mimic", "record": dicom_id, "fault": fault})
        manifest["records"][f"mimic:{dicom_id}"] = {"findings": sorted(findings)}
    with (root / "mimic-cxr-2.0.0-chexpert.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["subject_id", "study_id", *MIMIC_LABEL_ORDER])
        writer.writerows(sorted(label_rows, key=lambda row: (row[0], row[1])))

    # --- CheXpert-like images with a label table --------------------------------------------
    n = settings.image_label_studies
    patients = _patients(rng, n, settings.max_studies_per_patient)
    metas = _study_meta(rng, patients)
    plant(patients, metas)
    faults = _Planner(rng, "chexpert", n, settings.fault_rate)
    numbers = {p.mrn: i + 1 for i, p in enumerate(dict.fromkeys(patients))}
    study_count: dict[str, int] = {}
    rows = []
    root = out / "chexpert"
    for i, (patient, (accession, when)) in enumerate(zip(patients, metas, strict=True)):
        findings = sample_findings(rng, settings.no_finding_fraction)
        labels = dict(describe(findings, rng).labels)
        study_count[patient.mrn] = study_count.get(patient.mrn, 0) + 1
        relative = f"train/patient{numbers[patient.mrn]:05d}/study{study_count[patient.mrn]}/view1_frontal.dcm"
        fault = faults.fault(i)
        if fault != "missing_file":
            job = ImageJob(root / relative, (seed, 2, i), findings, settings.image_size, patient, accession, when)
            jobs.append(job)
        if fault == "corrupt_dicom":
            post.append((root / relative, fault, (seed, 2, i)))
        if fault == "label_value_7":
            labels[str(rng.choice(CHEXPERT_LABELS))] = 7
        row = [f"CheXpert-v1.0-small/{relative}", str(rng.choice(["Male", "Female"])), int(rng.integers(20, 90)), "Frontal", "PA"]
        rows.append(row + [_label_cell(labels[name]) for name in CHEXPERT_CSV_ORDER])
        if fault == "duplicated_id":  # the same Path listed twice, with other labels
            rows.append(row + [_label_cell(None if name != "Fracture" else 1) for name in CHEXPERT_CSV_ORDER])
        record = relative.removeprefix("train/").removesuffix(".dcm")
        if fault:
            manifest["faults"].append({"source": "chexpert", "record": record, "fault": fault})
        manifest["records"][f"chexpert:{record}"] = {"findings": sorted(findings)}
    root.mkdir(parents=True, exist_ok=True)
    with (root / "train.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *CHEXPERT_CSV_ORDER])
        writer.writerows(rows)

    # --- reports with no images --------------------------------------------------------------
    n = settings.text_label_studies
    patients = _patients(rng, n, settings.max_studies_per_patient)
    metas = _study_meta(rng, patients)
    plant(patients, metas)
    faults = _Planner(rng, "reports", n, settings.fault_rate)
    rows = []
    for i, (patient, (accession, when)) in enumerate(zip(patients, metas, strict=True)):
        findings = sample_findings(rng, settings.no_finding_fraction)
        text = _report_text(describe(findings, rng), patient, accession, when, rng)
        report_id = f"R{i:06d}"
        fault = faults.fault(i)
        row = [report_id, patient.mrn, f"{patient.name[1].upper()}^{patient.name[0].upper()}", f"{when:%Y-%m-%d}"]
        rows.append(row + ["" if fault == "empty_report" else text])
        if fault == "duplicated_id":
            rows.append(row + [text.replace("FINDINGS:", "FINDINGS: Addendum.")])
        if fault:
            manifest["faults"].append({"source": "reports", "record": report_id, "fault": fault})
    (out / "reports").mkdir(parents=True, exist_ok=True)
    with (out / "reports" / "reports.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["report_id", "mrn", "patient_name", "exam_date", "report"])
        writer.writerows(rows)

    manifest["phi"]["phones"] = ["(617) 555-"]  # prefix of every planted phone number
    for key, values in manifest["phi"].items():
        manifest["phi"][key] = sorted(set(values))

    with ProcessPoolExecutor(max_workers=workers or None) as pool:
        list(tqdm(pool.map(write_dicom, jobs, chunksize=16), total=len(jobs), desc="demo DICOMs", unit="img"))
    for path, fault, job_seed in post:
        _corrupt(path, fault, np.random.default_rng(job_seed))
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return manifest

