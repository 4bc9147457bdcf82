"""Evaluation of a packaged model on the test split: the `evaluate` stage.

- zero-shot multi-label classification: p = softmax(s·[u·w_present, u·w_absent])[0] per label,
  with the model's learned prompts and with hand-crafted templates, side by side;
- 5×N accuracy (CheXpert 5×200 style): images with exactly one of five findings positive,
  argmax over the five present-prompts;
- retrieval on image–report pairs: Recall@1/5/10 in both directions;
- linear probe: logistic regression on frozen image embeddings (train split) — the ceiling of
  what the image tower's features hold;
- calibration, when the model carries one (fitted on the validation split by
  `fit_on_validation`): ECE before and after, sensitivity and specificity at each finding's
  threshold, and reliability diagrams. AUROC is unchanged by it (monotone per finding).
Uncertain test and validation labels are read per `evaluate.uncertainty` (default: not known,
as a hedge is not ground truth), whatever policy training used.
AUROC is computed only for labels with positives and negatives among the known test labels;
the others are listed as skipped with the reason (a label without positives would otherwise
count as 0 in a macro average).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import torch
from tqdm import tqdm

from umcl.atomic import write_json, write_with
from umcl.calibration import (
    Calibration,
    expected_calibration_error,
    fit_calibration,
    operating_stats,
    reliability_curve,
)
from umcl.config import EvaluateSettings, UncertaintyPolicy
from umcl.data.dataset import Collate, TripletDataset, to_device
from umcl.errors import InputError
from umcl.model.umcl import UMCLModel, finding_logits

log = logging.getLogger(__name__)

FIVE_CLASSES = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion"]
RECALL_AT = (1, 5, 10)


@dataclass
class Embedded:
    """One split, encoded: rows are samples; images/texts hold only the samples that have them."""

    images: torch.Tensor  # (n_images, D)
    image_rows: torch.Tensor  # sample index of each image row
    texts: torch.Tensor  # (n_texts, D)
    text_rows: torch.Tensor
    labels: torch.Tensor  # (n, K), NaN where unknown


def split_for(
    model: UMCLModel,
    triplets: pl.DataFrame,
    cache_dir: Path,
    split: str,
    uncertainty: UncertaintyPolicy,
) -> TripletDataset:
    """One split of `triplets` over the cache, refused when the cache's image size is not the
    model's."""
    return TripletDataset(
        triplets,
        cache_dir,
        model.label_names,
        split=split,
        uncertainty=uncertainty,
        image_size=model.image_size,
        image_size_from=f"the model's input size ({split} split)",
    )


