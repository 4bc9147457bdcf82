from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from tests.conftest import shared_path
from umcl.data.dicom import ImageDecodeError, read_dicom
from umcl.data.images import fit_square, load_image

PICTURE = np.linspace(0, 1, 48 * 32, dtype=np.float32).reshape(48, 32)


def write(
    path: Path, stored: np.ndarray, bits: int, photometric: str = "MONOCHROME2", **extra
) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = meta.MediaStorageSOPClassUID, "1.2.3.4", "CR"
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated = 8 if bits == 8 else 16
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits - 1, 0
    for key, value in extra.items():
        setattr(ds, key, value)
    ds.PixelData = stored.astype(np.uint8 if bits == 8 else np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


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
    with pytest.raises(ImageDecodeError, match=r"junk\.dcm"):
        read_dicom(junk)
    ds = pydicom.dcmread(write(tmp_path / "p.dcm", np.zeros((4, 4)), 8))
    del ds.PixelData
    ds.save_as(tmp_path / "nopixels.dcm")
    with pytest.raises(ImageDecodeError, match=r"nopixels\.dcm: DICOM file has no pixel data"):
        read_dicom(tmp_path / "nopixels.dcm")
    with pytest.raises(ImageDecodeError, match="missing"):
        load_image(tmp_path / "absent.png")


def test_real_png_and_square_fit():
    image = load_image(shared_path("fixtures/nih-00000001_000.png"))
    assert image.shape == (512, 512) and 0 <= image.min() < image.max() <= 1
    tall = fit_square(np.ones((100, 50), np.float32), 32)
    assert tall.shape == (32, 32) and tall.dtype == np.uint8
    assert tall[:, :8].max() == 0 and tall[:, 8:24].min() == 255  # centred, aspect kept
