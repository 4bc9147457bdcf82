"""Image and text encoders: a transformers backbone → pooling → linear projection → L2 norm.

Backbones come from `transformers.AutoModel`, either built from a config (the demo) or loaded
from a local checkpoint directory (real runs) — one code path, no hub look-ups. A CLIP-style
directory (umcl/model/pretrained.py: `is_dual`) gives each tower its half, and its projections
start the towers' projections when `model.embed_dim` is the checkpoint's.
"""

from __future__ import annotations

import inspect
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
import transformers
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel

from umcl.config import ChannelValues, Pooling, TowerSettings
from umcl.errors import InputError
from umcl.model.pretrained import is_dual, read_config

log = logging.getLogger(__name__)

Part = Literal["image", "text"]
# The sub-models and projections of a CLIP-style model (transformers' CLIPModel, SiglipModel).
_DUAL = {"image": ("vision_model", "visual_projection"), "text": ("text_model", "text_projection")}


@dataclass
class Backbone:
    """A tower's backbone and what its checkpoint holds beside it: a CLIP-style checkpoint's
    projection for this tower and its logit scale (None otherwise)."""

    model: PreTrainedModel
    projection: torch.Tensor | None = None
    logit_scale: torch.Tensor | None = None


def build_backbone(
    settings: TowerSettings, part: Part = "image", loaded: dict | None = None
) -> PreTrainedModel:
    """The backbone named by `model.image` / `model.text`: a local checkpoint or a config."""
    return load_backbone(settings, part, loaded).model


def load_backbone(settings: TowerSettings, part: Part, loaded: dict | None = None) -> Backbone:
    """`build_backbone` with what a CLIP-style checkpoint holds beside the backbone. `loaded`
    memoises a CLIP-style model that both towers name, so it is read once."""
    if settings.pretrained is None:
        config = dict(settings.config)
        return Backbone(
            backbone_from_config(AutoConfig.for_model(config.pop("model_type"), **config))
        )
    path = Path(settings.pretrained)
    if not is_dual(read_config(path)):
        return Backbone(AutoModel.from_pretrained(path, local_files_only=True))
    memo = {} if loaded is None else loaded
    key = str(path.resolve())
    if key not in memo:
        memo[key] = AutoModel.from_pretrained(path, local_files_only=True)
    whole = memo[key]
    sub, projection = _DUAL[part]
    if not hasattr(whole, sub):
        raise InputError(
            f"{path}: a {whole.config.model_type} model has no {sub} for the {part} tower"
        )
    head = getattr(whole, projection, None)
    # CLIP's temperature is a softmax's, as UMCL's; SigLIP's (with its logit_bias) a sigmoid's.
    scale = None if hasattr(whole, "logit_bias") else getattr(whole, "logit_scale", None)
    return Backbone(
        getattr(whole, sub),
        None if head is None else head.weight.detach().clone(),
        None if scale is None else scale.detach().reshape(()).clone(),
    )


def backbone_from_config(config: PretrainedConfig) -> PreTrainedModel:
    """A randomly initialised backbone; weights, if any, are loaded by the caller. A tower that
    `AutoModel` does not map (SigLIP's text model) is built by its own class, named after its
    config's (SiglipTextConfig → SiglipTextModel)."""
    try:
        return AutoModel.from_config(config)
    except ValueError:
        own = getattr(transformers, type(config).__name__.removesuffix("Config") + "Model", None)
        if own is None or own.config_class is not type(config):
            raise
        return own._from_config(config)


