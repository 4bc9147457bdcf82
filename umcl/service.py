"""`bentoml serve umcl.service:UMCL` — the champion model behind an HTTP API (DESIGN §7).

Two BentoML services:
- `UMCL` (public, async): checks and decodes uploads (PNG, JPEG, DICOM) exactly as the
  preprocess stage does, and answers classify / embed_image / embed_text. Bad input is refused
  here with a 4xx naming the upload's position and the reason; it never reaches the model.
- `Encoder` (internal): holds the model. Its image and text encoders are batchable, so
  concurrent requests are merged by BentoML's adaptive batching.

The model is the store's champion (`umcl models list`), `UMCL_MODEL=umcl:<version>`, or
`--arg model=umcl:<version>`; a bento built by `umcl package` pins its model that way.
Settings come from the environment: UMCL_MAX_UPLOAD_MB (per file, default 64), UMCL_MAX_IMAGES
(per request, default 64), UMCL_ADAPTIVE_BATCHING (default true), UMCL_MAX_BATCH_SIZE (32).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from http import HTTPStatus
from pathlib import Path
from typing import Any

import aiohttp
import bentoml
import numpy as np
import torch
from bentoml.exceptions import BentoMLException, InvalidArgument

from umcl import registry
from umcl.config import PromptSettings
from umcl.data.dicom import ImageDecodeError
from umcl.data.images import fit_square, load_image
from umcl.model.prompts import unpromptable
from umcl.model.umcl import describe_model, finding_probabilities, input_size, load_model

log = logging.getLogger(__name__)

MAX_UPLOAD_MB = float(os.environ.get("UMCL_MAX_UPLOAD_MB", "64"))
MAX_IMAGES = int(os.environ.get("UMCL_MAX_IMAGES", "64"))
MAX_FINDINGS = 64
MAX_TEXTS = 256
ENCODER_ATTEMPTS = 3
ADAPTIVE_BATCHING = os.environ.get("UMCL_ADAPTIVE_BATCHING", "true").lower() in {
    "1",
    "true",
    "yes",
    "on",
}
MAX_BATCH_SIZE = int(os.environ.get("UMCL_MAX_BATCH_SIZE", "32"))
MAX_LATENCY_MS = 10_000  # a batch waits far less; past this BentoML answers 503 instead of queueing


def _model_tag() -> str:
    """A bento pins the model it was built with (`--arg model=`); otherwise UMCL_MODEL, else the
    store's current champion."""
    tag = getattr(bentoml.use_arguments(), "model", None) or os.environ.get("UMCL_MODEL")
    if tag:
        return tag
    champion = registry.champion()
    if champion is None:
        raise RuntimeError(
            f"no champion in the model store ({registry.store_path()}): run `make run` (or "
            "`umcl package`), promote one with `umcl models promote TAG`, or set UMCL_MODEL"
        )
    return champion.tag


MODEL = bentoml.models.BentoModel(_model_tag())


def _upload_name(path: Path) -> str:
    # BentoML saves an upload as tmpXXXXXXXX<original name>; callers know the original name.
    return re.sub(r"^tmp[a-z0-9_]{8}", "", path.name) or path.name


def _read_upload(index: int, path: Path, size: int) -> np.ndarray:
    """One uploaded file → the (size, size) uint8 square the model takes, or a 4xx error."""
    # Errors name the upload by position: file names from a PACS export often hold patient names,
    # and these messages reach the server log.
    megabytes = path.stat().st_size / 2**20
    if megabytes > MAX_UPLOAD_MB:
        raise BentoMLException(
            f"image {index} is {megabytes:.1f} MB, over the {MAX_UPLOAD_MB:g} MB limit (UMCL_MAX_UPLOAD_MB)",
            error_code=HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        )
    try:
        return fit_square(load_image(path), size)
    except ImageDecodeError as exc:
        reason = str(exc).replace(str(path), f"image {index}")
        raise InvalidArgument(f"{reason}; send a PNG, JPEG or DICOM file") from None


def _read_uploads(images: list[Path], size: int) -> np.ndarray:
    if not images:
        raise InvalidArgument("no images: send at least one file in the `images` field")
    if len(images) > MAX_IMAGES:
        raise InvalidArgument(
            f"{len(images)} images in one request; at most {MAX_IMAGES} (UMCL_MAX_IMAGES)"
        )
    return np.stack([_read_upload(i, path, size) for i, path in enumerate(images)])


@bentoml.service(name="umcl-encoder", workers=1, threads=1)
class Encoder:
    """The model: image and text towers and the prompt learner."""

    model_ref = MODEL

    def __init__(self) -> None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model = load_model(Path(self.model_ref.path), device)

    @bentoml.api(
        batchable=ADAPTIVE_BATCHING, max_batch_size=MAX_BATCH_SIZE, max_latency_ms=MAX_LATENCY_MS
    )
    def embed_images(self, images: np.ndarray) -> np.ndarray:
        """(n, S, S) uint8 squares → (n, D) L2-normalised embeddings."""
        pixels = torch.from_numpy(np.array(images, dtype=np.float32) / 255.0)[:, None]
        with torch.inference_mode():
            return self.model.encode_image(pixels.to(self.model.device)).float().cpu().numpy()

    @bentoml.api(
        batchable=ADAPTIVE_BATCHING, max_batch_size=MAX_BATCH_SIZE, max_latency_ms=MAX_LATENCY_MS
    )
    def embed_texts(self, texts: list[str]) -> np.ndarray:
        with torch.inference_mode():
            return self.model.encode_text(texts).float().cpu().numpy()

    @bentoml.api
    def finding_prompts(self, names: list[str]) -> dict[str, Any]:
        """Present and absent prompt embeddings for `names` and the logit scale."""
        with torch.inference_mode():
            present, absent = self.model.encode_findings(names)
            scale = self.model.logit_scale.exp()
        return {
            "present": present.float().cpu().numpy().tolist(),
            "absent": absent.float().cpu().numpy().tolist(),
            "scale": float(scale),
        }


