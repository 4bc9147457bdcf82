"""Two gloo processes on halves of a batch compute the single-process loss and gradients."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from tests.tiny import cpu_step_loss, tiny_batch, tiny_model

N = 12  # global batch; 6 per rank


def step(model, batch: dict, target: str) -> tuple[float, dict[str, torch.Tensor]]:
    loss, _ = cpu_step_loss(model, batch, target)
    loss.backward()
    core = model.module if isinstance(model, DistributedDataParallel) else model
    return loss.item(), {
        n: p.grad.clone() for n, p in core.named_parameters() if p.grad is not None
    }


def _rank(rank: int, init_file: str, out: str, target: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE="2")
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    model = DistributedDataParallel(tiny_model(), find_unused_parameters=True)
    loss, grads = step(model, tiny_batch(N, rows=slice(rank * N // 2, (rank + 1) * N // 2)), target)
    if rank == 0:
        torch.save({"loss": loss, "grads": grads}, out)
    # Finish every queued gloo work item and free DDP's reducer before the group goes: tearing
    # the group down while gloo's worker still releases work deadlocked on the GIL here.
    dist.barrier()
    del model
    dist.destroy_process_group()


def test_two_process_gloo_matches_one_process(tmp_path: Path) -> None:
    for target in ("soft", "identity"):
        out = tmp_path / f"{target}.pt"
        mp.spawn(
            _rank, args=(str(tmp_path / f"init-{target}"), str(out), target), nprocs=2, join=True
        )
        distributed = torch.load(out, weights_only=True)
        loss, grads = step(tiny_model(), tiny_batch(N), target)
        assert abs(distributed["loss"] - loss) < 1e-5
        assert distributed["grads"].keys() == grads.keys()
        for name, grad in grads.items():
            assert torch.allclose(distributed["grads"][name], grad, atol=1e-5, rtol=1e-5), name
