"""Log privacy: no library message that can quote an image's header values or its path reaches
a log.

pydicom's warnings quote header values (an unknown character set, an invalid value: whatever a
file holds, patient names included), and exception messages of libraries can quote a header
value or a temp path. `LogScrubber` rewrites such records before any handler writes them. Two
callers install it:
- the service (`umcl/service.py`): `quiet_libraries()`, at import and again when BentoML has
  configured logging; client errors become one INFO line, other exceptions lose their message;
- the pipeline stages (`umcl/cli.py: main`): `quiet_stage_libraries()`, so that `dvc repro` and
  CI logs hold no header value of a file that ingestion decoded. The stages' own messages quote
  no header value (`umcl/imaging/`) and are left as they are.
"""

from __future__ import annotations

import logging
import numbers
import re
import traceback
import unicodedata
from collections.abc import Iterable, Mapping
from http import HTTPStatus


class LogScrubber(logging.Filter):
    """Rewrites records before any handler writes them:
    - a 4xx that BentoML logs as an error with a traceback → one INFO line with the reason;
    - any other exception → its stack, without the exception's message (messages of library
      exceptions can quote an upload's header values or temp path);
    - warnings from pydicom, Pillow and the multipart parser (directly or through `py.warnings`)
      → INFO, with only where they came from.
    `quoting` says what a withheld message may quote; `exceptions=False` leaves records of other
    loggers, exceptions included, as they are (library records are still withheld)."""

    LIBRARIES = ("pydicom", "PIL", "pylibjpeg", "python_multipart", "multipart")

    def __init__(self, quoting: str = "an upload", exceptions: bool = True) -> None:
        super().__init__()
        self.withheld = f"message withheld (it may quote {quoting})"
        self.exceptions = exceptions

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "umcl_scrubbed", False):
            return True
        record.umcl_scrubbed = True
        # Values formatted into a message (a request's path, a header) are the caller's: escaped,
        # so that none can end the line and write one of its own, or colour a terminal.
        record.args = _escaped_args(record.args)
        if record.name == "py.warnings" or record.name.split(".")[0] in self.LIBRARIES:
            self._withhold_library_message(record)
        elif self.exceptions and record.exc_info and record.exc_info[1] is not None:
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
        self._set(record, logging.INFO, f"{origin}: {self.withheld}")

    def _rewrite_exception(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1]  # type: ignore[index]
        where = escape_controls(record.getMessage().removeprefix("Exception on "))
        status = _client_status(exc)
        if status is not None:
            self._set(record, logging.INFO, f"{where} → {status}: {_client_reason(exc)}")
            return
        stack = "".join(traceback.format_tb(exc.__traceback__))
        self._set(record, record.levelno, f"{where}: {type(exc).__name__}\n{stack.rstrip()}")


# Characters that end or rewrite a log line: C0 and C1 controls (newline, carriage return,
# escape), and Unicode's line and paragraph separators.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


ECHO_CHARS = 40  # caller-supplied strings are echoed back no longer than this


def clip(text: str, limit: int = ECHO_CHARS) -> str:
    """A caller's string as it may be echoed: control characters replaced, at most `limit`
    characters (then an ellipsis)."""
    text = "".join("?" if unicodedata.category(c).startswith("C") else c for c in text[: limit + 1])
    return text if len(text) <= limit else text[:limit] + "…"


def escape_controls(text: str) -> str:
    """`text` with each control character written as its escape (`\\n`, `\\x1b`, `\\u2028`)."""
    return _CONTROLS.sub(lambda m: repr(m[0])[1:-1], text)


def _escaped(value: object) -> object:
    """A log argument as it will be formatted, escaped; numbers (for %d, %.3f) stay numbers."""
    if value is None or isinstance(value, numbers.Number):
        return value
    return escape_controls(str(value))


def _escaped_args(args: object) -> object:
    if isinstance(args, tuple):
        return tuple(_escaped(a) for a in args)
    if isinstance(args, Mapping):
        return {k: _escaped(v) for k, v in args.items()}
    return args


def _client_status(exc: BaseException) -> int | None:
    # Imported here: the stages install a scrubber too, and `umcl --help` must not load BentoML.
    from bentoml.exceptions import BentoMLException
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


def install(scrubber: LogScrubber, handlers_of: Iterable[str], sources: Iterable[str]) -> None:
    """Route warnings through logging; put `scrubber` first on every handler of the loggers
    `handlers_of` ("" is the root) and on the loggers `sources`, `py.warnings` and the
    libraries', so that records that reach no handler above (or arrive before handlers exist)
    are scrubbed at source."""
    logging.captureWarnings(True)
    loggers = [logging.getLogger(name or None) for name in handlers_of]
    for handler in {h for lg in loggers for h in lg.handlers}:
        if scrubber not in handler.filters:
            handler.filters.insert(0, scrubber)  # before BentoML's filter formats the level
    for name in ("py.warnings", *sources, *LogScrubber.LIBRARIES):
        source = logging.getLogger(name)
        if scrubber not in source.filters:
            source.addFilter(scrubber)


SCRUBBER = LogScrubber()  # the service's
STAGE_SCRUBBER = LogScrubber("a file's header values or path", exceptions=False)


def quiet_libraries() -> None:
    """The service's: the scrubber on every handler the server has. Called at import and again
    when the service starts (after BentoML configured logging)."""
    install(
        SCRUBBER,
        handlers_of=("", "bentoml", "uvicorn"),
        sources=("bentoml._internal.server.http_app",),
    )


def quiet_stage_libraries() -> None:
    """The pipeline stages': library warnings and records withheld on the root's handlers (call
    after `logging.basicConfig`). Worker processes forked by a stage inherit it."""
    install(STAGE_SCRUBBER, handlers_of=("",), sources=())
