"""Offline inference with a saved model: `umcl.load(source)` → a `Predictor`.

    import umcl
    predictor = umcl.load("umcl:champion")        # or "umcl:<version>", or a model directory
    results = predictor.classify(["study.dcm", "film.png"])
    results[0]["findings"]["Pneumonia"]  # {"probability": 0.93, "positive": True, "calibrated": True}
    results[1]  # {"image": "film.png", "error": {"code": "image_unreadable", "message": …}}

Image files are decoded exactly as the preprocess stage decodes them (`load_image` +
`fit_square`, umcl/imaging/images.py), so a file gets the scores the service gives its upload.
In-memory images follow the same rules: a PIL image is converted as its file would be; a numpy
array or torch tensor is (H, W) grayscale or (H, W, C) channels-last with C from 1 to 4 (colour
turns grey by the luma weights Pillow uses for a colour file, alpha is dropped), uint8 or float
in [0, 1]; every one is held to the files' pixel budget (`DecodeLimits.max_pixels`). An input
that cannot be scored is named by position ("image 3: …"): `classify` answers it with an error
entry and scores the others; `square` and `embed_images` raise the error.
Scores come from `score_findings`, the one function the service (umcl/service.py) uses too.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from umcl.calibration import Calibration
from umcl.errors import InputError, MissingInputError
from umcl.findings import calibrated_flags, checked_findings, is_text, listed, scored_findings
from umcl.imaging.images import (
    DecodeLimits,
    ImageDecodeError,
    _raster_pixels,
    fit_square,
    load_image,
)
from umcl.imaging.limits import IMAGE_MISSING, IMAGE_TOO_LARGE, IMAGE_UNREADABLE
from umcl.imaging.scaled import decoded_side, shrink
from umcl.model.grounding import METHODS, Method, finding_maps, image_map
from umcl.model.umcl import UMCLModel, finding_logits

if TYPE_CHECKING:
    from umcl.registry import Entry

BATCH_SIZE = 32  # images or texts per forward pass
CHAMPION = "champion"
MAX_CHANNELS = 4  # grey, grey + alpha, RGB, RGBA
# ITU-R 601-2 luma: the weights of Pillow's convert("L"), which turns a colour PNG or JPEG grey
# in `load_image` (umcl/imaging/images.py); a float colour array turns grey as its file would.
LUMA = np.array([0.299, 0.587, 0.114], np.float32)

ImageInput = str | os.PathLike[str] | np.ndarray | torch.Tensor | Image.Image
# Reason codes of in-memory inputs refused by `classify` (files have the decoder's codes).
IMAGE_INVALID = "image_invalid"  # an array of the wrong shape, type or values
IMAGE_NOT_AN_IMAGE = "image_not_an_image"  # an object that is no image type at all


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


# -- one input → 2-D float32 in [0, 1] --------------------------------------------------------------


def check_image_shape(shape: tuple[int, ...], name: str, limits: DecodeLimits) -> None:
    """(H, W) or channels-last (H, W, C), not empty and within the pixel budget a file is held
    to: checked on the shape alone, before a pixel is copied or converted."""
    colour = len(shape) == 3 and 1 <= shape[2] <= MAX_CHANNELS
    if len(shape) != 2 and not colour:
        hint = " (channels first? move them last)" if len(shape) == 3 and shape[0] <= 4 else ""
        raise InputError(
            f"{name}: an image array must be 2-D grayscale (H, W) or channels-last (H, W, C) "
            f"with C from 1 to {MAX_CHANNELS}; got shape {shape}{hint}"
        )
    height, width = shape[:2]
    if height == 0 or width == 0:
        raise InputError(f"{name}: the image is empty (shape {shape})")
    if height * width > limits.max_pixels:
        raise ImageDecodeError(
            f"{name}: image has {height * width / 1e6:.1f} megapixels, over the "
            f"{limits.max_pixels / 1e6:g} MP limit (UMCL_MAX_PIXELS, or umcl.load(limits=…))",
            IMAGE_TOO_LARGE,
        )


def dtype_refusal(dtype: np.dtype, name: str) -> ValueError:
    if np.issubdtype(dtype, np.integer):
        # 12-bit data stored in uint16 is as common as 16-bit: guessing the depth would shift
        # every grey level without a word.
        return ValueError(
            f"{name}: an array of {dtype} does not say its bit depth; pass uint8 or float in "
            "[0, 1] (e.g. image / 4095 for 12-bit data)"
        )
    return ValueError(f"{name}: an array of {dtype} is not an image; pass uint8 or float in [0, 1]")


def check_unit_range(image: np.ndarray, name: str) -> None:
    if not np.isfinite(image).all():
        raise InputError(f"{name}: the image array holds NaN or infinite values")
    low, high = float(image.min()), float(image.max())
    if low < 0 or high > 1:
        raise InputError(
            f"{name}: a float image array must hold values in [0, 1]; its values span {low:g} "
            f"to {high:g} (0–255 data: pass uint8 or divide by 255)"
        )


def gray_uint8(image: np.ndarray) -> np.ndarray:
    """(H, W[, C]) uint8 → (H, W): colour through Pillow's convert("L"), exactly as a colour
    PNG's pixels are turned grey (grey + alpha keeps its grey; alpha is dropped)."""
    if image.ndim == 2 or image.shape[2] <= 2:
        return image if image.ndim == 2 else image[..., 0]
    return np.asarray(Image.fromarray(np.ascontiguousarray(image[..., :3])).convert("L"))


