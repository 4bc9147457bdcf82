"""Preprocessing throughput (DICOM → cache) and what the cache buys training, side by side.

    python benchmarks/preprocess_throughput.py [--studies 600]

1. `build_cache` on the same demo DICOMs with 1 worker and with every core: studies/s.
2. Batches/s of 64 training samples with their images read from the memory-mapped cache
   (TripletDataset) against the same batches with each image decoded from DICOM at every access
   (what training without the cache would do). Both go through the training `Collate`.
Ratios matter here, not absolute times: the machines are shared.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from umcl.config import DemoSettings, SourceSettings, SplitSettings, load_settings
from umcl.data.dataset import Collate, Sample, TripletDataset
from umcl.data.preprocess import build_cache, decode_to_square
from umcl.demo.generator import generate_demo
from umcl.ingest.locator import image_files, write_locator
from umcl.ingest.pseudonyms import DEMO_KEY, Pseudonymizer
from umcl.ingest.sources import PRIVATE_COLUMNS, read_source
from umcl.ingest.unify import build_triplets
from umcl.labels import CHEXPERT_LABELS, LabelSpace
from umcl.model.tokenizer import train_wordpiece

ROOT = Path(__file__).resolve().parents[1]
SIZE, BATCH = 64, 64


class DecodeEveryAccess(Dataset[Sample]):
    """The samples of a TripletDataset, but each image decoded from its DICOM on access."""

    def __init__(self, dataset: TripletDataset, paths: list[str]):
        self.dataset, self.paths = dataset, paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> Sample:
        # Text and labels from the dataset's columns: indexing it would read the cache too.
        image = torch.from_numpy(decode_to_square(self.paths[i], SIZE)).float()[None] / 255.0
        return Sample(
            sample_id=self.dataset.sample_ids[i],
            image=image,
            text=self.dataset.texts[i],
            labels=self.dataset.labels[i],
        )


def batches_per_second(loader: DataLoader, max_batches: int) -> float:
    started, n = time.perf_counter(), 0
    for _ in loader:
        n += 1
        if n == max_batches:
            break
    return n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--studies", type=int, default=600)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate_demo(
            DemoSettings(
                image_text_studies=args.studies,
                image_label_studies=10,
                text_label_studies=10,
                pacs_studies=0,
                fault_rate=0.0,
            ),
            root / "demo",
            seed=1,
        )
        source = SourceSettings(
            name="mimic", kind="image_text", format="mimic_cxr", path=root / "demo/mimic"
        )
        rows = read_source(source, LabelSpace(), Pseudonymizer(DEMO_KEY)).rows
        triplets = build_triplets([rows.drop(PRIVATE_COLUMNS)], LabelSpace(), 0, SplitSettings())
        triplets.write_parquet(root / "t.parquet")
        write_locator(
            root / "locator", "mimic", rows["image"].to_list(), rows["image_path"].to_list()
        )
        cores = os.cpu_count() or 1

        timings = {}
        for workers in (1, cores):
            started = time.perf_counter()
            build_cache(
                root / "t.parquet", root / f"cache{workers}", SIZE, root / "locator", workers
            )
            timings[workers] = triplets.height / (time.perf_counter() - started)

        # Training batches are tokenised in the collate: both loaders pay that alike.
        text = load_settings(ROOT / "params.yaml").model.text
        reports = [t for t in triplets["text"].to_list() if t is not None]
        collate = Collate(train_wordpiece(reports, text.vocab_size), text.max_length, SIZE)
        dataset = TripletDataset(triplets, root / f"cache{cores}", list(CHEXPERT_LABELS))
        cached = DataLoader(
            dataset,
            batch_size=BATCH,
            shuffle=True,
            collate_fn=collate,
            generator=torch.Generator().manual_seed(0),
        )
        decoding = DataLoader(
            DecodeEveryAccess(dataset, image_files(triplets["image"].to_list(), root / "locator")),
            batch_size=BATCH,
            shuffle=True,
            collate_fn=collate,
            generator=torch.Generator().manual_seed(0),
        )
        n = triplets.height // BATCH
        cache_rate, decode_rate = batches_per_second(cached, n), batches_per_second(decoding, n)

    print(
        f"{triplets.height} demo DICOMs (128 px wide, 12/16-bit, some MONOCHROME1) → {SIZE}×{SIZE} cache, {cores} cores\n"
    )
    print("| measure | value |\n|---|---:|")
    print(f"| preprocess, 1 worker | {timings[1]:.0f} studies/s |")
    print(
        f"| preprocess, {cores} workers | {timings[cores]:.0f} studies/s ({timings[cores] / timings[1]:.2f}×) |"
    )
    print(f"| training batches ({BATCH}) from the cache | {cache_rate:.1f} batches/s |")
    print(
        f"| training batches ({BATCH}) decoding DICOM at every access | {decode_rate:.1f} batches/s |"
    )
    print(f"| **cache speed-up for training** | **{cache_rate / decode_rate:.1f}×** |")


if __name__ == "__main__":
    main()
