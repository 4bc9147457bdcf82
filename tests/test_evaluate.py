"""Evaluation metrics on hand-made scores with known answers, and a random model at chance."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
import torch

from tests.tiny import tiny_model
from umcl.calibration import Calibration, FindingCalibration
from umcl.cli import main
from umcl.config import EvaluateSettings, LossWeights
from umcl.data.dataset import Collate, TripletDataset
from umcl.data.preprocess import cache_image_size
from umcl.evaluate import (
    FIVE_CLASSES,
    embed,
    evaluate_model,
    fit_on_validation,
    five_by_n_accuracy,
    five_by_n_subset,
    per_label_auroc,
    recall_at_k,
    run_evaluation,
    split_for,
    zero_shot_logits,
)
from umcl.model.loss import UMCLLoss
from umcl.model.umcl import UMCLModel
from umcl.model_card import write_model_card
from umcl.training.runtime import start_runtime
from umcl.training.validation import Validator

NAN = float("nan")


def pipeline_model(pipeline: dict, seed: int = 3) -> UMCLModel:
    """An untrained tiny model over the pipeline's labels, taking its cache's image size."""
    labels = json.loads((pipeline["triplets"].parent / "labels.json").read_text())["names"]
    model = tiny_model(labels=labels, seed=seed)
    model.image_size = cache_image_size(pipeline["cache"])
    return model


def known_counts(table: pl.DataFrame, name: str, uncertainty: str) -> tuple[int, int]:
    """(positives, negatives) of a label column of raw 1 / 0 / −1 / null under a policy."""
    column = table[name].drop_nulls()
    uncertain = int((column == -1).sum())
    positives, negatives = int((column == 1).sum()), int((column == 0).sum())
    extra = {"ignore": (0, 0), "zeros": (0, uncertain), "ones": (uncertain, 0)}[uncertainty]
    return positives + extra[0], negatives + extra[1]


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
    pipeline_model(tiny_pipeline).save_pretrained(tmp_path / "model")
    metrics_path, card = tmp_path / "eval.json", tmp_path / "card.md"
    code = main(
        [
            "--params",
            str(tiny_pipeline["params"]),
            "evaluate",
            "--model",
            str(tmp_path / "model"),
            "--triplets",
            str(tiny_pipeline["triplets"]),
            "--cache",
            str(tiny_pipeline["cache"]),
            "--metrics",
            str(metrics_path),
            "--plots",
            str(tmp_path / "roc"),
            "--card",
            str(card),
            "--headline",
            str(tmp_path / "headline.json"),
        ]
    )
    assert code == 0
    metrics = json.loads(metrics_path.read_text())
    learned = metrics["zero_shot"]["learned"]["macro_auroc"]
    assert abs(learned - 0.5) < 0.2, learned  # untrained: nothing to find
    assert metrics["zero_shot"]["handcrafted"]["macro_auroc"] is not None
    assert set(metrics["retrieval"]["image_to_text"]) == {"recall@1", "recall@5", "recall@10"}
    assert "macro_auroc" in metrics["linear_probe"] and "accuracy" in metrics["five_by_n"]
    curves = pl.read_csv(tmp_path / "roc/learned.csv")  # every finding's curve in one file
    assert curves.columns == ["finding", "fpr", "tpr"]
    assert set(curves["finding"]) == set(metrics["zero_shot"]["learned"]["per_label"])
    headline = json.loads((tmp_path / "headline.json").read_text())
    assert headline["auroc"] == round(learned, 3) and len(headline) == 8
    assert "Zero-shot classification, learned prompts" in card.read_text()


def test_fit_on_validation_counts_the_validation_images(tiny_pipeline: dict) -> None:
    model, triplets = pipeline_model(tiny_pipeline), pl.read_parquet(tiny_pipeline["triplets"])
    # The tiny validation split is too small to fit any finding: every sample plays it here.
    all_val = triplets.with_columns(split=pl.lit("val"))
    images = all_val.filter(pl.col("image").is_not_null())
    for uncertainty in ("ignore", "zeros"):  # the default, and the policy training defaults to
        settings = EvaluateSettings(uncertainty=uncertainty)
        calibration = fit_on_validation(model, all_val, tiny_pipeline["cache"], settings)
        assert (calibration.method, calibration.operating_point) == ("platt", "youden")
        assert set(calibration.findings) == set(model.label_names)
        for name, entry in calibration.findings.items():
            positives, negatives = known_counts(images, name, uncertainty)
            assert (entry.positives, entry.negatives) == (positives, negatives), name
            assert entry.fitted == (min(positives, negatives) >= 5), name
            assert 0 < entry.threshold < 1 and entry.a > 0
    fitted = [entry.fitted for entry in calibration.findings.values()]
    assert any(fitted) and not all(fitted)
    assert any((e.a, e.b) != (1.0, 0.0) for e in calibration.findings.values() if e.fitted)


def test_a_validation_split_without_images_leaves_every_finding_raw_and_named(
    tiny_pipeline: dict, caplog: pytest.LogCaptureFixture
) -> None:
    """A small site's split can hold reports only: training goes on, nothing is fitted, and
    each finding says why (as the card and the service's `uncalibrated` list show)."""
    model, triplets = pipeline_model(tiny_pipeline), pl.read_parquet(tiny_pipeline["triplets"])
    reports_only_val = triplets.filter((pl.col("split") != "val") | pl.col("image").is_null())
    for method in ("platt", "temperature", "none"):
        with caplog.at_level("WARNING", logger="umcl.evaluate"):
            calibration = fit_on_validation(
                model,
                reports_only_val,
                tiny_pipeline["cache"],
                EvaluateSettings(calibration=method),
            )
        assert "validation split has no images" in caplog.text
        assert set(calibration.findings) == set(model.label_names)
        for entry in calibration.findings.values():
            assert not entry.fitted and (entry.a, entry.b, entry.threshold) == (1.0, 0.0, 0.5)
            assert entry.reason.startswith("0 positive and 0 negative known validation labels")


def test_evaluation_reports_calibration_and_writes_reliability(
    tiny_pipeline: dict, tmp_path: Path
) -> None:
    model = pipeline_model(tiny_pipeline)
    *fitted, unfitted = model.label_names
    entries = {n: FindingCalibration(0.5, -0.3, 0.45, 9, 9, fitted=True) for n in fitted}
    entries[unfitted] = FindingCalibration(1.0, 0.0, 0.5, 2, 9, fitted=False, reason="too few")
    model.calibration = Calibration("platt", {"sensitivity": 0.8}, entries)
    model.save_pretrained(tmp_path / "model")
    settings, metrics_path = EvaluateSettings(), tmp_path / "eval.json"
    metrics = run_evaluation(
        tmp_path / "model",
        tiny_pipeline["triplets"],
        tiny_pipeline["cache"],
        settings,
        "zeros",
        0,
        metrics_path,
        reliability_dir=tmp_path / "reliability",
    )
    report = json.loads(metrics_path.read_text())["calibration"]
    assert report == metrics["calibration"]
    assert (report["method"], report["operating_point"]) == ("platt", {"sensitivity": 0.8})
    assert report["not_fitted"] == {unfitted: "too few"}
    # Calibration is monotone per finding: the AUROC (of the raw scores) is what it would be.
    uncalibrated, _ = evaluate_model(
        pipeline_model(tiny_pipeline),
        pl.read_parquet(tiny_pipeline["triplets"]),
        tiny_pipeline["cache"],
        settings,
        "zeros",
        0,
    )
    assert "calibration" not in uncalibrated
    assert uncalibrated["zero_shot"] == metrics["zero_shot"]

    test_images = pl.read_parquet(tiny_pipeline["triplets"]).filter(
        (pl.col("split") == "test") & pl.col("image").is_not_null()
    )
    for name in model.label_names:
        positives, negatives = known_counts(test_images, name, settings.uncertainty)
        if positives and negatives:
            point = report["operating_points"]["per_finding"][name]
            assert (point["positives"], point["negatives"]) == (positives, negatives)
            assert point["threshold"] == (0.5 if name == unfitted else 0.45)
            assert 0 <= point["sensitivity"] <= 1 and 0 <= point["specificity"] <= 1
        if not (positives and negatives):  # one class only: no ECE of its own, as no AUROC
            assert name in report["ece_before"]["skipped"]
        else:
            before = report["ece_before"]["per_finding"][name]
            after = report["ece_after"]["per_finding"][name]
            assert before == after if name == unfitted else before != after
    assert report["ece_before"]["macro"] != report["ece_after"]["macro"]

    known = sum(
        sum(counts)
        for counts in (
            known_counts(test_images, n, settings.uncertainty) for n in model.label_names
        )
        if all(counts)
    )  # the findings with both classes, pooled
    for stage in ("before", "after"):
        curve = pl.read_csv(tmp_path / "reliability" / f"{stage}.csv")
        assert curve.columns == ["bin", "confidence", "frequency", "count"]
        assert curve["count"].sum() == known
        assert curve["frequency"].is_between(0, 1).all()
    card = tmp_path / "card.md"
    write_model_card(tmp_path / "model", card, metrics)
    text = card.read_text()
    assert "Platt scaling" in text and "sensitivity ≥ 0.8" in text
    assert f"{unfitted}: too few" in text


def test_uncertain_test_labels_are_read_per_evaluate_uncertainty(tiny_pipeline: dict) -> None:
    """A hedge is not ground truth: by default turning unknown test labels into uncertain ones
    changes no score, whatever `labels.uncertainty` training used; read as zeros it does."""
    model, triplets = pipeline_model(tiny_pipeline), pl.read_parquet(tiny_pipeline["triplets"])
    is_test = (pl.col("split") == "test") & pl.col("image").is_not_null()
    hedged = triplets.with_columns(
        pl.when(is_test & pl.col(name).is_null()).then(-1).otherwise(pl.col(name)).alias(name)
        for name in model.label_names
    )
    assert (hedged.filter(is_test).select(model.label_names) == -1).sum_horizontal().sum() > 0

    def scores(table: pl.DataFrame, uncertainty: str) -> dict:
        metrics, _ = evaluate_model(
            model,
            table,
            tiny_pipeline["cache"],
            EvaluateSettings(uncertainty=uncertainty),
            "zeros",
            0,
        )
        return metrics["zero_shot"]

    assert scores(hedged, "ignore") == scores(triplets, "ignore")
    assert scores(hedged, "zeros") != scores(triplets, "zeros")


def test_validation_during_training_scores_as_evaluation_does(tiny_pipeline: dict) -> None:
    """The AUROC that selects the exported step is evaluation's zero-shot AUROC of the validation
    split, uncertain labels read per `evaluate.uncertainty`; its loss reads them as training."""
    model, triplets = pipeline_model(tiny_pipeline), pl.read_parquet(tiny_pipeline["triplets"])
    names, cache = model.label_names, tiny_pipeline["cache"]
    model.eval()
    for uncertainty in ("ignore", "zeros"):
        val = TripletDataset(triplets, cache, names, split="val", uncertainty="ones")
        validate = Validator(
            val, Collate(model.tokenizer, model.max_length, val.image_size), 4, uncertainty
        )
        result = validate(model, UMCLLoss("exact", LossWeights()), start_runtime("cpu"))
        images = split_for(
            model, triplets.filter(pl.col("image").is_not_null()), cache, "val", uncertainty
        )
        data = embed(model, images, 256)
        expected = per_label_auroc(
            zero_shot_logits(model, data.images, handcrafted=False), data.labels, names
        )["macro_auroc"]
        assert result.zero_shot_auroc == pytest.approx(expected, abs=1e-6), uncertainty


def test_five_by_n_takes_its_classes_from_the_label_space() -> None:
    """A site's own label space: the competition findings it holds are the classes; with fewer
    than two the task is skipped with the reason (no `'Atelectasis' is not in list`)."""
    settings = EvaluateSettings(five_by_n=10)
    some = tiny_model(labels=["Hernia", "Edema", "Cardiomegaly", "Pneumonia"], seed=1)
    images = some.encode_image(torch.rand(6, 1, some.image_size, some.image_size)).detach()
    labels = torch.tensor(
        [[0, 1, 0, 0], [0, 0, 1, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 1, NAN]]
    )
    result = five_by_n_accuracy(some, images, labels, settings, seed=0)
    assert result["per_class"] == {"Cardiomegaly": 2, "Edema": 2} and "skipped" not in result
    assert 0 <= result["accuracy"] <= 1

    own = tiny_model(labels=["Hernia", "Edema", "Nodule"], seed=1)
    result = five_by_n_accuracy(own, images, labels[:, :3], settings, seed=0)
    assert result["accuracy"] is None
    assert result["skipped"].startswith("the label space holds 1 of Atelectasis")
