"""`bentoml serve umcl.service:UMCL` — the champion model behind an HTTP API (DESIGN §7).

Two BentoML services:
- `UMCL` (public, async): checks and decodes uploads (PNG, JPEG, DICOM) exactly as the
  preprocess stage does, and answers classify / embed_image / embed_text. Bad input is refused
  here with a 4xx naming the upload's position and the reason; it never reaches the model.
- `Encoder` (internal): holds the model. Its image and text encoders are batchable, so
  concurrent requests are merged by BentoML's adaptive batching.

Hostile uploads are bounded three times over:
- `UploadGuard` (ASGI middleware, before BentoML reads the body): a request's size
  (UMCL_MAX_REQUEST_MB; 413 from Content-Length before any byte is read, or as soon as a streamed
  body passes it), each file's size (UMCL_MAX_UPLOAD_MB), the number of images (UMCL_MAX_IMAGES),
  and multipart syntax: the body BentoML parses is re-encoded from what was checked, with text
  parts where text belongs, files where files belong, and file names replaced by `image{i}` so
  that no client file name reaches the disk or the log.
- headers before pixels: every image's header is read first; one over the pixel budget
  (UMCL_MAX_PIXELS) or a request over UMCL_MAX_REQUEST_PIXELS is refused before anything decodes.
- `PixelGate`: decodes in flight across all requests hold at most UMCL_MAX_PIXELS pixels, so
  concurrent large images queue instead of adding up; after a large decode the worker hands the
  freed memory back to the system (`malloc_trim`).
Client errors are logged at INFO without a traceback; library warnings and exception messages
(which can quote a file's header values or path) are withheld from the log (`LogScrubber`).

The model is the store's champion (`umcl models list`), `UMCL_MODEL=umcl:<version>`, or
`--arg model=umcl:<version>`; a bento built by `umcl package` pins its model that way.
Other settings: UMCL_ADAPTIVE_BATCHING (default true), UMCL_MAX_BATCH_SIZE (32).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import json
import logging
import os
import re
import time
import traceback
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path, PurePosixPath
from typing import Any

import aiohttp
import bentoml
import numpy as np
import torch
from bentoml.exceptions import BentoMLException, InvalidArgument
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from umcl import registry
from umcl.config import PromptSettings
from umcl.data.dicom import IMAGE_FORMAT_UNSUPPORTED, IMAGE_TOO_LARGE, IMAGE_UNREADABLE
from umcl.data.images import (
    DecodeLimits,
    ImageDecodeError,
    ImageInfo,
    fit_square,
    inspect_image,
    load_image,
)
from umcl.model.prompts import unpromptable
from umcl.model.umcl import describe_model, finding_probabilities, input_size, load_model

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        value = 0.0
    if value <= 0:
        raise ValueError(f"{name}={raw!r} is not a positive number")
    return value


MB = 2**20
MAX_UPLOAD_MB = _env_number("UMCL_MAX_UPLOAD_MB", 64)
MAX_REQUEST_MB = _env_number("UMCL_MAX_REQUEST_MB", 256)
MAX_IMAGES = int(_env_number("UMCL_MAX_IMAGES", 64))
MAX_REQUEST_PIXELS = int(_env_number("UMCL_MAX_REQUEST_PIXELS", 256e6))
LIMITS = DecodeLimits.from_env()  # UMCL_MAX_PIXELS, UMCL_DICOM_MODALITIES
MAX_FINDINGS = 64
MAX_TEXTS = 256
MAX_JSON_MB = 16  # a JSON body is a few texts or names: parsing hundreds of MB would cost GBs
TEXT_PART_BYTES = MB  # Starlette's own limit for a text part, refused here with a 413 instead
MAX_TEXT_PARTS = 16
MAX_PART_HEADER_BYTES = 16 * 2**10
DRAIN_SECONDS = 3.0  # a refused body is read and discarded this long at most, so that the client
# sees the 4xx instead of a reset connection
ECHO_CHARS = 40  # caller-supplied strings are echoed back no longer than this
ENCODER_ATTEMPTS = 3
ADAPTIVE_BATCHING = os.environ.get("UMCL_ADAPTIVE_BATCHING", "true").lower() in {
    "1",
    "true",
    "yes",
    "on",
}
MAX_BATCH_SIZE = int(os.environ.get("UMCL_MAX_BATCH_SIZE", "32"))
MAX_LATENCY_MS = 10_000  # a batch waits far less; past this BentoML answers 503 instead of queueing
UPLOAD_NAMES = "umcl.upload_names"  # scope key: the clients' file names, by image position
BOUNDARY = rb"[0-9A-Za-z'()+_,./:=? -]+"  # RFC 2046 5.1.1 boundary characters
# An upload's suffix, kept in its new name: it picks the reader (images.is_dicom).
KEPT_SUFFIXES = {".dcm", ".dicom", ".png", ".jpg", ".jpeg"}


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


def clip(text: str, limit: int = ECHO_CHARS) -> str:
    """A caller's string as it may be echoed: control characters replaced, at most `limit`
    characters (then an ellipsis)."""
    text = "".join("?" if unicodedata.category(c).startswith("C") else c for c in text[: limit + 1])
    return text if len(text) <= limit else text[:limit] + "…"


def _is_text(value: str) -> bool:
    """Encodable as UTF-8: JSON can carry lone surrogates, which the tokenizer cannot take."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _client_file_name(raw: str) -> str:
    """What a client called its file, without any folders it sent along."""
    return PurePosixPath(raw.replace("\\", "/")).name