def prepare_for_training(backbone: PreTrainedModel, settings: TowerSettings, part: Part) -> None:
    """`lock` (with `unlocked_layers`), `gradient_checkpointing` of `model.<part>`, and a pooling
    head the tower's pooling does not use frozen (`freeze_unused_pooler`)."""
    if settings.lock:
        lock(backbone, settings.unlocked_layers, part)
    freeze_unused_pooler(backbone, settings.pooling)
    if settings.gradient_checkpointing:
        if not backbone.supports_gradient_checkpointing:
            raise InputError(
                f"model.{part}.gradient_checkpointing: transformers' {type(backbone).__name__} "
                "does not support it; set it to false (or lock the tower to save memory)"
            )
        # Non-reentrant: works with frozen inputs and keeps dropout's RNG across the recompute.
        # transformers 5 names it activation checkpointing (the old name warns until v6).
        kwargs = {"use_reentrant": False}
        if hasattr(backbone, "activation_checkpointing_enable"):
            backbone.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def freeze_unused_pooler(backbone: PreTrainedModel, pooling: Pooling) -> None:
    """A backbone's pooling head (`pooler`: BERT's and ViT's dense + tanh) never reaches the
    embedding unless `pooling` is "pooler": left trainable, it would make DDP search every
    step's graph for parameters without a gradient. Its weights stay in the state dict."""
    head = getattr(backbone, "pooler", None)
    if pooling != "pooler" and isinstance(head, nn.Module):
        head.requires_grad_(False)


def layer_list(backbone: nn.Module) -> tuple[str, nn.ModuleList]:
    """The backbone's sequence of layers or stages: the module list holding most parameters.
    Found by size, not by name: the names differ by family and by transformers version (BERT's
    encoder.layer, ViT's layers in transformers 5, Swin's and CLIP's encoder.layers, ConvNeXt's
    and ResNet's encoder.stages)."""
    lists = [
        (name, module)
        for name, module in backbone.named_modules()
        if isinstance(module, nn.ModuleList) and len(module)
    ]
    if not lists:
        raise InputError(f"cannot find the layers of a {type(backbone).__name__} to unlock")
    return max(lists, key=lambda item: sum(p.numel() for p in item[1].parameters()))


def lock(backbone: nn.Module, unlocked_layers: int, part: Part) -> None:
    """Freeze the backbone but its last `unlocked_layers` layers and what follows them (the final
    norm, a pooler): open_clip's lock with unlocked groups. The embeddings stay frozen."""
    for parameter in backbone.parameters():
        parameter.requires_grad_(False)
    if not unlocked_layers:
        return
    name, layers = layer_list(backbone)
    if unlocked_layers > len(layers):
        raise InputError(
            f"model.{part}.unlocked_layers is {unlocked_layers}, but the backbone has "
            f"{len(layers)} ({name}); at most {len(layers)}"
        )
    for layer in list(layers)[-unlocked_layers:]:
        layer.requires_grad_(True)
    # Parameters register in forward order: those after the last layer are the head.
    in_layers = {id(p) for p in layers.parameters()}
    parameters = list(backbone.parameters())
    last = max(i for i, p in enumerate(parameters) if id(p) in in_layers)
    for parameter in parameters[last + 1 :]:
        parameter.requires_grad_(True)


