"""Where a training process runs: its device, its rank in a torchrun world, its precision."""

from __future__ import annotations

import os
import warnings
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

# ConvNeXt's depthwise-conv gradients arrive in another memory layout than DDP's buckets; DDP
# copies them (correct, slightly slower) and would warn on every step.
warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")


@dataclass(frozen=True)
class Runtime:
    """This process's device, rank and world, and the precision it computes in."""

    device: torch.device
    rank: int = 0
    world: int = 1
    precision: str = "fp32"

    @property
    def main(self) -> bool:
        return self.rank == 0

    def autocast(self) -> AbstractContextManager:
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def start_runtime(preference: str, precision: str = "auto") -> Runtime:
    """Join the torchrun process group when launched by torchrun; else train alone."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if preference == "auto":
        preference = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(
        f"cuda:{local_rank}" if preference == "cuda" and world > 1 else preference
    )
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    return Runtime(device, dist.get_rank() if world > 1 else 0, world, precision)


def distribute(model: nn.Module, runtime: Runtime) -> nn.Module:
    """The module the training step calls: DDP over `model` in a world of several processes."""
    if runtime.world == 1:
        return model
    return DistributedDataParallel(model, find_unused_parameters=True)


def stop_runtime(runtime: Runtime, trained: nn.Module) -> None:
    """Leave the process group once every rank is done. All gloo/NCCL work must be finished and
    DDP's reducer freed first: tearing the group down under a live reducer deadlocked gloo's
    worker thread on the GIL (seen here)."""
    if runtime.world == 1:
        return
    dist.barrier()
    del trained
    dist.destroy_process_group()
