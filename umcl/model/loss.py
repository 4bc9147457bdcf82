"""The image–text–label contrastive loss, and its CLIP special case.

Three parts, each small enough to check on its own:
- `targets`: which pairs of samples are positives (the true pair, and label-sharing samples);
- `soft_contrastive`: soft cross-entropy over a similarity matrix, in both directions;
- `gather_with_grad`: under DDP, the global batch with gradient flowing to the local shard.
`UMCLLoss` combines them over the modality pairs present in a batch.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from umcl.config import LossWeights, TargetMode

PAIRS = {
    "image_text": ("image", "text"),
    "image_label": ("image", "label"),
    "text_label": ("text", "label"),
}


def targets(
    labels_a: torch.Tensor,
    labels_b: torch.Tensor,
    mode: TargetMode,
    same: torch.Tensor | None = None,
) -> torch.Tensor:
    """T[a, b] (n_a × n_b): 1 for the true pair (`same`; the diagonal when omitted), else the
    similarity of the label vectors when both samples have labels, else 0.

    Labels are 0/1 after the uncertainty policy, NaN where not known; a row of NaN is a sample
    without labels. Unknown entries count as 0 (not mentioned) in the similarity.
    """
    if same is None:
        same = torch.eye(len(labels_a), len(labels_b), dtype=torch.bool, device=labels_a.device)
    t = torch.zeros(same.shape, dtype=labels_a.dtype, device=labels_a.device)
    if mode != "identity":
        a, b = torch.nan_to_num(labels_a), torch.nan_to_num(labels_b)
        dot, norm_a, norm_b = (
            a @ b.T,
            a.sum(1, keepdim=True),
            b.sum(1, keepdim=True).T,
        )  # 0/1 vectors
        if mode == "exact":
            sim = ((dot == norm_a) & (dot == norm_b)).to(t.dtype)
        else:  # cosine; two empty (all-negative) vectors are equal, one empty one is not similar
            sim = dot / (norm_a.sqrt() * norm_b.sqrt()).clamp(min=1e-12)
            sim = torch.where((norm_a == 0) & (norm_b == 0), 1.0, sim)
        has_a, has_b = ~labels_a.isnan().all(1), ~labels_b.isnan().all(1)
        t = sim * (has_a[:, None] & has_b[None, :])
    return torch.where(same, 1.0, t)


# Stands in for -inf where a column is not a candidate: exp() of it is exactly 0 in fp32, while
# 0 × it stays 0 (0 × -inf would be NaN) and a row with no candidate stays finite.
_NOT_A_CANDIDATE = -1e9


def _soft_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, columns: torch.Tensor
) -> torch.Tensor:
    """Mean over rows with a positive of CE(softmax over the `columns` candidates, normalised
    target row). Masks instead of indexing: no step waits for the device to count rows."""
    log_p = F.log_softmax(logits.masked_fill(~columns[None, :], _NOT_A_CANDIDATE), dim=1)
    mass = targets.sum(1)
    has = (mass > 0).to(logits.dtype)
    per_row = (targets * log_p).sum(1) / mass.clamp(min=torch.finfo(mass.dtype).tiny)
    return -(per_row * has).sum() / has.sum().clamp(min=1.0)


def soft_contrastive(
    a: torch.Tensor,
    b: torch.Tensor,
    targets: torch.Tensor,
    logit_scale: torch.Tensor,
    rows: torch.Tensor | None = None,
    columns: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean of the a→b and b→a soft cross-entropies; `logit_scale` is the multiplier (exp'd).
    `rows`/`columns` mark which rows of `a`/`b` take part (default: all); `targets` must be 0
    outside them. With identity targets this is CLIP's (CE(logits, arange) + CE(logits.T,
    arange)) / 2."""
    if rows is None:
        rows = torch.ones(len(a), dtype=torch.bool, device=a.device)
    if columns is None:
        columns = torch.ones(len(b), dtype=torch.bool, device=b.device)
    logits = logit_scale * a @ b.T
    return (
        _soft_cross_entropy(logits, targets, columns)
        + _soft_cross_entropy(logits.T, targets.T, rows)
    ) / 2


class _ScaleGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, factor: float) -> torch.Tensor:
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad * ctx.factor, None


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """All ranks' `x` concatenated in rank order; gradient flows into the local shard only.

    Every rank then computes the same global loss, but back-propagates only through its own
    samples. DDP averages gradients over ranks, so the local shard's gradient is scaled by the
    world size: the sum over ranks is then exactly the single-process gradient. Replicated
    inputs (the finding prompts, the logit scale) need no scaling: each rank already holds
    their full gradient.
    """
    if not _distributed():
        return x
    world = dist.get_world_size()
    shards = [torch.empty_like(x) for _ in range(world)]
    dist.all_gather(shards, x.detach().contiguous())
    shards[dist.get_rank()] = _ScaleGrad.apply(x, float(world))
    return torch.cat(shards)


