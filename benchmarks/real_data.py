"""UMCL on real data that plain CLIP cannot use: Kermany X-rays (labels) + IU reports (text).

    python benchmarks/real_data.py [--params configs/kermany_iu.yaml] [--out DIR] [--steps N]

Runs validate → unify → preprocess → train with the preset on ../shared/data (skipped with a
message where it is absent); the preset holds out Kermany patients for validation and test.
On the test patients, Pneumonia vs No Finding: UMCL zero-shot scored through the user API
(`umcl.load(...).classify` on the source files) next to a supervised classifier with the same
image tower, augmentation and budget (the ceiling). Both get AUROC with a bootstrap 95 %
interval, sensitivity and specificity at the operating point chosen on the validation split,
and the specificity at sensitivity ≥ 0.90 of the test ROC; UMCL also its ECE before and after
calibration. Test patients come from the training collection, which flatters every model.
Writes benchmarks/results/real_data.json; `--out DIR` keeps the UMCL model for `umcl.load(DIR)`;
`--steps N` overrides train.steps (smoke runs, budget sweeps).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl
import torch
from torch import nn
from torchmetrics.functional.classification import binary_auroc, binary_roc

import umcl
from umcl.calibration import choose_threshold, expected_calibration_error, operating_point_json
from umcl.config import Settings, load_settings
from umcl.data.dataset import TripletDataset
from umcl.data.locator import image_files
from umcl.data.preprocess import build_cache
from umcl.data.unify import unify
from umcl.data.validate import validate_sources
from umcl.evaluate import zero_shot
from umcl.model.towers import ImageTower, build_backbone
from umcl.model.umcl import decay_groups
from umcl.train import train
from umcl.training.order import epoch_batches
from umcl.training.runtime import start_runtime
from umcl.training.step import warmup_cosine

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks/results/real_data.json"
FINDING = "Pneumonia"
TARGET_SENSITIVITY = 0.90  # what a user asks for; reported threshold-free from the test ROC
BOOTSTRAP_RESAMPLES = 1000
SCORE_BATCH = 256  # images per forward pass when scoring the supervised classifier
SPEC_AT_SENS = f"specificity_at_sensitivity_{TARGET_SENSITIVITY:.2f}"


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--params", type=Path, default=ROOT / "configs/kermany_iu.yaml")
    parser.add_argument("--out", type=Path, help="keep the trained UMCL model here (replaced)")
    parser.add_argument("--steps", type=positive_int, help="override train.steps")
    return parser.parse_args()


def with_steps(settings: Settings, steps: int | None) -> Settings:
    """The settings with train.steps replaced when `steps` is given."""
    if steps is None:
        return settings
    return settings.model_copy(update={"train": settings.train.model_copy(update={"steps": steps})})


@contextmanager
def timed(seconds: dict[str, float], name: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    seconds[name] = time.perf_counter() - started


def prepare_data(settings: Settings, work: Path) -> dict:
    """validate → unify → preprocess into `work`; returns the validation report per source."""
    validation = validate_sources(
        settings,
        work / "validated",
        work / "quarantine",
        work / "validation.json",
        work / "locator",
    )
    unify(settings, work / "validated", work / "unified/triplets.parquet", work / "unify.json")
    build_cache(
        work / "unified/triplets.parquet",
        work / "cache",
        settings.preprocess.image_size,
        work / "locator",
        settings.preprocess.workers,
    )
    return validation


def pneumonia_truth(table: pl.DataFrame) -> torch.Tensor:
    """1 for PNEUMONIA images, 0 for NORMAL (No Finding) ones."""
    return torch.tensor((table[FINDING] == 1).fill_null(False).to_list(), dtype=torch.long)


# -- test metrics -----------------------------------------------------------------------------


def bootstrap_interval(scores: torch.Tensor, truth: torch.Tensor, seed: int) -> list[float]:
    """95 % percentile interval of the AUROC over seeded resamples of the test images."""
    generator = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(BOOTSTRAP_RESAMPLES):
        pick = torch.randint(len(truth), (len(truth),), generator=generator)
        if truth[pick].min() == truth[pick].max():
            continue  # a resample holding one class has no AUROC
        values.append(float(binary_auroc(scores[pick], truth[pick], validate_args=False)))
    return torch.tensor(values).quantile(torch.tensor([0.025, 0.975])).tolist()


def specificity_at_sensitivity(scores: torch.Tensor, truth: torch.Tensor) -> float:
    """The best specificity of any test ROC threshold reaching TARGET_SENSITIVITY."""
    fpr, tpr, _ = binary_roc(scores, truth)
    return float((1 - fpr[tpr >= TARGET_SENSITIVITY]).max())


def metrics_on_test(
    scores: torch.Tensor, positive: torch.Tensor, truth: torch.Tensor, seed: int
) -> dict[str, float | list[float]]:
    """AUROC [95 % CI], the decisions' sensitivity and specificity, and the threshold-free
    specificity at TARGET_SENSITIVITY."""
    actual = truth.bool()
    return {
        "auroc": float(binary_auroc(scores, truth)),
        "auroc_ci95": bootstrap_interval(scores, truth, seed),
        "sensitivity": float((positive & actual).sum() / actual.sum()),
        "specificity": float((~positive & ~actual).sum() / (~actual).sum()),
        SPEC_AT_SENS: specificity_at_sensitivity(scores, truth),
    }


def ece(probabilities: torch.Tensor, truth: torch.Tensor) -> float:
    """Expected calibration error of one finding's probabilities (umcl/calibration.py)."""
    labels = truth[:, None].float()
    return expected_calibration_error(probabilities[:, None], labels, [FINDING])["macro"]


