"""`bentoml serve umcl.service:UMCL` — the champion model behind an HTTP API.

Two BentoML services:
- `UMCL` (public, async): checks and decodes uploads (PNG, JPEG, DICOM) exactly as the
  preprocess stage does, and answers classify / explain (grounding maps) / embed_image /
  embed_text; it serves the try-it page at /ui (umcl/page.py). Bad input is refused
  here, naming the upload's position and the reason; it never reaches the model. /classify
  answers a refused upload with an error entry beside the others' results (a 4xx when none
  could be classified); the embedding routes refuse the whole request.
- `Encoder` (internal): holds the model. Its image and text encoders are batchable, so
  concurrent requests are merged by BentoML's adaptive batching.

Hostile uploads are bounded three times over:
- `UploadGuard` (ASGI middleware, before BentoML reads the body; `umcl/upload_guard.py`): a
  request's size (UMCL_MAX_REQUEST_MB), each file's size (UMCL_MAX_UPLOAD_MB), the number of
  images (UMCL_MAX_IMAGES), and multipart syntax; a body that is neither multipart/form-data
  nor JSON gets a 415; file names are replaced by `image{i}` so that no client file name
  reaches the disk or the log.
- headers before pixels: every image's header is read first (a DICOM header is parsed once, and
  only the first frame's bytes are read after it); one over the pixel budget (UMCL_MAX_PIXELS)
  or a request over UMCL_MAX_REQUEST_PIXELS is refused before anything decodes.
- decoding at reduced scale (umcl/imaging/scaled.py): a large image never exists at full size as
  floats, only as what the format's decoder returns (1–2 bytes a sample); `DecodeGate`: decodes
  in flight across all requests hold at most UMCL_MAX_DECODE_MB of those samples, so concurrent
  large images queue instead of adding up; after a large decode the worker hands the freed
  memory back to the system (`malloc_trim`).
Client errors are logged at INFO without a traceback; library warnings and exception messages
(which can quote a file's header values or path) are withheld from the log (`LogScrubber`,
`umcl/log_privacy.py`).

Monitoring: each classified image is recorded (time, model, decode facts without identity, its
embedding and probabilities; never a file name, header value or pixel) by a background writer
(`umcl/monitor/`; `params.yaml: monitor`, UMCL_MONITOR=off, UMCL_MONITOR_DIR).

Access: `UMCL_API_KEY` set ⇒ `Authorization: Bearer <key>` on every route but `/livez` and
`/readyz`; without a key the service refuses to listen beyond loopback (`umcl/auth.py`).

The model is `UMCL_MODEL=umcl:<version>` when set (also for a built bento, whose own model is the
default: `umcl package` pins it with `--arg model=`), else the store's champion
(`umcl models list`).
Other settings: UMCL_ADAPTIVE_BATCHING (default true), UMCL_MAX_BATCH_SIZE (32).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import ctypes.util
import io
import logging
import os
import re
from collections.abc import AsyncIterator, Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any

import aiohttp
import bentoml
import numpy as np
import torch
from bentoml.exceptions import BentoMLException, InvalidArgument
from PIL import Image

from umcl import registry
from umcl.auth import (
    BearerAuth,
    api_key,
    check_exposure,
    default_host,
    requested_host,
    trust_only_listed_proxies,
)
from umcl.calibration import Calibration
from umcl.config import PromptSettings
from umcl.errors import MissingInputError
from umcl.imaging.images import (
    DecodeLimits,
    ImageDecodeError,
    ImageInfo,
    fit_square,
    inspect_image,
    load_image,
)
from umcl.imaging.limits import (
    IMAGE_FORMAT_UNSUPPORTED,
    IMAGE_TOO_LARGE,
    IMAGE_UNREADABLE,
    env_number,
)
from umcl.imaging.scaled import MIN_DECODED_SIDE, decoded_side
from umcl.inference import Decoded, finding_name, is_text, score_findings, square_pixels
from umcl.log_privacy import quiet_libraries
from umcl.model.folder import describe_model, input_size, read_calibration
from umcl.model.grounding import METHODS, finding_maps, image_map
from umcl.model.prompts import unpromptable
from umcl.model.umcl import UMCLModel
from umcl.monitor.served import decode_facts, start_recorder
from umcl.monitor.store import classified_records, refused_record
from umcl.page import PATH as PAGE_PATH
from umcl.page import app as page_app
from umcl.upload_guard import (
    MAX_IMAGES,
    MAX_REQUEST_PIXELS,
    MAX_UPLOAD_MB,
    MB,
    UPLOAD_NAMES,
    UploadGuard,
    clip,
)

log = logging.getLogger(__name__)

API_KEY = api_key()  # UMCL_API_KEY; refused when too short
check_exposure(requested_host(), API_KEY)  # no key: loopback only (`umcl/auth.py`)
trust_only_listed_proxies()  # UMCL_TRUSTED_PROXIES
LIMITS = DecodeLimits.from_env()  # UMCL_MAX_PIXELS, UMCL_DICOM_MODALITIES
MAX_FINDINGS = 64
MAX_TEXTS = 256
# `/explain` with display: the decoded image for the page, at most this wide (a reduced decode
# keeps at least this much)
DISPLAY_SIDE = MIN_DECODED_SIDE
MAX_DECODE_MB = env_number("UMCL_MAX_DECODE_MB", 256)
MAX_EXPLAIN_IMAGES = int(env_number("UMCL_MAX_EXPLAIN_IMAGES", 4, integer=True))
ENCODER_ATTEMPTS = 3
ADAPTIVE_BATCHING = os.environ.get("UMCL_ADAPTIVE_BATCHING", "true").lower() in {
    "1",
    "true",
    "yes",
    "on",
}
MAX_BATCH_SIZE = int(os.environ.get("UMCL_MAX_BATCH_SIZE", "32"))
MAX_LATENCY_MS = 10_000  # a batch waits far less; past this BentoML answers 503 instead of queueing
UNCALIBRATED_NOTE = (
    "findings listed in 'uncalibrated' have no fitted calibration: their probability is the raw "
    "zero-shot score and their decision uses the threshold 0.5"
)


def _model_tag() -> str:
    """UMCL_MODEL when set; else the model a bento was built with (`--arg model=`); else the
    store's current champion."""
    tag = os.environ.get("UMCL_MODEL") or getattr(bentoml.use_arguments(), "model", None)
    if tag:
        return tag
    champion = registry.champion()
    if champion is None:
        raise MissingInputError(
            f"no champion in the model store ({registry.store_path()}): run `make run` (or "
            "`umcl package`), promote one with `umcl models promote TAG`, or set UMCL_MODEL"
        )
    return champion.tag


