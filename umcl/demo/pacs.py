"""`umcl demo`'s PACS-shaped source: a hospital's DICOM export and its RIS export of reports.

`pacs/dicom/` is laid out the way exports come: one vendor writes
`<LAST>_<FIRST>_<MRN>/<date>_<accession>/SE<n>/IM<k>` (no file extension, names in the folder
names), another `EXPORT/<study UID>/<k>.dcm`. Beside the frontal images: a lateral in most
studies, a second frontal in some, a structured report now and then, a CT of another exam, a
DICOMDIR at the top and viewer files that are not DICOM. Some images leave ViewPosition empty and
name the view only in their series description. `pacs/ris.csv` holds one row per accession (MRN,
name, exam date, referring physician, the report with PHI in it); some studies have no RIS row,
some rows no images, and one accession has two rows. `manifest.json: pacs` says how many of each
there are, so a test can reconcile every file.
"""

from __future__ import annotations

import csv
from collections import Counter
from datetime import date
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from umcl.config import DemoSettings
from umcl.demo.reports import describe, sample_findings
from umcl.demo.studies import (
    LAST_NAMES,
    FaultPlan,
    ImageJob,
    Patient,
    draw_patients,
    draw_studies,
    report_text,
    uid,
)

FAULTS = ["corrupt_dicom", "truncated_dicom", "empty_report"]
DX_IMAGE = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
DICOMDIR = "1.2.840.10008.1.3.10"
RIS_COLUMNS = [
    "AccessionNumber",
    "mrn",
    "patient_name",
    "exam_date",
    "referring_physician",
    "report",
]
COUNTED = [
    "frontal",
    "lateral",
    "view_from_description",
    "structured_report",
    "other_modality",
    "image_without_report",
    "duplicate_accession",
    "report_without_images",
]
NOT_DICOM = {
    "AUTORUN.INF": b"[autorun]\nopen=VIEWER\\viewer.exe\n",
    "README.TXT": b"Exported by PACS\n",
}


