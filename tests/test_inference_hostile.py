"""`umcl.load(...)` and the Predictor against what users really pass: colour and odd-typed
arrays, tensors, PIL images, huge or empty inputs, wrong paths, odd finding names and texts, bad
sources. Each input either scores as its file would or is refused, by position and with the
reason: `classify` answers it with an error entry and scores the others, `square` and
`embed_images` raise a ValueError, TypeError or ImageDecodeError."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import umcl
from tests.conftest import toy_calibration
from tests.hostile import radiograph
from tests.tiny import LABELS, tiny_model
from umcl.imaging.images import DecodeLimits, ImageDecodeError, fit_square, load_image
from umcl.imaging.limits import IMAGE_MISSING, IMAGE_TOO_LARGE, MODALITY_OUT_OF_SCOPE
from umcl.inference import IMAGE_INVALID, IMAGE_NOT_AN_IMAGE, Predictor
from umcl.model.folder import MODEL_FILE, ModelLayoutError

SIZE = 32
RNG = np.random.default_rng(7)
GREY = (RNG.random((40, 28)) * 255).astype(np.uint8)
COLOUR = (RNG.random((40, 28, 4)) * 255).astype(np.uint8)  # RGBA; [..., :3] is RGB


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny shared-context model with a calibration, saved as `umcl train` saves one."""
    model = tiny_model(seed=1, image_size=SIZE)
    model.calibration = toy_calibration(LABELS)
    return model.save_pretrained(tmp_path_factory.mktemp("hostile") / "model")


@pytest.fixture(scope="module")
def predictor(model_dir: Path) -> Predictor:
    return umcl.load(model_dir)


def refusal(predictor: Predictor, images: list, index: int) -> dict[str, str]:
    """The error entry `classify` gives image `index`, after checking that it answered every
    image in order and scored all the others."""
    entries = predictor.classify(images)
    assert len(entries) == len(images)
    for i, entry in enumerate(entries):
        assert ("error" in entry) == (i == index) and ("findings" in entry) == (i != index), entry
    return entries[index]["error"]


def assert_refused(predictor: Predictor, images: list, index: int, pattern: str, code: str) -> None:
    error = refusal(predictor, images, index)
    assert re.search(pattern, error["message"]), error
    assert error["code"] == code, error


def png_square(path: Path, pixels: np.ndarray) -> np.ndarray:
    """The square of `pixels` written as a PNG and decoded as the preprocess stage decodes it."""
    Image.fromarray(pixels).save(path)
    return fit_square(load_image(path), SIZE)


# -- arrays, tensors and PIL images ---------------------------------------------------------------


def test_colour_arrays_turn_grey_as_their_png_files_do(predictor: Predictor, tmp_path: Path):
    for name, pixels in {"rgb": COLOUR[..., :3], "rgba": COLOUR, "la": COLOUR[..., :2]}.items():
        expected = png_square(tmp_path / f"{name}.png", pixels)
        assert np.array_equal(predictor.square(pixels), expected), name
    assert np.array_equal(predictor.square(GREY[..., None]), predictor.square(GREY))
    # A float colour array takes the same luma weights: within a grey level of its uint8 twin.
    as_float = predictor.square(COLOUR[..., :3] / 255.0).astype(int)
    assert np.abs(as_float - predictor.square(COLOUR[..., :3]).astype(int)).max() <= 1
    scores = predictor.classify([COLOUR, tmp_path / "rgba.png"])
    assert scores[0]["findings"] == scores[1]["findings"]
    assert [s["image"] for s in scores] == ["image 0", str(tmp_path / "rgba.png")]


def test_a_lone_image_is_refused_rather_than_iterated(predictor: Predictor):
    # An (H, W, 3) array iterated is H images of W × 3 pixels: a silent wrong answer.
    lone = [
        COLOUR[..., :3],
        COLOUR,
        GREY,
        torch.from_numpy(GREY),
        Image.fromarray(GREY),
        "film.png",
        b"\x89PNG",
    ]
    for image in lone:
        with pytest.raises(TypeError, match="images is one image"):
            predictor.classify(image)
    with pytest.raises(TypeError, match="images must be a list of images; got NoneType"):
        predictor.classify(None)
    stack = np.stack([GREY, GREY[::-1]])  # (n, H, W): a stack of images is a list of them
    assert predictor.classify(stack) == predictor.classify([GREY, GREY[::-1]])
    assert predictor.classify(x for x in [GREY]) == predictor.classify([GREY])


