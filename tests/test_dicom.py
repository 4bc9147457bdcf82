"""DICOM, PNG and JPEG decoding: the display pipeline, and the guards that refuse hostile files
(bombs, malformed headers, formats and modalities out of scope) before they cost memory.

The builders of hostile files below are also used by tests/test_service.py and
benchmarks/serve_bombs.py."""

from __future__ import annotations

import io
import pickle
import struct
import time
import tracemalloc
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.tag import Tag
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    RLELossless,
)

from tests.conftest import shared_path
from umcl.data.dicom import (
    IMAGE_FORMAT_UNSUPPORTED,
    IMAGE_TOO_LARGE,
    IMAGE_UNREADABLE,
    MODALITY_OUT_OF_SCOPE,
    DecodeLimits,
    ImageDecodeError,
    read_dicom,
)
from umcl.data.images import fit_square, inspect_image, load_image

PICTURE = np.linspace(0, 1, 48 * 32, dtype=np.float32).reshape(48, 32)
BOMB_SIDE = 13_000  # 169 MP: over the default 50 MP budget, under Pillow's own 179 MP refusal
ANY_MODALITY = DecodeLimits(modalities=None)

# --- builders of (hostile) files -----------------------------------------------------------------


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


def write(
    path: Path, stored: np.ndarray, bits: int, photometric: str = "MONOCHROME2", **extra: object
) -> Path:
    ds = header(*stored.shape, bits=bits, photometric=photometric, modality="CR", **extra)
    path.write_bytes(saved(ds, stored.astype(np.uint8 if bits == 8 else np.uint16).tobytes()))
    return path


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


@dataclass(frozen=True)
class Hostile:
    file_name: str
    data: bytes
    code: str  # the ImageDecodeError code expected
    in_header: bool  # refused from the header alone (`inspect_image`), not only when decoding


def hostile_files() -> dict[str, Hostile]:
    """Every bomb of issue 11, each small on disk and within a 1 MB upload limit, claiming or
    expanding to hundreds of MB."""
    side = BOMB_SIDE
    return {
        "JPEG header claiming 13000²": Hostile("claims.jpg", jpeg_claiming(side, side), IMAGE_TOO_LARGE, True),
        "PNG of 13000² zeros": Hostile("zeros.png", png_of_zeros(side), IMAGE_TOO_LARGE, True),
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
            saved(header(64, 64, syntax=JPEG2000Lossless), encapsulate([jp2_with_empty_box()]), True),
            IMAGE_UNREADABLE,
            False,
        ),
        "JPEG frame larger than its DICOM header": Hostile(
            "frame.dcm",
            saved(header(64, 64, syntax=JPEGBaseline8Bit), encapsulate([jpeg_claiming(side, side)]), True),
            IMAGE_UNREADABLE,
            False,
        ),
    }  # fmt: skip


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
            raw(header(16, 16, WindowWidth="100"), "WindowCenter", "DS", b"Doe^Jane"), IMAGE_UNREADABLE,
        ),
        "non-numeric RescaleSlope": (
            raw(header(16, 16, RescaleIntercept="0"), "RescaleSlope", "DS", b"Doe^Jane"), IMAGE_UNREADABLE,
        ),
        "infinite RescaleIntercept": (
            raw(header(16, 16, RescaleSlope="1"), "RescaleIntercept", "DS", b"inf "), IMAGE_UNREADABLE,
        ),
        "non-numeric NumberOfFrames": (raw(header(16, 16), "NumberOfFrames", "IS", b"Doe^Jane"), IMAGE_UNREADABLE),
        "VOI LUT with 0 output bits": (voi_lut([256, 0, 0], 256), IMAGE_UNREADABLE),
        "VOI LUT shorter than its descriptor": (voi_lut([4096, 0, 12], 3), IMAGE_UNREADABLE),
        "no Rows": (raw(header(16, 16), "Rows", "US", b""), IMAGE_UNREADABLE),
        "palette colour": (header(16, 16, photometric="PALETTE COLOR"), IMAGE_FORMAT_UNSUPPORTED),
        "1-bit pixels": (header(16, 16, BitsAllocated=1, BitsStored=1, HighBit=0), IMAGE_FORMAT_UNSUPPORTED),
        "CT slice": (header(16, 16, modality="CT"), MODALITY_OUT_OF_SCOPE),
        "no Modality": (header(16, 16, modality=None), MODALITY_OUT_OF_SCOPE),
        "a name as Modality": (raw(header(16, 16), "Modality", "CS", b"DOE JANE"), MODALITY_OUT_OF_SCOPE),
    }  # fmt: skip


