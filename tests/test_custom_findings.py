"""A site's own finding (`labels.custom`) end to end: the labeler reads it with negation and
uncertainty, the triplets carry it, a model trains on it, evaluation scores or names it, the
service classifies it, and `umcl --params P label` writes its column."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import httpx
import polars as pl
import yaml

from tests.conftest import REPO, tiny_params
from tests.serving import served, small_png
from umcl import registry
from umcl.cli import main
from umcl.ingest.labeler import label_report
from umcl.labels import CHEXPERT_LABELS

# The demo's reports say "Acute left rib fracture." and "No acute rib fracture.": a site that
# wants rib fractures apart from other fractures names them so.
RIB_FRACTURE = {"name": "Rib Fracture", "phrases": ["rib fracture", "fractured rib"]}


def test_the_labeler_reads_a_custom_finding_as_a_built_in_one() -> None:
    phrases = {"Hernia": ["hiatal hernia", "hernia"]}
    names = ["No Finding", "Hernia"]
    cases = {
        "Small hiatal hernia.": 1,
        "No hernia.": 0,
        "Possible hiatal hernias.": -1,
        "Hernia cannot be excluded.": -1,
        "Hiatal  Hernia is no longer seen.": 0,
        "Lungs are clear.": None,
        "Herniated disc.": None,  # whole words only
    }
    for text, value in cases.items():
        assert label_report(text, names, phrases)["Hernia"] == value, text
    assert label_report("Small hiatal hernia.", names, phrases)["No Finding"] is None
    assert label_report("No hernia. Lungs are clear.", names, phrases)["No Finding"] == 1
    extra = {"Pneumonia": ["lobar infiltrate"]}  # a built-in finding gains phrases
    assert label_report("Right lobar infiltrate.", ["Pneumonia"], extra)["Pneumonia"] == 1
    assert label_report("Right lobar infiltrate.", ["Pneumonia"])["Pneumonia"] is None


def run_cli(params: Path, *command: str) -> None:
    assert main(["--params", str(params), *command]) == 0, command


def test_a_custom_finding_from_reports_to_the_service(tiny_pipeline: dict, tmp_path: Path) -> None:
    params = tiny_params(tiny_pipeline["root"])  # the session's tiny demo data
    params["labels"]["custom"] = [RIB_FRACTURE]
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params))
    out = {
        name: tmp_path / name for name in ("validated", "quarantine", "locator", "cache", "model")
    }
    triplets, metrics = tmp_path / "unified/triplets.parquet", tmp_path / "metrics"
    run_cli(
        params_file,
        "validate",
        "--out",
        str(out["validated"]),
        "--quarantine",
        str(out["quarantine"]),
        "--locator",
        str(out["locator"]),
        "--metrics",
        str(metrics / "v.json"),
    )
    run_cli(
        params_file,
        "unify",
        "--validated",
        str(out["validated"]),
        "--out",
        str(triplets),
        "--metrics",
        str(metrics / "u.json"),
    )
    table = pl.read_parquet(triplets)
    assert json.loads((triplets.parent / "labels.json").read_text())["names"] == [
        *CHEXPERT_LABELS,
        "Rib Fracture",
    ]
    from_reports = table.filter(pl.col("label_origin") == "labeler")
    expected = [
        label_report(t, ["Rib Fracture"], {"Rib Fracture": RIB_FRACTURE["phrases"]})["Rib Fracture"]
        for t in from_reports["text"]
    ]
    assert from_reports["Rib Fracture"].to_list() == expected
    assert {0} <= set(
        from_reports["Rib Fracture"].drop_nulls().to_list()
    )  # "No acute rib fracture."

    run_cli(
        params_file,
        "preprocess",
        "--triplets",
        str(triplets),
        "--locator",
        str(out["locator"]),
        "--out",
        str(out["cache"]),
    )
    run_cli(
        params_file,
        "train",
        "--triplets",
        str(triplets),
        "--cache",
        str(out["cache"]),
        "--out",
        str(out["model"]),
        "--checkpoints",
        str(tmp_path / "checkpoints"),
        "--live",
        str(tmp_path / "live"),
    )
    run_cli(
        params_file,
        "evaluate",
        "--model",
        str(out["model"]),
        "--triplets",
        str(triplets),
        "--cache",
        str(out["cache"]),
        "--metrics",
        str(metrics / "eval.json"),
    )
    zero_shot = json.loads((metrics / "eval.json").read_text())["zero_shot"]["learned"]
    scored_or_named = {**zero_shot["per_label"], **zero_shot["skipped"]}
    assert "Rib Fracture" in scored_or_named  # an AUROC, or the reason it has none

    entry, _ = registry.add(out["model"], {"test": True})
    with served({"UMCL_MODEL": entry.tag}, tmp_path / "serve.log") as server:
        upload = [("images", ("x.png", small_png(1, (64, 64)), "image/png"))]
        answer = httpx.post(f"{server.url}/classify", files=upload, timeout=60)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert "Rib Fracture" in body["findings"] and body["outside_label_space"] == []
    assert set(body["results"][0]["findings"]["Rib Fracture"]) == {
        "probability",
        "positive",
        "calibrated",
    }


def test_umcl_label_takes_the_label_space_of_its_params(tmp_path: Path) -> None:
    params_file = tmp_path / "params.yaml"
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["labels"]["custom"] = [RIB_FRACTURE]
    params_file.write_text(yaml.safe_dump(params))
    reports = tmp_path / "reports.csv"
    reports.write_text(
        'id,text\na,"Acute left rib fracture."\nb,"No fractured ribs."\nc,"Clear lungs."\n'
    )
    labelled = tmp_path / "labels.csv"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "umcl.cli",
            "--params",
            str(params_file),
            "label",
            str(reports),
            "--id-column",
            "id",
            "--text-columns",
            "text",
            "--out",
            str(labelled),
        ],
        check=True,
        cwd=tmp_path,
    )
    rows = {r["id"]: r for r in csv.DictReader(labelled.open())}
    assert [rows[k]["Rib Fracture"] for k in "abc"] == ["1", "0", ""]
    assert rows["a"]["Fracture"] == "1"  # the built-in finding is still read
