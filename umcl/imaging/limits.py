"""What a decode may claim and how a refusal is named: the reason codes, `ImageDecodeError`,
`DecodeLimits` (pixel budget, accepted DICOM modalities), `ImageInfo` (a header read without
its pixels) and the bounds on reading a DICOM file (`umcl/imaging/__init__.py`)."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from umcl.config import DecodeSettings
from umcl.errors import UMCLError

# Reasons an image is refused; ingestion counts out-of-scope objects by these.
IMAGE_MISSING = "image_missing"
IMAGE_UNREADABLE = "image_unreadable"
IMAGE_TOO_LARGE = "image_too_large"
IMAGE_FORMAT_UNSUPPORTED = "image_format_unsupported"
MODALITY_OUT_OF_SCOPE = "modality_out_of_scope"

DEFAULT_MAX_PIXELS = 50_000_000  # a 43 × 43 cm detector at 100 µm is 18.5 MP; 50 MP leaves room
DEFAULT_MODALITIES = ("CR", "DX")
HEADER_BYTES = 4 * 2**20  # everything before the pixel data must fit here
ROUTING_BYTES = 64 * 2**10  # a radiograph's header is a few KB: routing reads no more, mostly
CODE_SEQUENCE_BYTES = 16 * 2**10
# Reads while parsing a header: one to three an element, so 16,000 to 50,000 elements where a
# radiograph's header has hundreds. Parsing costs ~3 µs an element: a header of 450,000 empty
# elements (3.6 MB) took 1.5 s a parse without this bound, and ~0.15 s is the most it costs now.
MAX_HEADER_READS = 50_000
LUT_SEQUENCE_BYTES = 512 * 2**10  # three LUTs of 65,536 16-bit entries fit
TRAILER_BYTES = 64 * 2**10  # elements after the pixel data a deflated file may hold
INFLATE_CHUNK = 2**20
FRAME_READS = 200_000  # reads (item headers, fragments) to find the first compressed frame
# A progressive JPEG has about 10 scans (libjpeg's default script: 10 in colour, 6 in grayscale)
# and each makes the decoder pass over the whole image again, so scans, not bytes, set the cost:
# one 31-byte scan repeated 30,000 times (0.99 MB) took 23 s of CPU. libjpeg-turbo stops at 500
# (TJPARAM_SCANLIMIT); 100 keeps a decode within ~10 times that of an ordinary progressive JPEG.
MAX_JPEG_SCANS = 100
# Scans × pixels a JPEG may cost (each scan is a pass over the whole image): a 50 MP progressive
# JPEG of 10 scans (what encoders write) passes; 99 scans of it took 6 s to decode.
MAX_JPEG_SCAN_PIXELS = 1_000_000_000
# Start-of-frame markers (ISO 10918-1 B.1.1.3, T.87 for JPEG-LS): all of 0xC0–0xCF but DHT, JPG
# and DAC, and JPEG-LS's 0xF7.
_JPEG_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC} | {0xF7}
MAX_JPEG_SEGMENTS = 2_000  # a JPEG has tens (APPn, DQT, DHT, SOF, SOS); a DHT before each scan
PIXEL_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}  # Pixel Data, Float and Double Float Pixel Data
JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  "  # the JP2 signature box, always first and 12 bytes
GRAYSCALE = {"MONOCHROME1", "MONOCHROME2"}
COLOUR = {"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT"}  # pydicom returns these as RGB
# PS3.3 C.7.3.1.1.1 defined terms, current and retired: only these are quoted back in a message.
MODALITY_TERMS = (
    "ANN AR ASMT AU BDUS BI BMD CFM CR CT CTPROTOCOL DG DMS DOC DX ECG EEG EMG EOG EPS ES FID GM HC "
    "HD IO IOL IVOCT IVUS KER KO LEN LS M3D MG MR NM OAM OCT OP OPM OPT OPTBSV OPTENF OPV OSS OT PA "
    "PLAN POS PR PT PX REG RESP RF RG RTDOSE RTIMAGE RTINTENT RTPLAN RTRAD RTRECORD RTSEGANN "
    "RTSTRUCT RWV SEG SM SMR SR SRF STAIN TEXTUREMAP TG US VA XA XAPROTOCOL XC "
    "AS CD CF CP CS DD DF DM DS EC FA FS LP MA MS OPR ST VF"
)
KNOWN_MODALITIES = frozenset(MODALITY_TERMS.split())


class ImageDecodeError(UMCLError, ValueError):
    """An image file that cannot (or may not) be turned into pixels. The message starts with the
    file's path; `code` says why, for counting (IMAGE_UNREADABLE, IMAGE_TOO_LARGE, …)."""

    def __init__(self, message: str, code: str = IMAGE_UNREADABLE) -> None:
        super().__init__(message)
        self.code = code

    def __reduce__(self) -> tuple[type[ImageDecodeError], tuple[str, str]]:
        # Keeps `code` when the error crosses a process pool (the preprocess stage decodes there).
        return (type(self), (str(self), self.code))


