"""Image and text encoders: a transformers backbone → pooling → linear projection → L2 norm.

Backbones come from `transformers.AutoModel`, either built from a config (the demo) or loaded
from a local checkpoint directory (real runs) — one code path, no hub look-ups.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel

from umcl.config import Pooling, TowerSettings
from umcl.errors import InputError, MissingInputError


def build_backbone(settings: TowerSettings) -> PreTrainedModel:
    """The backbone named by `model.image` / `model.text`: a local checkpoint or a config."""
    if settings.pretrained is not None:
        path = Path(settings.pretrained)
        if not (path / "config.json").is_file():
            raise MissingInputError(
                f"{path}: not a local model directory (no config.json); 'pretrained' must point to a downloaded checkpoint"
            )
        return AutoModel.from_pretrained(path, local_files_only=True)
    config = dict(settings.config)
    return backbone_from_config(AutoConfig.for_model(config.pop("model_type"), **config))


def backbone_from_config(config: PretrainedConfig) -> PreTrainedModel:
    """A randomly initialised backbone; weights, if any, are loaded by the caller."""
    return AutoModel.from_config(config)


def pool(output, pooling: Pooling, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """One vector per input from a transformers output (token sequence or CNN feature map)."""
    if pooling == "pooler":
        if getattr(output, "pooler_output", None) is None:
            raise InputError("this backbone has no pooled output; use pooling: mean or cls")
        return output.pooler_output.flatten(1)  # ResNet pools to (B, C, 1, 1)
    hidden = output.last_hidden_state
    if hidden.dim() == 4:  # convolutional feature map (B, C, H, W)
        if pooling == "cls":
            raise InputError(
                "a convolutional backbone has no [CLS] token; use pooling: mean or pooler"
            )
        return hidden.mean(dim=(2, 3))
    if pooling == "cls":
        return hidden[:, 0]
    if attention_mask is None:
        return hidden.mean(dim=1)
    weights = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def _width(config: PretrainedConfig) -> int:
    """Size of the pooled vector, for the projection."""
    for name in ("hidden_size", "dim"):
        if isinstance(getattr(config, name, None), int):
            return getattr(config, name)
    sizes = getattr(config, "hidden_sizes", None)  # ResNet, ConvNeXt
    if sizes:
        return sizes[-1]
    raise InputError(f"cannot tell the output width of a {config.model_type} backbone")


class ImageTower(nn.Module):
    """Grayscale cache images in [0, 1] → L2-normalised embeddings."""

    def __init__(
        self, backbone: PreTrainedModel, pooling: Pooling, embed_dim: int, mean: float, std: float
    ):
        super().__init__()
        self.backbone, self.pooling, self.mean, self.std = backbone, pooling, mean, std
        self.channels = getattr(backbone.config, "num_channels", 1)
        self.projection = nn.Linear(_width(backbone.config), embed_dim, bias=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pixels = (images - self.mean) / self.std
        if self.channels != pixels.shape[1]:  # e.g. an RGB checkpoint on grayscale X-rays
            pixels = pixels.expand(-1, self.channels, -1, -1)
        pooled = pool(self.backbone(pixel_values=pixels), self.pooling)
        return F.normalize(self.projection(pooled), dim=-1)


class TextTower(nn.Module):
    """Token ids, or token embeddings (continuous prompts), → L2-normalised embeddings."""

    def __init__(self, backbone: PreTrainedModel, pooling: Pooling, embed_dim: int):
        super().__init__()
        self.backbone, self.pooling = backbone, pooling
        self.projection = nn.Linear(_width(backbone.config), embed_dim, bias=False)

    @property
    def token_embedding(self) -> nn.Embedding:
        return self.backbone.get_input_embeddings()

    def forward(
        self,
        attention_mask: torch.Tensor,
        input_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        output = self.backbone(
            input_ids=input_ids, inputs_embeds=inputs_embeds, attention_mask=attention_mask
        )
        return F.normalize(self.projection(pool(output, self.pooling, attention_mask)), dim=-1)
