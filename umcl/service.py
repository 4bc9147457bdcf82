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
- headers before pixels (`umcl/serving/uploads.py`): every image's header is read first (a DICOM
  header is parsed once, and only the first frame's bytes are read after it); one over the pixel
  budget (UMCL_MAX_PIXELS) or a request over UMCL_MAX_REQUEST_PIXELS is refused before anything
  decodes.
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
(`umcl models list`), looked up when the service starts.
Other settings: UMCL_ADAPTIVE_BATCHING (default true), UMCL_MAX_BATCH_SIZE (32). Every setting is
read once, from the environment, into `SETTINGS` (`umcl/serving/settings.py`); importing this
module reads no file: the params file, the model store and the C library are read when the
service starts.
"""

from __future__ import annotations

import asyncio
import logging
from http import HTTPStatus
from pathlib import Path
from typing import Any

import aiohttp
import bentoml
import numpy as np
import torch
from bentoml.exceptions import BentoMLException, InvalidArgument

from umcl import registry
from umcl.auth import BearerAuth, check_exposure, default_host, trust_only_listed_proxies
from umcl.calibration import Calibration
from umcl.config import PromptSettings
from umcl.errors import InputError, MissingInputError
from umcl.findings import calibrated_flags, checked_findings, is_text, scored_findings
from umcl.imaging.images import ImageInfo
from umcl.inference import Decoded, score_findings, square_pixels
from umcl.log_privacy import clip, quiet_libraries
from umcl.model.folder import describe_model, input_size, read_calibration
from umcl.model.grounding import METHODS, finding_maps, image_map
from umcl.model.umcl import UMCLModel
from umcl.monitor.served import decode_facts, start_recorder
from umcl.monitor.store import classified_records, refused_record
from umcl.page import PATH as PAGE_PATH
from umcl.page import app as page_app
from umcl.serving.settings import MB, ServingSettings
from umcl.serving.uploads import (
    TRIM_AFTER_PIXELS,
    DecodeGate,
    all_refused,
    decode_upload,
    error_entry,
    heap_release,
    inspect_each,
    inspect_uploads,
    png_base64,
    upload_names,
)
from umcl.upload_guard import UploadGuard

log = logging.getLogger(__name__)

SETTINGS = ServingSettings.from_env()  # the environment, once: nothing below reads it again
check_exposure(SETTINGS.host, SETTINGS.api_key)  # no key: loopback only (`umcl/auth.py`)
trust_only_listed_proxies(SETTINGS.trusted_proxies)
MAX_FINDINGS = 64
MAX_TEXTS = 256
ENCODER_ATTEMPTS = 3
MAX_LATENCY_MS = 10_000  # a batch waits far less; past this BentoML answers 503 instead of queueing
UNCALIBRATED_NOTE = (
    'findings with "calibrated": false have no fitted calibration: their probability is the raw '
    "zero-shot score and their decision uses the threshold 0.5"
)


def declared_model(settings: ServingSettings) -> bentoml.models.BentoModel | None:
    """The model named before the service starts: UMCL_MODEL, else the one a bento was built with
    (`--arg model=`); None: the store's champion, looked up when the service starts."""
    tag = settings.model or getattr(bentoml.use_arguments(), "model", None)
    return bentoml.models.BentoModel(tag) if tag else None


def served_model(declared: bentoml.models.BentoModel | None) -> tuple[str, Path]:
    """The tag and folder of the model to serve."""
    if declared is not None:
        return str(declared.tag), Path(declared.path)
    champion = registry.champion()
    if champion is None:
        raise MissingInputError(
            f"no champion in the model store ({registry.store_path()}): run `make run` (or "
            "`umcl package`), promote one with `umcl models promote TAG`, or set UMCL_MODEL"
        )
    return champion.tag, champion.path


MODEL = declared_model(SETTINGS)  # BentoML packs a declared model into a bento
quiet_libraries()  # at import; again when the service starts