def env_number(
    name: str, default: float, *, integer: bool = False, environ: Mapping[str, str] = os.environ
) -> float:
    """A positive number from the environment variable `name` (`default` when unset or blank);
    `integer`: whole, rounded down (`1e6` is a million; 0.5 is refused). Anything else raises
    ValueError naming the variable. The one reader of UMCL's numeric settings."""
    raw = environ.get(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        value = 0.0
    if integer and math.isfinite(value):
        value = int(value)
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"{name}={raw!r} is not a positive number")
    return value


@dataclass(frozen=True)
class DecodeLimits:
    """What a file may be: at most `max_pixels` decoded pixels; for DICOM, one of `modalities`
    (None: any file, with or without a Modality)."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    modalities: frozenset[str] | None = frozenset(DEFAULT_MODALITIES)

    @classmethod
    def from_names(cls, max_pixels: int, modalities: Iterable[str]) -> DecodeLimits:
        """Limits from a pixel budget and modality names (`*` accepts any); the service reads
        them from the environment, ingestion from params (`decode`)."""
        given = list(modalities)
        names = frozenset(m.strip().upper() for m in given) - {""}
        if not names:
            raise ValueError(f"{given!r} names no DICOM modality")
        return cls(max_pixels=max_pixels, modalities=None if "*" in names else names)

    @classmethod
    def from_settings(cls, settings: DecodeSettings) -> DecodeLimits:
        return cls.from_names(settings.max_pixels, settings.dicom_modalities)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> DecodeLimits:
        """UMCL_MAX_PIXELS and UMCL_DICOM_MODALITIES (comma-separated; `*` accepts any)."""
        raw = environ.get("UMCL_DICOM_MODALITIES") or ",".join(DEFAULT_MODALITIES)
        return cls.from_names(
            int(env_number("UMCL_MAX_PIXELS", DEFAULT_MAX_PIXELS, integer=True, environ=environ)),
            re.split(r"[\s,]+", raw),
        )


@dataclass(frozen=True)
class ImageInfo:
    """What a file's header says, read without decoding its pixels. `pixels` is what decoding it
    will hold: one frame, or every frame of a deflated DICOM (which is inflated whole). `parsed`
    is the checked DICOM header, which `load_image(path, info=…)` reuses instead of parsing the
    same file again (it never leaves this package: it holds every header value). `bits`,
    `photometric` and `modality` describe the encoding without saying whose image it is (a
    DICOM defined term or "none"/"other", never a header's own text): the service's monitor
    records them."""

    format: str
    width: int
    height: int
    pixels: int
    parsed: object = field(default=None, repr=False, compare=False)
    bits: int = 8  # bits stored per sample
    photometric: str = "MONOCHROME2"
    modality: str = "none"

    @property
    def decoded_bytes(self) -> int:
        """Bytes the format's decoder returns for it at full size (1–4 a sample, 3 samples for
        colour): what a decode still holds when everything after it works a strip at a time."""
        samples = 1 if self.photometric.startswith("MONOCHROME") else 3
        return self.pixels * samples * -(-self.bits // 8)


def check_pixel_budget(path: Path, pixels: int, limits: DecodeLimits) -> None:
    if pixels > limits.max_pixels:
        raise ImageDecodeError(
            f"{path}: image has {pixels / 1e6:.1f} megapixels, over the "
            f"{limits.max_pixels / 1e6:g} MP limit (UMCL_MAX_PIXELS)",
            IMAGE_TOO_LARGE,
        )
