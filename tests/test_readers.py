"""Each reader on real files (../shared/data) or on small fixtures faithful to the real layouts."""

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image

from tests.conftest import shared_path
from umcl.config import CsvColumns, SourceSettings
from umcl.ingest.pseudonyms import Pseudonymizer
from umcl.ingest.sources import read_source
from umcl.labels import LabelSpace

SPACE = LabelSpace()
PSEUDONYMS = Pseudonymizer("a-test-key-of-some-length")


def png(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8), 128, np.uint8)).save(path)
    return path


def read(kind: str, fmt: str, path: Path, **extra) -> pl.DataFrame:
    """The rows a reader makes, with its private columns (native id, location, image file)."""
    return read_source(
        SourceSettings(name="src", kind=kind, format=fmt, path=path, **extra), SPACE, PSEUDONYMS
    ).rows


def test_mimic_cxr_layout(tmp_path):
    study = tmp_path / "files/p10/p10000032/s50414267"
    png(study / "02aa804e-bde0afdd.jpg")
    png(tmp_path / "files/p10/p10000032/s50414268/77aa.jpg")
    png(study / "lat-01.jpg")
    png(tmp_path / "files/p10/p10000032/s50414269/lat-02.jpg")  # a study of laterals only
    (tmp_path / "mimic-cxr-2.0.0-metadata.csv").write_text(
        "dicom_id,subject_id,study_id,ViewPosition\n02aa804e-bde0afdd,10000032,50414267,PA\n"
        "77aa,10000032,50414268,AP\nlat-01,10000032,50414267,LATERAL\nlat-02,10000032,50414269,LL\n"
    )
    (study.parent / "s50414267.txt").write_text(
        "EXAMINATION: CHEST\nPatient: Imogen Drummond  MRN: 1234567\nFINDINGS: Small left effusion.\nIMPRESSION: Effusion."
    )
    (tmp_path / "mimic-cxr-2.0.0-chexpert.csv").write_text(
        "subject_id,study_id,Atelectasis,Cardiomegaly,Pleural Effusion,No Finding\n10000032,50414267,,0.0,1.0,\n"
    )
    source = SourceSettings(name="src", kind="image_text", format="mimic_cxr", path=tmp_path)
    read_mimic = read_source(source, SPACE, PSEUDONYMS)
    assert read_mimic.skipped == {
        "view_excluded: LATERAL": 1,
        "view_excluded: LL": 1,
        "study_without_kept_image: every image of the study was passed over": 1,
    }
    rows = read_mimic.rows.sort("native_id")
    assert rows["native_id"].to_list() == ["02aa804e-bde0afdd", "77aa"]
    assert rows["sample_id"].to_list() == [PSEUDONYMS.record("src", n) for n in rows["native_id"]]
    first = rows.row(0, named=True)
    assert first["text"] == "Small left effusion.\nEffusion." and "Drummond" not in str(
        rows.to_dicts()
    )
    assert (first["Pleural Effusion"], first["Cardiomegaly"], first["Atelectasis"]) == (
        "1",
        "0",
        None,
    )
    assert first["label_origin"] == "dataset" and rows.row(1, named=True)["label_origin"] == "none"
    assert rows["patient_id"].n_unique() == 1 and "10000032" not in rows["patient_id"][0]
    assert rows.row(1, named=True)["text"] is None  # no report file: validation will quarantine


def test_chexpert_maps_columns_by_name(tmp_path):
    png(tmp_path / "train/patient00001/study1/view1_frontal.jpg")
    header = (
        "Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Lung Opacity,Lung Lesion,Pleural Effusion"
    )
    (tmp_path / "train.csv").write_text(
        f"{header}\nCheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg,Male,60,Frontal,PA,,1.0,0.0,-1.0\n"
    )
    row = read("image_label", "chexpert", tmp_path).row(0, named=True)
    assert row["native_id"] == "patient00001/study1/view1_frontal"
    assert "patient00001" not in row["sample_id"] + row["image"] + row["patient_id"]
    assert (
        row["Lung Opacity"],
        row["Lung Lesion"],
        row["Pleural Effusion"],
        row["No Finding"],
    ) == ("1", "0", "-1", None)
    assert Path(row["image_path"]).is_file() and row["text"] is None