@bentoml.service(name="umcl-encoder", workers=1, threads=1)
class Encoder:
    """The model: image and text towers and the prompt learner."""

    model_ref = MODEL

    def __init__(self) -> None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
        _, directory = served_model(self.model_ref)
        self.model = UMCLModel.from_pretrained(directory, device)

    @bentoml.api(
        batchable=SETTINGS.adaptive_batching,
        max_batch_size=SETTINGS.max_batch_size,
        max_latency_ms=MAX_LATENCY_MS,
    )
    def embed_images(self, images: np.ndarray) -> np.ndarray:
        """(n, S, S) uint8 squares → (n, D) L2-normalised embeddings."""
        pixels = square_pixels(images)
        with torch.inference_mode():
            return self.model.encode_image(pixels.to(self.model.device)).float().cpu().numpy()

    @bentoml.api(
        batchable=SETTINGS.adaptive_batching,
        max_batch_size=SETTINGS.max_batch_size,
        max_latency_ms=MAX_LATENCY_MS,
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
        self.tag, directory = served_model(self.model_ref)
        description = describe_model(directory)
        self.labels: list[str] = description["labels"]
        self.size = input_size(directory)  # refuses an older model layout with its reason
        self.prompt = PromptSettings.model_validate(description["prompt"])
        # Per-finding Platt scaling and thresholds fitted on validation (None: identity).
        self.calibration = read_calibration(directory)
        self.thresholds = self.calibration or Calibration.identity([])  # 0.5 where none fitted
        self.prompts: dict[tuple[str, ...], tuple[np.ndarray, np.ndarray, float]] = {}
        self.gate = DecodeGate(int(SETTINGS.requests.decode_mb * MB))
        # What this worker classifies, recorded off the request path (umcl/monitor/store.py).
        self.recorder = start_recorder(SETTINGS.monitor)

    @bentoml.on_shutdown
    def _flush_records(self) -> None:
        if self.recorder is not None:
            self.recorder.close()

    def _check_findings(self, findings: list[str] | None) -> list[str]:
        """The names to score, by the Python API's rule (umcl/findings.py); a 400 otherwise."""
        try:
            return checked_findings(findings, self.labels, self.prompt, MAX_FINDINGS)
        except (InputError, TypeError) as exc:
            raise InvalidArgument(str(exc)) from None

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
            decoded = await asyncio.to_thread(
                decode_upload, index, path, self.size, SETTINGS.decode, info, display
            )
        if info.pixels >= TRIM_AFTER_PIXELS:
            heap_release()()
        return decoded

    async def _embed_uploads(self, images: list[Path]) -> tuple[np.ndarray, list[ImageInfo]]:
        infos = await asyncio.to_thread(inspect_uploads, images, SETTINGS.decode, SETTINGS.requests)
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
            infos = await asyncio.to_thread(
                inspect_each, images, SETTINGS.decode, SETTINGS.requests
            )
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
        """Per image and finding: the calibrated probability that the finding is present,
        whether it passes the finding's threshold and whether it is calibrated,
        `{"probability": p, "positive": bool, "calibrated": bool}` (the Python API's shape,
        umcl/findings.py). `findings` defaults to the model's labels; other names are prompted
        with the learned context and listed as outside the training label space. A finding
        without a fitted calibration (those outside the label space among them) has
        `"calibrated": false`: its probability is the raw zero-shot score and its decision
        uses 0.5.
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
        most = SETTINGS.requests.explain_images
        if len(images) > most:
            raise BentoMLException(
                f"{len(images)} images to explain; at most {most} (UMCL_MAX_EXPLAIN_IMAGES)",
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
        calibrated = calibrated_flags(self.calibration, names)
        scored = dict(
            zip(kept, zip(probabilities.tolist(), positives.tolist(), strict=True), strict=True)
        )
        results = []
        for i, image in enumerate(upload_names(ctx, images)):
            if i in scored:
                findings = scored_findings(names, *scored[i], calibrated)
                results.append({"image": image, "findings": findings})
            else:
                results.append({"image": image, "error": error_entry(decoded[i])})
        body = {
            "model": self.tag,
            "findings": names,
            "outside_label_space": [n for n in names if n not in self.labels],
            "thresholds": {n: self.thresholds.threshold(n) for n in names},
            "classified": len(kept),
            "refused": len(refusals),
            "results": results,
        }
        if not all(calibrated):
            body["note"] = UNCALIBRATED_NOTE
        return body, decoded, kept

    @bentoml.api
    async def embed_image(self, images: list[Path], *, ctx: bentoml.Context) -> dict[str, Any]:
        """L2-normalised image embeddings in the space shared with reports and label prompts."""
        embeddings, _ = await self._embed_uploads(images)
        return {
            "model": self.tag,
            "images": upload_names(ctx, images),
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
UMCL.add_asgi_middleware(BearerAuth, key=SETTINGS.api_key)
UMCL.add_asgi_middleware(UploadGuard, fields=_route_fields(), limits=SETTINGS.requests)
