"""The validation split during training: its contrastive loss and zero-shot macro AUROC every
`train.eval_every` steps, and the best weights so far (what `train.select: best_val` exports).

Validation draws no random numbers (no augmentation, no dropout in eval mode, no DataLoader,
whose iterator would draw its workers' seed from the global generator), so evaluating never
changes the run it watches, and a resumed run selects exactly what an uninterrupted one does."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from umcl.config import UncertaintyPolicy
from umcl.data.dataset import MODEL_INPUTS, Collate, TripletDataset, to_device
from umcl.evaluate import per_label_auroc
from umcl.model.loss import UMCLLoss
from umcl.model.umcl import UMCLModel, finding_logits
from umcl.training.runtime import Runtime


@dataclass(frozen=True)
class ValidationResult:
    loss: float | None
    zero_shot_auroc: float | None  # macro over the findings with both classes in the split

    def score(self) -> float:
        """Higher is better: the AUROC when the split has labelled images, else −loss; a
        non-finite loss never wins."""
        if self.zero_shot_auroc is not None:
            return self.zero_shot_auroc
        if self.loss is None or not math.isfinite(self.loss):
            return float("-inf")
        return -self.loss


class Validator:
    def __init__(
        self,
        dataset: TripletDataset,
        collate: Collate,
        batch_size: int,
        scored_uncertainty: UncertaintyPolicy,
    ) -> None:
        """The loss sees the labels as training does (`dataset`'s policy); the AUROC is measured
        against labels read per `scored_uncertainty` (`evaluate.uncertainty`), as evaluation's."""
        self.dataset, self.collate, self.batch_size = dataset, collate, batch_size
        self.scored_labels = dataset.labels_read_as(scored_uncertainty)

    def __len__(self) -> int:
        return len(self.dataset)

    @torch.no_grad()
    def __call__(self, model: UMCLModel, loss_fn: UMCLLoss, runtime: Runtime) -> ValidationResult:
        """The numbers of the whole split, computed by this process alone (no gathering)."""
        was_training = model.training
        model.eval()
        losses, weights, logits, truth = [], [], [], []
        for start in range(0, len(self.dataset), self.batch_size):
            rows = range(start, min(start + self.batch_size, len(self.dataset)))
            host = self.collate([self.dataset[i] for i in rows])
            batch = to_device(host, runtime.device)
            with runtime.autocast():
                embeddings = model(**{name: batch[name] for name in MODEL_INPUTS}, findings=True)
            loss, _ = loss_fn(embeddings, batch["present"], batch["labels"], local=True)
            if loss_fn.has_terms(host["present"], host["labels"]):
                losses.append(loss.item())
                weights.append(len(rows))
            images = embeddings["image"].float()
            logits.append(
                finding_logits(
                    images,
                    embeddings["present"].float(),
                    embeddings["absent"].float(),
                    embeddings["logit_scale"].float(),
                ).cpu()
            )
            truth.append(self.scored_labels[list(rows)][host["present"]["image"]])
        model.train(was_training)
        loss = (
            sum(x * w for x, w in zip(losses, weights, strict=True)) / sum(weights)
            if weights
            else None
        )
        auroc = None
        if logits:
            auroc = per_label_auroc(torch.cat(logits), torch.cat(truth), model.label_names)[
                "macro_auroc"
            ]
        return ValidationResult(loss, auroc)


@dataclass
class Best:
    """The best validation result so far and the weights that reached it."""

    step: int
    result: ValidationResult
    weights: dict[str, torch.Tensor]

    def to_state(self) -> dict:
        return {
            "step": self.step,
            "loss": self.result.loss,
            "zero_shot_auroc": self.result.zero_shot_auroc,
            "weights": self.weights,
        }

    @classmethod
    def from_state(cls, state: dict | None) -> Best | None:
        if state is None:
            return None
        return cls(
            state["step"],
            ValidationResult(state["loss"], state["zero_shot_auroc"]),
            state["weights"],
        )


def keep_best(best: Best | None, step: int, result: ValidationResult, model: UMCLModel) -> Best:
    """`best`, or this step's weights when they score higher (ties keep the earlier step)."""
    if best is not None and result.score() <= best.result.score():
        return best
    weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return Best(step, result, weights)
