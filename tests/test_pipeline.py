"""The tiny demo pipeline end to end: faults quarantined, counts reconciled, no PHI, no leakage."""

import csv
import json
import re
from pathlib import Path

import polars as pl
import pytest
import torch

from tests.tiny import MODEL, tiny_tokenizer
from umcl.data.dataset import Collate, TripletDataset
from umcl.errors import MissingInputError
from umcl.ingest.unify import TRIPLET_COLUMNS
from umcl.labels import CHEXPERT_LABELS

EXPECTED_REASON = {
    "corrupt_dicom": "image_unreadable",
    "truncated_dicom": "image_unreadable",
    "missing_file": "image_missing",
    "empty_report": "empty_text",
    "label_value_7": "label_out_of_range",
    "duplicated_id": "duplicate_id",
}


def test_every_planted_fault_is_quarantined_with_its_reason(tiny_pipeline):
    faults = tiny_pipeline["manifest"]["faults"]
    assert {f["fault"] for f in faults} == set(EXPECTED_REASON)
    for fault in faults:
        quarantine = pl.read_parquet(tiny_pipeline["quarantine"] / f"{fault['source']}.parquet")
        hits = quarantine.filter(pl.col("native_id") == fault["record"])
        assert hits.height >= 1, fault
        assert all(EXPECTED_REASON[fault["fault"]] in reason for reason in hits["reason"]), (
            fault,
            hits["reason"].to_list(),
        )
    duplicated = [f for f in faults if f["fault"] == "duplicated_id"]
    for fault in duplicated:  # both copies are kept, in quarantine
        quarantine = pl.read_parquet(tiny_pipeline["quarantine"] / f"{fault['source']}.parquet")
        assert quarantine.filter(pl.col("native_id") == fault["record"]).height == 2


def test_counts_reconcile_from_raw_records_to_triplets(tiny_pipeline):
    report = json.loads((tiny_pipeline["metrics"] / "validation.json").read_text())
    raw = tiny_pipeline["root"] / "raw/demo"
    manifest = tiny_pipeline["manifest"]
    laterals = manifest["laterals"]["mimic"]
    pacs = manifest["pacs"]
    raw_records = {  # laterals are passed over and counted, not records
        "mimic": len(list((raw / "mimic/files").rglob("*.dcm"))) - laterals,
        "chexpert": len(list(csv.DictReader((raw / "chexpert/train.csv").open()))),
        "reports": len(list(csv.DictReader((raw / "reports/reports.csv").open()))),
        "pacs": pacs["frontal"] - pacs.get("image_without_report", 0),  # test_pacs.py: the rest
    }
    assert report["mimic"]["excluded_by_view"] == laterals > 0
    for source, counts in report.items():
        assert (
            counts["rows_in"]
            == raw_records[source]
            == counts["rows_valid"] + counts["rows_quarantined"]
        )
        assert sum(counts["reasons"].values()) >= counts["rows_quarantined"] > 0
    triplets = pl.read_parquet(tiny_pipeline["triplets"])
    assert triplets.height == sum(c["rows_valid"] for c in report.values())
    unify = json.loads((tiny_pipeline["metrics"] / "unify.json").read_text())
    assert unify["rows"] == triplets.height and sum(unify["by_split"].values()) == triplets.height


def test_triplet_table_contract(tiny_pipeline):
    triplets = pl.read_parquet(tiny_pipeline["triplets"])
    assert triplets.columns == [*TRIPLET_COLUMNS, *CHEXPERT_LABELS, "label_origin"]
    assert triplets["sample_id"].is_unique().all()
    assert all(triplets[name].dtype == pl.Int8 for name in CHEXPERT_LABELS)
    values = set(triplets.select(CHEXPERT_LABELS).unpivot()["value"].drop_nulls())
    assert values <= {1, 0, -1}
    labels = json.loads((tiny_pipeline["triplets"].parent / "labels.json").read_text())
    assert labels["names"] == list(CHEXPERT_LABELS)
    origin = dict(
        triplets.group_by("source", "label_origin")
        .len()
        .select(pl.concat_str("source", "label_origin", separator="/"), "len")
        .iter_rows()
    )
    assert (
        "reports/labeler" in origin
        and "chexpert/dataset" in origin
        and "mimic/dataset" in origin
        and "mimic/labeler" in origin
    )


def test_no_patient_in_two_splits(tiny_pipeline):
    triplets = pl.read_parquet(tiny_pipeline["triplets"])
    per_patient = triplets.group_by("patient_id").agg(pl.col("split").n_unique())
    assert per_patient["split"].max() == 1
    assert set(triplets["split"]) <= {"train", "val", "test"} and "train" in set(triplets["split"])