@torch.no_grad()
def embed(
    model: UMCLModel, dataset: TripletDataset, batch_size: int, desc: str = "embed"
) -> Embedded:
    collate = Collate(model.tokenizer, model.max_length, dataset.image_size)
    images, texts, labels, image_rows, text_rows = [], [], [], [], []
    starts = range(0, len(dataset), batch_size)
    for start in tqdm(starts, desc=desc, unit="batch", leave=False):  # evaluate and gate: minutes
        batch = collate([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
        batch = to_device(batch, model.device)
        rows = torch.arange(start, start + len(batch["sample_ids"]))
        present = {m: mask.cpu() for m, mask in batch["present"].items()}
        if present["image"].any():
            images.append(model.encode_image(batch["images"]).cpu())
            image_rows.append(rows[present["image"]])
        if present["text"].any():
            texts.append(
                model.text(
                    input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
                ).cpu()
            )
            text_rows.append(rows[present["text"]])
        labels.append(batch["labels"].cpu())
    dim = model.image.projection.out_features

    def cat(parts: list[torch.Tensor], empty: torch.Tensor) -> torch.Tensor:
        return torch.cat(parts) if parts else empty

    return Embedded(
        cat(images, torch.zeros(0, dim)),
        cat(image_rows, torch.zeros(0, dtype=torch.long)),
        cat(texts, torch.zeros(0, dim)),
        cat(text_rows, torch.zeros(0, dtype=torch.long)),
        cat(labels, torch.zeros(0, len(model.label_names))),
    )


# -- metrics on score matrices --------------------------------------------------------------


def per_label_auroc(scores: torch.Tensor, labels: torch.Tensor, names: list[str]) -> dict:
    """AUROC per label over the rows whose label is known; labels without both classes are
    skipped and named. Returns {macro_auroc, per_label, skipped, roc}."""
    # Imported where used (seconds of import): training imports this module for it, and only
    # when it validates does it need it.
    from torchmetrics.functional.classification import binary_auroc, binary_roc

    per_label, skipped, roc = {}, {}, {}
    for k, name in enumerate(names):
        known = ~labels[:, k].isnan()
        truth = labels[known, k].long()
        positives = int(truth.sum())
        if positives == 0 or positives == len(truth):
            skipped[name] = f"{positives} positive of {len(truth)} known"
            continue
        per_label[name] = float(binary_auroc(scores[known, k], truth))
        fpr, tpr, _ = binary_roc(scores[known, k], truth)
        roc[name] = (fpr.tolist(), tpr.tolist())
    macro = sum(per_label.values()) / len(per_label) if per_label else None
    return {"macro_auroc": macro, "per_label": per_label, "skipped": skipped, "roc": roc}


def recall_at_k(similarity: torch.Tensor, ks: tuple[int, ...] = RECALL_AT) -> dict[str, float]:
    """Row i's true match is column i: the share of rows whose match is among the top k."""
    rank = (similarity > similarity.diagonal()[:, None]).sum(1)  # columns scoring above the match
    return {f"recall@{k}": float((rank < k).float().mean()) for k in ks}


def five_by_n_classes(names: list[str]) -> list[str]:
    """The CheXpert competition findings that the label space holds, in their order."""
    return [c for c in FIVE_CLASSES if c in names]


def five_by_n_subset(
    labels: torch.Tensor, names: list[str], n_per_class: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows with exactly one of the 5×N classes (`five_by_n_classes`) positive and the others
    not positive, at most `n_per_class` per class, drawn with `seed`: (rows, class index)."""
    five = five_by_n_classes(names)
    columns = labels[:, [names.index(c) for c in five]]
    positive = columns == 1
    single = positive.sum(1) == 1
    generator = torch.Generator().manual_seed(seed)
    rows, classes = [], []
    for c in range(len(five)):
        candidates = (single & positive[:, c]).nonzero().squeeze(1)
        chosen = candidates[torch.randperm(len(candidates), generator=generator)[:n_per_class]]
        rows.append(chosen.sort().values)
        classes.append(torch.full((len(chosen),), c))
    return torch.cat(rows), torch.cat(classes)


def five_by_n_accuracy(
    model: UMCLModel,
    images: torch.Tensor,
    labels: torch.Tensor,
    settings: EvaluateSettings,
    seed: int,
) -> dict:
    """Accuracy of the argmax over the present-prompts of the 5×N classes, on test images with
    exactly one of them; skipped, with the reason, when the label space holds fewer than two."""
    five = five_by_n_classes(model.label_names)
    if len(five) < 2:
        return {
            "accuracy": None,
            "per_class": dict.fromkeys(five, 0),
            "skipped": f"the label space holds {len(five)} of {', '.join(FIVE_CLASSES)}; "
            "the task needs two or more",
        }
    rows, classes = five_by_n_subset(labels, model.label_names, settings.five_by_n, seed)
    counts = {c: int((classes == i).sum()) for i, c in enumerate(five)}
    if not len(rows):
        return {
            "accuracy": None,
            "per_class": counts,
            "skipped": "no test image has exactly one of the classes",
        }
    present, _ = model.encode_findings(five)
    predicted = (images[rows] @ present.cpu().T).argmax(1)
    return {"accuracy": float((predicted == classes).float().mean()), "per_class": counts}


def linear_probe(
    train_x: torch.Tensor, train_y: torch.Tensor, l2: float, steps: int = 100
) -> torch.nn.Linear:
    """Per-label logistic regressions on frozen features, fitted jointly with L-BFGS; unknown
    labels (NaN) are left out of each label's loss."""
    probe = torch.nn.Linear(train_x.shape[1], train_y.shape[1])
    known = ~train_y.isnan()
    target = torch.nan_to_num(train_y)
    optimizer = torch.optim.LBFGS(probe.parameters(), max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        losses = torch.nn.functional.binary_cross_entropy_with_logits(
            probe(train_x), target, reduction="none"
        )
        loss = (losses * known).sum(0).div(known.sum(0).clamp(min=1)).sum() + l2 * probe.weight.pow(
            2
        ).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return probe


# -- the stage -------------------------------------------------------------------------------


@torch.no_grad()
def zero_shot_logits(model: UMCLModel, images: torch.Tensor, handcrafted: bool) -> torch.Tensor:
    """(n, K) log-odds that each finding is present: what calibration acts on."""
    present, absent = (e.cpu() for e in model.encode_findings(handcrafted=handcrafted))
    return finding_logits(images, present, absent, model.logit_scale.exp().cpu())


def zero_shot(model: UMCLModel, images: torch.Tensor, handcrafted: bool) -> torch.Tensor:
    """(n, K) uncalibrated probability that each finding is present."""
    return zero_shot_logits(model, images, handcrafted).sigmoid()


@dataclass
class Curves:
    """What `evaluate_model` hands on besides its metrics: curves to plot, and the scored test
    images the monitor's reference is drawn from."""

    roc: dict  # prompt kind → label → (fpr, tpr)
    # before / after calibration → reliability rows (umcl/calibration.py: reliability_curve);
    # only "before" when the model has no calibration.
    reliability: dict[str, list[dict]]
    test_embeddings: torch.Tensor  # (n, D), one per test image
    test_probabilities: torch.Tensor  # (n, L) calibrated, with the model's own prompts


def calibration_report(
    calibration: Calibration, logits: torch.Tensor, labels: torch.Tensor, names: list[str]
) -> tuple[dict, dict[str, list[dict]]]:
    """The metrics block of a calibration on one split's zero-shot logits and labels, and its
    reliability rows before and after."""
    before, after = logits.sigmoid(), calibration.probabilities(logits, names)
    not_fitted = {
        name: entry.reason or "not fitted"
        for name, entry in calibration.findings.items()
        if name in names and not entry.fitted
    }
    not_fitted |= {n: "not in the calibration" for n in names if n not in calibration.findings}
    report = {
        "method": calibration.method,
        "operating_point": calibration.operating_point,
        "ece_before": expected_calibration_error(before, labels, names),
        "ece_after": expected_calibration_error(after, labels, names),
        "operating_points": operating_stats(after, labels, names, calibration),
        "not_fitted": not_fitted,
    }
    reliability = {
        "before": reliability_curve(before, labels),
        "after": reliability_curve(after, labels),
    }
    return report, reliability


def fit_on_validation(
    model: UMCLModel,
    triplets: pl.DataFrame,
    cache_dir: Path,
    settings: EvaluateSettings,
) -> Calibration:
    """Each finding's calibration (`evaluate.calibration`) and threshold
    (`evaluate.operating_point`), fitted on the validation split's images scored with the
    model's own prompts (learned, else templates)."""
    names = model.label_names
    images = triplets.filter(pl.col("image").is_not_null())
    val = split_for(model, images, cache_dir, "val", settings.uncertainty)
    if len(val) == 0:
        # A small site's split can hold no image: the rule for a thin finding (raw probability,
        # threshold 0.5, the reason named in the card and by the service) then covers them all.
        log.warning(
            "the validation split has no images: every finding keeps its raw probability and "
            "threshold 0.5 (raise data.split.val to calibrate)"
        )
        empty = torch.zeros(0, len(names))
        return fit_calibration(empty, empty, names, settings.calibration, settings.operating_point)
    training = model.training
    model.eval()  # no dropout in the scores the calibration is fitted to
    try:
        data = embed(model, val, settings.batch_size, "embed validation split")
        logits = zero_shot_logits(model, data.images, handcrafted=not model.prompts.learned)
    finally:
        model.train(training)
    return fit_calibration(
        logits,
        data.labels[data.image_rows],
        names,
        settings.calibration,
        settings.operating_point,
    )


def evaluate_model(
    model: UMCLModel,
    triplets: pl.DataFrame,
    cache_dir: Path,
    settings: EvaluateSettings,
    training_uncertainty: UncertaintyPolicy,
    seed: int,
) -> tuple[dict, Curves]:
    """Every metric of the test split, whose uncertain labels are read per
    `settings.uncertainty`; the linear probe trains on labels read as training reads them
    (`training_uncertainty`). Returns (metrics, ROC and reliability curves)."""
    names = model.label_names
    test = split_for(model, triplets, cache_dir, "test", settings.uncertainty)
    if len(test) == 0:
        raise InputError("the triplet table has no test split rows to evaluate on")
    data = embed(model, test, settings.batch_size, "embed test split")
    image_labels = data.labels[data.image_rows]
    metrics: dict = {
        "test": {"samples": len(test), "images": len(data.images), "texts": len(data.texts)}
    }
    curves = {}

    kinds = (
        {"learned": False, "handcrafted": True} if model.prompts.learned else {"handcrafted": True}
    )
    metrics["zero_shot"] = {}
    for kind, handcrafted in kinds.items():
        result = per_label_auroc(zero_shot(model, data.images, handcrafted), image_labels, names)
        curves[kind] = result.pop("roc")
        metrics["zero_shot"][kind] = result

    # Calibration is fitted to, and reported for, the model's own prompts.
    logits = zero_shot_logits(model, data.images, handcrafted=not model.prompts.learned)
    calibration = getattr(model, "calibration", None)
    probabilities = (calibration or Calibration.identity(names)).probabilities(logits, names)
    if calibration is None:
        reliability = {"before": reliability_curve(logits.sigmoid(), image_labels)}
    else:
        metrics["calibration"], reliability = calibration_report(
            calibration, logits, image_labels, names
        )

    metrics["five_by_n"] = five_by_n_accuracy(model, data.images, image_labels, settings, seed)

    paired = sorted(set(data.image_rows.tolist()) & set(data.text_rows.tolist()))
    if paired:
        image_of = {int(r): i for i, r in enumerate(data.image_rows)}
        text_of = {int(r): i for i, r in enumerate(data.text_rows)}
        u = data.images[[image_of[r] for r in paired]]
        v = data.texts[[text_of[r] for r in paired]]
        similarity = u @ v.T
        metrics["retrieval"] = {
            "pairs": len(paired),
            "image_to_text": recall_at_k(similarity),
            "text_to_image": recall_at_k(similarity.T),
        }

    train = split_for(
        model,
        triplets.filter(pl.col("image").is_not_null()),
        cache_dir,
        "train",
        training_uncertainty,
    )
    if len(train):
        train_data = embed(model, train, settings.batch_size, "embed train split (probe)")
        torch.manual_seed(seed)
        probe = linear_probe(
            train_data.images, train_data.labels[train_data.image_rows], settings.probe_l2
        )
        with torch.no_grad():
            result = per_label_auroc(torch.sigmoid(probe(data.images)), image_labels, names)
        curves["linear_probe"] = result.pop("roc")
        metrics["linear_probe"] = result | {"train_images": len(train_data.images)}
    return metrics, Curves(curves, reliability, data.images, probabilities)


def write_roc_plots(curves: dict, directory: Path) -> None:
    """One CSV per prompt kind (finding, fpr, tpr): `dvc plots` draws every finding's curve in
    one plot (`.dvc/plots/roc_by_finding.json` colours them by finding)."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.csv"):  # curves of a model scored before
        stale.unlink()
    for kind in curves:  # the earlier layout: a folder of per-label files per prompt kind
        shutil.rmtree(directory / kind, ignore_errors=True)
    for kind, per_label in curves.items():
        frames = [
            pl.DataFrame(
                {"finding": [name] * len(fpr), "fpr": fpr, "tpr": tpr},
                schema={"finding": pl.String, "fpr": pl.Float64, "tpr": pl.Float64},
            )
            for name, (fpr, tpr) in per_label.items()
        ]
        if frames:
            write_with(directory / f"{kind}.csv", pl.concat(frames).write_csv)


RELIABILITY_COLUMNS = {
    "bin": pl.Int64,
    "confidence": pl.Float64,
    "frequency": pl.Float64,
    "count": pl.Int64,
}


def write_reliability_plots(reliability: dict[str, list[dict]], directory: Path) -> None:
    """`before.csv` and `after.csv` (bin, confidence, frequency, count) for `dvc plots`."""
    directory.mkdir(parents=True, exist_ok=True)
    for stage in ("before", "after"):
        # An uncalibrated model serves its raw probabilities: its "after" is its "before" (and no
        # earlier run's curve may stand for it).
        rows = reliability.get(stage, reliability.get("before", []))
        table = pl.DataFrame(rows, schema=RELIABILITY_COLUMNS)
        write_with(directory / f"{stage}.csv", table.write_csv)


def headline(metrics: dict) -> dict[str, float | None]:
    """The eight numbers experiments are compared by, to 3 decimals: what `dvc.yaml` declares as
    metrics (with the gate's verdict), so that `dvc exp show` fits a terminal; `eval.json` keeps
    every figure at full precision, per label and prompt kind. None where a figure could not be
    measured (no image–report pairs for retrieval, no calibration)."""
    zero_shot = metrics.get("zero_shot") or {}
    retrieval = (metrics.get("retrieval") or {}).get("image_to_text") or {}
    calibration = metrics.get("calibration") or {}
    operating = (calibration.get("operating_points") or {}).get("macro") or {}
    # Short names: they are `dvc exp show`'s column headers (docs/pipeline.md, "Experiments").
    figures = {
        "auroc": (zero_shot.get("learned") or {}).get("macro_auroc"),  # zero-shot, learned prompts
        "hand": (zero_shot.get("handcrafted") or {}).get("macro_auroc"),  # zero-shot, templates
        "probe": (metrics.get("linear_probe") or {}).get("macro_auroc"),  # linear probe AUROC
        "5xN": (metrics.get("five_by_n") or {}).get("accuracy"),
        "R@5": retrieval.get("recall@5"),  # image → text
        "ece": (calibration.get("ece_after") or {}).get("pooled"),  # calibrated, pooled
        "sens": operating.get("sensitivity"),  # mean over findings at their operating points
        "spec": operating.get("specificity"),
    }
    return {name: None if v is None else round(v, 3) for name, v in figures.items()}


def run_evaluation(
    model_dir: Path,
    triplets_path: Path,
    cache_dir: Path,
    settings: EvaluateSettings,
    training_uncertainty: UncertaintyPolicy,
    seed: int,
    metrics_path: Path,
    plots_dir: Path | None = None,
    reliability_dir: Path | None = None,
    headline_path: Path | None = None,
    scored: Callable[[UMCLModel, Curves], None] | None = None,
) -> dict:
    """`umcl evaluate`: score a packaged model on a triplet table's test split; the full report
    goes to `metrics_path`, its `headline` to `headline_path`; `scored` is handed the model and
    its scored test images (the monitor's reference is drawn from them)."""
    model = UMCLModel.from_pretrained(model_dir)
    metrics, curves = evaluate_model(
        model, pl.read_parquet(triplets_path), Path(cache_dir), settings, training_uncertainty, seed
    )
    metrics["model"] = str(model_dir)
    write_json(metrics_path, metrics)
    if headline_path is not None:
        write_json(headline_path, headline(metrics))
    if plots_dir is not None:
        write_roc_plots(curves.roc, Path(plots_dir))
    if reliability_dir is not None:
        write_reliability_plots(curves.reliability, Path(reliability_dir))
    if scored is not None:
        scored(model, curves)
    return metrics
