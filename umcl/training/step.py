"""One optimiser step: forward and loss of each micro-batch, backward, clip, update, schedule."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from umcl.config import TrainSettings
from umcl.data.dataset import MODEL_INPUTS, Batch, to_device
from umcl.model.loss import UMCLLoss
from umcl.model.umcl import LOGIT_SCALE_MAX, UMCLModel
from umcl.training.runtime import Runtime


def warmup_cosine(warmup: int, total: int) -> Callable[[int], float]:
    """Linear warm-up to the base rate, then cosine decay to zero at `total`."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def optimiser_for(
    model: UMCLModel, config: TrainSettings, device: torch.device
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over the model's own parameter groups, and its warm-up + cosine schedule."""
    optimiser = torch.optim.AdamW(
        model.parameter_groups(config.weight_decay, config.lr),
        lr=config.lr,
        fused=device.type == "cuda",
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, warmup_cosine(config.warmup_steps, config.steps)
    )
    return optimiser, schedule


def contrastive_step(
    model: UMCLModel | DistributedDataParallel,
    loss_fn: UMCLLoss,
    batch: Batch,
    runtime: Runtime,
    local: bool = False,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Forward and loss of one (micro-)batch; the caller back-propagates. `local`: the loss of
    this process's batch alone (validation), not gathered across ranks."""
    batch = to_device(batch, runtime.device)
    with runtime.autocast():
        embeddings = model(
            **{name: batch[name] for name in MODEL_INPUTS},
            findings=loss_fn.weights.label_prompts > 0,
        )
    return loss_fn(embeddings, batch["present"], batch["labels"], local=local)


def unreached_parameters(
    model: UMCLModel, loss_fn: UMCLLoss, batch: Batch, runtime: Runtime
) -> list[str]:
    """Trainable parameters that one forward and backward of `batch` leaves without a gradient.
    The model ties every tower to each step (`umcl/model/umcl.py: _tie`) and the loss has no
    data-dependent branch, so what one batch leaves unused every batch does: it is the
    configuration's doing (e.g. a loss weight of 0). The probe leaves no trace: RNG states,
    buffers and gradients are restored."""
    if not all(batch["present"][m].any() for m in ("image", "text")):
        # Ties reach a lacking modality's whole tower, heads its pooling skips included:
        # this batch cannot tell what a full one leaves unused.
        return ["(the probe batch lacks a modality: assumed)"]
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    devices = [runtime.device] if runtime.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        loss, _ = contrastive_step(model, loss_fn, batch, runtime, local=True)
        loss.backward()
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    model.zero_grad(set_to_none=True)
    with torch.no_grad():
        for name, b in model.named_buffers():
            b.copy_(buffers[name])
    return unused


@dataclass
class StepResult:
    """One optimiser step's numbers, still on the device: reading one (`float()`) waits for
    the device to finish, so the loop reads them on its log steps only."""

    loss: torch.Tensor
    parts: dict[str, torch.Tensor]
    grad_norm: torch.Tensor
    samples: int

    def read(self) -> tuple[float, dict[str, float], float]:
        """(loss, parts, gradient norm) as numbers: one transfer from the device."""
        names = list(self.parts)
        values = torch.stack([self.loss, self.grad_norm, *(self.parts[n] for n in names)])
        loss, grad_norm, *parts = values.float().tolist()
        return loss, dict(zip(names, parts, strict=True)), grad_norm


def optimiser_step(
    trained: nn.Module,
    model: UMCLModel,
    loss_fn: UMCLLoss,
    batches: Iterator[Batch],
    optimiser: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LambdaLR,
    config: TrainSettings,
    runtime: Runtime,
) -> StepResult:
    """`config.accumulate` micro-batches, then one clipped update. Gradients are synchronised
    across ranks on the last micro-batch only. Nothing is read back from the device."""
    parts_sum: dict[str, torch.Tensor] = {}
    loss_sum, samples = torch.zeros((), device=runtime.device), 0
    for micro in range(config.accumulate):
        batch = next(batches)
        last = micro == config.accumulate - 1
        sync = nullcontext() if last or runtime.world == 1 else trained.no_sync()
        with sync:
            loss, parts = contrastive_step(trained, loss_fn, batch, runtime)
            (loss / config.accumulate).backward()
        loss_sum += loss.detach() / config.accumulate
        for name, value in parts.items():
            parts_sum[name] = parts_sum.get(name, 0.0) + value / config.accumulate
        samples += len(batch["sample_ids"]) * runtime.world
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    optimiser.step()
    schedule.step()
    optimiser.zero_grad(set_to_none=True)
    with torch.no_grad():
        model.logit_scale.clamp_(0, LOGIT_SCALE_MAX)
    return StepResult(loss_sum, parts_sum, grad_norm.detach(), samples)