def _output_text(paths: dict) -> str:
    chunks = [paths["log"]]
    for folder in ("validated", "quarantine", "metrics"):
        for file in sorted(Path(paths[folder]).glob("*")):
            if file.suffix == ".json":
                chunks.append(file.read_text())
                continue
            table = pl.read_parquet(file)
            if folder == "quarantine":  # where the record lies in its source: raw data, by design
                table = table.drop("native_id", "location", "reason")
            chunks.append(str(table.to_dicts()))
    unified = paths["triplets"].parent
    chunks += [
        str(pl.read_parquet(paths["triplets"]).to_dicts()),
        (unified / "labels.json").read_text(),
    ]
    chunks.append(str(pl.read_parquet(paths["cache"] / "index.parquet").to_dicts()))
    chunks.append((paths["cache"] / "meta.json").read_text())
    return "\n".join(chunks)


def test_no_planted_phi_in_any_output(tiny_pipeline):
    phi = tiny_pipeline["manifest"]["phi"]
    text = _output_text(tiny_pipeline)
    assert len(text) > 10_000
    for value in phi["mrns"] + phi["birth_dates"] + phi["accessions"] + phi["phones"]:
        assert value not in text, f"planted PHI value {value!r} leaked into an output"
    for full_name in phi["names"]:
        for word in full_name.split():
            assert not re.search(rf"\b{word}\b", text, re.IGNORECASE), f"name {word!r} leaked"


def test_labeler_agrees_with_demo_label_tables(tiny_pipeline):
    """Image–report studies that have a label row: the labeler reading the report agrees."""
    from umcl.ingest.labeler import label_report

    triplets = pl.read_parquet(tiny_pipeline["triplets"]).filter(
        (pl.col("source") == "mimic") & (pl.col("label_origin") == "dataset")
    )
    agree = total = 0
    for row in triplets.iter_rows(named=True):
        guess = label_report(row["text"])
        for name in CHEXPERT_LABELS:
            total += 1
            agree += guess[name] == row[name]
    assert total > 100 and agree / total > 0.95


def test_batch_mixes_all_three_kinds_with_correct_masks(tiny_pipeline):
    triplets = pl.read_parquet(tiny_pipeline["triplets"])
    dataset = TripletDataset(
        triplets, tiny_pipeline["cache"], list(CHEXPERT_LABELS), uncertainty="ignore"
    )
    kinds = triplets["kind"].to_list()
    picks = [kinds.index(k) for k in ("image_text", "image_label", "text_label")]
    collate = Collate(tiny_tokenizer(), MODEL["text"]["max_length"], dataset.image_size)
    batch = collate([dataset[i] for i in picks])
    assert batch["images"].shape == (2, 1, 32, 32) and batch["images"].dtype == torch.float32
    assert batch["present"]["image"].tolist() == [True, True, False]
    assert batch["present"]["text"].tolist() == [True, False, True]
    assert batch["present"]["label"][1] and batch["images"][0].max() > 0.5
    assert batch["input_ids"].shape[0] == 2 and batch["input_ids"].dtype == torch.long
    assert batch["attention_mask"].shape == batch["input_ids"].shape
    assert torch.equal(batch["images"][1], dataset[picks[1]]["image"])
    labels = batch["labels"]
    assert labels.shape == (3, len(CHEXPERT_LABELS))
    assert batch["present"]["label"].equal(~labels.isnan().all(1))
    assert (
        batch["label_sets"].nan_to_num(-1).equal(labels[batch["present"]["label"]].nan_to_num(-1))
    )
    with pytest.raises(MissingInputError, match="not in the cache"):
        TripletDataset(
            triplets.with_columns(pl.lit("x").alias("image"), pl.lit("ghost").alias("sample_id")),
            tiny_pipeline["cache"],
            list(CHEXPERT_LABELS),
        )


def test_too_many_bad_rows_stops_with_a_clear_message(tiny_pipeline, tmp_path):
    import yaml

    from umcl.config import parse_settings
    from umcl.ingest.validate import ValidationFailed, validate_sources

    raw = yaml.safe_load(tiny_pipeline["params"].read_text())
    raw["validate"]["max_bad_fraction"] = 0.01
    with pytest.raises(ValidationFailed, match=r"max_bad_fraction=0.01: mimic: \d+/40 quarantined"):
        validate_sources(
            parse_settings(raw), tmp_path / "v", tmp_path / "q", tmp_path / "m.json", tmp_path / "l"
        )
    assert (tmp_path / "q/mimic.parquet").is_file()  # the evidence is written before failing
