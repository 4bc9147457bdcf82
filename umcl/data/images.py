"""Any supported image file → grayscale float32 in [0, 1], and the square fit the cache uses.

Supported means what the README promises: PNG, JPEG and DICOM. Dimensions are read from the
header before anything is decoded (`inspect_image`), so a small file that claims a huge picture
is refused at once instead of being decoded (`DecodeLimits.max_pixels`, UMCL_MAX_PIXELS).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from umcl.data.dicom import (
    IMAGE_FORMAT_UNSUPPORTED,
    IMAGE_MISSING,
    DecodeLimits,
    ImageDecodeError,
    ImageInfo,
    check_pixel_budget,
    inspect_dicom,
    read_dicom,
)

__all__ = [
    "DecodeLimits",
    "ImageDecodeError",
    "ImageInfo",
    "fit_square",
    "inspect_image",
    "is_dicom",
    "load_image",
]

DICOM_SUFFIXES = {".dcm", ".dicom"}
# Pillow's names. MPO is how Pillow identifies a JPEG from a camera that also stores a preview;
# only its first picture is decoded, as for any JPEG.
RASTER_FORMATS = ("PNG", "JPEG", "MPO")


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


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise ImageDecodeError(f"{path}: image file is missing", IMAGE_MISSING)


def _format_name(path: Path) -> str | None:
    """What Pillow calls a file it can identify but we do not accept (GIF, TIFF, …), if anything."""
    try:
        with Image.open(path) as img:  # lazy: reads the header only
            return img.format
    except Exception:  # not an image at all, or one Pillow cannot even identify
        return None


def _open_raster(path: Path) -> Image.Image:
    """The file opened lazily (header only) as PNG or JPEG; anything else is refused."""
    try:
        return Image.open(path, formats=RASTER_FORMATS)
    except MemoryError:
        raise
    except Exception:
        pass  # Pillow's messages quote the path; ours say the same without it
    name = _format_name(path)
    if name is not None:
        raise ImageDecodeError(
            f"{path}: {name} images are not accepted (PNG, JPEG or DICOM)",
            IMAGE_FORMAT_UNSUPPORTED,
        )
    raise ImageDecodeError(f"{path}: not a readable image (PNG, JPEG or DICOM)")


def _raster_info(path: Path, img: Image.Image, limits: DecodeLimits) -> ImageInfo:
    width, height = img.size
    check_pixel_budget(path, width * height, limits)
    return ImageInfo(str(img.format), width, height, width * height)


def _raster_pixels(path: Path, img: Image.Image) -> np.ndarray:
    try:
        img.load()
        gray = img.convert("I;16") if img.mode in ("I", "I;16", "I;16B") else img.convert("L")
        array = np.array(gray, dtype=np.float32)
    except MemoryError:
        raise
    except Exception:  # Pillow raises OSError, SyntaxError, ValueError, … for corrupt data
        raise ImageDecodeError(
            f"{path}: not a readable image (truncated or corrupt data)"
        ) from None
    return np.divide(array, 65535.0 if gray.mode.startswith("I") else 255.0, out=array)


def inspect_image(path: str | Path, limits: DecodeLimits | None = None) -> ImageInfo:
    """Format and size from the header alone; refuses what `load_image` would refuse before
    decoding (missing, unsupported, over the pixel budget, a DICOM out of scope)."""
    path = Path(path)
    limits = limits or DecodeLimits.from_env()
    _require_file(path)
    if is_dicom(path):
        return inspect_dicom(path, limits)
    with _open_raster(path) as img:
        return _raster_info(path, img, limits)


def load_image(path: str | Path, limits: DecodeLimits | None = None) -> np.ndarray:
    """PNG, JPEG or DICOM → 2-D float32 in [0, 1]. Raises ImageDecodeError naming the file."""
    path = Path(path)
    limits = limits or DecodeLimits.from_env()
    _require_file(path)
    if is_dicom(path):
        return read_dicom(path, limits)
    with _open_raster(path) as img:
        _raster_info(path, img, limits)
        return _raster_pixels(path, img)


def fit_square(image: np.ndarray, size: int) -> np.ndarray:
    """Aspect-preserving resize so the long side is `size`, centred on a black square; uint8."""
    height, width = image.shape
    scale = size / max(height, width)
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    resized = Image.fromarray(image.astype(np.float32, copy=False)).resize(
        (new_w, new_h),
        Image.Resampling.BILINEAR,  # PIL antialiases when it shrinks
    )
    square = np.zeros((size, size), dtype=np.uint8)
    top, left = (size - new_h) // 2, (size - new_w) // 2
    square[top : top + new_h, left : left + new_w] = np.clip(
        np.rint(np.asarray(resized) * 255.0), 0, 255
    ).astype(np.uint8)
    return square
