"""Any supported image file → grayscale float32 in [0, 1], and the square fit the cache uses.

Supported means what docs/bad-input-and-phi.md promises: PNG, JPEG and DICOM. Dimensions are read from the
header before anything is decoded (`inspect_image`), so a small file that claims a huge picture
is refused at once instead of being decoded (`DecodeLimits.max_pixels`, UMCL_MAX_PIXELS). A
JPEG's marker segments are walked before Pillow opens it, and one with more scans than any
encoder writes is refused (`dicom.MAX_JPEG_SCANS`): each scan costs a pass over the image.
A JPEG is turned upright as its EXIF Orientation asks, as every viewer shows it (the preprocess
stage and the service both decode through `load_image`, so the two always agree).
"""

from __future__ import annotations

import mmap
import re
from pathlib import Path
from typing import NoReturn

import numpy as np
from PIL import Image

from umcl.imaging.display import read_dicom
from umcl.imaging.frame import check_jpeg_stream
from umcl.imaging.header import inspect_dicom
from umcl.imaging.limits import (
    IMAGE_FORMAT_UNSUPPORTED,
    IMAGE_MISSING,
    IMAGE_TOO_LARGE,
    DecodeLimits,
    ImageDecodeError,
    ImageInfo,
    check_pixel_budget,
)
from umcl.imaging.scaled import box_mean, reduced_shape, reduction, strips

__all__ = [
    "IMAGE_SUFFIXES",
    "DecodeLimits",
    "ImageDecodeError",
    "ImageInfo",
    "fit_square",
    "inspect_image",
    "is_dicom",
    "load_image",
]

DICOM_SUFFIXES = {".dcm", ".dicom"}
IMAGE_SUFFIXES = DICOM_SUFFIXES | {".png", ".jpg", ".jpeg"}  # what a reader or an upload decodes
# Pillow's names. MPO is how Pillow identifies a JPEG from a camera that also stores a preview;
# only its first picture is decoded, as for any JPEG.
RASTER_FORMATS = ("PNG", "JPEG", "MPO")
ORIENTATION = 0x0112  # EXIF Orientation: 1 is upright; 2–8 mirror and/or rotate (TIFF 6.0)


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


def _check_jpeg(path: Path) -> None:
    """A JPEG's marker segments, walked before Pillow opens it (Pillow's own walk to the first
    scan is Python, one segment at a time): see `check_jpeg_stream`."""
    try:
        with path.open("rb") as handle:
            if handle.read(2) != b"\xff\xd8":
                return
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                check_jpeg_stream(path, data)
    except OSError:
        raise ImageDecodeError(f"{path}: image file cannot be read") from None


