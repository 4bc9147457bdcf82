"""Evaluation metrics on hand-made scores with known answers, and a random model at chance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.tiny import tiny_model
from umcl.cli import main
from umcl.evaluate import FIVE_CLASSES, five_by_n_subset, per_label_auroc, recall_at_k
from umcl.model.umcl import save_model

NAN = float("nan")


def test_per_label_auroc_known_answers_and_skips() -> None:
    scores = torch.tensor(
        [[0.1, 0.9, 0.5], [0.4, 0.8, 0.5], [0.35, 0.2, 0.5], [0.8, 0.1, 0.5], [0.0, 0.0, 0.0]]
    )
    labels = torch.tensor([[0, 0, 1], [0, 0, 1], [1, 1, 1], [1, 1, 1], [NAN, NAN, NAN]])
    result = per_label_auroc(scores, labels, ["a", "b", "c"])
    assert result["per_label"]["a"] == pytest.approx(0.75)  # 3 of 4 positive–negative pairs ordered
    assert result["per_label"]["b"] == pytest.approx(0.0)  # perfectly reversed
    assert "c" in result["skipped"] and "4 positive of 4 known" in result["skipped"]["c"]
    assert result["macro_auroc"] == pytest.approx(0.375)  # over the evaluable labels only
    assert set(result["roc"]) == {"a", "b"}


def test_recall_at_k_on_a_known_similarity() -> None:
    similarity = torch.tensor(
        [
            [0.9, 0.1, 0.0, 0.0],  # match ranked 1st
            [0.8, 0.5, 0.9, 0.0],  # 3rd
            [0.0, 0.0, 0.7, 0.1],  # 1st
            [0.5, 0.6, 0.7, 0.1],  # 4th
        ]
    )
    assert recall_at_k(similarity, (1, 2, 3, 4)) == {
        "recall@1": 0.5,
        "recall@2": 0.5,
        "recall@3": 0.75,
        "recall@4": 1.0,
    }


def test_five_by_n_takes_single_finding_images_capped_per_class() -> None:
    names = ["No Finding", *FIVE_CLASSES]
    rows = [
        [0, 1, 0, 0, 0, 0],  # Atelectasis only
        [0, 1, 0, 0, 0, 0],  # Atelectasis only
        [0, 1, 0, 0, 0, 0],  # Atelectasis only: one too many for n=2
        [0, 0, 1, 0, NAN, 0],  # Cardiomegaly only (unknown is not positive)
        [0, 1, 1, 0, 0, 0],  # two findings: excluded
        [1, 0, 0, 0, 0, 0],  # none of the five: excluded
        [0, 0, 0, 0, 0, 1],  # Pleural Effusion only
    ]
    chosen, classes = five_by_n_subset(torch.tensor(rows, dtype=torch.float), names, 2, seed=0)
    picked = dict(zip(chosen.tolist(), classes.tolist(), strict=True))
    assert sum(1 for c in picked.values() if c == 0) == 2 and set(picked) - {3, 6} <= {0, 1, 2}
    assert picked[3] == 1 and picked[6] == 4
    assert 4 not in picked and 5 not in picked


def test_evaluate_a_random_model_is_at_chance(tiny_pipeline: dict, tmp_path: Path) -> None:
    labels = json.loads((tiny_pipeline["triplets"].parent / "labels.json").read_text())["names"]
    save_model(tiny_model(labels=labels, seed=3), tmp_path / "model")
    metrics_path, card = tmp_path / "eval.json", tmp_path / "card.md"
    code = main(["--params", str(tiny_pipeline["params"]), "evaluate", "--model", str(tmp_path / "model"),
                 "--triplets", str(tiny_pipeline["triplets"]), "--cache", str(tiny_pipeline["cache"]),
                 "--metrics", str(metrics_path), "--plots", str(tmp_path / "roc"), "--card", str(card)])  # fmt: skip
    assert code == 0
    metrics = json.loads(metrics_path.read_text())
    learned = metrics["zero_shot"]["learned"]["macro_auroc"]
    assert abs(learned - 0.5) < 0.2, learned  # untrained: nothing to find
    assert metrics["zero_shot"]["handcrafted"]["macro_auroc"] is not None
    assert set(metrics["retrieval"]["image_to_text"]) == {"recall@1", "recall@5", "recall@10"}
    assert "macro_auroc" in metrics["linear_probe"] and "accuracy" in metrics["five_by_n"]
    assert any((tmp_path / "roc/learned").glob("*.csv"))
    assert "Zero-shot classification, learned prompts" in card.read_text()
