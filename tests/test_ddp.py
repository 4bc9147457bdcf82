"""Two gloo processes on halves of a batch compute the single-process loss and gradients, also
when one rank's half has no image, without DDP searching for unused parameters."""

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


def _rank(rank: int, init_file: str, out: str, target: str, imageless: range) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE="2")
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    model = DistributedDataParallel(tiny_model(), find_unused_parameters=False)
    half = slice(rank * N // 2, (rank + 1) * N // 2)
    loss, grads = step(model, tiny_batch(N, rows=half, imageless=imageless), target)
    if rank == 0:
        torch.save({"loss": loss, "grads": grads}, out)
    # Finish every queued gloo work item and free DDP's reducer before the group goes: tearing
    # the group down while gloo's worker still releases work deadlocked on the GIL here.
    dist.barrier()
    del model
    dist.destroy_process_group()


def test_two_process_gloo_matches_one_process(tmp_path: Path) -> None:
    cases = [("soft", range(0)), ("identity", range(0)), ("soft", range(N // 2, N))]
    for i, (target, imageless) in enumerate(cases):
        out = tmp_path / f"{i}.pt"
        mp.spawn(
            _rank,
            args=(str(tmp_path / f"init-{i}"), str(out), target, imageless),
            nprocs=2,
            join=True,
        )
        distributed = torch.load(out, weights_only=True)
        loss, grads = step(tiny_model(), tiny_batch(N, imageless=imageless), target)
        assert abs(distributed["loss"] - loss) < 1e-5
        assert distributed["grads"].keys() == grads.keys()
        for name, grad in grads.items():
            # fp32 rounding of sums taken in another order: relative to the tensor's largest
            # entry (gradients here reach ~80).
            atol = 1e-5 * max(1.0, grad.abs().max().item())
            assert torch.allclose(distributed["grads"][name], grad, atol=atol, rtol=1e-5), name