MODEL = bentoml.models.BentoModel(_model_tag())


def _is_finding_name(name: str) -> bool:
    """The Python API's rule for a finding name (`umcl/inference.py: finding_name`)."""
    try:
        finding_name(name, 0)
    except (TypeError, ValueError):
        return False
    return True


quiet_libraries()  # at import; again when the service starts


# --- decoding uploads -----------------------------------------------------------------------------


class DecodeGate:
    """Decodes in flight hold at most `capacity` bytes of decoded samples together
    (`ImageInfo.decoded_bytes`; an image larger than that decodes alone): concurrent requests
    queue instead of adding up their memory."""

    def __init__(self, capacity: int) -> None:
        self.capacity, self.in_flight = capacity, 0
        self.changed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def hold(self, size: int) -> AsyncIterator[None]:
        async with self.changed:
            await self.changed.wait_for(
                lambda: self.in_flight == 0 or self.in_flight + size <= self.capacity
            )
            self.in_flight += size
        try:
            yield
        finally:
            async with self.changed:
                self.in_flight -= size
                self.changed.notify_all()


def _release_heap() -> Callable[[], None]:
    """glibc keeps freed memory of mid-sized blocks in the heap; `malloc_trim` hands it back to
    the system after a large decode, so the worker's size follows its load."""
    name = ctypes.util.find_library("c")
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    return (lambda: trim(0)) if trim else (lambda: None)


RELEASE_HEAP = _release_heap()
TRIM_AFTER_PIXELS = 4_000_000  # after a 49 MP PNG the worker kept +190 MB without a trim, +0 with