# -- UMCL -------------------------------------------------------------------------------------


def score_umcl(model_dir: Path, files: list[str], truth: torch.Tensor, seed: int) -> dict:
    """UMCL as a user runs it: `classify` on the test files (decoded as a user's files are),
    with its own calibrated probabilities and decisions; the raw zero-shot probabilities
    (calibration off) for the ECE before calibration and the hand-crafted prompts' AUROC."""
    predictor = umcl.load(model_dir)
    results = [r[FINDING] for r in predictor.classify(files, findings=[FINDING])]
    calibrated = torch.tensor([r["probability"] for r in results])
    positive = torch.tensor([r["positive"] for r in results])
    embeddings = torch.from_numpy(predictor.embed_images(files))
    column = predictor.labels.index(FINDING)
    raw = zero_shot(predictor.model, embeddings, handcrafted=False)[:, column]
    handcrafted = zero_shot(predictor.model, embeddings, handcrafted=True)[:, column]
    calibration = predictor.model.calibration
    entry = calibration.findings.get(FINDING) if calibration else None
    return {
        **metrics_on_test(calibrated, positive, truth, seed),
        "threshold": entry.threshold if entry else None,
        "calibrated": all(r["calibrated"] for r in results),
        "ece_before": ece(raw, truth),
        "ece_after": ece(calibrated, truth),
        "handcrafted_prompts_auroc": float(binary_auroc(handcrafted, truth)),
    }


def keep_model(model_dir: Path, out: Path) -> None:
    """Copy the trained model directory to `out`, replacing what is there."""
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(model_dir, out)


# -- the supervised ceiling -------------------------------------------------------------------


class TowerClassifier(nn.Module):
    """UMCL's image tower (same settings, fresh weights) + a linear head: one logit per image."""

    def __init__(self, settings: Settings):
        super().__init__()
        image = settings.model.image
        self.tower = ImageTower(
            build_backbone(image), image.pooling, settings.model.embed_dim, image.mean, image.std
        )
        self.head = nn.Linear(settings.model.embed_dim, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.tower(images) * 10).squeeze(1)  # unit vectors → a usable logit range