# --- logging: client errors as one INFO line; nothing from an upload in the log -----------------


class LogScrubber(logging.Filter):
    """Rewrites records before any handler writes them:
    - a 4xx that BentoML logs as an error with a traceback → one INFO line with the reason;
    - any other exception → its stack, without the exception's message (messages of library
      exceptions can quote an upload's header values or temp path);
    - warnings from pydicom, Pillow and the multipart parser (directly or through `py.warnings`)
      → INFO, with only where they came from."""

    LIBRARIES = ("pydicom", "PIL", "pylibjpeg", "python_multipart", "multipart")

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "umcl_scrubbed", False):
            return True
        record.umcl_scrubbed = True
        if record.name == "py.warnings" or record.name.split(".")[0] in self.LIBRARIES:
            self._withhold_library_message(record)
        elif record.exc_info and record.exc_info[1] is not None:
            self._rewrite_exception(record)
        return True

    @staticmethod
    def _set(record: logging.LogRecord, level: int, message: str) -> None:
        record.levelno, record.levelname = level, logging.getLevelName(level)
        record.msg, record.args = message, ()
        record.exc_info, record.exc_text, record.stack_info = None, None, None

    def _withhold_library_message(self, record: logging.LogRecord) -> None:
        origin = record.name
        if record.name == "py.warnings":  # "path:line: Category: message"
            found = re.search(r"([\w.]+)/([\w.]+\.py):(\d+): (\w+):", record.getMessage())
            origin = f"{found[4]} at {found[1]}/{found[2]}:{found[3]}" if found else "a warning"
        self._set(record, logging.INFO, f"{origin}: message withheld (it may quote an upload)")

    def _rewrite_exception(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1]  # type: ignore[index]
        where = record.getMessage().removeprefix("Exception on ")
        status = _client_status(exc)
        if status is not None:
            self._set(record, logging.INFO, f"{where} → {status}: {_client_reason(exc)}")
            return
        stack = "".join(traceback.format_tb(exc.__traceback__))
        self._set(record, record.levelno, f"{where}: {type(exc).__name__}\n{stack.rstrip()}")


def _client_status(exc: BaseException) -> int | None:
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        return HTTPStatus.BAD_REQUEST
    if isinstance(exc, BentoMLException) and exc.error_code < 500:
        return int(exc.error_code)
    return None


def _client_reason(exc: BaseException) -> str:
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        problems = exc.errors(include_url=False, include_context=False, include_input=False)
        return "invalid input: " + ", ".join(
            " ".join(filter(None, (".".join(map(str, p["loc"])), p["type"]))) for p in problems[:8]
        )
    return str(exc)[:500]  # our messages quote no upload; BentoML's own are short