def _refusal(index: int, path: Path, exc: ImageDecodeError) -> BentoMLException:
    reason = str(exc).replace(str(path), f"image {index}")
    if exc.code == IMAGE_TOO_LARGE:
        refusal = BentoMLException(reason, error_code=HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
    elif exc.code == IMAGE_FORMAT_UNSUPPORTED:
        refusal = BentoMLException(reason, error_code=HTTPStatus.UNSUPPORTED_MEDIA_TYPE)
    else:
        if exc.code == IMAGE_UNREADABLE and "PNG, JPEG or DICOM" not in reason:
            reason += "; send a PNG, JPEG or DICOM file"
        refusal = InvalidArgument(reason)
    refusal.reason_code = exc.code  # what the monitor records of a refused upload
    return refusal


def _inspect_upload(index: int, path: Path) -> ImageInfo:
    """One upload's header, or the 4xx that refuses it. Errors name the upload by position: file
    names from a PACS export often hold patient names, and these messages reach the log."""
    megabytes = path.stat().st_size / MB
    if megabytes > MAX_UPLOAD_MB:
        refusal = BentoMLException(
            f"image {index} is {megabytes:.1f} MB, over the {MAX_UPLOAD_MB:g} MB limit (UMCL_MAX_UPLOAD_MB)",
            error_code=HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        )
        refusal.reason_code = IMAGE_TOO_LARGE
        raise refusal
    try:
        return inspect_image(path, LIMITS)
    except ImageDecodeError as exc:
        raise _refusal(index, path, exc) from None


def inspect_each(images: list[Path]) -> list[ImageInfo | BentoMLException]:
    """Each upload's header, or the refusal of that upload; the request as a whole (how many
    images, their pixels together) is checked here too, before any pixel is decoded."""
    if not images:
        raise InvalidArgument("no images: send at least one file in the `images` field")
    if len(images) > MAX_IMAGES:
        raise BentoMLException(
            f"{len(images)} images in one request; at most {MAX_IMAGES} (UMCL_MAX_IMAGES)",
            error_code=HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        )
    infos: list[ImageInfo | BentoMLException] = []
    for i, path in enumerate(images):
        try:
            infos.append(_inspect_upload(i, path))
        except BentoMLException as refusal:
            infos.append(refusal)
    total = sum(info.pixels for info in infos if isinstance(info, ImageInfo))
    if total > MAX_REQUEST_PIXELS:
        raise BentoMLException(
            f"the {len(images)} images hold {total / 1e6:.1f} megapixels together, over the "
            f"{MAX_REQUEST_PIXELS / 1e6:g} MP limit for one request (UMCL_MAX_REQUEST_PIXELS)",
            error_code=HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        )
    return infos


def inspect_uploads(images: list[Path]) -> list[ImageInfo]:
    """Every upload's header, or the refusal of the first one that fails."""
    infos = inspect_each(images)
    for info in infos:
        if isinstance(info, BentoMLException):
            raise info
    return infos  # type: ignore[return-value]


def status_of(refusal: BentoMLException) -> int:
    return int(refusal.error_code)


def all_refused(refusals: list[BentoMLException]) -> BentoMLException:
    """A request none of whose images could be classified: one refusal as it is; several, with
    each reason, under their common status (400 when they differ)."""
    if len(refusals) == 1:
        return refusals[0]
    statuses = {status_of(r) for r in refusals}
    status = statuses.pop() if len(statuses) == 1 else HTTPStatus.BAD_REQUEST
    reasons = "; ".join(str(r) for r in refusals[:8])
    more = f"; and {len(refusals) - 8} more" if len(refusals) > 8 else ""
    return BentoMLException(
        f"none of the {len(refusals)} images could be classified: {reasons}{more}",
        error_code=HTTPStatus(status),
    )


def error_entry(refusal: BentoMLException) -> dict[str, Any]:
    """How /classify answers one refused upload among others that were classified."""
    return {
        "code": getattr(refusal, "reason_code", None) or "image_refused",
        "status": status_of(refusal),
        "message": str(refusal),
    }


def decode_upload(
    index: int, path: Path, size: int, info: ImageInfo | None = None, display: bool = False
) -> Decoded:
    """One upload → the (size, size) uint8 square the model takes, decoded exactly as the
    preprocess stage decodes a file, with the decoded image's (height, width) (and, with
    `display`, the image itself, at most DISPLAY_SIDE px a side); or the 4xx that refuses it.
    `info`: the upload's inspected header (`inspect_uploads`), so that a DICOM header is parsed
    once per upload."""
    try:
        pixels = load_image(path, LIMITS, info, decoded_side(size))
    except ImageDecodeError as exc:
        raise _refusal(index, path, exc) from None
    shown = display_pixels(pixels) if display else None
    return Decoded(fit_square(pixels, size), pixels.shape[:2], shown)


def display_pixels(pixels: np.ndarray) -> np.ndarray:
    """The decoded image as uint8, its long side at most DISPLAY_SIDE px."""
    height, width = pixels.shape
    scale = min(1.0, DISPLAY_SIDE / max(height, width))
    image = Image.fromarray(np.clip(np.rint(pixels * 255), 0, 255).astype(np.uint8))
    if scale < 1:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = image.resize(size, Image.Resampling.BILINEAR)
    return np.asarray(image)


def png_base64(values: np.ndarray) -> str:
    """A grey image, uint8 or in [0, 1] (255 for 1), as a base64 8-bit PNG."""
    if values.dtype != np.uint8:
        values = np.clip(np.rint(values * 255), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(values).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _upload_names(ctx: bentoml.Context, images: list[Path]) -> list[str]:
    """The clients' file names (clipped), recorded by the guard; else what the temp names keep."""
    with contextlib.suppress(LookupError, AttributeError):
        names = ctx.request.scope.get(UPLOAD_NAMES)
        if names is not None and len(names) == len(images):
            return list(names)
    return [clip(re.sub(r"^tmp[a-z0-9_]{8}", "", p.name) or p.name) for p in images]


@bentoml.service(name="umcl-encoder", workers=1, threads=1)
class Encoder:
    """The model: image and text towers and the prompt learner."""

    model_ref = MODEL

    def __init__(self) -> None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model = UMCLModel.from_pretrained(Path(self.model_ref.path), device)

    @bentoml.api(
        batchable=ADAPTIVE_BATCHING, max_batch_size=MAX_BATCH_SIZE, max_latency_ms=MAX_LATENCY_MS
    )
    def embed_images(self, images: np.ndarray) -> np.ndarray:
        """(n, S, S) uint8 squares → (n, D) L2-normalised embeddings."""
        pixels = square_pixels(images)
        with torch.inference_mode():
            return self.model.encode_image(pixels.to(self.model.device)).float().cpu().numpy()

    @bentoml.api(
        batchable=ADAPTIVE_BATCHING, max_batch_size=MAX_BATCH_SIZE, max_latency_ms=MAX_LATENCY_MS
    )
    def embed_texts(self, texts: list[str]) -> np.ndarray:
        with torch.inference_mode():
            return self.model.encode_text(texts).float().cpu().numpy()

    @bentoml.api
    def finding_maps(
        self,
        squares: np.ndarray,
        present: np.ndarray,
        absent: np.ndarray,
        scale: float,
        method: str,
    ) -> np.ndarray:
        """(n, F, S, S) grounding maps of (n, S, S) uint8 squares for the findings whose prompt
        embeddings `finding_prompts` gave (umcl/model/grounding.py)."""
        device = self.model.device
        pixels = square_pixels(squares).to(device)
        prompts = [
            torch.from_numpy(np.asarray(e, np.float32)).to(device) for e in (present, absent)
        ]
        return finding_maps(self.model, pixels, *prompts, scale, method).cpu().numpy()

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


@bentoml.asgi_app(page_app, path=PAGE_PATH)
@bentoml.service(
    name="umcl",
    # Loopback on a workstation, all interfaces in a container; `bentoml serve --host` decides.
    http={"host": default_host(), "port": 3000},
    traffic={"timeout": 120},
)
class UMCL:
    """Chest X-ray classification and embeddings from the champion UMCL model."""

    model_ref = MODEL
    encoder = bentoml.depends(Encoder)

    def __init__(self) -> None:
        quiet_libraries()  # BentoML has configured logging by now
        directory = Path(self.model_ref.path)
        description = describe_model(directory)
        self.tag = str(self.model_ref.tag)
        self.labels: list[str] = description["labels"]
        self.size = input_size(directory)  # refuses an older model layout with its reason
        self.prompt = PromptSettings.model_validate(description["prompt"])
        # Per-finding Platt scaling and thresholds fitted on validation (None: identity).
        self.calibration = read_calibration(directory)
        self.thresholds = self.calibration or Calibration.identity([])  # 0.5 where none fitted
        self.prompts: dict[tuple[str, ...], tuple[np.ndarray, np.ndarray, float]] = {}
        self.gate = DecodeGate(int(MAX_DECODE_MB * MB))
        # What this worker classifies, recorded off the request path (umcl/monitor/store.py).
        self.recorder = start_recorder()

    @bentoml.on_shutdown
    def _flush_records(self) -> None:
        if self.recorder is not None:
            self.recorder.close()

    def _check_findings(self, findings: list[str] | None) -> list[str]:
        if findings is None:
            return self.labels
        names = [f.strip() for f in findings]
        if not names:
            raise InvalidArgument("findings is empty: omit it to score the model's own labels")
        if len(names) > MAX_FINDINGS:
            raise InvalidArgument(f"{len(names)} findings; at most {MAX_FINDINGS}")
        problems = [f"{i} ({clip(f)!r})" for i, f in enumerate(names) if not _is_finding_name(f)]
        if problems:
            raise InvalidArgument(
                f"findings {', '.join(problems[:8])} are not finding names (1–80 characters, with letters)"
            )
        if len(set(names)) != len(names):
            raise InvalidArgument("findings has duplicates")
        unknown = unpromptable(names, self.labels, self.prompt)
        if unknown:
            raise InvalidArgument(
                f"{[clip(u) for u in unknown[:8]]} are outside this model's label space, and its class-specific prompts cannot express new names; known: {self.labels}"
            )
        return names

    async def _encoder(self, method: str, *args: Any) -> Any:
        """Call the encoder service; a connection the encoder closed while idle in the pool (its
        keep-alive is shorter than the client's: seen under bursts after a pause) is retried,
        also when it closed while the answer was being read (aiohttp then raises RuntimeError
        "Connection closed." or times out: seen twice in 5,600 requests at 32 clients). The
        encoder's calls are pure, so a retry is safe."""
        for attempt in range(ENCODER_ATTEMPTS):
            try:
                return await getattr(self.encoder.to_async, method)(*args)
            except (
                aiohttp.ClientConnectionError,
                aiohttp.ClientPayloadError,
                TimeoutError,
                RuntimeError,
            ) as exc:
                dropped = not isinstance(exc, RuntimeError) or "Connection closed" in str(exc)
                if not dropped or attempt == ENCODER_ATTEMPTS - 1:
                    raise
                log.warning(
                    "encoder connection dropped (%s); retrying %s", type(exc).__name__, method
                )

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

    async def _decode(
        self, index: int, path: Path, info: ImageInfo, display: bool = False
    ) -> Decoded:
        async with self.gate.hold(info.decoded_bytes):
            decoded = await asyncio.to_thread(decode_upload, index, path, self.size, info, display)
        if info.pixels >= TRIM_AFTER_PIXELS:
            RELEASE_HEAP()
        return decoded

    async def _embed_uploads(self, images: list[Path]) -> tuple[np.ndarray, list[ImageInfo]]:
        infos = await asyncio.to_thread(inspect_uploads, images)
        squares = [
            (await self._decode(i, p, info)).square
            for i, (p, info) in enumerate(zip(images, infos, strict=True))
        ]
        embeddings = await self._encoder("embed_images", np.stack(squares))
        return np.array(embeddings, np.float32), infos

    async def _scores(
        self, embeddings: np.ndarray, names: list[str]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        present, absent, scale = await self._prompts(names)
        return score_findings(
            torch.from_numpy(embeddings),
            torch.from_numpy(present),
            torch.from_numpy(absent),
            scale,
            self.calibration,
            names,
        )

    async def _decode_each(
        self, images: list[Path], display: bool = False
    ) -> tuple[list[Decoded | BentoMLException], list[ImageInfo | BentoMLException]]:
        """Each upload's square and size, or its refusal; with the monitor on, each refusal's
        reason code is recorded (a refusal of the whole request too)."""
        try:
            infos = await asyncio.to_thread(inspect_each, images)
        except BentoMLException as exc:
            self._record_refusals([exc])
            raise
        decoded: list[Decoded | BentoMLException] = []
        for i, (path, info) in enumerate(zip(images, infos, strict=True)):
            try:
                if isinstance(info, BentoMLException):
                    raise info
                decoded.append(await self._decode(i, path, info, display))
            except BentoMLException as refusal:
                decoded.append(refusal)
        self._record_refusals([d for d in decoded if isinstance(d, BentoMLException)])
        return decoded, infos

    def _record_refusals(self, refusals: list[BentoMLException]) -> None:
        codes = [getattr(r, "reason_code", None) for r in refusals]
        if self.recorder is not None and any(codes):
            self.recorder.add([refused_record(self.tag, code) for code in codes if code])

    async def _record(
        self,
        embeddings: np.ndarray,
        infos: list[ImageInfo],
        names: list[str],
        probabilities: torch.Tensor,
    ) -> None:
        """Record each image with the probabilities of the model's own findings (whatever the
        request asked), so that windows compare with the reference finding by finding."""
        if self.recorder is None:
            return
        try:
            if names != self.labels:
                probabilities, _ = await self._scores(embeddings, self.labels)
            facts = [decode_facts(info) for info in infos]
            records = classified_records(self.tag, facts, embeddings, probabilities.numpy())
            self.recorder.add(records)
        except Exception as exc:  # the answer matters more than its record: never a 5xx for it
            log.warning("monitor: %d images not recorded (%s)", len(infos), type(exc).__name__)

    @bentoml.api
    async def classify(
        self, images: list[Path], findings: list[str] | None = None, *, ctx: bentoml.Context
    ) -> dict[str, Any]:
        """Per image and finding: the calibrated probability that the finding is present and
        whether it passes the finding's threshold, `{"probability": p, "positive": bool}`.
        `findings` defaults to the model's labels; other names are prompted with the learned
        context and listed as outside the training label space. Findings without a fitted
        calibration (those outside the label space among them) are listed in "uncalibrated":
        their probability is the raw zero-shot score and their decision uses 0.5.
        One entry per upload, in order: its findings, or `{"error": {"code", "status",
        "message"}}` when that upload was refused; the answer is a 4xx only when every upload
        (or the request as a whole) was refused."""
        body, _, _ = await self._classify(images, self._check_findings(findings), ctx)
        return body

    @bentoml.api
    async def explain(
        self,
        images: list[Path],
        findings: list[str] | None = None,
        method: str = "similarity",
        display: bool = False,
        *,
        ctx: bentoml.Context,
    ) -> dict[str, Any]:
        """`classify`'s answer, each classified upload's entry with `"maps"`: per finding, where
        the image shows it, as a base64 8-bit grey PNG of the decoded image's size (a large image's
        reduced scale, long side ≥ MIN_DECODED_SIDE; 255: where
        it shows the finding most; `method`: similarity or gradcam, umcl/model/grounding.py); with
        `display`, `"display"`: the decoded image as a PNG (at most DISPLAY_SIDE px a side, for
        the page: a browser cannot show a DICOM). At most UMCL_MAX_EXPLAIN_IMAGES uploads
        (default 4): a map is computed per finding."""
        if method not in METHODS:
            raise InvalidArgument(f"method {clip(method)!r}: use one of {list(METHODS)}")
        if len(images) > MAX_EXPLAIN_IMAGES:
            raise BentoMLException(
                f"{len(images)} images to explain; at most {MAX_EXPLAIN_IMAGES} (UMCL_MAX_EXPLAIN_IMAGES)",
                error_code=HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            )
        names = self._check_findings(findings)
        body, decoded, kept = await self._classify(images, names, ctx, display)
        squares = np.stack([decoded[i].square for i in kept])
        present, absent, scale = await self._prompts(names)  # cached, as classify used them
        maps = await self._encoder("finding_maps", squares, present, absent, scale, method)
        maps = np.asarray(maps, np.float32)
        for k, i in enumerate(kept):
            shape = decoded[i].shape
            body["results"][i]["maps"] = {
                name: png_base64(image_map(maps[k, j], *shape)) for j, name in enumerate(names)
            }
            if display:
                body["results"][i]["display"] = png_base64(decoded[i].display)
        body["method"] = method
        return body

    async def _classify(
        self, images: list[Path], names: list[str], ctx: bentoml.Context, display: bool = False
    ) -> tuple[dict[str, Any], list[Decoded | BentoMLException], list[int]]:
        """classify's answer, each upload's decoding (or refusal) and which were classified."""
        decoded, infos = await self._decode_each(images, display)
        kept = [i for i, item in enumerate(decoded) if isinstance(item, Decoded)]
        refusals = [item for item in decoded if isinstance(item, BentoMLException)]
        if not kept:
            raise all_refused(refusals)
        if refusals:  # counts and codes only: the messages may quote a header
            log.info(
                "%d of %d images refused (%s)",
                len(refusals),
                len(images),
                ", ".join(sorted({error_entry(r)["code"] for r in refusals})),
            )
        answer = await self._encoder("embed_images", np.stack([decoded[i].square for i in kept]))
        embeddings = np.array(answer, np.float32)
        probabilities, positives = await self._scores(embeddings, names)
        await self._record(embeddings, [infos[i] for i in kept], names, probabilities)
        uncalibrated = [
            n for n in names if self.calibration is None or not self.calibration.calibrated(n)
        ]
        scored = dict(
            zip(kept, zip(probabilities.tolist(), positives.tolist(), strict=True), strict=True)
        )
        results = []
        for i, image in enumerate(_upload_names(ctx, images)):
            if i in scored:
                p_row, d_row = scored[i]
                results.append(
                    {
                        "image": image,
                        "findings": {
                            n: {"probability": p, "positive": d}
                            for n, p, d in zip(names, p_row, d_row, strict=True)
                        },
                    }
                )
            else:
                results.append({"image": image, "error": error_entry(decoded[i])})
        body = {
            "model": self.tag,
            "findings": names,
            "outside_label_space": [n for n in names if n not in self.labels],
            "uncalibrated": uncalibrated,
            "thresholds": {n: self.thresholds.threshold(n) for n in names},
            "classified": len(kept),
            "refused": len(refusals),
            "results": results,
        }
        if uncalibrated:
            body["note"] = UNCALIBRATED_NOTE
        return body, decoded, kept

    @bentoml.api
    async def embed_image(self, images: list[Path], *, ctx: bentoml.Context) -> dict[str, Any]:
        """L2-normalised image embeddings in the space shared with reports and label prompts."""
        embeddings, _ = await self._embed_uploads(images)
        return {
            "model": self.tag,
            "images": _upload_names(ctx, images),
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
            raise InvalidArgument(f"texts {blank[:16]} are empty")
        invalid = [i for i, t in enumerate(texts) if not is_text(t)]
        if invalid:
            raise InvalidArgument(f"texts {invalid[:16]} are not valid Unicode text")
        embeddings = await self._encoder("embed_texts", texts)
        return {"model": self.tag, "embeddings": np.asarray(embeddings, np.float32).tolist()}


def _route_fields() -> dict[str, tuple[frozenset[str], frozenset[str]]]:
    """Each public route's file fields and text fields, from the API signatures themselves."""
    fields = {}
    for name, api in UMCL.apis.items():
        spec = api.input_spec
        files = frozenset(getattr(spec, "multipart_fields", ()))
        fields[f"/{api.route.strip('/') or name}"] = (files, frozenset(spec.model_fields) - files)
    return fields


# Of our middlewares the first added is the outermost: a request without the key is refused
# before the upload guard reads its body.
UMCL.add_asgi_middleware(BearerAuth, key=API_KEY)
UMCL.add_asgi_middleware(UploadGuard, fields=_route_fields())
