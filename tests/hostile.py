"""Builders of hostile files (bombs, malformed DICOM headers) and of the plain DICOM headers
they start from, for tests/test_dicom.py, tests/test_service.py and benchmarks/serve_bombs.py.

A plain module, not a test file: importing it imports no pytest fixture (tests/conftest.py sets
BENTOML_HOME to a throwaway store, which the benchmark must not inherit)."""

from __future__ import annotations

import contextlib
import io
import struct
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.tag import Tag
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
)

from umcl.imaging.limits import (
    IMAGE_FORMAT_UNSUPPORTED,
    IMAGE_TOO_LARGE,
    IMAGE_UNREADABLE,
    MODALITY_OUT_OF_SCOPE,
)

BOMB_SIDE = 13_000  # 169 MP: over the default 50 MP budget, under Pillow's own 179 MP refusal
PILLOW_BOMB_SIDE = 14_000  # 196 MP: over Pillow's own limit, which refuses it before we can
MB = 2**20
EMPTY_LO = struct.pack("<HH2sH", 0x7FE1, 0x1010, b"LO", 0)  # one 8-byte element, empty


def header(
    rows: int,
    columns: int,
    bits: int = 8,
    photometric: str = "MONOCHROME2",
    syntax: str = ExplicitVRLittleEndian,
    modality: str | None = "DX",
    **extra: object,
) -> Dataset:
    """An image dataset with every Image Pixel attribute but the pixel data."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    meta.TransferSyntaxUID = syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, "1.2.3.4"
    ds.PatientName = "Doe^Jane"
    if modality is not None:
        ds.Modality = modality
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = 3 if photometric in ("RGB", "YBR_FULL") else 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 8 if bits == 8 else 16
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits - 1, 0
    for key, value in extra.items():
        setattr(ds, key, value)
    return ds


def raw(ds: Dataset, keyword: str, vr: str, value: bytes) -> Dataset:
    """Set an element to bytes exactly as a hostile file would hold them (pydicom refuses to
    build such values itself)."""
    tag = Tag(keyword)
    ds[tag] = RawDataElement(tag, vr, len(value), value, 0, False, True)
    return ds


def saved(ds: Dataset, pixel_data: bytes | None = None, encapsulated: bool = False) -> bytes:
    if pixel_data is not None:
        ds.PixelData = pixel_data
        if encapsulated:
            ds["PixelData"].VR, ds["PixelData"].is_undefined_length = "OB", True
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def jpeg_claiming(width: int, height: int) -> bytes:
    """A ~300-byte JPEG whose frame header claims width × height (its scan covers 8 × 8)."""
    buffer = io.BytesIO()
    Image.new("L", (8, 8), 128).save(buffer, "JPEG")
    data = bytearray(buffer.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def png_of_zeros(side: int) -> bytes:
    """A real side × side grayscale PNG of zeros: 13000² compresses to ~165 KB."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    packer = zlib.compressobj(9)
    row = bytes(side + 1)  # filter byte 0, then the row
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def deflated_dicom(rows: int, columns: int, pixel_bytes: int) -> bytes:
    """A Deflated Explicit VR Little Endian file whose header declares rows × columns 8-bit and
    whose pixel data element holds `pixel_bytes` zeros, deflated as a stream (never in memory)."""
    ds = header(rows, columns, syntax=DeflatedExplicitVRLittleEndian)
    out = DicomBytesIO()
    out.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(out, ds.file_meta, enforce_standard=True)
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, False
    write_dataset(body, ds)
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    parts = [
        packer.compress(
            body.getvalue() + struct.pack("<HH2sHI", 0x7FE0, 0x10, b"OB", 0, pixel_bytes)
        )
    ]
    zeros = bytes(2**20)
    for start in range(0, pixel_bytes, len(zeros)):
        parts.append(packer.compress(zeros[: min(len(zeros), pixel_bytes - start)]))
    parts.append(packer.flush())
    return out.getvalue() + b"".join(parts)