def test_chestxray14_pipe_separated_labels(tmp_path):
    png(tmp_path / "images/00000001_000.png")
    (tmp_path / "Data_Entry_2017.csv").write_text(
        "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
        "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],\n"
        "00000001_000.png,Cardiomegaly|Effusion|Nodule,0,1,58,M,PA,2682,2749,0.143,0.143,\n"
        "00000002_000.png,No Finding,0,2,81,M,PA,2500,2048,0.171,0.171,\n"
    )
    rows = read("image_label", "chestxray14", tmp_path)
    sick, healthy = rows.row(0, named=True), rows.row(1, named=True)
    assert (
        sick["Cardiomegaly"],
        sick["Pleural Effusion"],
        sick["Lung Lesion"],
        sick["No Finding"],
    ) == ("1", "1", "1", "0")
    assert (sick["Pneumothorax"], sick["Fracture"]) == ("0", None)  # not a ChestX-ray14 class
    assert healthy["No Finding"] == "1" and healthy["Cardiomegaly"] == "0"


def test_openi_real_reports():
    rows = read("text_label", "openi", shared_path("iu-xray/indiana_reports.csv").parent)
    assert rows.height == 3851 and rows["sample_id"].n_unique() == 3851
    assert rows["text"].is_not_null().sum() > 3700 and rows["image"].null_count() == 3851
    assert set(rows["label_origin"]) == {"none"}  # labelled by the labeler at unification


def test_folders_real_kermany():
    root = shared_path("kermany/train")
    rows = read("image_label", "folders", root, patient_pattern=r"(person\d+)_")
    assert rows.height == 5216
    pneumonia = rows.filter(pl.col("native_id").str.starts_with("PNEUMONIA/"))
    normal = rows.filter(pl.col("native_id").str.starts_with("NORMAL/"))
    assert pneumonia.height == 3875 and normal.height == 1341
    assert set(pneumonia["Pneumonia"]) == {"1"} and set(pneumonia["No Finding"]) == {"0"}
    assert set(normal["No Finding"]) == {"1"} and set(normal["Pneumonia"]) == {"0"}
    assert normal["patient_id"].n_unique() == 1341  # no patient id: each image its own patient
    assert pneumonia["patient_id"].n_unique() < 3875 / 1.5  # several images per personNNN


def test_generic_csv(tmp_path):
    (tmp_path / "notes.csv").write_text(
        "id,who,note,effusion\na1,p1,No pneumothorax. Jane Roe.,1\na2,p1,Clear.,\n"
    )
    columns = CsvColumns(
        id="id", patient="who", text=["note"], labels=["effusion"], identifiers=["who"]
    )
    rows = read("text_label", "csv", tmp_path / "notes.csv", columns=columns)
    assert rows["Pleural Effusion"].to_list() == ["1", None]
    assert rows["patient_id"].n_unique() == 1


def test_paths_out_of_the_source_are_quarantined_and_stray_files_counted(tmp_path):
    root, outside = tmp_path / "kermany", png(tmp_path / "elsewhere/secret.png")
    png(root / "NORMAL/person1_a.png")
    (root / "NORMAL/person2_b.png").symlink_to(outside)  # a symlink out of the source
    (root / "NORMAL/person3_c.png").symlink_to(root / "NORMAL/gone.png")  # dangling
    (root / "PNEUMONIA").mkdir(parents=True)
    (root / "PNEUMONIA/batch2").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    for stray in ("scan.tif", "notes.txt", ".DS_Store", "Doe.Jane"):
        (root / "PNEUMONIA" / stray).parent.mkdir(parents=True, exist_ok=True)
        (root / "PNEUMONIA" / stray).write_bytes(b"x")
    png(root / "PNEUMONIA/person4_d.png")
    read = read_source(
        SourceSettings(name="k", kind="image_label", format="folders", path=root), SPACE, PSEUDONYMS
    )
    rows = read.rows.sort("native_id")
    assert rows["native_id"].to_list() == [
        "NORMAL/person1_a",
        "NORMAL/person2_b",
        "NORMAL/person3_c",
        "PNEUMONIA/person4_d",
    ]
    problems = dict(zip(rows["native_id"], rows["problem"], strict=True))
    assert problems["NORMAL/person2_b"].startswith("path_outside_source")
    assert problems["NORMAL/person1_a"] is None and problems["NORMAL/person3_c"] is None
    assert read.skipped == {  # a name in a suffix (Doe.Jane) is never counted by name
        "not_an_image_file: no suffix": 1,
        "not_an_image_file: other suffix": 1,
        "not_an_image_file: suffix .tif": 1,
        "not_an_image_file: suffix .txt": 1,
        "symlinked_folder: not followed": 1,
    }


