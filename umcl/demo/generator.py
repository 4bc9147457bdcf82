"""`umcl demo`: synthetic chest X-ray studies in four real-world shapes.

- `mimic/`: image–report pairs laid out like MIMIC-CXR (`files/pXX/pNNNNNNNN/sNNNNNNNN/*.dcm`,
  one report `sNNNNNNNN.txt` per study, a `mimic-cxr-2.0.0-chexpert.csv` for part of them, a
  `mimic-cxr-2.0.0-metadata.csv` with each image's ViewPosition; some studies add a lateral);
- `chexpert/`: images with labels like CheXpert (`train.csv`: `Path` + 1.0/0.0/-1.0/blank);
- `reports/`: a RIS export of reports with no images (`reports.csv`);
- `pacs/`: a PACS export in vendor layouts with a RIS export keyed by accession (`pacs.py`).

Images are real DICOM files that vary as real ones do (12/16-bit, MONOCHROME1, rescale, window).
PHI is planted on purpose (names, MRNs, birth dates, accession numbers, phone numbers) in DICOM
headers, report headers and CSV columns, and so is a small rate of faults. `manifest.json` lists
both so tests can prove each was caught, and where each image shows each of its findings
(`regions`: path → finding → pixel box). Everything is deterministic from the seed.
"""

from __future__ import annotations

import csv
import json
import shutil
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from pathlib import Path

import numpy as np
from tqdm import tqdm

from umcl.config import DemoSettings
from umcl.demo.manifest import DEMO_GENERATOR, MANIFEST
from umcl.demo.pacs import write_pacs_export
from umcl.demo.reports import describe, sample_findings
from umcl.demo.studies import (
    FaultPlan,
    ImageJob,
    Patient,
    corrupt,
    draw_patients,
    draw_studies,
    report_text,
    write_dicom,
)
from umcl.errors import InputError
from umcl.labels import CHEXPERT_LABELS

# Column orders of the real files: MIMIC's label table is alphabetical, CheXpert's CSV puts Lung
# Opacity before Lung Lesion. Readers must map by name; these orders make sure they do.
MIMIC_LABEL_ORDER = sorted(CHEXPERT_LABELS)
CHEXPERT_CSV_ORDER = [
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
]
LATERAL_FRACTION = 0.3
FAULTS = {
    "mimic": ["corrupt_dicom", "truncated_dicom", "empty_report", "label_value_7"],
    "chexpert": ["missing_file", "corrupt_dicom", "label_value_7", "duplicated_id"],
    "reports": ["empty_report", "duplicated_id"],
}


def _label_cell(value: int | None) -> str:
    return "" if value is None else f"{float(value):.1f}"