def test_tensors_and_pil_images_score_as_their_arrays_and_files(
    predictor: Predictor, tmp_path: Path
):
    square = predictor.square(GREY)
    assert np.array_equal(predictor.square(torch.from_numpy(GREY)), square)
    unit = torch.from_numpy(GREY / 255.0).requires_grad_()
    assert np.array_equal(
        predictor.square(unit.to(torch.bfloat16)),
        predictor.square(unit.detach().to(torch.bfloat16).float().numpy()),
    )
    assert np.array_equal(predictor.square(Image.fromarray(COLOUR)), predictor.square(COLOUR))
    # Pillow's float mode would turn black through convert("L"); it is a float array.
    floats = (GREY / 255.0).astype(np.float32)
    assert np.array_equal(predictor.square(Image.fromarray(floats)), predictor.square(floats))

    # An opened JPEG is turned upright by its EXIF Orientation, as its path is.
    exif = Image.Exif()
    exif[0x0112] = 6
    jpeg = tmp_path / "turned.jpg"
    Image.fromarray(GREY).save(jpeg, "JPEG", quality=95, exif=exif)
    with Image.open(jpeg) as opened:
        turned = predictor.square(opened)
    assert np.array_equal(turned, predictor.square(jpeg))
    with Image.open(jpeg) as opened:  # its pixels as stored
        assert not np.array_equal(turned, predictor.square(np.asarray(opened)))
    # A 16-bit PNG, opened, keeps its 16 bits as the file does.
    deep = tmp_path / "deep.png"
    Image.fromarray(GREY.astype(np.uint16) * 257).save(deep)
    with Image.open(deep) as opened:
        assert np.array_equal(predictor.square(opened), predictor.square(deep))
    # A truncated file opened lazily fails when its pixels are read, named by position.
    broken = tmp_path / "broken.png"
    broken.write_bytes(deep.read_bytes()[:200])
    with Image.open(broken) as opened:
        assert_refused(predictor, [GREY, opened], 1, r"^image 1: not a", "image_unreadable")
        with pytest.raises(ImageDecodeError, match=r"^image 1: not a"):
            predictor.embed_images([GREY, opened])


def test_16_bit_pil_images_of_either_byte_order_keep_their_16_bits(predictor: Predictor):
    # Pillow's convert("I;16") clips I;16B and I;16L to 255: a ramp came out black or white.
    ramp = np.linspace(0, 59_900, 40 * 28).reshape(40, 28)
    expected = predictor.square(ramp / 65535)
    for mode, dtype in (("I;16", "<u2"), ("I;16L", "<u2"), ("I;16B", ">u2")):
        image = Image.frombytes(mode, (28, 40), ramp.astype(dtype).tobytes())
        assert np.abs(predictor.square(image).astype(int) - expected).max() <= 1, mode


def test_arrays_tensors_and_pil_images_are_held_to_the_pixel_budget(model_dir: Path):
    # Broadcast views hold 400 MP in a few bytes: only a check made before any copy or
    # conversion refuses them at once (the float copy alone would be 1.6 GB).
    huge = np.broadcast_to(np.uint8(0), (20_000, 20_000))
    predictor = umcl.load(model_dir, limits=DecodeLimits())
    for image in (huge, torch.zeros(1, 1, dtype=torch.uint8).expand(20_000, 20_000)):
        with pytest.raises(ImageDecodeError, match=r"^image 1: .*400\.0 megapixels") as caught:
            predictor.embed_images([GREY, image])
        assert caught.value.code == IMAGE_TOO_LARGE
        assert_refused(
            predictor, [GREY, image], 1, r"^image 1: .*400\.0 megapixels", IMAGE_TOO_LARGE
        )
    small = umcl.load(model_dir, limits=DecodeLimits(max_pixels=1_000))
    for image in (GREY, Image.fromarray(GREY), torch.from_numpy(GREY)):
        assert_refused(small, [image], 0, r"over the 0.001 MP limit", IMAGE_TOO_LARGE)
    assert len(small.classify([GREY[:20, :20]])) == 1


