"""Where a training process runs: its device, its rank in a torchrun world, its precision."""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import signal
import sys
import warnings
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

# ConvNeXt's depthwise-conv gradients arrive in another memory layout than DDP's buckets; DDP
# copies them (correct, slightly slower) and would warn on every step.
warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")

log = logging.getLogger(__name__)


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


def available_cpus() -> float:
    """The CPUs this process may run on: its affinity mask, capped by a cgroup CPU quota (a
    container's `--cpus`), which `os.cpu_count()` ignores."""
    cpus = float(
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    )
    quota = _cgroup_quota()
    return min(cpus, quota) if quota else cpus


def _cgroup_quota() -> float | None:
    """CPUs granted by the cgroup (v2 `cpu.max`, else v1 `cpu.cfs_quota_us`), None if unlimited."""
    cgroup = Path("/sys/fs/cgroup")
    try:
        quota, period = (cgroup / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        try:
            quota = (cgroup / "cpu/cpu.cfs_quota_us").read_text().strip()
            period = (cgroup / "cpu/cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    if quota in ("max", "-1"):
        return None
    return max(int(quota) / int(period), 1.0)


def intra_op_threads(threads: str | int, workers: int) -> int:
    """`train.threads`: a number, or (auto) this process's share of the available CPUs less its
    loader workers. Threads beyond the free cores do not wait politely: the thread pool spins,
    and two threads beside one busy process made a step 2.7–19× slower on 2 cores, one thread
    not (benchmarks/RESULTS.md: CPU threads)."""
    if threads != "auto":
        return int(threads)
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(1, int(available_cpus() // local) - workers)


def signalled_when_parent_dies(signal_number: int) -> None:
    """Linux: the kernel sends this process `signal_number` when its parent dies (elsewhere:
    nothing). Also a `preexec_fn`, for a child."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal_number)


def die_with_launcher() -> None:
    """torchrun starts each worker in a session of its own: killing the stage's process group
    (a cancelled `dvc repro`, a SIGKILL) would leave its workers training and writing
    checkpoints. The kernel kills this worker when its launcher dies."""
    if "TORCHELASTIC_RUN_ID" not in os.environ:
        return
    launcher = os.getppid()
    signalled_when_parent_dies(signal.SIGKILL)
    if os.getppid() != launcher:  # it died before the request took effect
        os.kill(os.getpid(), signal.SIGKILL)


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def device_for(preference: str, local_rank: int) -> torch.device:
    """The device this process trains on. A bare "cuda" gets this process's index: torch's
    `cuda.set_device` refuses a device without one (found on the first real GPU run)."""
    return torch.device(f"cuda:{local_rank}" if preference == "cuda" else preference)


def start_runtime(preference: str, precision: str = "auto") -> Runtime:
    """Join the torchrun process group when launched by torchrun; else train alone."""
    die_with_launcher()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if preference == "auto":
        preference = "cuda" if torch.cuda.is_available() else "cpu"
    device = device_for(preference, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    return Runtime(device, dist.get_rank() if world > 1 else 0, world, precision)


def agreed(unused: list[str], runtime: Runtime) -> list[str]:
    """Whether DDP must search for unused parameters is one decision for every rank: any
    rank's probe finding some decides it for all (each probed a batch of its own)."""
    if runtime.world == 1:
        return unused
    flag = torch.tensor([float(bool(unused))], device=runtime.device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return unused or (["(found by another rank)"] if flag.item() else [])


def prefers_channels_last(module: nn.Module) -> bool:
    """A convolutional tower (ConvNeXt, ResNet: convolutions past the patch stem) runs faster
    on a GPU's tensor cores with NHWC weights and activations; a transformer with one patch
    convolution gains nothing."""
    return sum(isinstance(m, nn.Conv2d) for m in module.modules()) > 1


def distribute(model: nn.Module, runtime: Runtime, unused: list[str]) -> nn.Module:
    """The module the training step calls: DDP over `model` in a world of several processes.
    DDP searches each step's graph for parameters without a gradient (an extra traversal per
    step) only when the configuration leaves some unused (`unused`, found by
    `umcl/training/step.py: unreached_parameters`)."""
    if runtime.world == 1:
        return model
    if unused:
        log.info("DDP searches for unused parameters each step; unused: %s", ", ".join(unused[:5]))
    return DistributedDataParallel(model, find_unused_parameters=bool(unused))


def stop_runtime(runtime: Runtime) -> None:
    """Leave the process group once every rank is done. All gloo/NCCL work must be finished and
    every DDP reducer freed first: tearing the group down under a live reducer deadlocked gloo's
    worker thread on the GIL (seen here, and in CI while the training loop's frame still held
    its DDP module). So the caller drops its DDP module first, and one still alive is refused."""
    if runtime.world == 1:
        return
    dist.barrier()
    gc.collect()  # a module freed only by the cycle collector is gone before the check
    if any(isinstance(o, DistributedDataParallel) for o in gc.get_objects()):
        raise RuntimeError(
            "a DistributedDataParallel module is still referenced while the process group is "
            "destroyed (its reducer would deadlock the teardown): drop it before stop_runtime"
        )
    dist.destroy_process_group()
