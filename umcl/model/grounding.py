"""Grounding maps: where in an image the model finds a finding.

Two methods, scored against each other by the pointing game on the demo's test split
(benchmarks/grounding.py, benchmarks/RESULTS.md "Grounding maps"):

- "similarity": each place of the image tower's last feature map, embedded as the whole image is
  (`ImageTower.location_embeddings`), scored against the finding's present and absent prompts as
  the image is (`finding_logits`): the finding's log-odds place by place. One forward pass, no
  gradient; as coarse as the last feature map.
- "gradcam": Grad-CAM of the finding's log-odds on the finest stage of the image backbone that
  still has at least MIN_SIDE places a side: each channel weighted by its mean gradient, summed,
  negative evidence cut. One backward pass per finding.

Each map is upsampled to the model's square input (bilinear); `image_map` takes it back to the
decoded image (the square's padding cut off) and scales it to [0, 1] there: 1 is where the image
shows the finding most, by that method's measure; a map with no spread is all 0.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from umcl.errors import InputError
from umcl.imaging.images import unfit_square
from umcl.model.umcl import UMCLModel, finding_logits

Method = Literal["similarity", "gradcam"]
METHODS: tuple[Method, ...] = ("similarity", "gradcam")
MIN_SIDE = 8  # Grad-CAM's stage: the deepest whose feature map is at least this many places a side


def finding_maps(
    model: UMCLModel,
    pixels: torch.Tensor,
    present: torch.Tensor,
    absent: torch.Tensor,
    scale: torch.Tensor | float,
    method: Method = "similarity",
) -> torch.Tensor:
    """(n, F, S, S) maps over (n, 1, S, S) images for F findings, given the findings' prompt
    embeddings (`encode_findings`) and the logit scale: each method's own measure, upsampled
    (`image_map` turns one into the image's map)."""
    if method == "similarity":
        raw = similarity_maps(model, pixels, present, absent, scale)
    elif method == "gradcam":
        raw = gradcam_maps(model, pixels, present, absent, scale)
    else:
        raise InputError(f"grounding method {method!r}: use one of {list(METHODS)}")
    return F.interpolate(raw, size=pixels.shape[-2:], mode="bilinear", align_corners=False)


def image_map(square_map: np.ndarray, height: int, width: int) -> np.ndarray:
    """One finding's (S, S) map over the model's square → (height, width) float32 in [0, 1] over
    the decoded image: the padding cut off first, so that 1 lies on the image."""
    values = unfit_square(square_map, height, width)
    low, span = float(values.min()), float(values.max() - values.min())
    if span <= 0:
        return np.zeros_like(values, np.float32)
    return ((values - low) / span).astype(np.float32)


def similarity_maps(
    model: UMCLModel,
    pixels: torch.Tensor,
    present: torch.Tensor,
    absent: torch.Tensor,
    scale: torch.Tensor | float,
) -> torch.Tensor:
    """(n, F, h, w): each place's log-odds for each finding."""
    with torch.no_grad():
        places = model.image.location_embeddings(model.image.backbone_output(pixels))
        return finding_logits(places, present, absent, scale).permute(0, 3, 1, 2)


def gradcam_maps(
    model: UMCLModel,
    pixels: torch.Tensor,
    present: torch.Tensor,
    absent: torch.Tensor,
    scale: torch.Tensor | float,
) -> torch.Tensor:
    """(n, F, h, w): Grad-CAM of each finding's log-odds on the chosen stage."""
    with torch.enable_grad():
        output = model.image.backbone_output(pixels, hidden_states=True)
        stage = chosen_stage(output.hidden_states)
        logits = finding_logits(model.image.embed(output), present.detach(), absent.detach(), scale)
        maps = []
        for k in range(logits.shape[1]):
            (gradient,) = torch.autograd.grad(
                logits[:, k].sum(), stage, retain_graph=k < logits.shape[1] - 1
            )
            weights = gradient.mean(dim=(2, 3), keepdim=True)
            maps.append(F.relu((weights * stage).sum(dim=1)).detach())
    return torch.stack(maps, dim=1)


def chosen_stage(stages: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The deepest (n, C, h, w) stage output with min(h, w) ≥ MIN_SIDE, else the finest one."""
    maps = [s for s in stages if s.dim() == 4]
    if not maps:
        raise InputError("gradcam needs a convolutional image backbone; use method similarity")
    wide = [s for s in maps if min(s.shape[-2:]) >= MIN_SIDE]
    return wide[-1] if wide else max(maps, key=lambda s: s.shape[-1])