def jp2_with_empty_box() -> bytes:
    """A JP2-wrapped frame whose second box declares length 0: pydicom 3.0's JPEG 2000 header
    walk (`get_j2k_parameters`) never advances past it and spins forever."""
    return (
        b"\x00\x00\x00\x0cjP  \r\n\x87\n"
        + b"\x00\x00\x00\x00ftyp"
        + b"\xff\x4f\xff\x51"
        + bytes(64)
    )


def rle_frame(rows: int, columns: int, runs: int | None = None) -> bytes:
    """One 8-bit RLE Lossless frame of zeros (PS3.5 G.3): `runs` runs of 128 (default: exactly
    rows × columns)."""
    runs = runs if runs is not None else rows * columns // 128
    return struct.pack("<16I", 1, 64, *[0] * 14) + b"\x81\x00" * runs


def rle_dicom(rows: int, columns: int, frames: int, runs: int | None = None) -> bytes:
    ds = header(rows, columns, syntax=RLELossless, NumberOfFrames=frames)
    return saved(ds, encapsulate([rle_frame(rows, columns, runs)] * frames), encapsulated=True)


def progressive_scan_bomb(side: int = 4_000, repeats: int = 30_000) -> bytes:
    """A real progressive grayscale JPEG of side² whose last scan (31 bytes) is repeated
    `repeats` times: every scan makes the decoder pass over the whole image again, so 30,000
    (0.99 MB) took 23 s of CPU to decode before scans were counted."""
    buffer = io.BytesIO()
    Image.new("L", (side, side), 128).save(buffer, "JPEG", progressive=True)
    data = buffer.getvalue()
    assert data.endswith(b"\xff\xd9")
    last = data.rindex(b"\xff\xda")  # the last scan runs from its SOS to the EOI
    return data[:-2] + data[last:-2] * repeats + b"\xff\xd9"