@bentoml.service(
    name="umcl",
    # Loopback unless `bentoml serve --host` says otherwise.
    http={"host": "127.0.0.1", "port": 3000},
    traffic={"timeout": 120},
)
class UMCL:
    """Chest X-ray classification and embeddings from the champion UMCL model."""

    model_ref = MODEL
    encoder = bentoml.depends(Encoder)

    def __init__(self) -> None:
        description = describe_model(Path(self.model_ref.path))
        self.tag = str(self.model_ref.tag)
        self.labels: list[str] = description["labels"]
        self.size = input_size(description)
        self.prompt = PromptSettings.model_validate(description["prompt"])
        self.prompts: dict[tuple[str, ...], tuple[np.ndarray, np.ndarray, float]] = {}

    def _check_findings(self, findings: list[str] | None) -> list[str]:
        if findings is None:
            return self.labels
        names = [f.strip() for f in findings]
        problems = [
            f"{i} ({f!r})"
            for i, f in enumerate(names)
            if not re.search(r"[A-Za-z0-9]", f) or len(f) > 80
        ]
        if not names:
            raise InvalidArgument("findings is empty: omit it to score the model's own labels")
        if len(names) > MAX_FINDINGS:
            raise InvalidArgument(f"{len(names)} findings; at most {MAX_FINDINGS}")
        if problems:
            raise InvalidArgument(
                f"findings {', '.join(problems)} are not finding names (1–80 characters, with letters)"
            )
        if len(set(names)) != len(names):
            raise InvalidArgument("findings has duplicates")
        unknown = unpromptable(names, self.labels, self.prompt)
        if unknown:
            raise InvalidArgument(
                f"{unknown} are outside this model's label space, and its class-specific prompts cannot express new names; known: {self.labels}"
            )
        return names

    async def _encoder(self, method: str, *args: Any) -> Any:
        """Call the encoder service; a connection the encoder closed while idle in the pool (its
        keep-alive is shorter than the client's: seen under bursts after a pause) is retried."""
        for attempt in range(ENCODER_ATTEMPTS):
            try:
                return await getattr(self.encoder.to_async, method)(*args)
            except aiohttp.ClientConnectionError as exc:
                if attempt == ENCODER_ATTEMPTS - 1:
                    raise
                log.warning("encoder connection dropped (%s); retrying %s", exc, method)

    async def _prompts(self, names: list[str]) -> tuple[np.ndarray, np.ndarray, float]:
        key = tuple(names)
        if key not in self.prompts:
            answer = await self._encoder("finding_prompts", names)
            if len(self.prompts) > 256:
                self.prompts.clear()
            self.prompts[key] = (
                np.asarray(answer["present"], np.float32),
                np.asarray(answer["absent"], np.float32),
                float(answer["scale"]),
            )
        return self.prompts[key]

    async def _embed_uploads(self, images: list[Path]) -> np.ndarray:
        squares = await asyncio.to_thread(_read_uploads, images, self.size)
        return np.array(await self._encoder("embed_images", squares), np.float32)

    @bentoml.api
    async def classify(
        self, images: list[Path], findings: list[str] | None = None
    ) -> dict[str, Any]:
        """Probability that each finding is present, per image. `findings` defaults to the model's
        labels; other names are prompted with the learned context and listed as outside the
        training label space."""
        names = self._check_findings(findings)
        embeddings = await self._embed_uploads(images)
        present, absent, scale = await self._prompts(names)
        probabilities = finding_probabilities(
            torch.from_numpy(embeddings), torch.from_numpy(present), torch.from_numpy(absent), scale
        ).tolist()
        return {
            "model": self.tag,
            "findings": names,
            "outside_label_space": [n for n in names if n not in self.labels],
            "results": [
                {"image": _upload_name(path), "probabilities": dict(zip(names, row, strict=True))}
                for path, row in zip(images, probabilities, strict=True)
            ],
        }

    @bentoml.api
    async def embed_image(self, images: list[Path]) -> dict[str, Any]:
        """L2-normalised image embeddings in the space shared with reports and label prompts."""
        embeddings = await self._embed_uploads(images)
        return {
            "model": self.tag,
            "images": [_upload_name(p) for p in images],
            "embeddings": embeddings.tolist(),
        }

    @bentoml.api
    async def embed_text(self, texts: list[str]) -> dict[str, Any]:
        """L2-normalised report embeddings."""
        if not texts:
            raise InvalidArgument("texts is empty: send at least one report text")
        if len(texts) > MAX_TEXTS:
            raise InvalidArgument(f"{len(texts)} texts in one request; at most {MAX_TEXTS}")
        blank = [i for i, t in enumerate(texts) if not t.strip()]
        if blank:
            raise InvalidArgument(f"texts {blank} are empty")
        embeddings = await self._encoder("embed_texts", texts)
        return {"model": self.tag, "embeddings": np.asarray(embeddings, np.float32).tolist()}