def generate_demo(settings: DemoSettings, out: Path, seed: int, workers: int = 0) -> dict:
    """Write the demo sources under `out`; return the manifest."""
    if out.exists() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        # The folder is replaced whole: never one that holds something other than demo data.
        raise InputError(
            f"{out} holds files that `umcl demo` did not write; choose an empty demo.out"
        )
    if out.exists():
        shutil.rmtree(out)
    rng = np.random.default_rng(seed)
    # `folders` marks what is synthetic: only these may use the public demo pseudonym key.
    manifest: dict = {
        "generator": DEMO_GENERATOR,
        "folders": sorted(FAULTS),
        "seed": seed,
        "phi": {"names": [], "mrns": [], "birth_dates": [], "accessions": [], "phones": []},
        "faults": [],
        "records": {},
        "laterals": {"mimic": 0},
    }
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
    patients = draw_patients(rng, n, settings.max_studies_per_patient)
    metas = draw_studies(rng, patients)
    plant(patients, metas)
    faults = FaultPlan(rng, FAULTS["mimic"], n, settings.fault_rate)
    subject_of = {p.mrn: 10_000_000 + i for i, p in enumerate(dict.fromkeys(patients))}
    label_rows = []
    views = np.random.default_rng(
        [seed, 5]
    )  # views and laterals: the draws above stay as they were
    metadata: list[list[object]] = []
    root = out / "mimic"
    for i, (patient, (accession, when)) in enumerate(zip(patients, metas, strict=True)):
        findings = sample_findings(rng, settings.no_finding_fraction)
        report = describe(findings, rng)
        subject, study = subject_of[patient.mrn], 50_000_000 + i
        folder = root / "files" / f"p{str(subject)[:2]}" / f"p{subject}"
        dicom_id = "-".join(rng.bytes(4).hex() for _ in range(5))
        fault = faults.fault(i)
        text = (
            "   \n"
            if fault == "empty_report"
            else report_text(report, patient, accession, when, rng)
        )
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"s{study}.txt").write_text(text)
        view = str(views.choice(["PA", "AP"]))
        job = ImageJob(
            folder / f"s{study}" / f"{dicom_id}.dcm",
            (seed, 1, i),
            findings,
            settings.image_size,
            patient,
            accession,
            when,
            {"ViewPosition": view},
        )
        jobs.append(job)
        metadata.append([dicom_id, subject, study, view])
        if views.random() < LATERAL_FRACTION:  # MIMIC-CXR studies often hold a lateral too
            lateral_id, side = (
                "-".join(views.bytes(4).hex() for _ in range(5)),
                str(views.choice(["LATERAL", "LL"])),
            )
            jobs.append(
                ImageJob(
                    job.path.with_name(f"{lateral_id}.dcm"),
                    (seed, 5, i),
                    findings,
                    settings.image_size,
                    patient,
                    accession,
                    when,
                    {"ViewPosition": side},
                )
            )
            metadata.append([lateral_id, subject, study, side])
            manifest["laterals"]["mimic"] += 1
        labels = dict(report.labels)
        if fault == "label_value_7" or rng.random() < settings.labelled_fraction:
            if fault == "label_value_7":
                labels[str(rng.choice(CHEXPERT_LABELS))] = 7
            label_rows.append(
                [subject, study, *(_label_cell(labels[name]) for name in MIMIC_LABEL_ORDER)]
            )
        if fault in ("corrupt_dicom", "truncated_dicom"):
            post.append((job.path, fault, job.seed))
        if fault:
            manifest["faults"].append({"source": "mimic", "record": dicom_id, "fault": fault})
        manifest["records"][f"mimic:{dicom_id}"] = {"findings": sorted(findings)}
    with (root / "mimic-cxr-2.0.0-metadata.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["dicom_id", "subject_id", "study_id", "ViewPosition"])
        writer.writerows(metadata)
    with (root / "mimic-cxr-2.0.0-chexpert.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["subject_id", "study_id", *MIMIC_LABEL_ORDER])
        writer.writerows(sorted(label_rows, key=lambda row: (row[0], row[1])))

    # --- CheXpert-like images with a label table --------------------------------------------
    n = settings.image_label_studies
    patients = draw_patients(rng, n, settings.max_studies_per_patient)
    metas = draw_studies(rng, patients)
    plant(patients, metas)
    faults = FaultPlan(rng, FAULTS["chexpert"], n, settings.fault_rate)
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
            job = ImageJob(
                root / relative,
                (seed, 2, i),
                findings,
                settings.image_size,
                patient,
                accession,
                when,
            )
            jobs.append(job)
        if fault == "corrupt_dicom":
            post.append((root / relative, fault, (seed, 2, i)))
        if fault == "label_value_7":
            labels[str(rng.choice(CHEXPERT_LABELS))] = 7
        row = [
            f"CheXpert-v1.0-small/{relative}",
            str(rng.choice(["Male", "Female"])),
            int(rng.integers(20, 90)),
            "Frontal",
            "PA",
        ]
        rows.append(row + [_label_cell(labels[name]) for name in CHEXPERT_CSV_ORDER])
        if fault == "duplicated_id":  # the same Path listed twice, with other labels
            rows.append(
                row
                + [_label_cell(None if name != "Fracture" else 1) for name in CHEXPERT_CSV_ORDER]
            )
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
    patients = draw_patients(rng, n, settings.max_studies_per_patient)
    metas = draw_studies(rng, patients)
    plant(patients, metas)
    faults = FaultPlan(rng, FAULTS["reports"], n, settings.fault_rate)
    rows = []
    for i, (patient, (accession, when)) in enumerate(zip(patients, metas, strict=True)):
        findings = sample_findings(rng, settings.no_finding_fraction)
        text = report_text(describe(findings, rng), patient, accession, when, rng)
        report_id = f"R{i:06d}"
        fault = faults.fault(i)
        row = [
            report_id,
            patient.mrn,
            f"{patient.name[1].upper()}^{patient.name[0].upper()}",
            f"{when:%Y-%m-%d}",
        ]
        rows.append([*row, "" if fault == "empty_report" else text])
        if fault == "duplicated_id":
            rows.append([*row, text.replace("FINDINGS:", "FINDINGS: Addendum.")])
        if fault:
            manifest["faults"].append({"source": "reports", "record": report_id, "fault": fault})
    (out / "reports").mkdir(parents=True, exist_ok=True)
    with (out / "reports" / "reports.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["report_id", "mrn", "patient_name", "exam_date", "report"])
        writer.writerows(rows)

    # --- a PACS export and its RIS export ----------------------------------------------------
    if settings.pacs_studies:
        manifest["folders"].append("pacs")
        pacs_jobs, pacs_post, patients, metas = write_pacs_export(
            settings, out / "pacs", seed, manifest
        )
        plant(patients, metas)
        jobs += pacs_jobs
        post += pacs_post

    manifest["phi"]["phones"] = ["(617) 555-"]  # prefix of every planted phone number
    for key, values in manifest["phi"].items():
        manifest["phi"][key] = sorted(set(values))

    with ProcessPoolExecutor(max_workers=workers or None) as pool:
        boxes = list(
            tqdm(
                pool.map(write_dicom, jobs, chunksize=16),
                total=len(jobs),
                desc="demo DICOMs",
                unit="img",
            )
        )
    # Where each finding was drawn, by the image's path inside the demo folder (the locator
    # leads from an image key to that path): what grounding maps are scored against.
    manifest["regions"] = {
        str(job.path.relative_to(out)): box for job, box in zip(jobs, boxes, strict=True) if box
    }
    for path, fault, job_seed in post:
        corrupt(path, fault, np.random.default_rng(job_seed))
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return manifest
