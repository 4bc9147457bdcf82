"""Uploads between the guard and the model: each one's header read first and checked against the
request's limits, then decoded at the scale the model needs, or refused with the 4xx that names
its position and the reason (never its file name, which a PACS export may have made of a
patient's name)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import ctypes.util
import functools
import io
import re
from collections.abc import AsyncIterator, Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any

import bentoml
import numpy as np
from bentoml.exceptions import BentoMLException, InvalidArgument
from PIL import Image

from umcl.imaging.images import (
    DecodeLimits,
    ImageDecodeError,
    ImageInfo,
    fit_square,
    inspect_image,
    load_image,
)
from umcl.imaging.limits import IMAGE_FORMAT_UNSUPPORTED, IMAGE_TOO_LARGE, IMAGE_UNREADABLE
from umcl.imaging.scaled import MIN_DECODED_SIDE, decoded_side
from umcl.inference import Decoded
from umcl.log_privacy import clip
from umcl.serving.settings import MB, RequestLimits
from umcl.upload_guard import UPLOAD_NAMES

# `/explain` with display: the decoded image for the page, at most this wide (a reduced decode
# keeps at least this much)
DISPLAY_SIDE = MIN_DECODED_SIDE
TRIM_AFTER_PIXELS = 4_000_000  # after a 49 MP PNG the worker kept +190 MB without a trim, +0 with


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


@functools.cache
def heap_release() -> Callable[[], None]:
    """glibc keeps freed memory of mid-sized blocks in the heap; `malloc_trim` hands it back to
    the system after a large decode, so the worker's size follows its load. Looked up on first
    use (finding the C library runs `ldconfig`)."""
    name = ctypes.util.find_library("c")
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    return (lambda: trim(0)) if trim else (lambda: None)


def refusal(index: int, path: Path, exc: ImageDecodeError) -> BentoMLException:
    reason = str(exc).replace(str(path), f"image {index}")
    if exc.code == IMAGE_TOO_LARGE:
        refused = BentoMLException(reason, error_code=HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
    elif exc.code == IMAGE_FORMAT_UNSUPPORTED:
        refused = BentoMLException(reason, error_code=HTTPStatus.UNSUPPORTED_MEDIA_TYPE)
    else:
        if exc.code == IMAGE_UNREADABLE and "PNG, JPEG or DICOM" not in reason:
            reason += "; send a PNG, JPEG or DICOM file"
        refused = InvalidArgument(reason)
    refused.reason_code = exc.code  # what the monitor records of a refused upload
    return refused


def _inspect_upload(
    index: int, path: Path, decode: DecodeLimits, requests: RequestLimits
) -> ImageInfo:
    """One upload's header, or the 4xx that refuses it. Errors name the upload by position: file
    names from a PACS export often hold patient names, and these messages reach the log."""
    megabytes = path.stat().st_size / MB
    if megabytes > requests.upload_mb:
        refused = BentoMLException(
            f"image {index} is {megabytes:.1f} MB, over the {requests.upload_mb:g} MB limit "
            "(UMCL_MAX_UPLOAD_MB)",
            error_code=HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        )
        refused.reason_code = IMAGE_TOO_LARGE
        raise refused
    try:
        return inspect_image(path, decode)
    except ImageDecodeError as exc:
        raise refusal(index, path, exc) from None


def inspect_each(
    images: list[Path], decode: DecodeLimits, requests: RequestLimits
) -> list[ImageInfo | BentoMLException]:
    """Each upload's header, or the refusal of that upload; the request as a whole (how many
    images, their pixels together) is checked here too, before any pixel is decoded."""
    if not images:
        raise InvalidArgument("no images: send at least one file in the `images` field")
    if len(images) > requests.images:
        raise BentoMLException(
            f"{len(images)} images in one request; at most {requests.images} (UMCL_MAX_IMAGES)",
            error_code=HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        )
    infos: list[ImageInfo | BentoMLException] = []
    for i, path in enumerate(images):
        try:
            infos.append(_inspect_upload(i, path, decode, requests))
        except BentoMLException as refused:
            infos.append(refused)
    total = sum(info.pixels for info in infos if isinstance(info, ImageInfo))
    if total > requests.request_pixels:
        raise BentoMLException(
            f"the {len(images)} images hold {total / 1e6:.1f} megapixels together, over the "
            f"{requests.request_pixels / 1e6:g} MP limit for one request "
            "(UMCL_MAX_REQUEST_PIXELS)",
            error_code=HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        )
    return infos


def inspect_uploads(
    images: list[Path], decode: DecodeLimits, requests: RequestLimits
) -> list[ImageInfo]:
    """Every upload's header, or the refusal of the first one that fails."""
    infos = inspect_each(images, decode, requests)
    for info in infos:
        if isinstance(info, BentoMLException):
            raise info
    return infos  # type: ignore[return-value]


def status_of(refused: BentoMLException) -> int:
    return int(refused.error_code)


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


def error_entry(refused: BentoMLException) -> dict[str, Any]:
    """How /classify answers one refused upload among others that were classified."""
    return {
        "code": getattr(refused, "reason_code", None) or "image_refused",
        "status": status_of(refused),
        "message": str(refused),
    }


def decode_upload(
    index: int,
    path: Path,
    size: int,
    decode: DecodeLimits,
    info: ImageInfo | None = None,
    display: bool = False,
) -> Decoded:
    """One upload → the (size, size) uint8 square the model takes, decoded exactly as the
    preprocess stage decodes a file, with the decoded image's (height, width) (and, with
    `display`, the image itself, at most DISPLAY_SIDE px a side); or the 4xx that refuses it.
    `info`: the upload's inspected header (`inspect_uploads`), so that a DICOM header is parsed
    once per upload."""
    try:
        pixels = load_image(path, decode, info, decoded_side(size))
    except ImageDecodeError as exc:
        raise refusal(index, path, exc) from None
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


def upload_names(ctx: bentoml.Context, images: list[Path]) -> list[str]:
    """The clients' file names (clipped), recorded by the guard; else what the temp names keep."""
    with contextlib.suppress(LookupError, AttributeError):
        names = ctx.request.scope.get(UPLOAD_NAMES)
        if names is not None and len(names) == len(images):
            return list(names)
    return [clip(re.sub(r"^tmp[a-z0-9_]{8}", "", p.name) or p.name) for p in images]
