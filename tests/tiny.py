"""Tiny models for tests: real towers and prompts, small enough to train in seconds."""

from __future__ import annotations

import torch

from umcl.config import ModelSettings, PromptSettings
from umcl.model.tokenizer import train_wordpiece
from umcl.model.umcl import UMCLModel, build_model

LABELS = ["No Finding", "Cardiomegaly", "Pleural Effusion", "Edema"]
TEXTS = [
    "heart size is normal. no pleural effusion. lungs are clear.",
    "moderate cardiomegaly with pulmonary edema and small pleural effusions.",
    "there is no pneumothorax. there is cardiomegaly.",
]

MODEL = {
    "embed_dim": 16,
    "image": {"config": {"model_type": "convnext", "num_channels": 1, "patch_size": 4, "hidden_sizes": [8, 16], "depths": [1, 1], "num_stages": 2}, "pooling": "pooler"},
    "text": {
        "config": {"model_type": "bert", "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32,
                   "max_position_embeddings": 128, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0},
        "pooling": "mean", "max_length": 64, "vocab_size": 200,
    },
}  # fmt: skip


def tiny_model(prompt: dict | None = None, seed: int = 0, labels: list[str] = LABELS) -> UMCLModel:
    prompt_settings = PromptSettings.model_validate(prompt or {})
    tokenizer = train_wordpiece(TEXTS + [n.lower() for n in labels] + ["there is no"], 200)
    torch.manual_seed(seed)
    return build_model(ModelSettings.model_validate(MODEL), prompt_settings, labels, tokenizer)


def tiny_batch(n: int = 8, size: int = 32, seed: int = 0) -> dict:
    """A mixed batch in the collate format: pairs, image-only and text-only samples."""
    g = torch.Generator().manual_seed(seed)
    has_image = torch.tensor([i % 4 != 3 for i in range(n)])
    has_text = torch.tensor([i % 4 != 2 for i in range(n)])
    labels = torch.randint(0, 2, (n, len(LABELS)), generator=g).float()
    known = torch.rand(n, len(LABELS), generator=g) > 0.3
    known[0] = False  # a pair without labels
    return {
        "sample_ids": [f"s{i}" for i in range(n)],
        "images": torch.rand(n, 1, size, size, generator=g) * has_image[:, None, None, None],
        "has_image": has_image,
        "texts": [TEXTS[i % len(TEXTS)] if t else "" for i, t in enumerate(has_text.tolist())],
        "has_text": has_text,
        "labels": labels * known,
        "label_known": known,
        "has_labels": known.any(1),
    }


def cpu_step_loss(
    model, batch: dict, target: str = "soft"
) -> tuple[torch.Tensor, dict[str, float]]:
    """The training step's loss (fp32, CPU) of `batch` with default loss weights."""
    from umcl.config import LossWeights
    from umcl.model.loss import UMCLLoss
    from umcl.train import contrastive_step

    no_autocast = torch.autocast("cpu", enabled=False)
    return contrastive_step(
        model, UMCLLoss(target, LossWeights()), batch, torch.device("cpu"), no_autocast
    )