def quiet_libraries() -> None:
    """Route warnings through logging and put the scrubber on every handler the server has.
    Called at import and again when the service starts (after BentoML configured logging)."""
    logging.captureWarnings(True)
    scrubber = SCRUBBER
    loggers = [logging.getLogger(), logging.getLogger("bentoml"), logging.getLogger("uvicorn")]
    for handler in {h for lg in loggers for h in lg.handlers}:
        if scrubber not in handler.filters:
            handler.filters.insert(0, scrubber)  # before BentoML's filter formats the level
    # Records that reach no handler above (or arrive before handlers exist) are scrubbed at source.
    for name in ("py.warnings", "bentoml._internal.server.http_app", *LogScrubber.LIBRARIES):
        source = logging.getLogger(name)
        if scrubber not in source.filters:
            source.addFilter(scrubber)


SCRUBBER = LogScrubber()
quiet_libraries()


# --- the upload guard: bounded, well-formed request bodies ---------------------------------------


class Refusal(Exception):
    """A request the guard refuses, with its status."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    header_bytes: int = 0
    name: bytes = b""
    value: bytes = b""
    field_name: str = ""
    image: int | None = None  # position among the request's images; None for a text part
    size: int = 0
    text: bytearray = field(default_factory=bytearray)  # a text part's content, checked at its end


class MultipartRewriter:
    """Parses a multipart body as it streams (python-multipart, as Starlette does) and emits it
    again with the same boundary: only the route's fields, text where text belongs, files where
    files belong, each file named `image{i}` (its client name is kept aside, clipped, for the
    response), every size within its limit. Any violation raises `Refusal`."""

    def __init__(self, boundary: bytes, files: frozenset[str], texts: frozenset[str]) -> None:
        self.boundary, self.files, self.texts = boundary, files, texts
        self.names: list[str] = []
        self.text_parts = 0
        self.out = bytearray()
        self.ended = False
        self.part = _Part()
        self.parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._data,
                "on_part_end": self._part_end,
                "on_end": self._end,
            },
        )

    def feed(self, chunk: bytes) -> bytes:
        try:
            self.parser.write(chunk)
        except FormParserError:
            raise Refusal(HTTPStatus.BAD_REQUEST, "malformed multipart body") from None
        out, self.out = bytes(self.out), bytearray()
        return out

    def finish(self) -> None:
        if not self.ended:
            raise Refusal(HTTPStatus.BAD_REQUEST, "multipart body ends before its closing boundary")

    def _begin(self) -> None:
        self.part = _Part()

    def _count_header(self, size: int) -> None:
        self.part.header_bytes += size
        if self.part.header_bytes > MAX_PART_HEADER_BYTES:
            raise Refusal(HTTPStatus.BAD_REQUEST, "a multipart part's headers are too long")

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._count_header(end - start)
        self.part.name += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._count_header(end - start)
        self.part.value += data[start:end]

    def _header_end(self) -> None:
        self.part.headers[self.part.name.strip().lower()] = self.part.value.strip()
        self.part.name, self.part.value = b"", b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self.part.headers.get(b"content-disposition", b""))
        if b"name" not in options:
            raise Refusal(HTTPStatus.BAD_REQUEST, "a multipart part has no field name")
        name = options[b"name"].decode("utf-8", "replace")
        accepted = ", ".join(sorted(self.files | self.texts))
        if name not in self.files | self.texts:
            raise Refusal(
                HTTPStatus.BAD_REQUEST,
                f"unknown field {clip(name)!r}; this endpoint takes {accepted}",
            )
        if (name in self.files) != (b"filename" in options):
            wanted = "files" if name in self.files else "text, not a file"
            raise Refusal(HTTPStatus.BAD_REQUEST, f"field {name!r} must be {wanted}")
        self.part.field_name = name
        if name in self.files:
            self._start_file(options[b"filename"].decode("utf-8", "replace"))
        else:
            self._start_text()

    def _start_file(self, client_name: str) -> None:
        index = len(self.names)
        if index >= MAX_IMAGES:
            raise Refusal(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"over {MAX_IMAGES} images in one request (UMCL_MAX_IMAGES)",
            )
        name = _client_file_name(client_name)
        self.names.append(clip(name))
        suffix = PurePosixPath(name).suffix.lower()
        suffix = suffix if suffix in KEPT_SUFFIXES else ""
        self.part.image = index
        self._emit_headers(
            f'form-data; name="{self.part.field_name}"; filename="image{index}{suffix}"',
            "application/octet-stream",
        )

    def _start_text(self) -> None:
        self.text_parts += 1
        if self.text_parts > MAX_TEXT_PARTS:
            raise Refusal(HTTPStatus.BAD_REQUEST, f"over {MAX_TEXT_PARTS} text fields")
        self._emit_headers(f'form-data; name="{self.part.field_name}"', None)

    def _emit_headers(self, disposition: str, content_type: str | None) -> None:
        lines = [f"--{self.boundary.decode('latin-1')}", f"Content-Disposition: {disposition}"]
        if content_type:
            lines.append(f"Content-Type: {content_type}")
        self.out += ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")

    def _data(self, data: bytes, start: int, end: int) -> None:
        self.part.size += end - start
        if self.part.image is not None and self.part.size > MAX_UPLOAD_MB * MB:
            raise Refusal(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"image {self.part.image} is over the {MAX_UPLOAD_MB:g} MB limit (UMCL_MAX_UPLOAD_MB)",
            )
        if self.part.image is None:
            if self.part.size > TEXT_PART_BYTES:
                raise Refusal(
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                    f"field {self.part.field_name!r} is over {TEXT_PART_BYTES // 2**10} KB",
                )
            self.part.text += data[start:end]
        self.out += data[start:end]

    def _part_end(self) -> None:
        if self.part.image is None:
            _check_text_part(self.part.field_name, bytes(self.part.text))
        self.out += b"\r\n"

    def _end(self) -> None:
        self.out += b"--" + self.boundary + b"--\r\n"
        self.ended = True


def _check_text_part(name: str, text: bytes) -> None:
    """BentoML reads a text part as JSON (else as a string) with `json.loads`, whose recursion
    on deeply nested brackets would end in a 500: refused here instead."""
    try:
        json.loads(text)
    except RecursionError:
        raise Refusal(HTTPStatus.BAD_REQUEST, f"field {name!r} is nested too deeply") from None
    except ValueError:
        pass  # not JSON: BentoML takes it as a plain string


class GuardedBody:
    """The request body as the app receives it: counted against `limit`, and re-encoded by a
    `MultipartRewriter` when there is one. A refusal drains what is left (bounded) first."""

    def __init__(
        self, receive: Receive, limit: tuple[int, str], rewriter: MultipartRewriter | None
    ) -> None:
        self.source, self.rewriter = receive, rewriter
        self.limit, self.over_limit = limit
        self.received = 0
        self.done = False

    async def receive(self) -> Message:
        if self.done:
            return await self.source()
        message = await self.source()
        if message["type"] != "http.request":
            return message
        try:
            return self._pass_on(message)
        except Refusal as refusal:
            self.done = True
            if message.get("more_body", False):
                await drain(self.source)
            raise BentoMLException(str(refusal), error_code=refusal.status) from None

    def _pass_on(self, message: Message) -> Message:
        chunk = message.get("body", b"")
        more = message.get("more_body", False)
        self.received += len(chunk)
        if self.received > self.limit:
            raise Refusal(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, self.over_limit)
        if self.rewriter is not None:
            chunk = self.rewriter.feed(chunk)
            if not more:
                self.rewriter.finish()
        self.done = not more
        return {"type": "http.request", "body": chunk, "more_body": more}


def _body_limit(media: bytes) -> tuple[int, str]:
    """Bytes a body of this media type may have, and the message that refuses more."""
    if media == b"multipart/form-data":
        message = f"request body is over the {MAX_REQUEST_MB:g} MB limit (UMCL_MAX_REQUEST_MB)"
        return int(MAX_REQUEST_MB * MB), message
    limit = min(int(MAX_REQUEST_MB * MB), MAX_JSON_MB * MB)
    return limit, f"request body is over the {limit / MB:g} MB limit for a body without files"


async def drain(receive: Receive) -> None:
    """Read and discard the rest of a refused body for at most DRAIN_SECONDS."""
    deadline = time.monotonic() + DRAIN_SECONDS
    with contextlib.suppress(TimeoutError):
        while True:
            message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            if message["type"] != "http.request" or not message.get("more_body", False):
                return


class UploadGuard:
    """ASGI middleware between the server and BentoML's request handling (see the module
    docstring). `fields` maps a route to its (file fields, text fields)."""

    def __init__(self, app: Any, fields: dict[str, tuple[frozenset[str], frozenset[str]]]) -> None:
        self.app, self.fields = app, fields

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        try:
            body = self._guard(scope, receive)
        except Refusal as refusal:
            if _declares_body(scope):
                await drain(receive)
            await _respond(scope, send, refusal)
            return
        await self.app(scope, body.receive, send)

    def _guard(self, scope: Scope, receive: Receive) -> GuardedBody:
        """The body the app will read, or a Refusal decided from the headers alone."""
        headers = {k.lower(): v for k, v in scope["headers"]}
        media, options = parse_options_header(headers.get(b"content-type", b""))
        limit = _body_limit(media)
        declared = headers.get(b"content-length")
        if declared is not None and not declared.strip().isdigit():
            raise Refusal(HTTPStatus.BAD_REQUEST, "Content-Length is not a number")
        if declared is not None and int(declared) > limit[0]:
            raise Refusal(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, limit[1])
        if media != b"multipart/form-data" or scope["path"] not in self.fields:
            return GuardedBody(receive, limit, None)
        boundary = options.get(b"boundary", b"")
        if not 1 <= len(boundary) <= 70 or not re.fullmatch(BOUNDARY, boundary):
            raise Refusal(HTTPStatus.BAD_REQUEST, "multipart body without a valid boundary")
        rewriter = MultipartRewriter(boundary, *self.fields[scope["path"]])
        scope[UPLOAD_NAMES] = rewriter.names
        return GuardedBody(receive, limit, rewriter)


def _declares_body(scope: Scope) -> bool:
    headers = {k.lower(): v for k, v in scope["headers"]}
    return b"transfer-encoding" in headers or headers.get(b"content-length", b"0") != b"0"


async def _respond(scope: Scope, send: Send, refusal: Refusal) -> None:
    body = json.dumps({"error": str(refusal)}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": int(refusal.status),
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
    log.info("%s [%s] → %d: %s", scope["path"], scope["method"], refusal.status, refusal)


# --- decoding uploads -----------------------------------------------------------------------------


class PixelGate:
    """Decodes in flight hold at most `capacity` pixels together (an image larger than that
    decodes alone): concurrent requests queue instead of adding up their memory."""

    def __init__(self, capacity: int) -> None:
        self.capacity, self.in_flight = capacity, 0
        self.changed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def hold(self, pixels: int) -> AsyncIterator[None]:
        async with self.changed:
            await self.changed.wait_for(
                lambda: self.in_flight == 0 or self.in_flight + pixels <= self.capacity
            )
            self.in_flight += pixels
        try:
            yield
        finally:
            async with self.changed:
                self.in_flight -= pixels
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
        return BentoMLException(reason, error_code=HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
    if exc.code == IMAGE_FORMAT_UNSUPPORTED:
        return BentoMLException(reason, error_code=HTTPStatus.UNSUPPORTED_MEDIA_TYPE)
    if exc.code == IMAGE_UNREADABLE and "PNG, JPEG or DICOM" not in reason:
        reason += "; send a PNG, JPEG or DICOM file"
    return InvalidArgument(reason)


def _inspect_upload(index: int, path: Path) -> ImageInfo:
    """One upload's header, or the 4xx that refuses it. Errors name the upload by position: file
    names from a PACS export often hold patient names, and these messages reach the log."""
    megabytes = path.stat().st_size / MB
    if megabytes > MAX_UPLOAD_MB:
        raise BentoMLException(
            f"image {index} is {megabytes:.1f} MB, over the {MAX_UPLOAD_MB:g} MB limit (UMCL_MAX_UPLOAD_MB)",
            error_code=HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        )
    try:
        return inspect_image(path, LIMITS)
    except ImageDecodeError as exc:
        raise _refusal(index, path, exc) from None


def inspect_uploads(images: list[Path]) -> list[ImageInfo]:
    """Every upload's header, checked on its own and against the request's pixel budget, before
    any pixel is decoded."""
    if not images:
        raise InvalidArgument("no images: send at least one file in the `images` field")
    if len(images) > MAX_IMAGES:
        raise BentoMLException(
            f"{len(images)} images in one request; at most {MAX_IMAGES} (UMCL_MAX_IMAGES)",
            error_code=HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        )
    infos = [_inspect_upload(i, path) for i, path in enumerate(images)]
    total = sum(info.pixels for info in infos)
    if total > MAX_REQUEST_PIXELS:
        raise BentoMLException(
            f"the {len(images)} images hold {total / 1e6:.1f} megapixels together, over the "
            f"{MAX_REQUEST_PIXELS / 1e6:g} MP limit for one request (UMCL_MAX_REQUEST_PIXELS)",
            error_code=HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        )
    return infos


def decode_upload(index: int, path: Path, size: int) -> np.ndarray:
    """One upload → the (size, size) uint8 square the model takes, decoded exactly as the
    preprocess stage decodes a file, or the 4xx that refuses it."""
    try:
        return fit_square(load_image(path, LIMITS), size)
    except ImageDecodeError as exc:
        raise _refusal(index, path, exc) from None


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
        quiet_libraries()  # BentoML has configured logging by now
        description = describe_model(Path(self.model_ref.path))
        self.tag = str(self.model_ref.tag)
        self.labels: list[str] = description["labels"]
        self.size = input_size(description)
        self.prompt = PromptSettings.model_validate(description["prompt"])
        self.prompts: dict[tuple[str, ...], tuple[np.ndarray, np.ndarray, float]] = {}
        self.gate = PixelGate(LIMITS.max_pixels)

    def _check_findings(self, findings: list[str] | None) -> list[str]:
        if findings is None:
            return self.labels
        names = [f.strip() for f in findings]
        if not names:
            raise InvalidArgument("findings is empty: omit it to score the model's own labels")
        if len(names) > MAX_FINDINGS:
            raise InvalidArgument(f"{len(names)} findings; at most {MAX_FINDINGS}")
        problems = [
            f"{i} ({clip(f)!r})"
            for i, f in enumerate(names)
            if not re.search(r"[A-Za-z0-9]", f) or len(f) > 80 or not _is_text(f)
        ]
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

    async def _decode(self, index: int, path: Path, info: ImageInfo) -> np.ndarray:
        async with self.gate.hold(info.pixels):
            square = await asyncio.to_thread(decode_upload, index, path, self.size)
        if info.pixels >= TRIM_AFTER_PIXELS:
            RELEASE_HEAP()
        return square

    async def _embed_uploads(self, images: list[Path]) -> np.ndarray:
        infos = await asyncio.to_thread(inspect_uploads, images)
        squares = [
            await self._decode(i, p, info)
            for i, (p, info) in enumerate(zip(images, infos, strict=True))
        ]
        return np.array(await self._encoder("embed_images", np.stack(squares)), np.float32)

    @bentoml.api
    async def classify(
        self, images: list[Path], findings: list[str] | None = None, *, ctx: bentoml.Context
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
                {"image": name, "probabilities": dict(zip(names, row, strict=True))}
                for name, row in zip(_upload_names(ctx, images), probabilities, strict=True)
            ],
        }

    @bentoml.api
    async def embed_image(self, images: list[Path], *, ctx: bentoml.Context) -> dict[str, Any]:
        """L2-normalised image embeddings in the space shared with reports and label prompts."""
        embeddings = await self._embed_uploads(images)
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
        invalid = [i for i, t in enumerate(texts) if not _is_text(t)]
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


UMCL.add_asgi_middleware(UploadGuard, fields=_route_fields())
