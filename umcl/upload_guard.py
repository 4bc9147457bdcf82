"""The upload guard: ASGI middleware that bounds and re-encodes a request body before BentoML
reads it (`UploadGuard`, added to the service in `umcl/service.py`).

Hostile or careless clients can send bodies of any size, thousands of files, unknown fields,
file names holding patient names, or multipart syntax that makes the parser or `json.loads`
fail with a 500. The guard refuses all of that with a 4xx, from the headers when it can:
- a request's size (UMCL_MAX_REQUEST_MB; 413 from Content-Length before any byte is read, or as
  soon as a streamed body passes it), each file's size (UMCL_MAX_UPLOAD_MB) and the number of
  images (UMCL_MAX_IMAGES);
- the body's type: an API route takes multipart/form-data or JSON, anything else gets a 415
  (BentoML would read a form-urlencoded body as multipart, and fetch a URL given for a file);
- multipart syntax: the body BentoML parses is re-encoded from what was checked, with text parts
  where text belongs, files where files belong, and file names replaced by `image{i}` so that no
  client file name reaches the disk or the log (the clients' names, clipped, are kept in the
  request's scope under `UPLOAD_NAMES` for the response); a text part BentoML's JSON reading
  would fail on with a 500 (too deeply nested, an integer of over 4300 digits) gets a 400.
The limits a site sets (`RequestLimits`, read from the environment by `umcl/serving/settings.py`)
are handed to the guard when the service adds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from bentoml.exceptions import BentoMLException
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from umcl.imaging.images import IMAGE_SUFFIXES
from umcl.log_privacy import clip

if TYPE_CHECKING:  # the guard needs the numbers, not the module that reads the environment
    from umcl.serving.settings import RequestLimits

log = logging.getLogger("umcl.service")  # the guard's lines are the service's, as before the split

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


MB = 2**20

# --- the guard's own bounds ----------------------------------------------------------------------

MAX_JSON_MB = 16  # a JSON body is a few texts or names: parsing hundreds of MB would cost GBs
TEXT_PART_BYTES = MB  # Starlette's own limit for a text part, refused here with a 413 instead
MAX_TEXT_PARTS = 16
MAX_PART_HEADER_BYTES = 16 * 2**10
DRAIN_SECONDS = 3.0  # a refused body is read and discarded this long at most, so that the client
# sees the 4xx instead of a reset connection
UPLOAD_NAMES = "umcl.upload_names"  # scope key: the clients' file names, by image position
BOUNDARY = rb"[0-9A-Za-z'()+_,./:=? -]+"  # RFC 2046 5.1.1 boundary characters
# The bodies an API route takes. BentoML reads any other type with one of these parsers anyway
# (a form-urlencoded `images=http://…` made it fetch that URL), so they get a 415. A body
# without a Content-Type is JSON to BentoML, and bounded as JSON here.
ACCEPTED_MEDIA = (b"multipart/form-data", b"application/json", b"")


def _client_file_name(raw: str) -> str:
    """What a client called its file, without any folders it sent along."""
    return PurePosixPath(raw.replace("\\", "/")).name


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

    def __init__(
        self, boundary: bytes, files: frozenset[str], texts: frozenset[str], limits: RequestLimits
    ) -> None:
        self.boundary, self.files, self.texts, self.limits = boundary, files, texts, limits
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
        if index >= self.limits.images:
            raise Refusal(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"over {self.limits.images} images in one request (UMCL_MAX_IMAGES)",
            )
        name = _client_file_name(client_name)
        self.names.append(clip(name))
        suffix = PurePosixPath(name).suffix.lower()
        suffix = suffix if suffix in IMAGE_SUFFIXES else ""  # it picks the reader (is_dicom)
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
        if self.part.image is not None and self.part.size > self.limits.upload_mb * MB:
            raise Refusal(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"image {self.part.image} is over the {self.limits.upload_mb:g} MB limit "
                "(UMCL_MAX_UPLOAD_MB)",
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
    """BentoML reads a text part as JSON (else as a string) with `json.loads`, after Starlette
    decoded it (UTF-8, else Latin-1), and takes only a JSONDecodeError to mean "a string":
    the recursion on deeply nested brackets, and Python's limit on the digits of an integer
    (4300: a plain ValueError), would end in a 500. Both are refused here instead."""
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError:
        decoded = text.decode("latin-1")
    try:
        json.loads(decoded)
    except RecursionError:
        raise Refusal(HTTPStatus.BAD_REQUEST, f"field {name!r} is nested too deeply") from None
    except json.JSONDecodeError:
        pass  # not JSON: BentoML takes it as a plain string
    except ValueError:
        raise Refusal(
            HTTPStatus.BAD_REQUEST,
            f"field {name!r} holds a number of over {sys.get_int_max_str_digits()} digits",
        ) from None


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


def _body_limit(media: bytes, request_mb: float) -> tuple[int, str]:
    """Bytes a body of this media type may have, and the message that refuses more."""
    if media == b"multipart/form-data":
        message = f"request body is over the {request_mb:g} MB limit (UMCL_MAX_REQUEST_MB)"
        return int(request_mb * MB), message
    limit = min(int(request_mb * MB), MAX_JSON_MB * MB)
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

    def __init__(
        self,
        app: Any,
        fields: dict[str, tuple[frozenset[str], frozenset[str]]],
        limits: RequestLimits,
    ) -> None:
        self.app, self.fields, self.limits = app, fields, limits

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
        if scope["path"] in self.fields and media not in ACCEPTED_MEDIA:
            raise Refusal(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                f"content type {clip(media.decode('latin-1'))!r} is not accepted: send "
                "multipart/form-data (with files) or application/json",
            )
        limit = _body_limit(media, self.limits.request_mb)
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
        rewriter = MultipartRewriter(boundary, *self.fields[scope["path"]], self.limits)
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