def gray_float(image: np.ndarray) -> np.ndarray:
    """(H, W[, C]) float in [0, 1] → (H, W) float32, colour by the same luma weights."""
    pixels = image.astype(np.float32, copy=False)
    if pixels.ndim == 2 or pixels.shape[2] <= 2:
        return pixels if pixels.ndim == 2 else pixels[..., 0]
    return pixels[..., :3] @ LUMA


def array_pixels(image: np.ndarray, name: str, limits: DecodeLimits) -> np.ndarray:
    """An array → 2-D float32 in [0, 1]: uint8 divided by 255 as `load_image` divides an 8-bit
    file (an array and its PNG agree), float taken as it is once it lies in [0, 1]."""
    check_image_shape(image.shape, name, limits)
    if image.dtype == np.uint8:
        return gray_uint8(image).astype(np.float32) / 255.0
    if not np.issubdtype(image.dtype, np.floating):
        raise dtype_refusal(image.dtype, name)
    check_unit_range(image, name)
    return gray_float(image)


def tensor_array(image: torch.Tensor, name: str, limits: DecodeLimits) -> np.ndarray:
    """A tensor's values as an array on the CPU; its shape is checked before the copy."""
    check_image_shape(tuple(image.shape), name, limits)
    image = image.detach().cpu()
    return (image.float() if image.dtype == torch.bfloat16 else image).numpy()  # no numpy bf16


def pil_pixels(image: Image.Image, name: str, limits: DecodeLimits, min_side: int) -> np.ndarray:
    """A PIL image converted as `load_image` converts the PNG or JPEG file it may come from
    (16-bit as 16-bit, EXIF orientation included): an opened file scores as its path does."""
    width, height = image.size
    check_image_shape((height, width), name, limits)
    if image.mode == "F":  # convert("L") would clip floats in [0, 1] to black
        return shrink(array_pixels(np.asarray(image), name, limits), min_side)
    # its errors start with the path given: `name`
    return _raster_pixels(Path(name), image, min_side)


def file_pixels(path: Path, name: str, limits: DecodeLimits, min_side: int) -> np.ndarray:
    if path.is_dir():  # load_image would call it missing
        raise ImageDecodeError(f"{name}: {path} is a directory, not an image file", IMAGE_MISSING)
    try:
        return load_image(path, limits, min_side=min_side)
    except ImageDecodeError as exc:
        raise ImageDecodeError(f"{name}: {exc}", exc.code) from None


