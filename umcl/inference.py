"""Offline inference with a saved model: `umcl.load(source)` → a `Predictor`.

    import umcl
    predictor = umcl.load("umcl:champion")        # or "umcl:<version>", or a model directory
    results = predictor.classify(["study.dcm", "film.png"])
    results[0]["Pneumonia"]  # {"probability": 0.93, "positive": True, "calibrated": True}

Image files are decoded exactly as the preprocess stage decodes them (`load_image` +
`fit_square`, umcl/data/images.py), so a file gets the scores the service gives its upload.
Scores come from `score_findings`, the one function the service (umcl/service.py) uses too.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from umcl.calibration import Calibration
from umcl.data.images import DecodeLimits, fit_square, load_image
from umcl.model.prompts import unpromptable
from umcl.model.umcl import UMCLModel, finding_logits

BATCH_SIZE = 32  # images or texts per forward pass
CHAMPION = "champion"

ImageInput = str | Path | np.ndarray


def score_findings(
    embeddings: torch.Tensor,
    present: torch.Tensor,
    absent: torch.Tensor,
    scale: torch.Tensor | float,
    calibration: Calibration | None,
    names: list[str],
) -> tuple[torch.Tensor, torch.Tensor]:
    """(probabilities, positives), both (n, F): the calibrated probability that each finding is
    present and the decision at its threshold. A finding the calibration has no fitted entry for
    (or no calibration at all) gets the raw zero-shot sigmoid and threshold 0.5."""
    logits = finding_logits(embeddings, present, absent, scale)
    calibration = calibration or Calibration.identity(names)
    probabilities = calibration.probabilities(logits, names)
    return probabilities, calibration.decisions(probabilities, names)


def square_pixels(squares: np.ndarray) -> torch.Tensor:
    """(n, S, S) uint8 squares → (n, 1, S, S) float32 in [0, 1], as the image tower takes them."""
    return torch.from_numpy(np.array(squares, dtype=np.float32) / 255.0)[:, None]


def array_square(image: np.ndarray, size: int) -> np.ndarray:
    """A 2-D grayscale array (uint8, or float in [0, 1]) → the (size, size) uint8 square."""
    if image.ndim != 2 or image.size == 0:
        raise ValueError(f"an image array must be 2-D grayscale (H, W); got shape {image.shape}")
    if image.dtype == np.uint8:
        # The same division load_image does for an 8-bit file: an array and its PNG agree.
        return fit_square(image.astype(np.float32) / 255.0, size)
    if not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"an image array must be uint8 or float in [0, 1]; got {image.dtype}")
    pixels = image.astype(np.float32)
    if not np.isfinite(pixels).all() or pixels.min() < 0 or pixels.max() > 1:
        raise ValueError("a float image array must hold finite values in [0, 1]")
    return fit_square(pixels, size)


class Predictor:
    """A loaded model that classifies and embeds image files, arrays and report texts."""

    def __init__(
        self, model: UMCLModel, limits: DecodeLimits | None = None, batch_size: int = BATCH_SIZE
    ) -> None:
        self.model = model.eval()
        self.limits = limits or DecodeLimits.from_env()
        self.batch_size = batch_size

    @property
    def labels(self) -> list[str]:
        return list(self.model.label_names)

    @property
    def image_size(self) -> int:
        return self.model.image_size

    def square(self, image: ImageInput) -> np.ndarray:
        """One image → the (S, S) uint8 square the model takes."""
        if isinstance(image, np.ndarray):
            return array_square(image, self.image_size)
        return fit_square(load_image(image, self.limits), self.image_size)

    def embed_images(self, images: Sequence[ImageInput]) -> np.ndarray:
        """(n, D) L2-normalised image embeddings; decoded and encoded a batch at a time."""
        images = _image_list(images)
        out = [np.zeros((0, self.model.settings.embed_dim), np.float32)]
        for start in range(0, len(images), self.batch_size):
            squares = np.stack([self.square(x) for x in images[start : start + self.batch_size]])
            with torch.inference_mode():
                pixels = square_pixels(squares).to(self.model.device)
                out.append(self.model.encode_image(pixels).float().cpu().numpy())
        return np.concatenate(out)

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        """(n, D) L2-normalised report embeddings."""
        if isinstance(texts, str):
            raise TypeError("texts is one string; pass a list of texts")
        out = [np.zeros((0, self.model.settings.embed_dim), np.float32)]
        for start in range(0, len(texts), self.batch_size):
            with torch.inference_mode():
                batch = list(texts[start : start + self.batch_size])
                out.append(self.model.encode_text(batch).float().cpu().numpy())
        return np.concatenate(out)

    def classify(
        self, images: Sequence[ImageInput], findings: list[str] | None = None
    ) -> list[dict[str, dict]]:
        """Per image, per finding: {"probability", "positive", "calibrated"}. `findings`
        defaults to the model's labels; a name outside them gets the uncalibrated zero-shot
        probability, decided at 0.5, with "calibrated": False."""
        names = self._findings(findings)
        embeddings = torch.from_numpy(self.embed_images(images))
        with torch.inference_mode():
            present, absent = (e.float().cpu() for e in self.model.encode_findings(names))
            scale = self.model.logit_scale.exp().float().cpu()
        calibration = self.model.calibration
        probabilities, positives = score_findings(
            embeddings, present, absent, scale, calibration, names
        )
        calibrated = [calibration is not None and calibration.calibrated(n) for n in names]
        return [
            {
                name: {"probability": float(p), "positive": bool(d), "calibrated": c}
                for name, p, d, c in zip(names, p_row, d_row, calibrated, strict=True)
            }
            for p_row, d_row in zip(probabilities.tolist(), positives.tolist(), strict=True)
        ]

    def _findings(self, findings: list[str] | None) -> list[str]:
        if findings is None:
            return self.labels
        if isinstance(findings, str):
            raise TypeError("findings is one string; pass a list of finding names")
        names = list(findings)
        if not names:
            raise ValueError("findings is empty: pass None to score the model's own labels")
        if len(set(names)) != len(names):
            raise ValueError("findings has duplicates")
        unknown = unpromptable(names, self.labels, self.model.prompts.settings)
        if unknown:
            raise ValueError(
                f"{unknown} are outside this model's label space, and its class-specific "
                f"prompts cannot express new names; known: {self.labels}"
            )
        return names


def _image_list(images: Sequence[ImageInput]) -> list[ImageInput]:
    """The images as a list; a lone path or 2-D array is refused rather than iterated."""
    if isinstance(images, str | Path) or (isinstance(images, np.ndarray) and images.ndim == 2):
        raise TypeError("images is one image; pass a list of images")
    return list(images)


def resolve(source: str | Path) -> Path:
    """The model directory for a directory path, or for a model store tag: "umcl:<version>" or
    "umcl:champion" (the store is $BENTOML_HOME's, as for the service)."""
    from umcl import registry

    path = Path(source)
    if path.is_dir():
        return path
    name, sep, version = str(source).partition(":")
    if not isinstance(source, str) or name != registry.MODEL_NAME or not sep or not version:
        raise FileNotFoundError(
            f"{source}: neither a model directory nor a store tag "
            f"({registry.MODEL_NAME}:<version> or {registry.MODEL_NAME}:{CHAMPION})"
        )
    if version == CHAMPION:
        champion = registry.champion()
        if champion is None:
            raise registry.RegistryError(
                f"no champion in the model store ({registry.store_path()}); "
                "promote one with `umcl models promote TAG`"
            )
        return champion.path
    return registry.get(str(source)).path


def load(
    source: str | Path, device: str | torch.device = "cpu", limits: DecodeLimits | None = None
) -> Predictor:
    """A Predictor for a model directory or a store tag (see `resolve`)."""
    return Predictor(UMCLModel.from_pretrained(resolve(source), device), limits)
