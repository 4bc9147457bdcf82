"""The UMCL model: image tower + text tower + prompt learner + learned logit scale.

`save_model` writes a self-contained directory — weights as safetensors, the backbone configs,
the tokenizer, the prompt and label settings — and `load_model` rebuilds the model from it
without any hub look-up or pickle: everything evaluation and serving need.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoConfig, PreTrainedTokenizerBase

from umcl.config import ModelSettings, PromptSettings
from umcl.model.prompts import PromptLearner
from umcl.model.tokenizer import load_tokenizer
from umcl.model.towers import ImageTower, TextTower, backbone_from_config, build_backbone

LOGIT_SCALE_INIT = math.log(1 / 0.07)
LOGIT_SCALE_MAX = math.log(100)
WEIGHTS_FILE = "model.safetensors"
MODEL_FILE = "umcl.json"


class UMCLModel(nn.Module):
    def __init__(
        self,
        image: ImageTower,
        text: TextTower,
        tokenizer: PreTrainedTokenizerBase,
        label_names: list[str],
        prompt: PromptSettings,
        max_length: int,
    ):
        super().__init__()
        self.image, self.text, self.tokenizer, self.max_length = image, text, tokenizer, max_length
        self.prompts = PromptLearner(prompt, label_names, tokenizer, text.token_embedding)
        self.logit_scale = nn.Parameter(torch.tensor(LOGIT_SCALE_INIT))

    @property
    def label_names(self) -> list[str]:
        return self.prompts.label_names

    @property
    def device(self) -> torch.device:
        return self.logit_scale.device

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        if not texts:
            empty = torch.zeros(0, 0, dtype=torch.long, device=self.device)
            return {"input_ids": empty, "attention_mask": empty}
        tokens = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        return {
            "input_ids": tokens["input_ids"].to(self.device),
            "attention_mask": tokens["attention_mask"].to(self.device),
        }

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return self.image(images)

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        return self.text(**self.tokenize(texts))

    def encode_label_sets(self, labels: torch.Tensor) -> torch.Tensor:
        """One prompt embedding per row of (n, K) labels (1 / 0 / NaN); rows must state a label."""
        embeds, mask, inverse = self.prompts.label_set_prompts(labels, self.text.token_embedding)
        return self.text(attention_mask=mask, inputs_embeds=embeds)[inverse]

    def encode_findings(
        self, names: list[str] | None = None, handcrafted: bool | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(present, absent) prompt embeddings, one row per finding (default: the label space)."""
        embeds, mask = self.prompts.finding_prompts(self.text.token_embedding, names, handcrafted)
        both = self.text(attention_mask=mask, inputs_embeds=embeds)
        return both.chunk(2)

    def forward(
        self,
        images: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        label_sets: torch.Tensor,
        findings: bool = True,
    ) -> dict[str, torch.Tensor]:
        """Embeddings of whatever each modality holds (any may be empty), the finding prompts
        (when asked) and the logit scale. Training calls this through DDP."""
        out = {}
        out["image"] = (
            self.encode_image(images)
            if len(images)
            else images.new_zeros(0, self.image.projection.out_features)
        )
        out["text"] = (
            self.text(attention_mask=attention_mask, input_ids=input_ids)
            if len(input_ids)
            else out["image"].new_zeros(0, out["image"].shape[1])
        )
        out["label"] = (
            self.encode_label_sets(label_sets)
            if len(label_sets)
            else out["image"].new_zeros(0, out["image"].shape[1])
        )
        if findings:
            out["present"], out["absent"] = self.encode_findings()
        out["logit_scale"] = self.logit_scale.exp()
        return out


def finding_probabilities(
    images: torch.Tensor, present: torch.Tensor, absent: torch.Tensor, scale: torch.Tensor | float
) -> torch.Tensor:
    """(n, F) probability that each finding is present: softmax(s·[u·w_present, u·w_absent])[0].
    Evaluation and the service both score through this one function."""
    logits = torch.stack([scale * images @ present.T, scale * images @ absent.T], dim=-1)
    return logits.softmax(-1)[..., 0]


def build_model(
    settings: ModelSettings,
    prompt: PromptSettings,
    label_names: list[str],
    tokenizer: PreTrainedTokenizerBase,
) -> UMCLModel:
    """A new model from params: backbones from config or local checkpoints."""
    text_settings = settings.text
    if text_settings.pretrained is None:  # a config-built tower takes the trained vocabulary
        vocab = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id}
        text_settings = text_settings.model_copy(update={"config": settings.text.config | vocab})
    image_backbone = build_backbone(settings.image)
    text_backbone = build_backbone(text_settings)
    image = ImageTower(
        image_backbone,
        settings.image.pooling,
        settings.embed_dim,
        settings.image.mean,
        settings.image.std,
    )
    text = TextTower(text_backbone, settings.text.pooling, settings.embed_dim)
    return UMCLModel(image, text, tokenizer, label_names, prompt, settings.text.max_length)


def save_model(model: UMCLModel, directory: Path, extra: dict | None = None) -> None:
    """Everything needed to rebuild `model`, in `directory` (created)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.image.backbone.config.save_pretrained(directory / "image")
    model.text.backbone.config.save_pretrained(directory / "text")
    model.tokenizer.save_pretrained(directory / "tokenizer")
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, directory / WEIGHTS_FILE)
    description = {
        "embed_dim": model.image.projection.out_features,
        "image": {"pooling": model.image.pooling, "mean": model.image.mean, "std": model.image.std},
        "text": {"pooling": model.text.pooling, "max_length": model.max_length},
        "prompt": model.prompts.settings.model_dump(mode="json"),
        "labels": model.label_names,
        **(extra or {}),
    }
    (directory / MODEL_FILE).write_text(json.dumps(description, indent=2))


def describe_model(directory: Path) -> dict:
    """The model's description (`umcl.json`): towers, prompts, labels, the params it was trained with."""
    path = Path(directory) / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{directory}: not a UMCL model directory (no {MODEL_FILE})")
    return json.loads(path.read_text())


def input_size(description: dict) -> int:
    """Side of the square images the model was trained on (the preprocess cache's size)."""
    return int(description["params"]["preprocess"]["image_size"])


def load_model(directory: Path, device: str | torch.device = "cpu") -> UMCLModel:
    """A model saved by `save_model`; weights come from safetensors (no pickle is executed)."""
    directory = Path(directory)
    if not (directory / MODEL_FILE).is_file() or not (directory / WEIGHTS_FILE).is_file():
        raise FileNotFoundError(
            f"{directory}: not a UMCL model directory (needs {MODEL_FILE} and {WEIGHTS_FILE})"
        )
    description = json.loads((directory / MODEL_FILE).read_text())
    image_backbone = backbone_from_config(
        AutoConfig.from_pretrained(directory / "image", local_files_only=True)
    )
    text_backbone = backbone_from_config(
        AutoConfig.from_pretrained(directory / "text", local_files_only=True)
    )
    image = ImageTower(
        image_backbone,
        description["image"]["pooling"],
        description["embed_dim"],
        description["image"]["mean"],
        description["image"]["std"],
    )
    text = TextTower(text_backbone, description["text"]["pooling"], description["embed_dim"])
    model = UMCLModel(
        image, text, load_tokenizer(directory / "tokenizer"), description["labels"],
        PromptSettings.model_validate(description["prompt"]), description["text"]["max_length"],
    )  # fmt: skip
    model.load_state_dict(load_file(directory / WEIGHTS_FILE))
    return model.to(device).eval()