def image_pixels(image: object, name: str, limits: DecodeLimits, min_side: int = 0) -> np.ndarray:
    """One input → 2-D float32 in [0, 1], or an error whose message starts with `name`.
    `min_side`: a large image shrunk as `load_image` shrinks a file (an array as its PNG)."""
    if isinstance(image, str | os.PathLike):
        if not os.fspath(image):  # Path("") is the working directory
            raise InputError(f"{name}: the path is empty")
        return file_pixels(Path(image), name, limits, min_side)
    if isinstance(image, Image.Image):
        return pil_pixels(image, name, limits, min_side)
    if isinstance(image, torch.Tensor):
        image = tensor_array(image, name, limits)
    if isinstance(image, np.ndarray):
        return shrink(array_pixels(image, name, limits), min_side)
    hint = " (np.asarray it first)" if isinstance(image, list | tuple) else ""
    raise TypeError(
        f"{name}: {type(image).__name__} is not an image type; pass a file path, a numpy array, "
        f"a torch tensor or a PIL image{hint}"
    )


# -- names and texts ------------------------------------------------------------------------------


def text_list(texts: Iterable[str]) -> list[str]:
    """The texts as a list, each non-blank, valid Unicode text (the service's rule)."""
    if isinstance(texts, str):
        raise TypeError("texts is one string; pass a list of texts")
    texts = listed(texts, "texts", "texts")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"text {index} is {type(text).__name__}, not str")
        if not text.strip():
            raise InputError(f"text {index} is empty")
        if not is_text(text):
            raise InputError(f"text {index} is not valid Unicode text (a lone surrogate)")
    return texts


def input_name(image: object, index: int) -> str:
    """How a result names its input: a path as the caller gave it, else its position."""
    if isinstance(image, str | os.PathLike):
        try:
            return os.fspath(image)
        except Exception:  # a PathLike whose __fspath__ fails: named by position; decoding says why
            pass
    return f"image {index}"


def refusal_code(exc: Exception) -> str:
    """The reason code of an input's refusal: a decode error's own (umcl/imaging/limits.py), else
    what kind of input it was."""
    if isinstance(exc, ImageDecodeError):
        return exc.code
    if isinstance(exc, TypeError):
        return IMAGE_NOT_AN_IMAGE
    if isinstance(exc, OSError):
        return IMAGE_UNREADABLE
    return IMAGE_INVALID


def _one_image(images: object) -> bool:
    """A lone path (a str is a sequence of characters), PIL image, or array or tensor that is one
    image: (H, W), or (H, W, C) with C ≤ 4 (not a stack of images a few pixels wide)."""
    if isinstance(images, str | bytes | os.PathLike | Image.Image):
        return True
    if not isinstance(images, np.ndarray | torch.Tensor):
        return False
    shape = tuple(images.shape)
    return len(shape) == 2 or (len(shape) == 3 and shape[2] <= MAX_CHANNELS)


def _image_list(images: Iterable[ImageInput]) -> list[ImageInput]:
    """The images as a list; a lone image is refused rather than iterated."""
    if _one_image(images):
        raise TypeError("images is one image; pass a list of images")
    return listed(images, "images", "images")


