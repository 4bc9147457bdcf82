"""Tiny models for tests: real towers and prompts, small enough to train in seconds."""

from __future__ import annotations

import torch
from transformers import PreTrainedTokenizerFast

from umcl.config import ModelSettings, PromptSettings
from umcl.data.dataset import MODEL_INPUTS, Batch, Collate, Sample
from umcl.model.tokenizer import train_wordpiece
from umcl.model.umcl import UMCLModel

# Side of the square inputs the tiny models and batches are built for.
IMAGE_SIZE = 32
LABELS = ["No Finding", "Cardiomegaly", "Pleural Effusion", "Edema"]
TEXTS = [
    "heart size is normal. no pleural effusion. lungs are clear.",
    "moderate cardiomegaly with pulmonary edema and small pleural effusions.",
    "there is no pneumothorax. there is cardiomegaly.",
]

MODEL = {
    "embed_dim": 16,
    "image": {
        "config": {
            "model_type": "convnext",
            "num_channels": 1,
            "patch_size": 4,
            "hidden_sizes": [8, 16],
            "depths": [1, 1],
            "num_stages": 2,
        },
        "pooling": "pooler",
    },
    "text": {
        "config": {
            "model_type": "bert",
            "hidden_size": 16,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 32,
            "max_position_embeddings": 128,
            "hidden_dropout_prob": 0.0,
            "attention_probs_dropout_prob": 0.0,
        },
        "pooling": "mean",
        "max_length": 64,
        "vocab_size": 200,
    },
}


def tiny_model(
    prompt: dict | None = None,
    seed: int = 0,
    labels: list[str] = LABELS,
    image_size: int = IMAGE_SIZE,
) -> UMCLModel:
    prompt_settings = PromptSettings.model_validate(prompt or {})
    tokenizer = tiny_tokenizer(labels)
    torch.manual_seed(seed)
    return UMCLModel.from_config(
        ModelSettings.model_validate(MODEL), prompt_settings, labels, tokenizer, image_size
    )


def tiny_tokenizer(labels: list[str] = LABELS) -> PreTrainedTokenizerFast:
    """The tokenizer `tiny_model` builds (WordPiece training is deterministic)."""
    return train_wordpiece(TEXTS + [n.lower() for n in labels] + ["there is no"], 200)


def tiny_batch(
    n: int = 8,
    size: int = IMAGE_SIZE,
    seed: int = 0,
    model=None,
    rows: slice = slice(None),
    imageless: range = range(0),
) -> Batch:
    """A mixed batch in the `Collate` format: pairs, image-only and text-only samples, and a
    pair without labels. Tokenised with `model`'s tokenizer, else with `tiny_model`'s.
    `rows` keeps some of the n samples (a DDP rank's share); the draws stay those of all n.
    Samples numbered in `imageless` lose their image."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n, len(LABELS)), generator=g).float()
    known = torch.rand(n, len(LABELS), generator=g) > 0.3
    known[0] = False  # a pair without labels
    images = torch.rand(n, 1, size, size, generator=g)
    samples = [
        Sample(
            sample_id=f"s{i}",
            image=images[i] if i % 4 != 3 and i not in imageless else None,
            text=TEXTS[i % len(TEXTS)] if i % 4 != 2 else None,
            labels=torch.where(known[i], labels[i], torch.nan),
        )
        for i in range(n)
    ]
    tokenizer = tiny_tokenizer() if model is None else model.tokenizer
    max_length = MODEL["text"]["max_length"] if model is None else model.max_length
    return Collate(tokenizer, max_length, size)(samples[rows])


def cpu_step_loss(
    model, batch: Batch, target: str = "soft"
) -> tuple[torch.Tensor, dict[str, float]]:
    """The training step's loss (fp32, CPU) of `batch` with default loss weights: the model on
    the batch's model inputs, the loss on its presence masks and labels."""
    from umcl.config import LossWeights
    from umcl.model.loss import UMCLLoss

    loss_fn = UMCLLoss(target, LossWeights())
    embeddings = model(
        **{k: batch[k] for k in MODEL_INPUTS}, findings=loss_fn.weights.label_prompts > 0
    )
    return loss_fn(embeddings, batch["present"], batch["labels"])