def train_supervised(
    settings: Settings, train_set: TripletDataset, train_y: torch.Tensor
) -> TowerClassifier:
    """BCE with UMCL's optimiser rule (umcl/model/umcl.py: decay_groups), schedule, steps,
    batching and augmentation (`train_set` must carry `train.augment`)."""
    config = settings.train
    torch.manual_seed(settings.seed)
    classifier = TowerClassifier(settings).train()
    optimizer = torch.optim.AdamW(decay_groups(classifier, config.weight_decay), lr=config.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(config.warmup_steps, config.steps)
    )
    runtime = start_runtime("cpu")
    step, epoch = 0, 0
    while step < config.steps:
        view = train_set.for_epoch(epoch)
        for batch in epoch_batches(
            len(train_set), config.batch_size, settings.seed, epoch, runtime
        ):
            images = torch.stack([view[i]["image"] for i in batch])
            loss = nn.functional.binary_cross_entropy_with_logits(
                classifier(images), train_y[batch].float()
            )
            loss.backward()
            torch.nn.utils.clip_grad_norm_(classifier.parameters(), config.grad_clip)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            step += 1
            if step == config.steps:
                break
        epoch += 1
    return classifier.eval()


@torch.no_grad()
def supervised_probabilities(classifier: TowerClassifier, dataset: TripletDataset) -> torch.Tensor:
    """Sigmoid outputs on the dataset's cached (unaugmented) images."""
    out = [torch.zeros(0)]
    for start in range(0, len(dataset), SCORE_BATCH):
        rows = range(start, min(start + SCORE_BATCH, len(dataset)))
        out.append(classifier(torch.stack([dataset[i]["image"] for i in rows])).sigmoid())
    return torch.cat(out)


def score_supervised(
    settings: Settings,
    classifier: TowerClassifier,
    sets: dict[str, TripletDataset],
    truth: dict[str, torch.Tensor],
) -> dict:
    """Test metrics at the threshold the preset's operating point picks on the validation split,
    as UMCL's calibration picks its own."""
    val = supervised_probabilities(classifier, sets["val"])
    threshold = choose_threshold(
        val, truth["val"], operating_point_json(settings.evaluate.operating_point)
    )
    test = supervised_probabilities(classifier, sets["test"])
    return {
        **metrics_on_test(test, test >= threshold, truth["test"], settings.seed),
        "threshold": threshold,
    }


# -- report -----------------------------------------------------------------------------------


def table_row(name: str, metrics: dict) -> str:
    low, high = metrics["auroc_ci95"]
    return (
        f"| {name} | {metrics['auroc']:.3f} [{low:.3f}, {high:.3f}] | "
        f"{metrics['sensitivity']:.3f} | {metrics['specificity']:.3f} | "
        f"{metrics[SPEC_AT_SENS]:.3f} |"
    )


def print_report(result: dict) -> None:
    umcl_metrics, supervised = result["umcl"], result["supervised"]
    print(
        f"## Real data: {result['train_images']} Kermany training images + "
        f"{result['train_reports']} IU reports, {result['steps']} steps "
        f"(UMCL exported step {result['exported_step']}), {result['image_size']} px; "
        f"val {result['val_images']} images, test {result['test_images']} images "
        f"({result['test_pneumonia']} pneumonia); operating point {result['operating_point']} "
        "chosen on val\n"
    )
    print(
        "| model | AUROC [95 % CI] | sensitivity (val-chosen threshold) | "
        "specificity (val-chosen threshold) | "
        f"specificity at sensitivity ≥ {TARGET_SENSITIVITY:.2f} (test ROC) |"
    )
    print("|---|---:|---:|---:|---:|")
    print(table_row("UMCL zero-shot, learned prompts", umcl_metrics))
    print(
        f"| UMCL zero-shot, hand-crafted prompts | {umcl_metrics['handcrafted_prompts_auroc']:.3f} "
        "| | | |"
    )
    print(table_row("supervised, same image tower + same augmentation (ceiling)", supervised))
    seconds = result["seconds"]
    print(
        f"\nUMCL ECE before → after calibration: {umcl_metrics['ece_before']:.3f} → "
        f"{umcl_metrics['ece_after']:.3f}. Time ({result['threads']} threads): data "
        f"{seconds['data']:.0f} s, UMCL training {seconds['umcl_train']:.0f} s, supervised "
        f"training {seconds['supervised_train']:.0f} s, scoring {seconds['scoring']:.0f} s."
    )
    print(
        "Test images are held-out patients of the same collection (which flatters every model), "
        "not images from another collection period."
    )


