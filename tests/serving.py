"""Helpers for tests that talk to a real `bentoml serve`: a small upload, and a server that is
stopped whatever happens and whose log explains a failed start."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.serve_load import Server


def small_png(seed: int = 0, size: tuple[int, int] = (80, 60)) -> bytes:
    buffer = io.BytesIO()
    pixels = (np.random.default_rng(seed).random(size) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


@contextlib.contextmanager
def served(env: dict[str, str], log: Path, target: str = "umcl.service:UMCL") -> Iterator[Server]:
    """`bentoml serve target` with `env`, ready; the test fails with the log's tail if it is not."""
    server = Server(env, log, target=target)
    try:
        try:
            server.wait_ready()
        except SystemExit as stopped:
            pytest.fail(f"{stopped}: {log.read_text()[-3000:]}")
        yield server
    finally:
        server.stop()