def test_table_paths_that_leave_the_source_are_quarantined(tmp_path):
    png(tmp_path / "train/patient1/study1/view1_frontal.jpg")
    png(tmp_path.parent / "outside.jpg")
    (tmp_path / "train.csv").write_text(
        "Path,Cardiomegaly\ntrain/patient1/study1/view1_frontal.jpg,1\n"
        "../outside.jpg,0\n/etc/passwd,1\ntrain/../../outside.jpg,0\n"
    )
    rows = read("image_label", "chexpert", tmp_path)
    problems = rows["problem"].to_list()
    assert problems[0] is None and all(p.startswith("path_outside_source") for p in problems[1:])
    assert rows["image_path"].to_list()[1:] == [None, None, None]  # never opened


def test_mimic_orphans_are_counted_and_undecodable_reports_quarantined(tmp_path):
    png(tmp_path / "files/p10/p1/s1/a.jpg")
    (tmp_path / "files/p10/p1/s1.txt").write_bytes(
        "FINDINGS: Café-au-lait, no effusion.".encode("latin-1")
    )
    (tmp_path / "files/p10/p1/s2.txt").write_text("FINDINGS: A report without images.")
    (tmp_path / "mimic-cxr-2.0.0-chexpert.csv").write_text(
        "subject_id,study_id,Cardiomegaly\n1,1,1.0\n1,1,0.0\n1,2,0.0\n9,9,1.0\n"
    )
    read = read_source(
        # MIMIC-CXR-JPG without its metadata table: nothing says the view, UNKNOWN keeps it.
        SourceSettings(
            name="m", kind="image_text", format="mimic_cxr", path=tmp_path, views=["UNKNOWN"]
        ),
        SPACE,
        PSEUDONYMS,
    )
    assert read.rows["problem"].to_list() == ["text_undecodable: the report file is not UTF-8"]
    assert read.skipped == {
        "labels_without_study: a label row for a study with no image file": 2,
        "duplicate_label_row: a second label row for a study (the first is used)": 1,
        "report_without_images: a study report with no image file": 1,
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the table is empty"),
        (b"id,note,effusion\n", "header but no rows"),
        (b"id,note,note\na1,x,y\n", r"columns \['note'\] appear more than once"),
        ("id,note,effusion\na1,Épanchement pleural,1\n".encode("latin-1"), "not UTF-8 text"),
        (b'id,note\na1,"an unbalanced quote\na2,clear\n', "line 3 is not valid CSV"),
        (b"uid,text\na1,clear\n", r"columns \['id'\] named in params are not in the file"),
    ],
)
def test_unusable_tables_stop_with_the_file_named(tmp_path, content, message):
    from umcl.ingest.sources import SourceError

    (tmp_path / "notes.csv").write_bytes(content)
    columns = CsvColumns(id="id", text=["note"] if b"note" in content else [], labels=[])
    with pytest.raises(SourceError, match=rf"notes\.csv: .*{message}"):
        read("text_label", "csv", tmp_path / "notes.csv", columns=columns)


