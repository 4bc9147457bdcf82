"""Torch Dataset over the image cache and the triplet table, and a collate for mixed kinds.

A batch mixes image–report pairs, image–label and report–label samples; modality masks say
what each sample has, so the loss can skip rows and columns that are absent.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypedDict

import numpy as np
import polars as pl
import torch
from torch.utils.data import Dataset

from umcl.config import UncertaintyPolicy
from umcl.data.preprocess import open_cache
from umcl.labels import apply_uncertainty


class Sample(TypedDict):
    sample_id: str
    image: torch.Tensor | None  # (1, S, S) float in [0, 1]
    text: str | None
    labels: torch.Tensor  # (K,) float: 1 / 0, NaN = not known (after the uncertainty policy)


class Batch(TypedDict):
    sample_ids: list[str]
    images: torch.Tensor  # (B, 1, S, S); zeros where a sample has no image
    has_image: torch.Tensor  # (B,) bool
    texts: list[str]  # "" where a sample has no text
    has_text: torch.Tensor  # (B,) bool
    labels: torch.Tensor  # (B, K) float; 0 where not known
    label_known: torch.Tensor  # (B, K) bool
    has_labels: torch.Tensor  # (B,) bool: at least one label known


class TripletDataset(Dataset[Sample]):
    def __init__(
        self,
        triplets: pl.DataFrame | Path,
        cache_dir: Path,
        label_names: list[str],
        split: str | None = None,
        uncertainty: UncertaintyPolicy = "zeros",
    ):
        table = pl.read_parquet(triplets) if isinstance(triplets, Path) else triplets
        if split is not None:
            table = table.filter(pl.col("split") == split)
        self.images, index = open_cache(cache_dir)
        self.sample_ids: list[str] = table["sample_id"].to_list()
        self.texts: list[str | None] = table["text"].to_list()
        self.rows = [index.get(s) if image is not None else None for s, image in zip(self.sample_ids, table["image"], strict=True)]
        missing = [s for s, r, image in zip(self.sample_ids, self.rows, table["image"], strict=True) if image is not None and r is None]
        if missing:
            raise KeyError(f"{len(missing)} images are not in the cache (e.g. {missing[0]}); rerun preprocess")
        raw = table.select(label_names).to_numpy().astype(np.float32)  # nulls become NaN
        self.labels = torch.from_numpy(apply_uncertainty(raw, uncertainty))

    def __len__(self) -> int:
        return len(self.sample_ids)

    def __getitem__(self, i: int) -> Sample:
        row = self.rows[i]
        image = None if row is None else torch.from_numpy(np.array(self.images[row], dtype=np.float32) / 255.0)[None]
        return Sample(sample_id=self.sample_ids[i], image=image, text=self.texts[i], labels=self.labels[i])


def collate(samples: list[Sample]) -> Batch:
    shape = next((s["image"].shape for s in samples if s["image"] is not None), (1, 1, 1))
    labels = torch.stack([s["labels"] for s in samples])
    known = ~torch.isnan(labels)
    return Batch(
        sample_ids=[s["sample_id"] for s in samples],
        images=torch.stack([s["image"] if s["image"] is not None else torch.zeros(shape) for s in samples]),
        has_image=torch.tensor([s["image"] is not None for s in samples]),
        texts=[s["text"] or "" for s in samples],
        has_text=torch.tensor([s["text"] is not None for s in samples]),
        labels=torch.nan_to_num(labels, nan=0.0),
        label_known=known,
        has_labels=known.any(dim=1),
    )