def _non_image(path: Path, sop_class: str, patient: Patient, accession: str, **extra: str) -> None:
    """A DICOM object without pixels (a structured report, a DICOMDIR), with the patient's PHI."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = uid("object", path.name, accession)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.PatientName = f"{patient.name[1]}^{patient.name[0]}"
    ds.PatientID, ds.AccessionNumber = patient.mrn, accession
    for keyword, value in extra.items():
        setattr(ds, keyword, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def write_pacs_export(
    settings: DemoSettings, root: Path, seed: int, manifest: dict
) -> tuple[
    list[ImageJob], list[tuple[Path, str, tuple[int, ...]]], list[Patient], list[tuple[str, date]]
]:
    """Write the RIS export and the non-image files under `root`; return the image jobs, the
    files to corrupt after writing, and the patients and studies (whose PHI the caller plants)."""
    rng = np.random.default_rng(
        [seed, 4]
    )  # its own stream: the other demo sources stay as they were
    n = settings.pacs_studies
    patients = draw_patients(rng, n, settings.max_studies_per_patient)
    metas = draw_studies(rng, patients)
    faults = FaultPlan(rng, FAULTS, n, settings.fault_rate)
    counts: Counter[str] = Counter(dict.fromkeys(COUNTED, 0))
    jobs: list[ImageJob] = []
    post: list[tuple[Path, str, tuple[int, ...]]] = []
    ris: list[list[str]] = []
    dicom = root / "dicom"
    for i, (patient, (accession, when)) in enumerate(zip(patients, metas, strict=True)):
        findings = sample_findings(rng, settings.no_finding_fraction)
        report = describe(findings, rng)
        first, last = patient.name
        if rng.random() < 0.5:
            folder = (
                dicom
                / f"{last.upper()}_{first.upper()}_{patient.mrn}"
                / f"{when:%Y%m%d}_{accession}"
            )
            names = (f"SE{k + 1}/IM{k + 1}" for k in range(10))
        else:
            folder = dicom / "EXPORT" / uid("study", accession)
            names = (f"{k + 1}.dcm" for k in range(10))
        fault = faults.fault(i)
        frontals = 2 if rng.random() < 0.15 or i < 2 else 1
        for k in range(frontals):
            view = str(rng.choice(["PA", "AP"]))
            header = {"ViewPosition": view}
            if rng.random() < 0.15:  # the view only in the series description
                header = {"ViewPosition": "", "SeriesDescription": f"CHEST {view}"}
                counts["view_from_description"] += 1
            if rng.random() < 0.5:
                header |= {"Modality": "DX", "SOPClassUID": DX_IMAGE}
            job = ImageJob(
                folder / next(names),
                (seed, 4, i, k),
                findings,
                settings.image_size,
                patient,
                accession,
                when,
                header,
            )
            jobs.append(job)
            instance = uid("sop", *job.seed)
            counts["frontal"] += 1
            if k == 0 and fault in ("corrupt_dicom", "truncated_dicom"):
                post.append((job.path, fault, job.seed))
                # A header that cannot be read leaves only the file's place to name it.
                record = str(job.path.relative_to(dicom)) if fault == "corrupt_dicom" else instance
                manifest["faults"].append({"source": "pacs", "record": record, "fault": fault})
            elif k == 0 and fault == "empty_report":
                manifest["faults"].append({"source": "pacs", "record": instance, "fault": fault})
            manifest["records"][f"pacs:{instance}"] = {"findings": sorted(findings)}
        if rng.random() < 0.6:
            header = (
                {"ViewPosition": "LL"}
                if rng.random() < 0.7
                else {"ViewPosition": "", "SeriesDescription": "CHEST LAT"}
            )
            jobs.append(
                ImageJob(
                    folder / next(names),
                    (seed, 4, i, 9),
                    findings,
                    settings.image_size,
                    patient,
                    accession,
                    when,
                    header,
                )
            )
            counts["lateral"] += 1
        if rng.random() < 0.08 or i == 0:
            _non_image(folder / next(names), BASIC_TEXT_SR, patient, accession, Modality="SR")
            counts["structured_report"] += 1
        if i == 0 or rng.random() < 0.02:  # another exam of the patient, in the same export
            header = {"Modality": "CT", "SOPClassUID": CT_IMAGE, "ViewPosition": ""}
            other = f"ACC{rng.integers(10_000_000, 99_999_999)}"
            manifest["phi"]["accessions"].append(other)
            jobs.append(
                ImageJob(
                    folder.parent / f"CT_{other}" / "IM1",
                    (seed, 4, i, 8),
                    {},
                    settings.image_size,
                    patient,
                    other,
                    when,
                    header,
                )
            )
            counts["other_modality"] += 1
        unsigned = rng.random() < 0.04  # the RIS export was taken before the report was signed
        if unsigned and i > 1 and fault is None:
            counts["image_without_report"] += frontals
            continue
        text = "" if fault == "empty_report" else report_text(report, patient, accession, when, rng)
        row = [
            accession,
            patient.mrn,
            f"{last.upper()}^{first.upper()}",
            f"{when:%Y-%m-%d}",
            f"Dr. {rng.choice(LAST_NAMES)}",
            text,
        ]
        ris.append(row)
        if i == 1:  # an addendum exported as a second row
            ris.append([*row[:-1], text.replace("FINDINGS:", "FINDINGS: Addendum.")])
            counts["duplicate_accession"] += 1
    for patient, (_, when) in zip(patients[: max(1, n // 30)], metas, strict=False):
        other = f"ACC{rng.integers(10_000_000, 99_999_999)}"  # an order with no images exported
        manifest["phi"]["accessions"].append(other)
        ris.append(
            [
                other,
                patient.mrn,
                f"{patient.name[1].upper()}^{patient.name[0].upper()}",
                f"{when:%Y-%m-%d}",
                "Dr. Pemberton",
                "FINDINGS: Lungs are clear.\nIMPRESSION: Normal.",
            ]
        )
        counts["report_without_images"] += 1
    _non_image(dicom / "DICOMDIR", DICOMDIR, patients[0], metas[0][0], FileSetID="EXPORT")
    counts["dicomdir"] = 1
    for name, content in NOT_DICOM.items():
        (dicom / name).write_bytes(content)
    (dicom / "VIEWER").mkdir(exist_ok=True)
    (dicom / "VIEWER" / "viewer.exe").write_bytes(b"MZ" + rng.bytes(2000))
    counts["not_dicom"] = len(NOT_DICOM) + 1
    rng.shuffle(ris)
    with (root / "ris.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(RIS_COLUMNS)
        writer.writerows(ris)
    manifest["pacs"] = dict(sorted(counts.items()))
    return jobs, post, patients, metas