@dataclass(frozen=True)
class Decoded:
    square: np.ndarray  # (S, S) uint8, the model's input
    shape: tuple[int, int]  # the decoded image's (height, width)
    display: np.ndarray | None = None  # the decoded image for a person to see (the service's page)


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

    def square(self, image: ImageInput, index: int = 0) -> np.ndarray:
        """One image → the (S, S) uint8 square the model takes; errors call it image `index`."""
        pixels = image_pixels(image, f"image {index}", self.limits, decoded_side(self.image_size))
        return fit_square(pixels, self.image_size)

    def embed_images(self, images: Iterable[ImageInput]) -> np.ndarray:
        """(n, D) L2-normalised image embeddings; decoded and encoded a batch at a time."""
        images = _image_list(images)
        out = [np.zeros((0, self.model.settings.embed_dim), np.float32)]
        for start in range(0, len(images), self.batch_size):
            batch = images[start : start + self.batch_size]
            squares = np.stack([self.square(x, start + i) for i, x in enumerate(batch)])
            out.append(self.embed_squares(squares))
        return np.concatenate(out)

    def embed_texts(self, texts: Iterable[str]) -> np.ndarray:
        """(n, D) L2-normalised report embeddings."""
        texts = text_list(texts)
        out = [np.zeros((0, self.model.settings.embed_dim), np.float32)]
        for start in range(0, len(texts), self.batch_size):
            with torch.inference_mode():
                batch = texts[start : start + self.batch_size]
                out.append(self.model.encode_text(batch).float().cpu().numpy())
        return np.concatenate(out)

    def embed_squares(self, squares: np.ndarray) -> np.ndarray:
        """(n, S, S) uint8 squares (`square`) → (n, D) L2-normalised embeddings, one forward
        pass."""
        with torch.inference_mode():
            pixels = square_pixels(squares).to(self.model.device)
            return self.model.encode_image(pixels).float().cpu().numpy()

    def classify(
        self, images: Iterable[ImageInput], findings: Iterable[str] | None = None
    ) -> list[dict]:
        """One entry per image, in order: `{"image": name, "findings": {finding: {"probability",
        "positive", "calibrated"}}}`, or `{"image": name, "error": {"code", "message"}}` for an
        input that cannot be scored (the others are scored all the same). `name` is a path as
        given, else "image <position>". `findings` defaults to the model's labels; names are
        stripped, as the service strips them. A name outside the labels gets the uncalibrated
        zero-shot probability, decided at 0.5, with "calibrated": False."""
        return self._entries(images, findings, None)

    def explain(
        self,
        images: Iterable[ImageInput],
        findings: Iterable[str] | None = None,
        method: Method = "similarity",
    ) -> list[dict]:
        """`classify`'s entries, each scored image with `"maps": {finding: (H, W) float32 in
        [0, 1]}` over the image as it was decoded (its orientation; its size, or for a large image
        the reduced scale it is decoded at, long side ≥ 1024 px): where the image shows each
        finding, 1 the most (umcl/model/grounding.py: the methods; the pointing game
        in benchmarks/RESULTS.md says how well each finds the demo's findings)."""
        if method not in METHODS:
            raise InputError(f"method {method!r}: use one of {list(METHODS)}")
        return self._entries(images, findings, method)

    def _entries(
        self, images: Iterable[ImageInput], findings: Iterable[str] | None, method: Method | None
    ) -> list[dict]:
        names = self.finding_names(findings)
        images = _image_list(images)
        scorer = self.scorer(names)
        if method is not None:  # on the model's device, for the maps
            present, absent, scale = self.prompt_embeddings(names)
        calibrated = calibrated_flags(self.model.calibration, names)
        entries: list[dict] = []
        for start in range(0, len(images), self.batch_size):  # decoded a batch at a time
            batch = [
                self.decoded(image, start + i)
                for i, image in enumerate(images[start : start + self.batch_size])
            ]
            good = [item for item in batch if isinstance(item, Decoded)]
            if good:
                pixels = square_pixels(np.stack([g.square for g in good])).to(self.model.device)
                with torch.inference_mode():
                    embeddings = self.model.encode_image(pixels).float().cpu().numpy()
                probabilities, positives = scorer(embeddings)
                if method is not None:
                    maps = finding_maps(self.model, pixels, present, absent, scale, method)
                    maps = maps.float().cpu().numpy()
            scored = iter(range(len(good)))
            for i, item in enumerate(batch):
                entry: dict = {"image": input_name(images[start + i], start + i)}
                if isinstance(item, Decoded):
                    k = next(scored)
                    entry["findings"] = scored_findings(
                        names, probabilities[k].tolist(), positives[k].tolist(), calibrated
                    )
                    if method is not None:
                        entry["maps"] = {
                            name: image_map(maps[k, j], *item.shape) for j, name in enumerate(names)
                        }
                else:
                    entry["error"] = item
                entries.append(entry)
        return entries

    def decoded(self, image: ImageInput, index: int) -> Decoded | dict[str, str]:
        """The image's square and decoded size, or why it cannot be scored: {"code", "message"}."""
        name = f"image {index}"
        try:
            pixels = image_pixels(image, name, self.limits, decoded_side(self.image_size))
        except (ValueError, TypeError, OSError, RuntimeError) as exc:
            # ImageDecodeError and InputError are ValueErrors; a tensor that cannot be read (a
            # meta, nested or lazily conjugated one) raises RuntimeError or NotImplementedError.
            message = str(exc) if str(exc).startswith(f"{name}:") else f"{name}: {exc}"
            return {"code": refusal_code(exc), "message": message}
        return Decoded(fit_square(pixels, self.image_size), pixels.shape[:2])

    def prompt_embeddings(
        self, names: list[str]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(present, absent, scale) of checked finding names, float, on the model's device;
        made under no_grad, not inference mode, so that a gradient method can use them."""
        with torch.no_grad():
            present, absent = (e.float() for e in self.model.encode_findings(names))
            return present, absent, self.model.logit_scale.exp().float()

    def scorer(
        self, findings: Iterable[str] | None = None
    ) -> Callable[[np.ndarray], tuple[torch.Tensor, torch.Tensor]]:
        """A function from image embeddings (n, D) to (probabilities, positives), both (n, F),
        with the findings' prompts encoded once."""
        names = self.finding_names(findings)
        present, absent, scale = (t.cpu() for t in self.prompt_embeddings(names))
        calibration = self.model.calibration
        return lambda embeddings: score_findings(
            torch.from_numpy(embeddings), present, absent, scale, calibration, names
        )

    def score(
        self, embeddings: np.ndarray, findings: Iterable[str] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(probabilities, positives), both (n, F), of images already embedded (`embed_images`),
        as `classify` scores them."""
        return self.scorer(findings)(embeddings)

    def finding_names(self, findings: Iterable[str] | None = None) -> list[str]:
        """The names `classify` scores: the model's labels, or `findings` checked and stripped
        (the service's rule, umcl/findings.py)."""
        return checked_findings(findings, self.labels, self.model.prompts.settings)


# -- loading --------------------------------------------------------------------------------------


def _stored(tag: str) -> Entry:
    """The store's entry for `tag`; one BentoML cannot even parse is refused as not found."""
    from bentoml.exceptions import BentoMLException

    from umcl import registry

    try:
        return registry.get(tag)
    except BentoMLException as exc:  # e.g. "Invalid Tag umcl:bad tag!"
        raise registry.RegistryError(f"{tag}: not a model store tag ({exc})") from None


def resolve(source: str | os.PathLike[str]) -> Path:
    """The model directory for a directory path, or for a model store tag: "umcl:<version>" or
    "umcl:champion" (the store is $BENTOML_HOME's, as for the service)."""
    from umcl import registry

    if not isinstance(source, str | os.PathLike):
        raise TypeError(f"source is {type(source).__name__}; pass a model directory or a store tag")
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    if path.is_file():
        raise NotADirectoryError(
            f"{source}: a file, not a model directory (pass the directory holding it)"
        )
    name, sep, version = str(source).partition(":")
    if not isinstance(source, str) or name != registry.MODEL_NAME or not sep or not version:
        raise MissingInputError(
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
    return _stored(source).path


def load(
    source: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    limits: DecodeLimits | None = None,
) -> Predictor:
    """A Predictor for a model directory or a store tag (see `resolve`)."""
    return Predictor(UMCLModel.from_pretrained(resolve(source), device), limits)