def pool(output, pooling: Pooling, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """One vector per input from a transformers output (token sequence or CNN feature map)."""
    if pooling == "pooler":
        if getattr(output, "pooler_output", None) is None:
            raise InputError("this backbone has no pooled output; use pooling: mean or cls")
        return output.pooler_output.flatten(1)  # ResNet pools to (B, C, 1, 1)
    hidden = output.last_hidden_state
    if hidden.dim() == 4:  # convolutional feature map (B, C, H, W)
        if pooling in ("cls", "last"):
            raise InputError(
                f"a convolutional backbone has no {pooling} token; use pooling: mean or pooler"
            )
        return hidden.mean(dim=(2, 3))
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "last":  # right-padded: the last attended position (CLIP's end of text)
        if attention_mask is None:
            return hidden[:, -1]
        last = attention_mask.sum(dim=1).clamp(min=1) - 1
        return hidden[torch.arange(len(hidden), device=hidden.device), last]
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


def _projection(width: int, embed_dim: int, start: torch.Tensor | None, part: Part) -> nn.Linear:
    """The tower's projection; a CLIP-style checkpoint's own where its shape fits."""
    projection = nn.Linear(width, embed_dim, bias=False)
    if start is not None:
        if tuple(start.shape) == tuple(projection.weight.shape):
            with torch.no_grad():
                projection.weight.copy_(start)
        else:
            log.warning(
                "the checkpoint's %s projection maps to %d dimensions, model.embed_dim is %d: "
                "the projection starts from random weights",
                part,
                start.shape[0],
                embed_dim,
            )
    return projection


def _channel_tensor(value: ChannelValues) -> torch.Tensor:
    """(1, C, 1, 1) values to broadcast over a batch of images (C = 1 for one value)."""
    values = value if isinstance(value, list) else [value]
    return torch.tensor(values, dtype=torch.float32).view(1, -1, 1, 1)


class ImageTower(nn.Module):
    """Grayscale cache images in [0, 1] → L2-normalised embeddings."""

    def __init__(
        self,
        backbone: PreTrainedModel,
        pooling: Pooling,
        embed_dim: int,
        mean: ChannelValues,
        std: ChannelValues,
        image_size: int | None = None,
        projection: torch.Tensor | None = None,
        standardise: str = "none",
    ):
        super().__init__()
        self.backbone, self.pooling, self.standardise = backbone, pooling, standardise
        self.channels = getattr(backbone.config, "num_channels", 1)
        # Buffers that are not saved: they follow the model to its device; umcl.json stores them.
        self.register_buffer("mean", _channel_tensor(mean), persistent=False)
        self.register_buffer("std", _channel_tensor(std), persistent=False)
        self.normalisation = (mean, std)
        # A backbone with fixed position embeddings (ViT, CLIP, SigLIP) trained at another size
        # interpolates them; a CNN or Swin runs at any size.
        self.trained_size = getattr(backbone.config, "image_size", None)
        accepts = "interpolate_pos_encoding" in inspect.signature(backbone.forward).parameters
        resize = accepts and image_size is not None and self.trained_size not in (None, image_size)
        self.size_kwargs = {"interpolate_pos_encoding": True} if resize else {}
        self.projection = _projection(_width(backbone.config), embed_dim, projection, "image")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.embed(self.backbone_output(images))

    def embed(self, output) -> torch.Tensor:
        """The backbone's output → (n, D) L2-normalised embeddings."""
        return F.normalize(self.projection(pool(output, self.pooling)), dim=-1)

    def backbone_output(self, images: torch.Tensor, hidden_states: bool = False):
        """The backbone's output for (n, 1, S, S) images in [0, 1] (with every stage's output
        when `hidden_states`)."""
        if self.standardise == "percentile":
            images = percentile_stretch(images)
        if self.channels != images.shape[1]:  # e.g. an RGB checkpoint on grayscale X-rays
            images = images.expand(-1, self.channels, -1, -1)
        pixels = (images - self.mean) / self.std
        extra = {"output_hidden_states": True} if hidden_states else {}
        try:
            return self.backbone(pixel_values=pixels, **self.size_kwargs, **extra)
        except (RuntimeError, ValueError) as exc:
            if self.trained_size in (None, pixels.shape[-1]):
                raise
            raise InputError(
                f"the image backbone ({self.backbone.config.model_type}) was built for "
                f"{_side(self.trained_size)} px images and cannot take {pixels.shape[-1]} px "
                f"ones: set preprocess.image_size to {_side(self.trained_size)} ({exc})"
            ) from exc

    def location_embeddings(self, output) -> torch.Tensor:
        """(n, h, w, D) L2-normalised embeddings of each place of the last feature map, each
        pooled as `pool` pools the whole map (a ConvNeXt's final LayerNorm applied per place; a
        ViT's patch tokens without the class token): the image's embedding, place by place."""
        hidden = output.last_hidden_state
        if hidden.dim() == 4:  # (n, C, h, w)
            grid = hidden.permute(0, 2, 3, 1)
            norm = getattr(self.backbone, "layernorm", None)
            if self.pooling == "pooler" and isinstance(norm, nn.LayerNorm):
                grid = norm(grid)
        else:  # tokens (n, N, C): a square grid of patches, after a class token if there is one
            side = math.isqrt(hidden.shape[1])
            tokens = hidden if side * side == hidden.shape[1] else hidden[:, 1:]
            side = math.isqrt(tokens.shape[1])
            if side * side != tokens.shape[1]:
                raise InputError(f"{tokens.shape[1]} patch tokens do not form a square grid")
            grid = tokens.reshape(len(tokens), side, side, -1)
        return F.normalize(self.projection(grid), dim=-1)


def percentile_stretch(images: torch.Tensor, low: float = 0.01, high: float = 0.99) -> torch.Tensor:
    """(n, C, H, W) in [0, 1] → each image's `low`–`high` quantiles stretched to [0, 1], clipped.
    The quantiles leave out pixels at exactly 0 — the padding `fit_square` puts around a film
    that is not square (a quarter of a Kermany square), which would otherwise pin the low end
    at 0. A flat image (quantiles within 1/255) is only shifted, not blown up."""
    flat = images.flatten(1).float()
    ordered = flat.sort(dim=1).values
    padding = (flat <= 0).sum(dim=1)
    content = (flat.shape[1] - padding).clamp(min=1)

    def quantile(q: float) -> torch.Tensor:
        index = padding + ((content - 1) * q).round().long()
        return ordered.gather(1, index.clamp(max=flat.shape[1] - 1)[:, None]).view(-1, 1, 1, 1)

    start, end = quantile(low), quantile(high)
    span = (end - start).clamp(min=1 / 255)
    return ((images - start) / span).clamp(0, 1).to(images.dtype)


def _side(size: int | list | tuple) -> int:
    return size if isinstance(size, int) else int(size[0])


class TextTower(nn.Module):
    """Token ids, or token embeddings (continuous prompts), → L2-normalised embeddings."""

    def __init__(
        self,
        backbone: PreTrainedModel,
        pooling: Pooling,
        embed_dim: int,
        projection: torch.Tensor | None = None,
    ):
        super().__init__()
        self.backbone, self.pooling = backbone, pooling
        # CLIP's and SigLIP's text models take no inputs_embeds: prompts enter through the token
        # embedding's output instead (`_embedded`).
        self.takes_embeds = "inputs_embeds" in inspect.signature(backbone.forward).parameters
        if not self.takes_embeds and pooling == "pooler":
            raise InputError(
                f"a {backbone.config.model_type} text tower pools by token id, which prompts do "
                "not have: use pooling: last (its end-of-text token) or mean"
            )
        self.projection = _projection(_width(backbone.config), embed_dim, projection, "text")

    @property
    def token_embedding(self) -> nn.Embedding:
        return self.backbone.get_input_embeddings()

    def forward(
        self,
        attention_mask: torch.Tensor,
        input_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if inputs_embeds is not None and not self.takes_embeds:
            output = self._embedded(inputs_embeds, attention_mask)
        elif not self.takes_embeds:
            output = self.backbone(input_ids=input_ids, attention_mask=attention_mask)
        else:
            output = self.backbone(
                input_ids=input_ids, inputs_embeds=inputs_embeds, attention_mask=attention_mask
            )
        return F.normalize(self.projection(pool(output, self.pooling, attention_mask)), dim=-1)

    def _embedded(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor):
        """The backbone on given token embeddings: placeholder ids whose embedding lookup
        returns `inputs_embeds` (positions and everything after are the model's own)."""
        placeholder = torch.zeros(
            inputs_embeds.shape[:2], dtype=torch.long, device=inputs_embeds.device
        )
        hook = self.token_embedding.register_forward_hook(lambda *_: inputs_embeds)
        try:
            return self.backbone(input_ids=placeholder, attention_mask=attention_mask)
        finally:
            hook.remove()
