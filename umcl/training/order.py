"""The order samples train in: seeded per epoch and rank, so a resumed run sees the same
micro-batches as an uninterrupted one, and augmentation runs in the loader's workers."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler

from umcl.data.dataset import Batch, Collate, TripletDataset
from umcl.errors import InputError
from umcl.training.runtime import Runtime


def epoch_batches(
    dataset_size: int, batch_size: int, seed: int, epoch: int, runtime: Runtime
) -> list[list[int]]:
    """This rank's batches of one epoch: a seeded shuffle split across ranks, full batches only
    (every rank must contribute the same number of rows to the gathered loss)."""
    sampler = DistributedSampler(
        range(dataset_size),
        num_replicas=runtime.world,
        rank=runtime.rank,
        shuffle=True,
        seed=seed,
        drop_last=True,
    )
    sampler.set_epoch(epoch)
    order = list(sampler)
    return [order[i : i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)]


def loader_generator(seed: int, epoch: int, rank: int) -> torch.Generator:
    """Where a loader draws its workers' base seed: one generator per epoch and rank. Drawn from
    the global generator instead, it moved the dropout RNG of a run resumed mid-epoch (that run
    makes its loader at the resume step, an uninterrupted one at the epoch's start)."""
    return torch.Generator().manual_seed(
        int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])
    )


def micro_batches(
    dataset: TripletDataset,
    collate: Collate,
    batch_size: int,
    workers: int,
    seed: int,
    runtime: Runtime,
    start: int,
) -> Iterator[Batch]:
    """Endless micro-batches from micro-batch number `start` on (the resume position). Each
    epoch's view augments its samples from (seed, epoch, sample) in the loader's workers."""
    per_epoch = len(epoch_batches(len(dataset), batch_size, seed, 0, runtime))
    if per_epoch == 0:
        raise InputError(
            f"train split has {len(dataset)} samples: too few for {runtime.world} × batch_size {batch_size}"
        )
    if workers:
        # The workers tokenise (umcl/data/dataset.py: Collate); a fast tokenizer used before the
        # fork would otherwise disable its threads with a warning in every worker.
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    epoch, offset = divmod(start, per_epoch)
    while True:
        batches = epoch_batches(len(dataset), batch_size, seed, epoch, runtime)[offset:]
        loader = DataLoader(
            dataset.for_epoch(epoch),
            batch_sampler=batches,
            collate_fn=collate,
            num_workers=workers,
            # On a GPU: page-locked batches copy while the device computes, and each worker
            # keeps a few batches ready so that a slow augmentation does not idle it.
            pin_memory=runtime.device.type == "cuda",
            prefetch_factor=4 if workers and runtime.device.type == "cuda" else None,
            generator=loader_generator(seed, epoch, runtime.rank),
        )
        yield from loader
        epoch, offset = epoch + 1, 0
