import csv
import subprocess
import sys

import pytest

from tests.conftest import shared_path
from umcl.ingest.labeler import label_report


def test_reproduces_the_chexpert_labelled_samples_exactly():
    with shared_path("chexpert-labeler/labeled_reports.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4
    for row in rows:
        expected = {k: None if v == "" else int(float(v)) for k, v in row.items() if k != "Reports"}
        assert label_report(row["Reports"]) == expected, row["Reports"]


@pytest.mark.parametrize(
    ("text", "label", "value"),
    [
        ("No pleural effusion or pneumothorax.", "Pneumothorax", 0),
        ("Small left pleural effusion.", "Pleural Effusion", 1),
        ("Pneumonia cannot be excluded.", "Pneumonia", -1),
        ("Cannot exclude pneumonia.", "Pneumonia", -1),
        ("Possible small pneumothorax.", "Pneumothorax", -1),
        ("The heart is not significantly enlarged.", "Cardiomegaly", 0),
        ("Heart size is normal.", "Cardiomegaly", 0),
        ("Borderline heart size.", "Cardiomegaly", -1),
        ("The mediastinum is widened.", "Enlarged Cardiomediastinum", 1),
        ("No focal consolidation, but there is basilar atelectasis.", "Atelectasis", 1),
        ("Small pericardial effusion.", "Pleural Effusion", None),
        ("Endotracheal tube terminates above the carina.", "Support Devices", 1),
        ("Pneumothorax is no longer seen.", "Pneumothorax", 0),
        ("No change in the large left effusion.", "Pleural Effusion", 1),
        ("No pneumonia, effusions, edema, nodules or masses.", "Lung Lesion", 0),
        # Statements about the mediastinum, read as the CheXpert labeler reads them.
        ("Normal mediastinal contour.", "Enlarged Cardiomediastinum", 0),
        ("Normal heart size and mediastinal contours.", "Enlarged Cardiomediastinum", 0),
        (
            "Normal heart size, mediastinal contour, and pulmonary vascularity.",
            "Enlarged Cardiomediastinum",
            0,
        ),
        ("The heart and mediastinum are unchanged.", "Enlarged Cardiomediastinum", -1),
        ("Stable cardiomediastinal silhouette.", "Enlarged Cardiomediastinum", -1),
        ("Normal lungs and widened mediastinum.", "Enlarged Cardiomediastinum", 1),
        ("The heart and mediastinum are unchanged.", "Cardiomegaly", None),
        ("Normal heart size and mediastinum is widened.", "Enlarged Cardiomediastinum", 1),
        # Other things in the mediastinum being unchanged say nothing about its size.
        (
            "Mediastinal clips and sternotomy wires are unchanged.",
            "Enlarged Cardiomediastinum",
            None,
        ),
        ("Mediastinal drain in unchanged position.", "Enlarged Cardiomediastinum", None),
        ("Mediastinal lymph nodes are stable in size.", "Enlarged Cardiomediastinum", None),
        ("Mediastinal contours remain unchanged.", "Enlarged Cardiomediastinum", -1),
        # A denied suspicion is a negation; a stated one stays uncertain.
        ("No suspicious opacity.", "Lung Opacity", 0),
        ("No suspicious pulmonary nodules or masses.", "Lung Lesion", 0),
        ("Suspicious opacity in the right lung.", "Lung Opacity", -1),
        ("Opacity suspicious for pneumonia.", "Pneumonia", -1),
        ("No worrisome change in small effusion.", "Pleural Effusion", -1),  # effusion stays
    ],
)
def test_negation_uncertainty_and_anatomy(text, label, value):
    assert label_report(text)[label] == value


def test_no_finding_rules():
    assert label_report("The lungs are clear. No acute cardiopulmonary process.")["No Finding"] == 1
    assert label_report("Cardiomegaly.")["No Finding"] is None
    assert label_report("Lungs are clear. Degenerative changes of the spine.")["No Finding"] is None
    assert label_report("")["No Finding"] is None


def test_label_command_writes_one_column_per_label(tmp_path):
    source = tmp_path / "reports.csv"
    source.write_text(
        'uid,findings,impression\n7,"No effusion.","Cardiomegaly."\n8,,"Normal chest."\n'
    )
    out = tmp_path / "labels.csv"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "umcl.cli",
            "label",
            str(source),
            "--id-column",
            "uid",
            "--text-columns",
            "findings",
            "impression",
            "--out",
            str(out),
        ],
        check=True,
    )
    rows = list(csv.DictReader(out.open()))
    assert (
        list(rows[0])[:3] == ["uid", "No Finding", "Enlarged Cardiomediastinum"]
        and len(rows[0]) == 15
    )
    assert (
        rows[0]["Cardiomegaly"] == "1"
        and rows[0]["Pleural Effusion"] == "0"
        and rows[0]["No Finding"] == ""
    )
    assert rows[1]["No Finding"] == "1"


def test_many_reports_label_the_same_on_one_process_and_on_several():
    from umcl.ingest.labeler import PARALLEL_FROM, label_reports

    reports = [
        "No pleural effusion. Possible small pneumothorax.",
        "Cardiomegaly with mild edema. No focal consolidation.",
        None,
        "Heart and mediastinum unchanged. Lungs are clear.",
    ] * (PARALLEL_FROM // 4 + 1)
    assert label_reports(reports, workers=2) == label_reports(reports, workers=1)
