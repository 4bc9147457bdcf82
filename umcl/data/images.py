"""Any supported image file → grayscale float32 in [0, 1], and the square fit the cache uses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from umcl.data.dicom import ImageDecodeError, read_dicom

DICOM_SUFFIXES = {".dcm", ".dicom"}


def is_dicom(path: Path) -> bool:
    """DICOM by suffix, or by the `DICM` preamble marker for files exported without one."""
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    try:
        with path.open("rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def load_image(path: str | Path) -> np.ndarray:
    """PNG, JPEG or DICOM → 2-D float32 in [0, 1]. Raises ImageDecodeError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ImageDecodeError(f"{path}: image file is missing")
    if is_dicom(path):
        return read_dicom(path)
    try:
        with Image.open(path) as img:
            img.load()
            gray = img.convert("I;16") if img.mode in ("I", "I;16", "I;16B") else img.convert("L")
            array = np.array(gray, dtype=np.float32)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as exc:
        raise ImageDecodeError(f"{path}: not a readable image ({exc})") from None
    return array / (65535.0 if gray.mode.startswith("I") else 255.0)


def fit_square(image: np.ndarray, size: int) -> np.ndarray:
    """Aspect-preserving resize so the long side is `size`, centred on a black square; uint8."""
    height, width = image.shape
    scale = size / max(height, width)
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    resized = Image.fromarray(image.astype(np.float32)).resize(
        (new_w, new_h), Image.Resampling.BILINEAR  # PIL antialiases when it shrinks
    )
    square = np.zeros((size, size), dtype=np.uint8)
    top, left = (size - new_h) // 2, (size - new_w) // 2
    square[top : top + new_h, left : left + new_w] = np.clip(
        np.rint(np.asarray(resized) * 255.0), 0, 255
    ).astype(np.uint8)
    return square