def _pillow_refusal(
    path: Path, exc: Image.DecompressionBombError, limits: DecodeLimits
) -> NoReturn:
    """Pillow refuses an image over twice its MAX_IMAGE_PIXELS (179 MP) on its own: over the
    pixel budget too, unless UMCL_MAX_PIXELS is set above that."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    if found:
        check_pixel_budget(path, int(found[1]), limits)
    limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
    raise ImageDecodeError(
        f"{path}: image is over the {limit / 1e6:.0f} MP the decoder accepts", IMAGE_TOO_LARGE
    )


# What the monitor records of a PNG or JPEG, in the DICOM terms it uses for DICOM files.
RASTER_NAMES = {"MPO": "JPEG"}  # Pillow's name for a JPEG with more than one picture
RASTER_BITS = {"1": 1, "I": 32, "F": 32}  # per sample; 8 unless named here or I;16*
RASTER_PHOTOMETRIC = {
    "1": "MONOCHROME2",
    "L": "MONOCHROME2",
    "LA": "MONOCHROME2",
    "I": "MONOCHROME2",
    "F": "MONOCHROME2",
    "P": "PALETTE COLOR",
    "PA": "PALETTE COLOR",
}


def _open_raster(path: Path, limits: DecodeLimits) -> Image.Image:
    """The file opened lazily (header only) as PNG or JPEG; anything else is refused."""
    _check_jpeg(path)
    try:
        return Image.open(path, formats=RASTER_FORMATS)
    except MemoryError:
        raise
    except Image.DecompressionBombError as exc:
        _pillow_refusal(path, exc, limits)
    except Exception:
        pass  # Pillow's messages quote the path; ours say the same without it
    name = _format_name(path)
    if name is not None:
        raise ImageDecodeError(
            f"{path}: {name} images are not accepted (PNG, JPEG or DICOM)",
            IMAGE_FORMAT_UNSUPPORTED,
        )
    raise ImageDecodeError(f"{path}: not a readable image (PNG, JPEG or DICOM)")


def _orientation(img: Image.Image) -> int:
    """A JPEG's EXIF Orientation (1, upright, when absent or unreadable); a PNG's is not read."""
    if img.format not in ("JPEG", "MPO"):
        return 1
    try:
        value = img.getexif().get(ORIENTATION, 1)
    except Exception:  # a malformed EXIF block: viewers show such a file as stored
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _raster_info(path: Path, img: Image.Image, limits: DecodeLimits) -> ImageInfo:
    width, height = img.size
    check_pixel_budget(path, width * height, limits)
    if _orientation(img) >= 5:  # turned a quarter: the upright picture is height × width
        width, height = height, width
    return ImageInfo(
        RASTER_NAMES.get(str(img.format), str(img.format)),
        width,
        height,
        width * height,
        bits=RASTER_BITS.get(img.mode, 16 if img.mode.startswith("I;16") else 8),
        photometric=RASTER_PHOTOMETRIC.get(
            img.mode, "MONOCHROME2" if img.mode.startswith("I;16") else "RGB"
        ),
    )


# EXIF Orientation → the stored array as displayed, as views (ImageOps.exif_transpose's table:
# 2 mirror, 3 rotate 180°, 4 flip, 5 transpose, 6 rotate 90° clockwise, 7 transverse, 8 rotate
# 90° anticlockwise).
_UPRIGHT = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1, :],
    5: lambda a: a.T,
    6: lambda a: a.T[:, ::-1],
    7: lambda a: a.T[::-1, ::-1],
    8: lambda a: a.T[::-1, :],
}


def _upright(array: np.ndarray, orientation: int) -> np.ndarray:
    """The stored pixels as EXIF Orientation says to display them (a view; no copy)."""
    return _UPRIGHT.get(orientation, _UPRIGHT[1])(array)


def _raster_pixels(path: Path, img: Image.Image, min_side: int = 0) -> np.ndarray:
    """The picture as float32 in [0, 1], upright; shrunk while decoding when `min_side` allows
    (`reduction`): a JPEG by libjpeg's DCT scaling (`draft`), then every format converted a strip
    at a time and box-averaged, so only the decoder's own 1–2 bytes a sample exist at full size."""
    try:
        factor = reduction(img.height, img.width, min_side)
        if factor > 1 and img.format in ("JPEG", "MPO"):  # libjpeg scales by 1/2, 1/4 or 1/8
            img.draft(None, reduced_shape(img.width, img.height, factor))
        img.load()
        # 16-bit through 32-bit "I": Pillow's convert("I;16") clips big- and little-endian
        # 16-bit images (I;16B, I;16L) to 255.
        sixteen = img.mode == "I" or img.mode.startswith("I;16")
        factor = reduction(img.height, img.width, min_side)
        array = np.empty(reduced_shape(img.height, img.width, factor), np.float32)
        for rows in strips(img.height, factor):
            strip = img.crop((0, rows.start, img.width, rows.stop))
            values = np.asarray(strip.convert("I" if sixteen else "L"), dtype=np.float32)
            if sixteen:
                np.clip(values, 0, 65535, out=values)
            array[rows.start // factor : -(-rows.stop // factor)] = box_mean(values, factor)
    except MemoryError:
        raise
    except Exception:  # Pillow raises OSError, SyntaxError, ValueError, … for corrupt data
        raise ImageDecodeError(
            f"{path}: not a readable image (truncated or corrupt data)"
        ) from None
    np.divide(array, 65535.0 if sixteen else 255.0, out=array)
    orientation = _orientation(img)
    return array if orientation == 1 else np.ascontiguousarray(_upright(array, orientation))


def inspect_image(path: str | Path, limits: DecodeLimits | None = None) -> ImageInfo:
    """Format and size from the header alone; refuses what `load_image` would refuse before
    decoding (missing, unsupported, over the pixel budget, a DICOM out of scope)."""
    path = Path(path)
    limits = limits or DecodeLimits.from_env()
    _require_file(path)
    if is_dicom(path):
        return inspect_dicom(path, limits)
    with _open_raster(path, limits) as img:
        return _raster_info(path, img, limits)


def load_image(
    path: str | Path,
    limits: DecodeLimits | None = None,
    info: ImageInfo | None = None,
    min_side: int = 0,
) -> np.ndarray:
    """PNG, JPEG or DICOM → 2-D float32 in [0, 1], upright. Raises ImageDecodeError naming the
    file. `info`: what `inspect_image` returned for this same file (a DICOM header is then not
    parsed again). `min_side`: decode a large image at reduced scale, its long side still at
    least this (`decoded_side` of the model's square; 0: full size)."""
    path = Path(path)
    limits = limits or DecodeLimits.from_env()
    _require_file(path)
    if is_dicom(path):
        return read_dicom(path, limits, info, min_side)
    with _open_raster(path, limits) as img:
        _raster_info(path, img, limits)
        return _raster_pixels(path, img, min_side)


def square_placement(height: int, width: int, size: int) -> tuple[int, int, int, int]:
    """Where `fit_square` puts an image of height × width in its size × size square:
    (new height, new width, top, left)."""
    scale = size / max(height, width)
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    return new_h, new_w, (size - new_h) // 2, (size - new_w) // 2


def fit_square(image: np.ndarray, size: int) -> np.ndarray:
    """Aspect-preserving resize so the long side is `size`, centred on a black square; uint8."""
    new_h, new_w, top, left = square_placement(*image.shape, size)
    resized = Image.fromarray(image.astype(np.float32, copy=False)).resize(
        (new_w, new_h),
        Image.Resampling.BILINEAR,  # PIL antialiases when it shrinks
    )
    square = np.zeros((size, size), dtype=np.uint8)
    square[top : top + new_h, left : left + new_w] = np.clip(
        np.rint(np.asarray(resized) * 255.0), 0, 255
    ).astype(np.uint8)
    return square


def unfit_square(values: np.ndarray, height: int, width: int) -> np.ndarray:
    """A (size, size) float map over `fit_square`'s square → (height, width) over the image it
    came from: the padding cut off, the rest resized back (bilinear)."""
    new_h, new_w, top, left = square_placement(height, width, values.shape[0])
    inside = np.ascontiguousarray(values[top : top + new_h, left : left + new_w], np.float32)
    return np.asarray(Image.fromarray(inside).resize((width, height), Image.Resampling.BILINEAR))
