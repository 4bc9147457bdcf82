"""Torch Dataset over the image cache and the triplet table, and a collate for mixed kinds.

A batch mixes image–report pairs, image–label and report–label samples. `Collate` turns the
samples into exactly what `UMCLModel.forward` (umcl/model/umcl.py) and `UMCLLoss`
(umcl/model/loss.py) take: each modality holds only the samples that have it, in batch order,
and `present` says which samples those are. Reports are tokenised there, in the DataLoader
workers, not in the training step.

`dataset[i]` is never augmented (evaluation reads it); `dataset.for_epoch(e)` is the training
view whose samples go through `umcl/data/augment.py`, seeded by (seed, epoch, index).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import polars as pl
import torch
from torch.utils.data import Dataset
from transformers import PreTrainedTokenizerBase

from umcl.config import AugmentSettings, UncertaintyPolicy
from umcl.data.augment import augment_image, augment_report, sample_generator
from umcl.data.preprocess import cache_image_size, check_cache_size, open_cache
from umcl.errors import MissingInputError
from umcl.labels import apply_uncertainty
from umcl.model.tokenizer import tokenize

# The keys of a Batch that are `UMCLModel.forward`'s arguments, by name.
MODEL_INPUTS = ("images", "input_ids", "attention_mask", "label_sets")


class Sample(TypedDict):
    sample_id: str
    image: torch.Tensor | None  # (1, S, S) float in [0, 1]
    text: str | None
    labels: torch.Tensor  # (K,) float: 1 / 0, NaN = not known (after the uncertainty policy)


class Batch(TypedDict):
    sample_ids: list[str]
    images: torch.Tensor  # (n_images, 1, S, S): only the samples with an image, in batch order
    input_ids: torch.Tensor  # (n_texts, L) long: only the samples with a text
    attention_mask: torch.Tensor  # (n_texts, L)
    label_sets: torch.Tensor  # (n_labelled, K) 1/0/NaN: samples with at least one known label
    labels: torch.Tensor  # (B, K) 1/0/NaN for every sample
    present: dict[str, torch.Tensor]  # "image", "text", "label": (B,) bool


class TripletDataset(Dataset[Sample]):
    def __init__(
        self,
        triplets: pl.DataFrame | Path,
        cache_dir: Path,
        label_names: list[str],
        split: str | None = None,
        uncertainty: UncertaintyPolicy = "zeros",
        augment: AugmentSettings | None = None,
        seed: int = 0,
        image_size: int | None = None,
        image_size_from: str = "params preprocess.image_size",
    ):
        """`image_size`, when given, is the size the caller needs; a cache of another size is
        refused (`CacheSizeError`) naming `image_size_from` as where that need comes from."""
        if image_size is not None:
            check_cache_size(cache_dir, image_size, image_size_from)
        table = pl.read_parquet(triplets) if isinstance(triplets, Path) else triplets
        if split is not None:
            table = table.filter(pl.col("split") == split)
        self.cache_dir, self.augment, self.seed = Path(cache_dir), augment, seed
        self.image_size = cache_image_size(cache_dir)
        self.images, index = open_cache(cache_dir)
        self.sample_ids: list[str] = table["sample_id"].to_list()
        self.texts: list[str | None] = table["text"].to_list()
        has_image = [image is not None for image in table["image"]]
        self.rows = [
            index.get(s) if has else None for s, has in zip(self.sample_ids, has_image, strict=True)
        ]
        missing = [
            s
            for s, r, has in zip(self.sample_ids, self.rows, has_image, strict=True)
            if has and r is None
        ]
        if missing:
            raise MissingInputError(
                f"{len(missing)} images are not in the cache (e.g. {missing[0]}); rerun preprocess"
            )
        # 1 / 0 / -1 / NaN (nulls); `labels` reads the uncertain ones per `uncertainty`.
        self.raw_labels = table.select(label_names).to_numpy().astype(np.float32)
        self.labels = self.labels_read_as(uncertainty)

    def labels_read_as(self, uncertainty: UncertaintyPolicy) -> torch.Tensor:
        """(n, K) labels with the uncertain ones read per `uncertainty`."""
        return torch.from_numpy(apply_uncertainty(self.raw_labels, uncertainty))

    def __len__(self) -> int:
        return len(self.sample_ids)

    def has_image(self) -> torch.Tensor:
        """(n,) bool: which samples have an image."""
        return torch.tensor([row is not None for row in self.rows], dtype=torch.bool)

    def __getitem__(self, i: int) -> Sample:
        row = self.rows[i]
        image = (
            None
            if row is None
            else torch.from_numpy(np.array(self.images[row], dtype=np.float32) / 255.0)[None]
        )
        return Sample(
            sample_id=self.sample_ids[i], image=image, text=self.texts[i], labels=self.labels[i]
        )

    def for_epoch(self, epoch: int) -> Dataset[Sample]:
        """The training view of epoch `epoch`: augmented samples (plain ones when augmentation
        is off)."""
        return EpochView(self, epoch)

    def __getstate__(self) -> dict[str, Any]:
        # A pickled memmap is a full in-memory copy of the cache; a spawned DataLoader worker
        # maps the file again instead.
        state = self.__dict__.copy()
        del state["images"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.images = open_cache(self.cache_dir)[0]


class EpochView(Dataset[Sample]):
    """One epoch of a TripletDataset with augmentation; small and picklable, so the
    augmentation runs in the DataLoader worker processes."""

    def __init__(self, dataset: TripletDataset, epoch: int):
        self.dataset, self.epoch = dataset, epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> Sample:
        sample = self.dataset[i]
        settings = self.dataset.augment
        if settings is None or not settings.enabled:
            return sample
        generator = sample_generator(self.dataset.seed, self.epoch, i)
        image, text = sample["image"], sample["text"]
        return Sample(
            sample_id=sample["sample_id"],
            image=None if image is None else augment_image(image, settings.image, generator),
            text=None if text is None else augment_report(text, settings.text, generator),
            labels=sample["labels"],
        )


class Collate:
    """Samples → Batch; give it to the DataLoader as `collate_fn`.

    `image_size` sets the shape of `images` when no sample of the batch has one (a DDP rank
    still needs a (0, 1, S, S) tensor); without it the shape comes from any present image."""

    def __init__(
        self, tokenizer: PreTrainedTokenizerBase, max_length: int, image_size: int | None = None
    ):
        self.tokenizer, self.max_length, self.image_size = tokenizer, max_length, image_size

    def __call__(self, samples: list[Sample]) -> Batch:
        labels = torch.stack([s["labels"] for s in samples])
        present = {
            "image": torch.tensor([s["image"] is not None for s in samples], dtype=torch.bool),
            "text": torch.tensor([s["text"] is not None for s in samples], dtype=torch.bool),
            "label": ~labels.isnan().all(dim=1),
        }
        images = [s["image"] for s in samples if s["image"] is not None]
        texts = [s["text"] for s in samples if s["text"] is not None]
        tokens = tokenize(self.tokenizer, texts, self.max_length)
        return Batch(
            sample_ids=[s["sample_id"] for s in samples],
            images=torch.stack(images) if images else self._no_images(),
            input_ids=tokens["input_ids"],
            attention_mask=tokens["attention_mask"],
            label_sets=labels[present["label"]],
            labels=labels,
            present=present,
        )

    def _no_images(self) -> torch.Tensor:
        size = self.image_size or 1
        return torch.zeros(0, 1, size, size)


# Stays on the host: the label-set prompts are assembled from its distinct rows, read as Python
# values (umcl/model/prompts.py: label_set_prompts); on the device that read would wait for it.
_HOST = frozenset({"label_sets"})


def to_device(batch: Batch, device: torch.device | str) -> Batch:
    """The batch with every tensor (those in `present` too) on `device`; copies from pinned
    memory overlap with compute."""
    moved: dict[str, Any] = {
        k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) and k not in _HOST else v
        for k, v in batch.items()
    }
    moved["present"] = {m: p.to(device, non_blocking=True) for m, p in batch["present"].items()}
    return Batch(**moved)