def test_ingestion_refuses_bombs_and_out_of_scope_objects_with_a_reason(tmp_path, monkeypatch):
    """The service's decoding guards hold at ingestion: each object is quarantined by reason."""
    from tests.hostile import header, jpeg_claiming, saved
    from umcl.config import parse_settings
    from umcl.ingest.validate import validate_sources

    root = tmp_path / "raw/site"
    png(root / "NORMAL/person1_a.png")
    png(root / "NORMAL/person1_b.png")
    (root / "NORMAL/person2_bomb.jpg").write_bytes(jpeg_claiming(13_000, 13_000))
    png(root / "PNEUMONIA/person5_c.png")
    (root / "PNEUMONIA/person3_ct.dcm").write_bytes(saved(header(8, 8, modality="CT"), bytes(64)))
    (root / "PNEUMONIA/person4_x.tif").write_bytes(b"II*\x00")
    source = {"name": "site", "kind": "image_label", "format": "folders", "path": str(root)}
    settings = parse_settings(
        {
            "data": {"sources": [source]},
            "validate": {"max_bad_fraction": 0.5},
            "preprocess": {"workers": 1},
        }
    )
    monkeypatch.setenv("UMCL_PSEUDONYM_KEY", "a-key-for-this-test-only")
    report = validate_sources(
        settings, tmp_path / "v", tmp_path / "q", tmp_path / "m.json", tmp_path / "l"
    )
    site = report["site"]
    assert (site["rows_in"], site["rows_valid"], site["rows_quarantined"]) == (5, 3, 2)
    assert site["reasons"] == {"image_too_large": 1, "modality_out_of_scope": 1}
    assert site["skipped"] == {"not_an_image_file: suffix .tif": 1}
    quarantine = pl.read_parquet(tmp_path / "q/site.parquet").sort("native_id")
    assert quarantine["location"].to_list() == [
        "NORMAL/person2_bomb.jpg",
        "PNEUMONIA/person3_ct.dcm",
    ]
    assert "Modality is CT" in quarantine["reason"][1]
    # The limits are params (DVC reruns ingestion when they change), not the environment.
    monkeypatch.setenv("UMCL_DICOM_MODALITIES", "*")
    assert (
        validate_sources(settings, *(tmp_path / d for d in ("v", "q", "m.json", "l")))["site"][
            "rows_valid"
        ]
        == 3
    )
    wider = settings.model_copy(
        update={"decode": settings.decode.model_copy(update={"dicom_modalities": ["DX", "CT"]})}
    )
    assert (
        validate_sources(wider, *(tmp_path / d for d in ("v", "q", "m.json", "l")))["site"][
            "rows_valid"
        ]
        == 4
    )


def test_a_long_report_cell_is_read_and_orphan_projections_are_counted(tmp_path):
    long_report = "No effusion. " * 20_000  # 260 KB in one cell: over the csv module's default cap
    (tmp_path / "indiana_reports.csv").write_text(
        f"uid,findings,impression\n1,{long_report},Normal.\n"
    )
    png(tmp_path / "images/1_IM-1.png")
    (tmp_path / "indiana_projections.csv").write_text(
        "uid,filename,projection\n1,1_IM-1.png,Frontal\n1,1_IM-2.png,Lateral\n7,7_IM-1.png,Frontal\n"
    )
    source = SourceSettings(
        name="iu", kind="image_text", format="openi", path=tmp_path, images=tmp_path / "images"
    )
    # Read whole (a site may raise validate.max_report_chars this far); by default quarantined.
    read = read_source(source, SPACE, PSEUDONYMS, max_report_chars=300_000)
    assert read.rows.height == 1 and len(read.rows["text"][0]) > 200_000
    assert read.skipped == {
        "view_excluded: LATERAL": 1,
        "projection_without_report: a listed image whose report is absent": 1,
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("id,note\na1,clear\n".encode("utf-16"), "NUL bytes"),
        (b"id,note\na1,clear\x00 hidden\n", "NUL bytes"),
        (b"id,note,effusion\na1,clear\n", "line 2 has 2 fields, the header 3"),
    ],
)
def test_utf16_nul_bytes_and_truncated_rows_stop(tmp_path, content, message):
    from umcl.ingest.sources import SourceError

    (tmp_path / "notes.csv").write_bytes(content)
    with pytest.raises(SourceError, match=rf"notes\.csv: .*{message}"):
        read(
            "text_label", "csv", tmp_path / "notes.csv", columns=CsvColumns(id="id", text=["note"])
        )


def test_a_spreadsheet_export_with_empty_trailing_columns_reads(tmp_path):
    (tmp_path / "notes.csv").write_text("id,note,,\na1,No effusion.,,\n,,,\na2,Clear.,,\n")
    rows = read(
        "text_label", "csv", tmp_path / "notes.csv", columns=CsvColumns(id="id", text=["note"])
    )
    assert rows["native_id"].to_list() == ["a1", "a2"]