def gather(x: torch.Tensor) -> torch.Tensor:
    """All ranks' `x` concatenated in rank order, without gradient (masks, labels)."""
    if not _distributed():
        return x
    wire = x.to(torch.uint8) if x.dtype == torch.bool else x.contiguous()
    shards = [torch.empty_like(wire) for _ in range(dist.get_world_size())]
    dist.all_gather(shards, wire)
    return torch.cat(shards).to(x.dtype)


def _local(x: torch.Tensor) -> torch.Tensor:
    return x


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _scatter(rows: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """(n_present, D) → (B, D) with zeros for absent samples, so every rank gathers B rows.
    Positions come from a running count, not `nonzero()`: nothing waits for the device."""
    if not len(rows):  # + the empty sum: the graph still reaches what `rows` is tied to
        return rows.new_zeros(len(present), rows.shape[1]) + rows.sum()
    position = (present.cumsum(0) - 1).clamp(min=0)
    return torch.where(present[:, None], rows[position], 0.0)


class UMCLLoss(nn.Module):
    """Weighted sum over modality pairs of `soft_contrastive` on the global batch, plus the
    per-finding present/absent prompt classification (`label_prompts`).

    Nothing here reads a value back from the device (no `.item()`, no boolean indexing, no
    branch on a tensor): the parts are returned as detached tensors, and the training loop
    reads them on its log steps only. A pair or part without samples contributes 0."""

    def __init__(self, target: TargetMode, weights: LossWeights):
        super().__init__()
        self.target, self.weights = target, weights

    def forward(
        self,
        embeddings: dict[str, torch.Tensor],
        present: dict[str, torch.Tensor],
        labels: torch.Tensor,
        local: bool = False,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """`embeddings[m]` holds the rows of the local samples that have modality m
        (`present[m]`, a (B,) mask); `labels` is (B, K) with NaN where unknown. `local`: this
        process's batch alone, no gathering across ranks (validation, which rank 0 runs alone)."""
        scale = embeddings["logit_scale"]
        with_grad, plain = (_local, _local) if local else (gather_with_grad, gather)
        full = {
            m: with_grad(_scatter(embeddings[m].float(), present[m]))
            for m in ("image", "text", "label")
        }
        mask = {m: plain(present[m]) for m in ("image", "text", "label")}
        labels = plain(labels)
        same = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
        total, parts = scale.new_zeros(()), {}
        for name, (m_a, m_b) in PAIRS.items():
            weight = getattr(self.weights, name)
            if weight == 0:
                continue
            rows, cols = mask[m_a], mask[m_b]
            t = targets(labels, labels, self.target, same) * (rows[:, None] & cols[None, :])
            part = soft_contrastive(full[m_a], full[m_b], t, scale, rows, cols)
            total, parts[name] = total + weight * part, part.detach()
        if self.weights.label_prompts > 0 and "present" in embeddings:
            part = self._finding_classification(full, mask, labels, embeddings, scale)
            total, parts["label_prompts"] = total + self.weights.label_prompts * part, part.detach()
        return total, parts

    def has_terms(self, present: dict[str, torch.Tensor], labels: torch.Tensor) -> bool:
        """Whether a (host-side) batch gives any part of the loss a sample: a batch without one
        has a loss of 0 that means nothing (validation leaves it out of its mean)."""
        paired = any(
            getattr(self.weights, name) > 0 and present[a].any() and present[b].any()
            for name, (a, b) in PAIRS.items()
        )
        known = ~labels.isnan()
        classified = self.weights.label_prompts > 0 and any(
            (present[m][:, None] & known).any() for m in ("image", "text")
        )
        return bool(paired or classified)

    @staticmethod
    def _finding_classification(full, mask, labels, embeddings, scale) -> torch.Tensor:
        """Binary CE of softmax(s·[x·w_present, x·w_absent]) against each known label, for
        images and texts: the zero-shot classifier of evaluation, trained directly. The mean
        over every known (sample, finding) of both modalities; 0 when there is none."""
        difference = embeddings["present"].float() - embeddings["absent"].float()  # (K, D)
        known = ~labels.isnan()
        truth = torch.nan_to_num(labels)
        total, count = scale.new_zeros(()), scale.new_zeros(())
        for m in ("image", "text"):
            counted = (mask[m][:, None] & known).to(truth.dtype)
            logits = scale * full[m] @ difference.T
            losses = F.binary_cross_entropy_with_logits(logits, truth, reduction="none")
            total, count = total + (losses * counted).sum(), count + counted.sum()
        return total / count.clamp(min=1.0)
