"""The model card travels with the model: README.md with YAML metadata in the folder
`save_pretrained` writes, refreshed in the store by `umcl package`, inside the bento."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import bentoml
import polars as pl
import pytest
from huggingface_hub import ModelCard

from tests.conftest import REPO, toy_calibration
from tests.test_gate import gate
from tests.tiny import tiny_model
from umcl import registry
from umcl.model.folder import CARD_FILE
from umcl.model.umcl import UMCLModel


def metadata(path: Path) -> dict:
    return ModelCard.load(path).data.to_dict()


def test_save_pretrained_writes_a_card_whose_metadata_names_what_the_folder_holds(
    tmp_path: Path,
) -> None:
    model = tiny_model()
    model.calibration = toy_calibration(list(model.label_names))
    declared = {
        "license": "other",
        "license_name": "a data use agreement",
        "datasets": {"site": "Site PACS 2024"},
    }
    data = [
        {
            "source": "site",
            "kind": ["image_text"],
            "samples": {"train": 9, "test": 2},
            "patients": 5,
            "rows_sha256": "0" * 64,
        }
    ]
    model.save_pretrained(tmp_path / "m", {"params": {"seed": 1}, "data": data, "card": declared})
    card = metadata(tmp_path / "m" / CARD_FILE)
    assert card["license"] == "other" and card["license_name"] == "a data use agreement"
    assert card["findings"] == list(model.label_names)
    assert card["datasets"] == ["Site PACS 2024"]
    assert card["training_data"][0] | {} == data[0] | {"release": "Site PACS 2024"}
    points = card["operating_points"]
    assert set(points) == set(model.label_names)
    assert points["Edema"]["calibrated"] is False and "not fitted" in points["Edema"]["chosen_by"]
    assert points["Cardiomegaly"]["threshold"] == pytest.approx(0.37)
    assert "Not a medical device" in card["intended_use"] and card["limitations"]
    assert "eval_results" not in card and "model-index" not in card  # nothing evaluated yet
    # A folder saved again without calibration or provenance says so; no stale figure survives.
    model.calibration = None
    model.save_pretrained(tmp_path / "m")
    again = metadata(tmp_path / "m" / CARD_FILE)
    assert again["license"] == "unknown" and again["operating_points"] == {}
    assert "training_data" not in again or again["training_data"] == []
    assert UMCLModel.from_pretrained(tmp_path / "m").label_names == model.label_names


def test_a_trained_model_names_its_data_and_the_bento_carries_the_gated_card(
    candidates: dict, tiny_pipeline: dict, empty_store: Path, tmp_path: Path
) -> None:
    trained = candidates["trained"]["model"]
    card = metadata(trained / CARD_FILE)
    table = pl.read_parquet(tiny_pipeline["triplets"])
    assert card["license"] == candidates["params"]["card"]["license"]
    assert {s["source"] for s in card["training_data"]} == set(table["source"].unique())
    for source in card["training_data"]:
        rows = table.filter(pl.col("source") == source["source"])
        assert sum(source["samples"].values()) == rows.height
        assert source["patients"] == rows["patient_id"].n_unique()
    # No pseudonym, image key or path of the data in the card: only counts and hashes.
    text = (trained / CARD_FILE).read_text()
    for value in (
        table["patient_id"].unique().to_list()[:50] + table["image"].drop_nulls().to_list()[:50]
    ):
        assert value not in text
    assert str(tiny_pipeline["root"]) not in text

    code, verdict = gate(
        candidates, "trained", tmp_path, min_zero_shot_auroc=None, min_recall_at_5=None
    )
    assert code == 0
    # `umcl package` in a process of its own: building a bento imports the service, which fixes
    # its model at import (this test process would keep that model for later tests' bentos).
    subprocess.run(
        [
            sys.executable,
            "-m",
            "umcl.cli",
            "package",
            "--model",
            str(trained),
            "--metrics",
            str(candidates["trained"]["metrics"]),
            "--gate",
            str(tmp_path / "gate-trained.json"),
            "--out",
            str(tmp_path / "package.json"),
            "--bentofile",
            str(REPO / "bentofile.yaml"),
        ],
        check=True,
        cwd=REPO,
        capture_output=True,
    )
    report = json.loads((tmp_path / "package.json").read_text())
    # A bento refers to its model in the store; `bentoml export` (what travels to another
    # machine, what `containerize` packs) copies the stored model, card included, into it.
    archive = Path(bentoml.bentos.export_bento(report["bento"], str(tmp_path / "umcl.bento")))
    version = report["model"].split(":")[1]
    member = f"./models/{registry.MODEL_NAME}/{version}/{CARD_FILE}"
    with tarfile.open(archive) as bundle:
        assert member in bundle.getnames(), [n for n in bundle.getnames() if "models/" in n]
        bundle.extract(member, tmp_path / "unpacked", filter="data")
    packed = tmp_path / "unpacked" / member
    card = metadata(packed)
    assert card["license"] == candidates["params"]["card"]["license"]
    assert card["findings"] == json.loads((trained / "umcl.json").read_text())["labels"]
    assert card["gated_metrics"]["passed"] is True
    assert card["gated_metrics"]["metrics"] == verdict["candidate"]["metrics"]
    evaluated = json.loads(candidates["trained"]["metrics"].read_text())
    results = {
        r["metrics"][0]["name"]: r["metrics"][0]["value"] for r in card["model-index"][0]["results"]
    }
    assert results["zero-shot macro AUROC (learned prompts)"] == pytest.approx(
        evaluated["zero_shot"]["learned"]["macro_auroc"], abs=1e-4
    )
    tested = evaluated["calibration"]["operating_points"]["per_finding"]
    for name, point in card["operating_points"].items():
        if name in tested:
            assert point["test"]["sensitivity"] == tested[name]["sensitivity"]
    # The candidate's own folder is left as training wrote it (DVC tracks it).
    assert "gated_metrics" not in metadata(trained / CARD_FILE)