# -- the run ----------------------------------------------------------------------------------


def image_splits(triplets: Path) -> dict[str, pl.DataFrame]:
    """The image–label rows of each split."""
    images = pl.read_parquet(triplets).filter(pl.col("kind") == "image_label")
    return {s: images.filter(pl.col("split") == s) for s in ("train", "val", "test")}


def data_counts(triplets: Path, validation: dict, splits: dict[str, pl.DataFrame]) -> dict:
    """Rows per source, images per split, test positives and training reports."""
    reports = pl.read_parquet(triplets).filter(
        (pl.col("kind") == "text_label") & (pl.col("split") == "train")
    )
    kept = ("rows_in", "rows_valid", "rows_quarantined")
    return {
        "sources": {name: {k: r[k] for k in kept} for name, r in validation.items()},
        **{f"{s}_images": len(rows) for s, rows in splits.items()},
        "test_pneumonia": int(pneumonia_truth(splits["test"]).sum()),
        "train_reports": reports.height,
    }


def run(settings: Settings, work: Path, out: Path | None) -> dict:
    """Prepare, train both models and score them in `work`; the result without the preset."""
    seconds: dict[str, float] = {}
    triplets, cache = work / "unified/triplets.parquet", work / "cache"
    size = settings.preprocess.image_size
    with timed(seconds, "data"):
        validation = prepare_data(settings, work)
    with timed(seconds, "umcl_train"):
        summary = train(settings, triplets, cache, work / "model", work / "checkpoints")
    names = json.loads((work / "unified/labels.json").read_text())["names"]
    splits = image_splits(triplets)
    truth = {s: pneumonia_truth(rows) for s, rows in splits.items()}
    with timed(seconds, "supervised_train"):
        train_set = TripletDataset(
            splits["train"], cache, names,
            augment=settings.train.augment, seed=settings.seed, image_size=size,
        )  # fmt: skip
        classifier = train_supervised(settings, train_set, truth["train"])
    with timed(seconds, "scoring"):
        test_files = image_files(splits["test"]["image"].to_list(), work / "locator")
        umcl_metrics = score_umcl(work / "model", test_files, truth["test"], settings.seed)
        sets = {
            s: TripletDataset(splits[s], cache, names, image_size=size) for s in ("val", "test")
        }
        supervised = score_supervised(settings, classifier, sets, truth)
    if out is not None:
        keep_model(work / "model", out)
    return {
        "steps": settings.train.steps,
        "exported_step": summary["exported_step"],
        "image_size": size,
        **data_counts(triplets, validation, splits),
        "operating_point": operating_point_json(settings.evaluate.operating_point),
        "umcl": umcl_metrics,
        "supervised": supervised,
        "test_is": "held-out patients of the training collection, not another collection period",
        "seconds": seconds,
        "threads": torch.get_num_threads(),
        "train_loss": [summary["first_loss"], summary["final_loss"]],
    }


def main() -> None:
    args = parse_args()
    params, out = args.params.resolve(), args.out.resolve() if args.out else None
    os.chdir(ROOT)  # source paths in the preset are relative to the repository
    settings = with_steps(load_settings(params), args.steps)
    missing = [str(s.path) for s in settings.data.sources if not (ROOT / s.path).exists()]
    if missing:
        raise SystemExit(
            f"real data not available: {missing} (see ../shared/data/README.md); skipped"
        )
    # Real sources need a pseudonym key; nothing of this run outlives it, so a fresh one will do.
    os.environ.setdefault("UMCL_PSEUDONYM_KEY", secrets.token_urlsafe(32))
    with tempfile.TemporaryDirectory() as work:
        result = run(settings, Path(work), out)
    preset = params.relative_to(ROOT) if params.is_relative_to(ROOT) else params
    result = {"preset": str(preset), **result}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print_report(result)
    if out is not None:
        print(f"UMCL model kept at {out} (umcl.load)")


if __name__ == "__main__":
    main()
