"""`format: dicom_folder`: a PACS export joined to a RIS export, on the demo's PACS-shaped source
(vendor layouts, extension-less files, DICOMDIR, laterals, structured reports, a CT, viewer files,
PHI in headers, folder names and the RIS export), on a real vendor's DICOM, and on headers
written to provoke."""

import csv
import json
import os
import re
import shutil
import struct
from pathlib import Path

import polars as pl
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

from tests.conftest import shared_path
from umcl.config import ConfigError, SourceSettings, load_settings
from umcl.imaging.limits import DecodeLimits
from umcl.ingest.pacs import header_view
from umcl.ingest.pseudonyms import Pseudonymizer
from umcl.ingest.sources import PRIVATE_COLUMNS, read_source
from umcl.ingest.validate import reason_code
from umcl.labels import LabelSpace

PSEUDONYMS = Pseudonymizer("a-test-key-of-some-length")
RIS_LEVEL = (
    "duplicate_accession",
    "report_without_images",
    "report_without_kept_image",
    "report_without_accession",
)


def by_code(skipped: dict[str, int]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for reason, n in skipped.items():
        counts[reason_code(reason)] = counts.get(reason_code(reason), 0) + n
    return counts


@pytest.fixture(scope="module")
def pacs(tiny_pipeline) -> dict:
    report = json.loads((tiny_pipeline["metrics"] / "validation.json").read_text())["pacs"]
    root = tiny_pipeline["root"] / "raw/demo/pacs"
    with (root / "ris.csv").open(newline="") as handle:
        ris = list(csv.DictReader(handle))
    return {"report": report, "root": root, "ris": ris, "manifest": tiny_pipeline["manifest"]}


def test_every_file_of_the_export_is_a_record_or_a_counted_reason(pacs):
    report, expected = pacs["report"], pacs["manifest"]["pacs"]
    files = [p for p in (pacs["root"] / "dicom").rglob("*") if p.is_file()]
    assert any(p.suffix == "" and p.name.startswith("IM") for p in files)  # extension-less
    skipped = by_code(report["skipped"])
    per_file = sum(n for c, n in skipped.items() if c not in RIS_LEVEL)
    assert len(files) == report["rows_in"] + per_file
    assert report["rows_in"] == report["rows_valid"] + report["rows_quarantined"]
    assert report["rows_in"] == expected["frontal"] - expected["image_without_report"]
    assert skipped["view_excluded"] == report["excluded_by_view"] == expected["lateral"]
    assert (
        "view_excluded: LL" in report["skipped"] and "view_excluded: LATERAL" in report["skipped"]
    )
    assert skipped["structured_report"] == expected["structured_report"] > 0
    assert skipped["dicomdir"] == 1 and skipped["not_dicom"] == expected["not_dicom"]
    assert report["skipped"]["modality_out_of_scope: CT"] == expected["other_modality"] > 0
    assert skipped.get("image_without_report", 0) == expected["image_without_report"]
    # Only the planted faults (test_pipeline.py follows each to its quarantined record).
    assert set(report["reasons"]) == {"empty_text", "image_unreadable"}


def test_every_ris_row_is_joined_or_counted(pacs):
    report, rows = pacs["report"], pacs["ris"]
    skipped = by_code(report["skipped"])
    accessions = {r["AccessionNumber"] for r in pacs["ris"]}
    assert len(rows) == len(accessions) + skipped["duplicate_accession"]
    unjoined = skipped["report_without_images"] + skipped.get("report_without_kept_image", 0)
    joined = len(accessions) - unjoined
    assert 0 < joined <= report["rows_in"]  # a study with two frontal images joins twice


def test_frontal_images_carry_their_own_studys_report(pacs, tiny_pipeline):
    """Through the image locator (raw side) back to each kept file's header: the row's text is
    the report of the file's own accession, and the file is a frontal view."""
    locator = pl.read_parquet(tiny_pipeline["locator"] / "pacs.parquet")
    validated = pl.read_parquet(tiny_pipeline["validated"] / "pacs.parquet")
    reports: dict[str, str] = {}
    for r in pacs["ris"]:  # the first row of an accession is its report
        reports.setdefault(r["AccessionNumber"], r["report"])
    files = dict(zip(locator["image"], locator["path"], strict=True))
    per_accession: dict[str, list[dict]] = {}
    for row in validated.iter_rows(named=True):
        header = pydicom.dcmread(files[row["image"]], stop_before_pixels=True)
        view = header.ViewPosition or header.SeriesDescription.split()[-1]
        assert view in ("PA", "AP")
        first_finding = row["text"].split(".")[0]
        assert first_finding in reports[header.AccessionNumber]
        per_accession.setdefault(header.AccessionNumber, []).append(row)
    multi = [rows for rows in per_accession.values() if len(rows) > 1]
    assert multi, "no study with two frontal images in the demo export"
    for rows in multi:  # one study: one report, one patient, two images
        assert len({r["text"] for r in rows}) == 1 and len({r["patient_id"] for r in rows}) == 1
        assert len({r["image"] for r in rows}) == len(rows)


def test_no_header_value_folder_name_or_ris_value_passes_ingestion(pacs, tiny_pipeline):
    validated = str(pl.read_parquet(tiny_pipeline["validated"] / "pacs.parquet").to_dicts())
    triplets = pl.read_parquet(tiny_pipeline["triplets"]).filter(pl.col("source") == "pacs")
    assert triplets.height == pacs["report"]["rows_valid"]
    text = validated + str(triplets.to_dicts()) + json.dumps(pacs["report"])
    for row in pacs["ris"]:
        for column in ("AccessionNumber", "mrn", "patient_name", "exam_date"):
            assert row[column] not in text, column
        assert row["referring_physician"].removeprefix("Dr. ") not in text
    folders = [f.name for f in (pacs["root"] / "dicom").iterdir()]
    named = [f for f in folders if re.fullmatch(r"[A-Z]+_[A-Z]+_\d+", f)]  # LAST_FIRST_MRN
    assert named
    for folder in named:
        for part in folder.split("_"):
            assert part.lower() not in text.lower(), part
    uids = [r.removeprefix("pacs:") for r in pacs["manifest"]["records"] if r.startswith("pacs:")]
    assert uids and not [u for u in uids if u in text]  # native ids: SOP Instance UIDs


# --- headers written to provoke, and a real vendor's file --------------------------------------


def write(path: Path, **attributes: object) -> Path:
    """A small DICOM file: a CR chest PA image unless `attributes` say otherwise."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = attributes.pop("SOPClassUID", "1.2.840.10008.5.1.4.1.1.1")
    meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = (
        meta.MediaStorageSOPClassUID,
        meta.MediaStorageSOPInstanceUID,
    )
    ds.Modality, ds.ViewPosition, ds.AccessionNumber = "CR", "PA", "A1"
    ds.PatientID, ds.PatientName = "CANARY-PID-1", "CANARYLAST^CANARYFIRST"
    ds.Rows = ds.Columns = 8
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    ds.PixelData = bytes(range(64))
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def read_export(root: Path, rows: list[tuple[str, str]], **extra) -> tuple[pl.DataFrame, dict]:
    (root / "ris.csv").write_text(
        "acc,mrn,report\n" + "".join(f"{a},{m},FINDINGS: No effusion.\n" for a, m in rows)
    )
    source = SourceSettings(
        name="site",
        kind="image_text",
        format="dicom_folder",
        path=root / "dicom",
        reports=root / "ris.csv",
        columns={"accession": "acc", "text": ["report"], "patient": "mrn"},
        **extra,
    )
    read = read_source(source, LabelSpace(), PSEUDONYMS, DecodeLimits())
    return read.rows, read.skipped


def test_header_values_are_never_quoted_and_never_leave_ingestion(tmp_path):
    dicom = tmp_path / "dicom"
    write(dicom / "a" / "1", ViewPosition="CANARY VIEW")
    write(dicom / "a" / "2", Modality="CANARYMOD")
    write(dicom / "a" / "3", ViewPosition="", SeriesDescription="CANARY series")
    write(dicom / "a" / "4", SOPClassUID="1.2.3.4.5.CANARY")  # unknown class: Modality decides
    write(dicom / "b" / "5")
    rows, skipped = read_export(tmp_path, [("A1", "CANARY-MRN")])
    assert skipped == {
        "view_excluded: another view": 1,
        "modality_out_of_scope: other": 1,
        "view_unknown: nothing in the source says which view the image shows "
        "(list UNKNOWN in the source's views to keep such images)": 1,
    }
    assert rows.height == 2  # both PA images of accession A1 join its report
    public = str(rows.drop(PRIVATE_COLUMNS).to_dicts())
    assert "CANARY" not in public and "CANARY" not in str(skipped)


def test_the_view_falls_back_to_codes_descriptions_and_orientation(tmp_path):
    def view(**attributes: object) -> str | None:
        path = write(tmp_path / "v", ViewPosition="", **attributes)
        return header_view(path, pydicom.dcmread(path, stop_before_pixels=True))

    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = (
        "R-10206",
        "SRT",
        "antero-posterior",
    )
    assert view(ViewCodeSequence=Sequence([code])) == "AP"
    assert view(SeriesDescription="Thorax p.a.") is None  # not a word it knows: nothing guessed
    assert view(SeriesDescription="CHEST PA") == "PA"
    assert view(ProtocolName="Chest lateral") == "LATERAL"
    assert view(SeriesDescription="CHEST PA AND LAT") is None  # names both: says nothing
    assert view(PatientOrientation=["A", "F"]) == "LATERAL"
    assert view(PatientOrientation=["L", "F"]) == "FRONTAL"
    assert view() is None


def test_unknown_views_are_kept_when_asked_and_frontal_of_unstated_direction_counts(tmp_path):
    write(tmp_path / "dicom/1", ViewPosition="")
    write(tmp_path / "dicom/2", ViewPosition="", PatientOrientation=["R", "F"])
    rows, skipped = read_export(tmp_path, [("A1", "m")])
    assert rows.height == 1 and list(skipped) == [next(iter(skipped))]
    assert next(iter(skipped)).startswith("view_unknown")
    rows, skipped = read_export(tmp_path, [("A1", "m")], views=["PA", "AP", "UNKNOWN"])
    assert rows.height == 2 and skipped == {}


def test_a_real_vendors_file_without_an_accession_is_counted(tmp_path):
    """The SIIM file (a real CR, Secondary Capture, accession left empty) in an export layout."""
    real = shared_path("fixtures/siim-cr-chest.dcm")
    (tmp_path / "dicom/SIIM").mkdir(parents=True)
    shutil.copy(real, tmp_path / "dicom/SIIM/IMG0001")
    write(tmp_path / "dicom/site/1")
    rows, skipped = read_export(tmp_path, [("A1", "m")])
    assert skipped == {"image_without_accession: no AccessionNumber to join a report by": 1}
    assert rows.height == 1


def test_an_unreadable_header_or_a_path_out_is_quarantined_never_opened(tmp_path):
    write(tmp_path / "dicom/ok")
    (tmp_path / "dicom/broken").write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 300)
    huge = write(tmp_path / "outside.dcm", ImageComments="x" * (6 * 2**20))  # a 6 MB header
    (tmp_path / "dicom/huge").write_bytes(huge.read_bytes())
    (tmp_path / "dicom/link").symlink_to(huge)
    rows, skipped = read_export(tmp_path, [("A1", "m")])
    problems = dict(zip(rows["location"], rows["problem"], strict=True))
    assert problems["ok"] is None
    assert problems["broken"].startswith("image_unreadable")
    assert problems["huge"].startswith("image_too_large")
    assert problems["link"].startswith("path_outside_source")
    assert skipped == {}


def test_a_dicom_folder_source_needs_its_ris_export_and_columns(tmp_path):
    params = {
        "data": {
            "sources": [
                {
                    "name": "site",
                    "kind": "image_text",
                    "format": "dicom_folder",
                    "path": "data/raw/site/dicom",
                    "columns": {"accession": "acc"},
                }
            ]
        },
    }
    (tmp_path / "p.yaml").write_text(json.dumps(params))
    with pytest.raises(ConfigError, match="needs 'reports'"):
        load_settings(tmp_path / "p.yaml")
    params["data"]["sources"][0]["reports"] = "data/raw/site/ris.csv"
    (tmp_path / "p.yaml").write_text(json.dumps(params))
    with pytest.raises(ConfigError, match=r"kind image_text needs columns\.text"):
        load_settings(tmp_path / "p.yaml")


def test_a_demo_that_no_source_reads_is_refused(tmp_path):
    params = {
        "demo": {"out": ["data/raw/demo"]},
        "data": {
            "sources": [
                {
                    "name": "site",
                    "kind": "text_label",
                    "format": "csv",
                    "path": "data/raw/site",
                    "columns": {"id": "id", "text": ["t"]},
                }
            ]
        },
    }
    (tmp_path / "p.yaml").write_text(json.dumps(params))
    with pytest.raises(ConfigError, match=r"set demo.out: \[\]"):
        load_settings(tmp_path / "p.yaml")
    params["demo"]["out"] = []
    (tmp_path / "p.yaml").write_text(json.dumps(params))
    assert load_settings(tmp_path / "p.yaml").demo.folder is None


# --- file systems and headers as real exports (and attackers) make them -----------------------


def accounted(rows: pl.DataFrame, skipped: dict[str, int]) -> int:
    return rows.height + sum(skipped.values())


def test_a_fifo_a_symlink_loop_and_a_name_that_is_not_utf8_are_accounted_never_opened(tmp_path):
    write(tmp_path / "dicom/ok")
    os.mkfifo(tmp_path / "dicom/pipe")  # opening it would block the reader for ever
    os.symlink("loop", tmp_path / "dicom/loop")
    write(Path(os.fsdecode(bytes(tmp_path / "dicom") + b"/M\xfcller_J\xf6rg")))  # Latin-1
    rows, skipped = read_export(tmp_path, [("A1", "m")])
    assert accounted(rows, skipped) == 4
    assert skipped == {"not_a_regular_file: a FIFO, socket or device, never opened": 1}
    problems = {reason_code(p) for p in rows["problem"].drop_nulls()}
    assert problems == {"path_unresolvable", "path_not_utf8"}
    assert "M\\xfcller_J\\xf6rg" in rows["location"].to_list()  # named, readable, storable


def test_a_thousand_nested_folders_are_walked(tmp_path):
    deep = tmp_path / "dicom"
    deep.mkdir()
    for _ in range(1100):  # deeper than Python's recursion limit (os.makedirs recurses too)
        deep /= "x"
        deep.mkdir()
    (deep / "IM1").write_bytes(write(tmp_path / "src").read_bytes())
    rows, skipped = read_export(tmp_path, [("A1", "m")])
    assert rows.height == 1 and skipped == {}
    while deep != tmp_path / "dicom":  # pytest's cleanup recurses
        shutil.rmtree(deep)
        deep = deep.parent


@pytest.mark.parametrize("cut", [300, 400, 500, 560])
def test_a_header_cut_short_is_quarantined_not_passed_over(tmp_path, cut):
    """A copy interrupted inside the header: the file says DICOM and CR image, and its header
    ends before the pixel data: a bad record, not a lateral or an unknown view."""
    source = write(tmp_path / "src", SeriesDescription="CHEST", StudyDescription="X" * 40)
    (tmp_path / "dicom").mkdir()
    (tmp_path / "dicom/cut").write_bytes(source.read_bytes()[:cut])
    rows, skipped = read_export(tmp_path, [("A1", "m")])
    assert reason_code(rows["problem"][0]) == "image_unreadable", skipped
    assert list(skipped) == [
        "report_without_images: no image in the export has the accession number"
    ]


def test_the_datasets_own_class_and_presentation_intent_are_read(tmp_path):
    for_processing = "1.2.840.10008.5.1.4.1.1.1.1.1"
    write(tmp_path / "dicom/1", SOPClassUID=for_processing, Modality="DX")
    path = write(tmp_path / "dicom/2", Modality="DX", PresentationIntentType="FOR PROCESSING")
    raw = pydicom.dcmread(path)
    raw.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"  # the meta says CR
    raw.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"  # the dataset: a structured report
    raw.save_as(tmp_path / "dicom/3")
    write(tmp_path / "dicom/4")
    rows, skipped = read_export(tmp_path, [("A1", "m")])
    assert rows.height == 1
    assert skipped == {
        "for_processing: raw detector data, not an image for display": 2,
        "structured_report: a structured report or key object, not an image": 1,
    }


def test_every_part_of_every_identifying_value_is_scrubbed(tmp_path):
    write(
        tmp_path / "dicom/1",
        PatientName="Yamada^Tarou=山田^太郎=やまだ^たろう",
        SpecificCharacterSet=["", "ISO 2022 IR 87"],
        OtherPatientIDs=["OPID-1", "OPID-2"],
    )
    (tmp_path / "ris.csv").write_text(
        "acc,mrn,report\nA1,m,FINDINGS: 山田 太郎 (OPID-2). Tarou Yamada. No effusion.\n"
    )
    source = SourceSettings(
        name="site",
        kind="image_text",
        format="dicom_folder",
        path=tmp_path / "dicom",
        reports=tmp_path / "ris.csv",
        columns={"accession": "acc", "text": ["report"], "patient": "mrn"},
    )
    text = read_source(source, LabelSpace(), PSEUDONYMS).rows["text"][0]
    assert "No effusion" in text
    for value in ("山田", "太郎", "OPID-2", "Tarou", "Yamada"):
        assert value not in text


def test_an_oversized_view_code_sequence_is_not_parsed(tmp_path):
    source = write(tmp_path / "src", ViewPosition="")
    data = source.read_bytes()
    at = data.index(b"\xe0\x7f\x10\x00")  # the pixel data element
    items = struct.pack("<HHI", 0xFFFE, 0xE000, 0) * 8_000  # 64 KB of empty items
    sequence = struct.pack("<HH", 0x0054, 0x0220) + b"SQ\0\0" + struct.pack("<I", len(items))
    (tmp_path / "f").write_bytes(data[:at] + sequence + items + data[at:])
    header = pydicom.dcmread(tmp_path / "f", stop_before_pixels=True, defer_size=1024)
    assert header_view(tmp_path / "f", header) is None


def test_accession_numbers_join_whatever_their_case_and_padding(tmp_path):
    write(tmp_path / "dicom/1", AccessionNumber=" a1 ")
    rows, skipped = read_export(tmp_path, [("A1", "m")])
    assert rows.height == 1 and skipped == {}


def test_views_name_known_projections_and_sides_stand_for_their_views(tmp_path):
    write(tmp_path / "dicom/1", ViewPosition="LL")
    write(tmp_path / "dicom/2", ViewPosition="", SeriesDescription="CHEST LAT")
    write(tmp_path / "dicom/3", ViewPosition="PA")
    rows, skipped = read_export(tmp_path, [("A1", "m")], views=["lateral"])
    assert rows.height == 2 and skipped == {"view_excluded: PA": 1}
    with pytest.raises(ValueError, match=r"\['PAA'\] are not views"):
        SourceSettings(name="s", kind="image_text", format="chexpert", path=tmp_path, views=["PAA"])
