"""Training-time augmentation of cached chest X-rays and their reports, in plain torch.

Images: one affine warp (`affine_grid` + `grid_sample`) combines a random resized crop, a
rotation, a translation and an optional left–right mirror, then brightness, contrast and gamma,
then optional Gaussian noise and blur; the result is clamped to [0, 1].

The crop is taken from the cached S×S square and resized back to S, rather than caching larger
images and cropping down: the cache, evaluation and the service all keep one image size
(`preprocess.image_size`, checked by `umcl/data/preprocess.py: check_cache_size`), and a crop
of at least 80 % of the area (the default `crop_scale`) upsamples by at most ~1.12×, which costs
little detail. Outside the source square the warp reads black, the padding colour of the cache
(`umcl/imaging/images.py: fit_square`).

Reports: sentences are dropped at random (at least one is kept) and shuffled.

Every random draw comes from the `torch.Generator` passed in, and `sample_generator` seeds it from
(seed, epoch, sample index) alone, so a sample's augmentation does not depend on the number of
DataLoader workers or on the order in which batches are drawn.
"""

from __future__ import annotations

import math
import re

import numpy as np
import torch
import torch.nn.functional as F

from umcl.config import ImageAugment, TextAugment

# Uniform draws per image, always all of them: changing one setting (e.g. hflip) leaves the
# draws of the others, and so the rest of the augmentation, as it was.
_IMAGE_DRAWS = 13
_MIN_BLUR_SIGMA = 0.1  # below this a 3σ kernel is a single tap: nothing to blur

# A sentence ends at . ! or ? followed by whitespace; reports here are often all lower case,
# so the next word's case is not required. "2.5 cm" has no whitespace after its point.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
# Words ending in a point that do not end a sentence: "e.g. small effusion" stays whole.
_ABBREVIATIONS = frozenset(
    {"e.g.", "i.e.", "vs.", "approx.", "cf.", "dr.", "mr.", "mrs.", "ms.", "st.", "fig."}
)
# "1." opening a numbered item ("IMPRESSION: 1. cardiomegaly.") belongs to the item it opens.
_LIST_NUMBER = re.compile(r"(?:^|:)\s*\d{1,2}[.)]$")


def sample_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """A generator that depends only on (seed, epoch, sample index); SeedSequence mixes the
    three so that neighbouring indices or epochs give unrelated streams."""
    state = np.random.SeedSequence([seed, epoch, index]).generate_state(1, dtype=np.uint64)
    return torch.Generator().manual_seed(int(state[0]))


def _between(u: torch.Tensor, low: float, high: float) -> float:
    return low + (high - low) * float(u)


def _warp_matrix(u: torch.Tensor, settings: ImageAugment) -> torch.Tensor:
    """(1, 2, 3) map from output to input coordinates in [-1, 1] (as `affine_grid` wants):
    input = crop · (rotation · mirror · output + translation) + crop centre."""
    area = _between(u[0], *settings.crop_scale)
    log_ratio = _between(u[1], math.log(settings.crop_ratio[0]), math.log(settings.crop_ratio[1]))
    width = min(1.0, math.sqrt(area * math.exp(log_ratio)))  # share of the side
    height = min(1.0, math.sqrt(area / math.exp(log_ratio)))
    centre_x = _between(u[2], -(1 - width), 1 - width)  # the crop stays inside the square
    centre_y = _between(u[3], -(1 - height), 1 - height)
    angle = math.radians(_between(u[4], -settings.rotate_degrees, settings.rotate_degrees))
    shift_x = 2 * _between(u[5], -settings.translate, settings.translate)  # [-1, 1] spans 2
    shift_y = 2 * _between(u[6], -settings.translate, settings.translate)
    mirror = -1.0 if float(u[7]) < settings.hflip else 1.0
    cos, sin = math.cos(angle), math.sin(angle)
    theta = [
        [width * cos * mirror, -width * sin, width * shift_x + centre_x],
        [height * sin * mirror, height * cos, height * shift_y + centre_y],
    ]
    return torch.tensor([theta], dtype=torch.float32)


def _gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of a (1, S, S) image; reflected edges keep the border's level."""
    radius = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=image.dtype)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    x = F.pad(image[None], (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1))
    x = F.conv2d(x, kernel.view(1, 1, -1, 1))
    return x[0]


def augment_image(
    image: torch.Tensor, settings: ImageAugment, generator: torch.Generator
) -> torch.Tensor:
    """A randomly changed copy of a (1, S, S) float image in [0, 1]; same shape, in [0, 1]."""
    u = torch.rand(_IMAGE_DRAWS, generator=generator, dtype=torch.float64)
    theta = _warp_matrix(u, settings)
    grid = F.affine_grid(theta, [1, *image.shape], align_corners=False)
    x = F.grid_sample(
        image[None].float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )[0]
    x = x + _between(u[8], -settings.brightness, settings.brightness)
    # Row means first: a whole-image reduction sums in a thread-count-dependent order above
    # 32k pixels, and the loader workers run with one thread, the main process with several.
    mean = x.mean(-1).mean()
    x = (x - mean) * (1 + _between(u[9], -settings.contrast, settings.contrast)) + mean
    # Clamp before the power: a negative pixel to a fractional power is NaN.
    x = x.clamp(0, 1) ** math.exp(_between(u[10], -settings.gamma, settings.gamma))
    noise_std = _between(u[11], 0.0, settings.noise_std)
    if noise_std > 0:
        x = x + noise_std * torch.randn(x.shape, generator=generator, dtype=x.dtype)
    blur_sigma = _between(u[12], 0.0, settings.blur_sigma)
    if blur_sigma >= _MIN_BLUR_SIGMA:
        x = _gaussian_blur(x, blur_sigma)
    return x.clamp(0, 1)


def split_sentences(text: str) -> list[str]:
    """The report's sentences, whitespace-trimmed; abbreviations and list numbers stay attached
    to the words that follow them."""
    sentences: list[str] = []
    glue = False  # the last piece ended in an abbreviation or is a list number
    for piece in _SENTENCE_END.split(text.strip()):
        if not piece:
            continue
        if glue and sentences:
            sentences[-1] = f"{sentences[-1]} {piece}"
        else:
            sentences.append(piece)
        last_word = sentences[-1].rsplit(None, 1)[-1].lower()
        glue = last_word in _ABBREVIATIONS or bool(_LIST_NUMBER.search(sentences[-1]))
    return sentences


def augment_report(text: str, settings: TextAugment, generator: torch.Generator) -> str:
    """The report with each sentence kept with probability `keep` (at least one kept), shuffled
    when `shuffle`, joined by single spaces."""
    sentences = split_sentences(text)
    if not sentences:
        return text
    kept = (torch.rand(len(sentences), generator=generator) < settings.keep).tolist()
    if not any(kept):
        kept[int(torch.randint(len(sentences), (1,), generator=generator))] = True
    chosen = [s for s, k in zip(sentences, kept, strict=True) if k]
    if settings.shuffle:
        chosen = [chosen[i] for i in torch.randperm(len(chosen), generator=generator).tolist()]
    return " ".join(chosen)
