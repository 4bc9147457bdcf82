"""UMCL on real data that plain CLIP cannot use: Kermany X-rays (labels) + IU reports (text).

    python benchmarks/real_data.py [--params configs/kermany_iu.yaml]

Runs validate → unify → preprocess → train with the preset on ../shared/data (skipped with a
message where it is absent), holding out 20 % of the Kermany patients as test. Reports the
zero-shot Pneumonia-vs-No-Finding AUROC of UMCL on the held-out images next to a supervised
classifier with the same image tower, trained on the same training images for the same steps
(the ceiling), and the wall time on this machine. Writes benchmarks/results/real_data.json.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import tempfile
import time
from pathlib import Path

import polars as pl
import torch
from torchmetrics.functional.classification import binary_auroc

from umcl.config import load_settings
from umcl.data.dataset import TripletDataset
from umcl.data.preprocess import build_cache
from umcl.data.unify import unify
from umcl.data.validate import validate_sources
from umcl.evaluate import zero_shot
from umcl.model.towers import ImageTower, build_backbone
from umcl.model.umcl import load_model
from umcl.train import epoch_batches, start_runtime, train, warmup_cosine

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks/results/real_data.json"


def pneumonia_truth(table: pl.DataFrame) -> torch.Tensor:
    """1 for PNEUMONIA images, 0 for NORMAL (No Finding) ones."""
    return torch.tensor((table["Pneumonia"] == 1).fill_null(False).to_list(), dtype=torch.long)


def supervised_ceiling(
    settings, train_set: TripletDataset, train_y: torch.Tensor, test_images: torch.Tensor
) -> torch.Tensor:
    """The same image tower + a linear head, trained with BCE on the same images and budget."""
    torch.manual_seed(settings.seed)
    tower = ImageTower(
        build_backbone(settings.model.image),
        settings.model.image.pooling,
        settings.model.embed_dim,
        settings.model.image.mean,
        settings.model.image.std,
    )
    head = torch.nn.Linear(settings.model.embed_dim, 1)
    parameters = [*tower.parameters(), *head.parameters()]
    optimizer = torch.optim.AdamW(
        parameters, lr=settings.train.lr, weight_decay=settings.train.weight_decay
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(settings.train.warmup_steps, settings.train.steps)
    )
    runtime = start_runtime("cpu")
    step, epoch = 0, 0
    while step < settings.train.steps:
        for batch in epoch_batches(
            len(train_set), settings.train.batch_size, settings.seed, epoch, runtime
        ):
            images = torch.stack([train_set[i]["image"] for i in batch])
            logits = head(tower(images) * 10).squeeze(1)  # unit vectors → a usable logit range
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                logits, train_y[batch].float()
            )
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, settings.train.grad_clip)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            step += 1
            if step == settings.train.steps:
                break
        epoch += 1
    tower.eval()
    with torch.no_grad():
        scores = head(tower(test_images) * 10).squeeze(1)
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--params", type=Path, default=ROOT / "configs/kermany_iu.yaml")
    args = parser.parse_args()
    os.chdir(ROOT)  # source paths in the preset are relative to the repository
    settings = load_settings(args.params)
    missing = [str(s.path) for s in settings.data.sources if not (ROOT / s.path).exists()]
    if missing:
        raise SystemExit(
            f"real data not available: {missing} (see ../shared/data/README.md); skipped"
        )
    # Real sources need a pseudonym key; nothing of this run outlives it, so a fresh one will do.
    os.environ.setdefault("UMCL_PSEUDONYM_KEY", secrets.token_urlsafe(32))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
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
        data_seconds = time.perf_counter() - started
        summary = train(
            settings,
            work / "unified/triplets.parquet",
            work / "cache",
            work / "model",
            work / "checkpoints",
        )
        train_seconds = time.perf_counter() - started - data_seconds
        table = pl.read_parquet(work / "unified/triplets.parquet")
        names = json.loads((work / "unified/labels.json").read_text())["names"]
        images = table.filter(pl.col("kind") == "image_label")
        test_table, train_table = (
            images.filter(pl.col("split") == "test"),
            images.filter(pl.col("split") == "train"),
        )
        test_set = TripletDataset(test_table, work / "cache", names)
        train_set = TripletDataset(train_table, work / "cache", names)

        model = load_model(work / "model")
        test_images = torch.stack([test_set[i]["image"] for i in range(len(test_set))])
        with torch.no_grad():
            embedded = model.encode_image(test_images)
        truth = pneumonia_truth(test_table)
        umcl_scores = zero_shot(model, embedded, handcrafted=False)[:, names.index("Pneumonia")]
        umcl_auroc = float(binary_auroc(umcl_scores, truth))
        handcrafted_auroc = float(
            binary_auroc(
                zero_shot(model, embedded, handcrafted=True)[:, names.index("Pneumonia")], truth
            )
        )
        ceiling_started = time.perf_counter()
        supervised_auroc = float(
            binary_auroc(
                supervised_ceiling(settings, train_set, pneumonia_truth(train_table), test_images),
                truth,
            )
        )
        ceiling_seconds = time.perf_counter() - ceiling_started
    result = {
        "sources": {name: {k: r[k] for k in ("rows_in", "rows_valid", "rows_quarantined")} for name, r in validation.items()},
        "train_images": len(train_set), "test_images": len(test_set), "test_pneumonia": int(truth.sum()),
        "train_reports": int(table.filter((pl.col("kind") == "text_label") & (pl.col("split") == "train")).height),
        "umcl_zero_shot_auroc": umcl_auroc, "umcl_handcrafted_prompts_auroc": handcrafted_auroc,
        "supervised_auroc": supervised_auroc, "gap": supervised_auroc - umcl_auroc,
        "seconds": {"data": data_seconds, "umcl_train": train_seconds, "supervised_train": ceiling_seconds},
        "train_loss": [summary["first_loss"], summary["final_loss"]], "cores": torch.get_num_threads(),
    }  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(f"## Real data: {result['train_images']} Kermany training images + {result['train_reports']} IU reports; "
          f"test {result['test_images']} images ({result['test_pneumonia']} pneumonia)\n")  # fmt: skip
    print("| model | Pneumonia vs No Finding AUROC |\n|---|---:|")
    print(f"| UMCL zero-shot, learned prompts | {umcl_auroc:.3f} |")
    print(f"| UMCL zero-shot, hand-crafted prompts | {handcrafted_auroc:.3f} |")
    print(f"| supervised, same image tower (ceiling) | {supervised_auroc:.3f} |")
    print(
        f"\ngap to the ceiling: {result['gap']:.3f}; time: data {data_seconds:.0f} s, UMCL training {train_seconds:.0f} s, supervised {ceiling_seconds:.0f} s"
    )


if __name__ == "__main__":
    main()