def bundled_pydicom_files() -> list[Path]:
    """pydicom's own test corpus as installed (no download): ~85 files from many vendors and
    encoders, most of them not DICOM radiographs, a few not DICOM at all."""
    root = Path(pydicom.data.__file__).parent / "test_files"
    return sorted(p for p in root.iterdir() if p.is_file())


# --- the display pipeline ------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [8, 12, 16])
def test_bit_depths_give_the_same_picture(tmp_path, bits):
    top = 2**bits - 1
    image = read_dicom(write(tmp_path / "a.dcm", np.rint(PICTURE * top), bits))
    assert image.dtype == np.float32 and image.min() == 0 and image.max() == 1
    np.testing.assert_allclose(image, PICTURE, atol=1.5 / top)


def test_monochrome1_is_inverted(tmp_path):
    stored = np.rint(PICTURE * 4095)
    normal = read_dicom(write(tmp_path / "m2.dcm", stored, 12))
    inverted = read_dicom(write(tmp_path / "m1.dcm", stored, 12, "MONOCHROME1"))
    np.testing.assert_allclose(inverted, 1 - normal, atol=1e-6)


def test_rescale_then_window(tmp_path):
    # Stored 0..4095, modality values = 2 * stored - 1000; window on modality values.
    stored = np.rint(PICTURE * 4095)
    path = write(tmp_path / "w.dcm", stored, 12, RescaleSlope="2", RescaleIntercept="-1000",
                 WindowCenter="3095", WindowWidth="4096")  # fmt: skip
    image = read_dicom(path)
    expected = np.clip(((2 * stored - 1000) - (3095 - 0.5)) / 4095 + 0.5, 0, 1)
    np.testing.assert_allclose(image, expected, atol=1e-5)
    assert image[0, 0] == 0 and image[-1, -1] == 1  # the window clips both ends


def test_window_of_width_one_is_a_threshold(tmp_path):
    stored = np.rint(PICTURE * 255)
    image = read_dicom(write(tmp_path / "t.dcm", stored, 8, WindowCenter="128", WindowWidth="1"))
    np.testing.assert_array_equal(image, (stored > 127.5).astype(np.float32))


def test_an_empty_voi_lut_sequence_means_no_lut(tmp_path):
    stored = np.rint(PICTURE * 255)
    plain = read_dicom(write(tmp_path / "p.dcm", stored, 8))
    assert np.array_equal(
        read_dicom(write(tmp_path / "e.dcm", stored, 8, VOILUTSequence=[])), plain
    )


def test_real_monochrome_pair_are_exact_inverses():
    """Identical JPEG-compressed pixel data; one header says MONOCHROME1. The right picture of
    the MONOCHROME1 file is the inverse of the other (low stored values are white)."""
    normal = read_dicom(shared_path("fixtures/siim-cr-chest.dcm"))
    inverted = read_dicom(shared_path("fixtures/siim-cr-chest-monochrome1.dcm"))
    assert normal.shape == (1024, 1024)
    np.testing.assert_allclose(inverted, 1 - normal, atol=1e-6)
    assert not np.allclose(normal, inverted)


def test_not_dicom_and_no_pixels_name_the_file(tmp_path):
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"this is not a dicom file at all" * 10)
    with pytest.raises(ImageDecodeError, match=r"junk\.dcm") as caught:
        read_dicom(junk)
    assert caught.value.code == IMAGE_UNREADABLE
    ds = pydicom.dcmread(write(tmp_path / "p.dcm", np.zeros((4, 4)), 8))
    del ds.PixelData
    ds.save_as(tmp_path / "nopixels.dcm")
    with pytest.raises(ImageDecodeError, match=r"nopixels\.dcm: DICOM file has no pixel data"):
        read_dicom(tmp_path / "nopixels.dcm")
    with pytest.raises(ImageDecodeError, match="missing") as caught:
        load_image(tmp_path / "absent.png")
    assert caught.value.code == "image_missing"