def textured(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A uint8 picture with the detail of a radiograph (a ramp under grain), so that it
    compresses as one does: a flat picture compresses to nothing and decodes faster than any."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(40, 200, width, dtype=np.float32)[None, :]
    grain = rng.integers(0, 24, (height, width), dtype=np.uint8)
    return (ramp + grain).astype(np.uint8)


def progressive_jpeg(side: int, scans: int) -> bytes:
    """A real progressive grayscale JPEG of side² holding `scans` scans (its last one repeated
    up to that count): each scan is a pass of the decoder over the whole picture."""
    buffer = io.BytesIO()
    Image.fromarray(textured(side, side)).save(buffer, "JPEG", progressive=True, quality=90)
    data = buffer.getvalue()
    have = data.count(b"\xff\xda")
    last = data.rindex(b"\xff\xda")
    return data[:-2] + data[last:-2] * max(0, scans - have) + b"\xff\xd9"


def png16(width: int, height: int) -> bytes:
    """A real 16-bit grayscale PNG of width × height, 12-bit values as a detector writes them."""
    values = textured(height, width).astype(np.uint16) * 16
    buffer = io.BytesIO()
    Image.fromarray(values).save(buffer, "PNG", compress_level=1)  # uint16: mode I;16
    return buffer.getvalue()


def jpeg_dicom(side: int, frames: int) -> bytes:
    """A multi-frame DX of JPEG Baseline frames of side², each a real textured picture."""
    buffer = io.BytesIO()
    Image.fromarray(textured(side, side)).save(buffer, "JPEG", quality=90)
    ds = header(side, side, syntax=JPEGBaseline8Bit, NumberOfFrames=frames)
    return saved(ds, encapsulate([buffer.getvalue()] * frames), encapsulated=True)


def radiograph(rows: int = 64, columns: int = 64, **extra: object) -> bytes:
    """A valid DX file whose 8-bit pixels are a gradient."""
    pixels = (np.arange(rows * columns) % 251).astype(np.uint8).tobytes()
    return saved(header(rows, columns, **extra), pixels)


def _pixel_element_start(data: bytes) -> int:
    return data.index(b"\xe0\x7f\x10\x00O")  # (7FE0,0010) OB/OW, explicit VR little endian


def header_of_empty_elements(count: int) -> bytes:
    """A 64² radiograph with `count` empty 8-byte private elements before its pixel data:
    450,000 (3.6 MB, within the 4 MB header limit) took ~1.5 s to parse, and the service parsed
    them 2–3 times."""
    data = radiograph()
    elements = b"".join(
        struct.pack("<HH2sH", 0x0029 + 2 * (i // 60_000), 0x1000 + i % 60_000, b"LO", 0)
        for i in range(count)
    )
    at = _pixel_element_start(data)
    return data[:at] + elements + data[at:]


def trailing_elements(megabytes: float) -> bytes:
    """A 64² radiograph followed by `megabytes` of empty 8-byte elements after its pixel data,
    which pydicom parsed one by one (63 MB took 14.5 s)."""
    return radiograph() + EMPTY_LO * int(megabytes * MB / len(EMPTY_LO))


@dataclass(frozen=True)
class Large:
    """A large file given as its first bytes and its size: the rest is zeros, written sparse
    (`write`) so that a test can hold hundreds of MB without writing them."""

    head: bytes
    size: int

    def write(self, path: Path) -> Path:
        with path.open("wb") as handle:
            handle.write(self.head)
            handle.truncate(self.size)
        return path

    def data(self) -> bytes:
        return self.head + bytes(self.size - len(self.head))


def trailing_zeros(megabytes: float) -> Large:
    """A 64² radiograph followed by `megabytes` of zeros (64 MB took 11.6 s; 300 MB 55 s)."""
    head = radiograph()
    return Large(head, len(head) + int(megabytes * MB))


def uncompressed_frames(frames: int, side: int = 2_000) -> Large:
    """An uncompressed 16-bit multi-frame DX file: `frames` frames of side² (40 of 2000² is
    320 MB, all read to decode a 4 MP first frame before: 622 MB RSS)."""
    ds = header(side, side, bits=16, NumberOfFrames=frames)
    head = saved(ds)  # no pixel data: the element is appended by hand, its value left sparse
    length = side * side * 2 * frames
    head += struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, length)
    first = (np.arange(side * side) % 4096).astype("<u2").tobytes()  # the first frame: a ramp
    return Large(head + first, len(head) + length)


@dataclass(frozen=True)
class Hostile:
    file_name: str
    data: bytes
    code: str  # the ImageDecodeError code expected
    in_header: bool  # refused from the header alone (`inspect_image`), not only when decoding


def jpeg_ls_noise() -> bytes:
    """A DX whose JPEG-LS frame keeps a real frame's headers (pydicom's own lossless 64² MR) but
    whose scan is random bytes: libjpeg decodes it to noise of the declared size."""
    source = pydicom.dcmread(
        Path(pydicom.data.__file__).parent / "test_files" / "MR_small_jpeg_ls_lossless.dcm"
    )
    frame = next(generate_frames(source.PixelData, number_of_frames=1))
    sos = frame.index(b"\xff\xda")
    scan = sos + 2 + int.from_bytes(frame[sos + 2 : sos + 4], "big")
    noise = np.random.default_rng(0).integers(0, 256, len(frame) - scan - 2, dtype=np.uint8)
    ds = header(source.Rows, source.Columns, bits=16, syntax=JPEGLSLossless)
    ds.PixelRepresentation = source.PixelRepresentation
    return saved(ds, encapsulate([frame[:scan] + noise.tobytes() + b"\xff\xd9"]), encapsulated=True)


def hostile_files() -> dict[str, Hostile]:
    """Every small bomb: each within a 1 MB upload limit, claiming or expanding to hundreds of MB,
    or costing seconds to decode."""
    side = BOMB_SIDE
    return {
        "JPEG header claiming 13000²": Hostile(
            "claims.jpg", jpeg_claiming(side, side), IMAGE_TOO_LARGE, True
        ),
        "PNG of 13000² zeros": Hostile("zeros.png", png_of_zeros(side), IMAGE_TOO_LARGE, True),
        "PNG of 14000² zeros (over Pillow's own limit)": Hostile(
            "pillow.png", png_of_zeros(PILLOW_BOMB_SIDE), IMAGE_TOO_LARGE, True
        ),
        "progressive JPEG with 30,000 scans": Hostile(
            "scans.jpg", progressive_scan_bomb(), IMAGE_UNREADABLE, True
        ),
        "DICOM header of 118,000 empty elements": Hostile(
            "elements.dcm", header_of_empty_elements(118_000), IMAGE_TOO_LARGE, True
        ),
        "DICOM header claiming 13000²": Hostile(
            "claims.dcm", saved(header(side, side), bytes(64)), IMAGE_TOO_LARGE, True
        ),
        "deflated DICOM claiming 13000²": Hostile(
            "deflated.dcm", deflated_dicom(side, side, side**2), IMAGE_TOO_LARGE, True
        ),
        "deflated DICOM inflating past its header": Hostile(
            "inflates.dcm", deflated_dicom(64, 64, 300 * 2**20), IMAGE_TOO_LARGE, False
        ),
        "RLE segment expanding 64×": Hostile(
            "rle.dcm", rle_dicom(64, 64, 1, runs=400_000), IMAGE_UNREADABLE, False
        ),
        "JPEG 2000 frame with a zero-length JP2 box": Hostile(
            "box.dcm",
            saved(
                header(64, 64, syntax=JPEG2000Lossless), encapsulate([jp2_with_empty_box()]), True
            ),
            IMAGE_UNREADABLE,
            False,
        ),
        "JPEG-LS frame of noise": Hostile("noise.dcm", jpeg_ls_noise(), IMAGE_UNREADABLE, False),
        "JPEG frame larger than its DICOM header": Hostile(
            "frame.dcm",
            saved(
                header(64, 64, syntax=JPEGBaseline8Bit),
                encapsulate([jpeg_claiming(side, side)]),
                True,
            ),
            IMAGE_UNREADABLE,
            False,
        ),
        "DICOM JPEG frame with 30,000 scans": Hostile(
            "scans.dcm",
            saved(
                header(4_000, 4_000, syntax=JPEGBaseline8Bit),
                encapsulate([progressive_scan_bomb()]),
                True,
            ),
            IMAGE_UNREADABLE,
            False,
        ),
        "DICOM of 120,000 empty fragments": Hostile(
            "fragments.dcm", fragments_dicom(120_000), IMAGE_UNREADABLE, False
        ),
    }


def fragments_dicom(count: int) -> bytes:
    """A 2-frame 64² RLE file without an offset table whose pixel data is `count` empty
    fragments: pydicom walks every fragment header to find the first frame."""
    ds = header(64, 64, syntax=RLELossless, NumberOfFrames=2)
    items = struct.pack("<HHI", 0xFFFE, 0xE000, 0) * (count + 1)  # the empty offset table first
    return saved(ds, items + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0), encapsulated=True)


def large_dicoms() -> dict[str, tuple[Large | bytes, str | None]]:
    """name → (file, the error code, or None when it decodes): DICOM files whose cost grew with
    their size, not their pixel budget, before only the header and the first frame were read."""
    return {
        "64² DX + 64 MB of zeros after the pixel data": (trailing_zeros(64), None),
        "64² DX + 300 MB of zeros after the pixel data": (trailing_zeros(300), None),
        "64² DX + 63 MB of empty elements after the pixel data": (trailing_elements(63), None),
        "40 uncompressed 16-bit frames of 2000² (320 MB)": (uncompressed_frames(40), None),
        "3.6 MB header of 450,000 empty elements": (
            header_of_empty_elements(450_000),
            IMAGE_TOO_LARGE,
        ),
    }


def multiframe_bomb() -> bytes:
    """200 RLE frames of 512²: 52 MP in 0.8 MB. Only the first frame may be decoded."""
    return rle_dicom(512, 512, 200)


def malformed_headers() -> dict[str, tuple[Dataset, str]]:
    """name → (16 × 16 header without pixel data, error code): values a hostile or broken file
    holds, quoting `Doe^Jane` where a value is text, so a message that quotes it is caught."""

    def voi_lut(descriptor: list[int], entries: int) -> Dataset:
        item = Dataset()
        item.LUTDescriptor = descriptor
        item.add_new("LUTData", "US", list(range(entries)))
        ds = header(16, 16)
        ds.VOILUTSequence = [item]
        return ds

    return {
        "non-numeric WindowCenter": (
            raw(header(16, 16, WindowWidth="100"), "WindowCenter", "DS", b"Doe^Jane"),
            IMAGE_UNREADABLE,
        ),
        "non-numeric RescaleSlope": (
            raw(header(16, 16, RescaleIntercept="0"), "RescaleSlope", "DS", b"Doe^Jane"),
            IMAGE_UNREADABLE,
        ),
        "infinite RescaleIntercept": (
            raw(header(16, 16, RescaleSlope="1"), "RescaleIntercept", "DS", b"inf "),
            IMAGE_UNREADABLE,
        ),
        "non-numeric NumberOfFrames": (
            raw(header(16, 16), "NumberOfFrames", "IS", b"Doe^Jane"),
            IMAGE_UNREADABLE,
        ),
        "VOI LUT with 0 output bits": (voi_lut([256, 0, 0], 256), IMAGE_UNREADABLE),
        "VOI LUT shorter than its descriptor": (voi_lut([4096, 0, 12], 3), IMAGE_UNREADABLE),
        "a 600 KB VOI LUT sequence": (
            raw(header(16, 16), "VOILUTSequence", "SQ", defined_length_item(600 * 2**10)),
            IMAGE_TOO_LARGE,
        ),
        "no Rows": (raw(header(16, 16), "Rows", "US", b""), IMAGE_UNREADABLE),
        "palette colour": (header(16, 16, photometric="PALETTE COLOR"), IMAGE_FORMAT_UNSUPPORTED),
        "1-bit pixels": (
            header(16, 16, BitsAllocated=1, BitsStored=1, HighBit=0),
            IMAGE_FORMAT_UNSUPPORTED,
        ),
        "CT slice": (header(16, 16, modality="CT"), MODALITY_OUT_OF_SCOPE),
        "no Modality": (header(16, 16, modality=None), MODALITY_OUT_OF_SCOPE),
        "a name as Modality": (
            raw(header(16, 16), "Modality", "CS", b"DOE JANE"),
            MODALITY_OUT_OF_SCOPE,
        ),
    }


def defined_length_item(size: int) -> bytes:
    """One sequence item of defined length holding a `size`-byte private OB element: a sequence
    of defined length is parsed only when first read, element by element."""
    element = struct.pack("<HH2sHI", 0x0009, 0x1010, b"OB", 0, size) + bytes(size)
    return struct.pack("<HHI", 0xFFFE, 0xE000, len(element)) + element


def bundled_pydicom_files() -> list[Path]:
    """pydicom's own test corpus as installed (no download): ~85 files from many vendors and
    encoders, most of them not DICOM radiographs, a few not DICOM at all."""
    root = Path(pydicom.data.__file__).parent / "test_files"
    return sorted(p for p in root.iterdir() if p.is_file())


# -- what a request costs the server --------------------------------------------------------


def tree_rss(pid: int) -> int:
    """Resident memory of a process and every process it started (API workers, encoder)."""
    import psutil

    root = psutil.Process(pid)
    total = 0
    for process in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += process.memory_info().rss
    return total


@dataclass
class Cost:
    result: object  # what `send` returned
    seconds: float
    before: int  # bytes of RSS before the request
    peak: int  # the highest RSS sampled while it ran (every 5 ms) or right after


def cost_of(pid: int, send: Callable[[], object]) -> Cost:
    """Send a request and sample the server tree's memory while it runs."""
    before = tree_rss(pid)
    peak = before
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss(pid))
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    started = time.perf_counter()
    try:
        result = send()
    finally:
        seconds = time.perf_counter() - started
        done.set()
        sampler.join()
    return Cost(result, seconds, before, max(peak, tree_rss(pid)))