def test_pixel_values_that_are_not_unit_pixels_are_refused_with_the_reason(
    predictor: Predictor,
):
    refused = {
        "holds NaN or infinite": np.full((8, 8), np.nan),
        "NaN or infinite values": np.full((8, 8), np.inf, np.float32),
        r"span 0 to 255 \(0–255 data: pass uint8 or divide by 255\)": np.linspace(
            0, 255, 64
        ).reshape(8, 8),
        "span -0.5 to 0.5": np.linspace(-0.5, 0.5, 64).reshape(8, 8),
        "uint16 does not say its bit depth.*4095": GREY.astype(np.uint16) * 16,
        "int64 does not say its bit depth": GREY.astype(np.int64),
        "bool is not an image": GREY > 100,
        "complex128 is not an image": np.zeros((8, 8), complex),
        r"the image is empty \(shape \(0, 5\)\)": np.zeros((0, 5), np.uint8),
        r"got shape \(3, 40, 28\) \(channels first\? move them last\)": np.zeros((3, 40, 28)),
        r"got shape \(8, 8, 5\)": np.zeros((8, 8, 5), np.uint8),
        r"got shape \(64,\)": np.zeros(64, np.uint8),
    }
    for reason, image in refused.items():
        with pytest.raises(ValueError, match=f"^image 2: .*{reason}"):
            predictor.embed_images([GREY, GREY, image])
        assert_refused(predictor, [GREY, GREY, image], 2, f"^image 2: .*{reason}", IMAGE_INVALID)


def test_inputs_of_other_types_are_refused_by_position(predictor: Predictor):
    for image, kind in ((GREY.tolist(), "list"), (None, "NoneType"), (b"\x89PNG", "bytes")):
        with pytest.raises(TypeError, match=f"^image 1: {kind} is not an image type"):
            predictor.embed_images([GREY, image])
        pattern = f"^image 1: {kind} is not an image type"
        assert_refused(predictor, [GREY, image], 1, pattern, IMAGE_NOT_AN_IMAGE)


def test_positions_count_across_batches(model_dir: Path):
    from umcl.model.umcl import UMCLModel

    predictor = Predictor(UMCLModel.from_pretrained(model_dir), batch_size=2)
    with pytest.raises(ValueError, match=r"^image 3: the image array holds NaN"):
        predictor.embed_images([GREY, GREY, GREY, np.full((4, 4), np.nan)])


def test_a_one_pixel_array_scores_as_a_one_pixel_png(predictor: Predictor, tmp_path: Path):
    dot = np.array([[200]], np.uint8)
    assert np.array_equal(predictor.square(dot), png_square(tmp_path / "dot.png", dot))
    assert (predictor.square(dot) == 200).all()


def test_empty_image_lists_give_empty_results(predictor: Predictor):
    assert predictor.classify([]) == []
    assert predictor.embed_images([]).shape == (0, 16)
    with pytest.raises(ValueError, match="findings is empty"):  # checked even with no images
        predictor.classify([], findings=[])


# -- paths ----------------------------------------------------------------------------------------


def test_paths_that_are_not_image_files_are_refused_by_position(
    predictor: Predictor, tmp_path: Path
):
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    refused = {
        "is a directory, not an image file": tmp_path,
        "image file is missing": tmp_path / "gone.png",
        "not a readable image": text,
    }
    for reason, path in refused.items():
        for given in (path, str(path)):
            with pytest.raises(ImageDecodeError, match=f"^image 1: .*{reason}"):
                predictor.embed_images([GREY, given])
            error = refusal(predictor, [GREY, given], 1)
            assert re.search(f"^image 1: .*{reason}", error["message"]), error
    with pytest.raises(ImageDecodeError) as caught:
        predictor.embed_images([tmp_path])
    assert caught.value.code == IMAGE_MISSING
    assert refusal(predictor, [tmp_path], 0)["code"] == IMAGE_MISSING
    assert predictor.classify([tmp_path])[0]["image"] == str(tmp_path)  # named as given
    # Not "." (the working directory):
    assert_refused(predictor, [""], 0, r"^image 0: the path is empty", IMAGE_INVALID)


def test_dicom_files_follow_the_decode_limits(model_dir: Path, tmp_path: Path):
    ct, dx = tmp_path / "ct.dcm", tmp_path / "dx.dcm"
    ct.write_bytes(radiograph(40, 40, Modality="CT"))
    dx.write_bytes(radiograph(40, 40))
    default = umcl.load(model_dir, limits=DecodeLimits())
    assert_refused(default, [dx, ct], 1, r"^image 1: .*Modality is CT", MODALITY_OUT_OF_SCOPE)
    anything = umcl.load(model_dir, limits=DecodeLimits(modalities=None))
    assert anything.classify([str(ct)]) == anything.classify([ct])
    tight = umcl.load(model_dir, limits=DecodeLimits(max_pixels=1_000))
    assert_refused(tight, [dx], 0, r"over the 0.001 MP limit", IMAGE_TOO_LARGE)


# -- finding names and texts ----------------------------------------------------------------------