def test_real_png_and_square_fit():
    image = load_image(shared_path("fixtures/nih-00000001_000.png"))
    assert image.shape == (512, 512) and 0 <= image.min() < image.max() <= 1
    tall = fit_square(np.ones((100, 50), np.float32), 32)
    assert tall.shape == (32, 32) and tall.dtype == np.uint8
    assert tall[:, :8].max() == 0 and tall[:, 8:24].min() == 255  # centred, aspect kept


# --- guards --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Hostile]]:
    root = tmp_path_factory.mktemp("hostile")
    files = {}
    for name, bomb in hostile_files().items():
        (root / bomb.file_name).write_bytes(bomb.data)
        files[name] = (root / bomb.file_name, bomb)
    return files


@pytest.mark.timeout(60)  # a guard that regresses may leave pydicom spinning
def test_every_bomb_is_refused_in_little_time_and_memory(hostile):
    for name, (path, bomb) in hostile.items():
        assert len(bomb.data) < 2**20, name  # within a 1 MB upload limit
        code = bomb.code
        for reader in (load_image, inspect_image) if bomb.in_header else (load_image,):
            tracemalloc.start()
            started = time.perf_counter()
            with pytest.raises(ImageDecodeError) as caught:
                reader(path)
            seconds = time.perf_counter() - started
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            assert caught.value.code == code, f"{name}: {caught.value}"
            assert str(caught.value).startswith(f"{path}: "), name
            assert seconds < 1.0, f"{name}: {seconds:.2f} s"
            assert peak < 32 * 2**20, f"{name}: {peak / 2**20:.0f} MB traced"


def test_a_multiframe_file_decodes_its_first_frame_only(tmp_path):
    path = tmp_path / "frames.dcm"
    path.write_bytes(multiframe_bomb())
    tracemalloc.start()
    started = time.perf_counter()
    image = read_dicom(path)
    seconds, peak = time.perf_counter() - started, tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert image.shape == (512, 512) and seconds < 1.0
    assert peak < 24 * 2**20  # 200 frames would be 52 MB of uint8 before any conversion
    frames = np.stack([np.full((4, 4), v, np.uint8) for v in (0, 200, 50)])
    frames[0, 0, 0] = 100  # frame 0 alone: a single bright pixel
    ds = header(4, 4, NumberOfFrames=3)
    (tmp_path / "three.dcm").write_bytes(saved(ds, frames.tobytes()))
    expected = np.zeros((4, 4), np.float32)
    expected[0, 0] = 1
    np.testing.assert_array_equal(read_dicom(tmp_path / "three.dcm"), expected)


def test_a_deflated_file_within_its_header_decodes(tmp_path):
    stored = np.rint(PICTURE * 255).astype(np.uint8)
    plain = write(tmp_path / "plain.dcm", stored, 8)
    ds = pydicom.dcmread(plain)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(tmp_path / "deflated.dcm", enforce_file_format=True)
    assert pydicom.dcmread(tmp_path / "deflated.dcm").file_meta.TransferSyntaxUID.is_deflated
    np.testing.assert_array_equal(read_dicom(tmp_path / "deflated.dcm"), read_dicom(plain))


def test_the_pixel_budget_follows_umcl_max_pixels(tmp_path, monkeypatch):
    path = write(tmp_path / "a.dcm", np.rint(PICTURE * 255), 8)
    png = tmp_path / "a.png"
    Image.new("L", (40, 40)).save(png)
    monkeypatch.setenv("UMCL_MAX_PIXELS", "1000")  # 48 × 32 and 40 × 40 are over
    for file in (path, png):
        with pytest.raises(
            ImageDecodeError, match=r"megapixels, over the 0\.001 MP limit"
        ) as caught:
            load_image(file)
        assert caught.value.code == IMAGE_TOO_LARGE
    monkeypatch.setenv("UMCL_MAX_PIXELS", "1e6")
    assert load_image(path).shape == (48, 32) and inspect_image(png).pixels == 1600
    monkeypatch.setenv("UMCL_MAX_PIXELS", "lots")
    with pytest.raises(ValueError, match="UMCL_MAX_PIXELS='lots' is not a positive number"):
        load_image(path)


