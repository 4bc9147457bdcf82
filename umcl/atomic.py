"""Files and directories written whole or not at all.

Every artifact UMCL writes goes through here, so a killed run, a full disk or an error half-way
leaves the earlier file (or none), never a torn one that a later stage or DVC would take for
output. The content goes to a hidden temporary beside the target (the same file system, so the
rename is atomic; readers that list a folder skip dot-files), is flushed to disk, then renamed
over the target; on any error the temporary is removed. A process killed outright leaves at most
that hidden temporary, which the next write of the same target replaces.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.partial")


def _remove(path: Path) -> None:
    """Whatever is at `path`: a file, a link or a folder (a leftover of a killed run)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _flush_to_disk(path: Path) -> None:
    with path.open("rb+") as handle:
        os.fsync(handle.fileno())


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """A temporary path to write instead of `path`; it becomes `path` when the block ends without
    an error, and is removed when it does not. The folder is created if need be. A device or a
    pipe (`/dev/stdout`) cannot be renamed over: it is written in place."""
    path = Path(path).absolute()  # "." has no name to put a temporary beside
    if path.exists() and not path.is_file() and not path.is_dir():
        yield path
        return
    temporary = _temporary(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove(temporary)
    try:
        yield temporary
        _flush_to_disk(temporary)
        os.replace(temporary, path)
    except BaseException:
        _remove(temporary)
        raise


def write_with(path: str | Path, write: Callable[[Path], object]) -> Path:
    """`write(temporary)` (a library's own writer: polars, torch.save, safetensors), atomically."""
    with replacing(path) as temporary:
        write(temporary)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    return write_with(path, lambda temporary: temporary.write_text(text))


def write_json(path: str | Path, content: Any, indent: int | None = 2) -> Path:
    """`content` as JSON with a final newline, atomically: every metrics and report file."""
    return write_text(path, json.dumps(content, indent=indent) + "\n")


@contextmanager
def replacing_directory(path: str | Path) -> Iterator[Path]:
    """A fresh temporary directory to fill instead of `path`; it replaces `path` (and everything
    an earlier version held) when the block ends without an error, and is removed when it does
    not. Between the two renames `path` is briefly absent, never half-written."""
    path = Path(path).absolute()
    temporary, previous = _temporary(path), path.with_name(f".{path.name}.previous")
    _remove(temporary)
    temporary.mkdir(parents=True)
    try:
        yield temporary
        _remove(previous)
        if path.exists() or path.is_symlink():
            path.rename(previous)
        try:
            temporary.rename(path)
        except BaseException:
            if previous.exists() and not path.exists():
                previous.rename(path)  # the earlier version back in place
            raise
    except BaseException:
        _remove(temporary)
        raise
    _remove(previous)