def test_finding_names_are_stripped_as_the_service_strips_them(predictor: Predictor):
    padded = predictor.classify([GREY], findings=[" Cardiomegaly\n", "Nodule "])[0]["findings"]
    plain = predictor.classify([GREY], findings=["Cardiomegaly", "Nodule"])[0]["findings"]
    assert padded == plain and list(padded) == ["Cardiomegaly", "Nodule"]
    assert padded["Cardiomegaly"]["calibrated"]  # not scored as an unknown name at 0.5
    with pytest.raises(ValueError, match="duplicates"):
        predictor.classify([GREY], findings=["Edema", " Edema"])


def test_names_that_are_not_finding_names_are_refused(predictor: Predictor):
    words = " ".join(f"w{i}" for i in range(300))  # past the text tower's 128 positions
    for name in ("", "   ", "--", "x" * 81, words, "edema\ud800"):
        with pytest.raises(ValueError, match=r"^finding 1 \(.*\) is not a finding name"):
            predictor.classify([GREY], findings=["Edema", name])
    for name, kind in ((None, "NoneType"), (5, "int")):
        with pytest.raises(TypeError, match=f"^finding 0 is {kind}, not str"):
            predictor.classify([GREY], findings=[name])
    with pytest.raises(TypeError, match="findings must be a list of names; got int"):
        predictor.classify([GREY], findings=5)
    with pytest.raises(TypeError, match="findings is one string"):
        predictor.classify([GREY], findings="Edema")
    assert list(predictor.classify([GREY], findings=("x" * 80,))[0]["findings"]) == ["x" * 80]


def test_class_specific_prompts_refuse_names_outside_the_labels(tmp_path: Path):
    model = tiny_model({"class_specific": True}, seed=1, image_size=SIZE)
    specific = umcl.load(model.save_pretrained(tmp_path / "specific"))
    with pytest.raises(ValueError, match=r"\['Nodule'\] are outside this model's label space"):
        specific.classify([GREY], findings=["Edema", "Nodule"])
    assert list(specific.classify([GREY], findings=["Edema "])[0]["findings"]) == ["Edema"]


def test_texts_must_be_nonblank_strings(predictor: Predictor):
    assert predictor.embed_texts([]).shape == (0, 16)
    assert predictor.embed_texts(("no acute disease.",)).shape == (1, 16)
    for texts, reason in (([""], "text 0 is empty"), (["ok", "  \n"], "text 1 is empty")):
        with pytest.raises(ValueError, match=reason):
            predictor.embed_texts(texts)
    with pytest.raises(ValueError, match="text 0 is not valid Unicode"):
        predictor.embed_texts(["effusion\ud800"])
    for texts, reason in (
        (["ok", 5], "text 1 is int, not str"),
        ([None], "text 0 is NoneType, not str"),
        (None, "texts must be a list of texts; got NoneType"),
        ("one report", "texts is one string"),
    ):
        with pytest.raises(TypeError, match=reason):
            predictor.embed_texts(texts)


# -- sources --------------------------------------------------------------------------------------


def test_sources_that_are_not_models_are_refused_with_the_reason(model_dir: Path, tmp_path: Path):
    (tmp_path / "empty").mkdir()
    old = shutil.copytree(model_dir, tmp_path / "old")
    description = json.loads((old / MODEL_FILE).read_text())
    del description["image_size"]
    (old / MODEL_FILE).write_text(json.dumps(description))
    with pytest.raises(FileNotFoundError, match="neither a model directory nor a store tag"):
        umcl.load(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="not a UMCL model directory"):
        umcl.load(tmp_path / "empty")
    with pytest.raises(ModelLayoutError, match="older UMCL layout"):
        umcl.load(str(old))
    with pytest.raises(NotADirectoryError, match="a file, not a model directory"):
        umcl.load(model_dir / MODEL_FILE)
    with pytest.raises(TypeError, match="source is int"):
        umcl.load(5)
    with pytest.raises(FileNotFoundError, match="neither a model directory nor a store tag"):
        umcl.load("umlc:champion")


def test_store_tags_that_name_no_model_are_refused(empty_store: Path):
    from umcl.registry import RegistryError

    with pytest.raises(RegistryError, match="no champion in the model store"):
        umcl.load("umcl:champion")
    with pytest.raises(RegistryError, match="no model umcl:doesnotexist in the store"):
        umcl.load("umcl:doesnotexist")
    # BentoML refuses a malformed tag with its own exception type, not a ValueError.
    with pytest.raises(RegistryError, match="umcl:bad tag!: not a model store tag"):
        umcl.load("umcl:bad tag!")