@pytest.mark.parametrize("name", list(malformed_headers()))
def test_malformed_headers_raise_image_decode_error_without_their_values(tmp_path, name):
    ds, code = malformed_headers()[name]
    path = tmp_path / f"{name.replace(' ', '_')}.dcm"
    path.write_bytes(saved(ds, bytes(16 * 16)))
    for reader in (load_image, inspect_image):
        with pytest.raises(ImageDecodeError) as caught:
            reader(path)
        message = str(caught.value)
        assert caught.value.code == code, message
        assert message.startswith(f"{path}: "), message
        assert "Doe" not in message and "DOE" not in message
    if code == MODALITY_OUT_OF_SCOPE:
        assert ("is CT" in message) == (name == "CT slice"), message


def test_umcl_dicom_modalities_widens_the_scope(tmp_path, monkeypatch):
    ct = tmp_path / "ct.dcm"
    ct.write_bytes(saved(header(16, 16, modality="CT"), bytes(256)))
    with pytest.raises(ImageDecodeError, match=r"Modality is CT; .*accepted modalities: CR, DX"):
        load_image(ct)
    monkeypatch.setenv("UMCL_DICOM_MODALITIES", "dx, ct")
    assert load_image(ct).shape == (16, 16)
    monkeypatch.setenv("UMCL_DICOM_MODALITIES", "*")
    none = tmp_path / "none.dcm"
    none.write_bytes(saved(header(16, 16, modality=None), bytes(256)))
    assert load_image(none).shape == (16, 16)


@pytest.mark.parametrize("fmt", ["GIF", "TIFF", "BMP", "WEBP", "PPM"])
def test_pillow_formats_other_than_png_and_jpeg_are_refused(tmp_path, fmt):
    path = tmp_path / "picture.png"  # the suffix does not matter: the content does
    Image.new("L", (16, 16), 7).save(path, fmt)
    with pytest.raises(ImageDecodeError, match=f"{fmt} images are not accepted") as caught:
        load_image(path)
    assert caught.value.code == IMAGE_FORMAT_UNSUPPORTED


def test_png_and_jpeg_still_decode(tmp_path):
    for fmt in ("PNG", "JPEG"):
        path = tmp_path / f"a.{fmt.lower()}"
        Image.fromarray(np.rint(PICTURE * 255).astype(np.uint8)).save(path, fmt)
        info = inspect_image(path)
        assert (info.format, info.width, info.height) == (fmt, 32, 48)
        np.testing.assert_allclose(load_image(path), PICTURE, atol=0.02)


def test_every_file_of_pydicoms_corpus_decodes_or_raises_image_decode_error():
    """Any modality allowed, so the decoder itself meets every encoder's output; with the
    default scope, CT and MR slices are refused by name."""
    files = bundled_pydicom_files()
    assert len(files) > 60
    decoded = 0
    for path in files:
        try:
            image = load_image(path, ANY_MODALITY)
        except ImageDecodeError as exc:
            assert str(exc).startswith(f"{path}: "), str(exc)
            continue
        assert image.ndim == 2 and image.dtype == np.float32, path.name
        assert np.isfinite(image).all() and image.min() >= 0 and image.max() <= 1, path.name
        decoded += 1
    assert decoded > 30  # RLE, JPEG, JPEG-LS, JPEG 2000, YBR, big endian, deflated …
    for name, modality in (("CT_small.dcm", "CT"), ("MR_small.dcm", "MR")):
        with pytest.raises(ImageDecodeError, match=f"Modality is {modality};") as caught:
            load_image(files[0].parent / name)
        assert caught.value.code == MODALITY_OUT_OF_SCOPE


def test_the_error_code_survives_a_process_pool():
    error = pickle.loads(pickle.dumps(ImageDecodeError("x.png: too big", IMAGE_TOO_LARGE)))
    assert (str(error), error.code) == ("x.png: too big", IMAGE_TOO_LARGE)
