"""Grounding maps: `Predictor.explain` answers as `classify` does, with one map per finding of the
decoded image's own size, for every method; the geometry undoes `fit_square`, and a map is scaled
over the image, not its padding; the demo records where it drew each finding, inside the image
it wrote."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import umcl
from tests.hostile import radiograph
from tests.tiny import tiny_model
from umcl.imaging.images import fit_square, inspect_image, unfit_square
from umcl.inference import Predictor
from umcl.model.grounding import METHODS, image_map

SIZE = 32


@pytest.fixture(scope="module")
def predictor(tmp_path_factory: pytest.TempPathFactory) -> Predictor:
    model = tiny_model(seed=2, image_size=SIZE)
    return umcl.load(model.save_pretrained(tmp_path_factory.mktemp("grounding") / "model"))


def test_maps_have_each_images_own_size_and_scores_match_classify(
    predictor: Predictor, tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    portrait = (rng.random((70, 30)) * 255).astype(np.uint8)
    Image.fromarray((rng.random((20, 90)) * 255).astype(np.uint8)).save(tmp_path / "wide.png")
    (tmp_path / "film.dcm").write_bytes(radiograph(48, 36))
    (tmp_path / "cut.png").write_bytes((tmp_path / "wide.png").read_bytes()[:50])
    images = [portrait, tmp_path / "wide.png", tmp_path / "film.dcm", tmp_path / "cut.png"]
    shapes = [(70, 30), (20, 90), (48, 36)]
    names = ["Edema", "Cardiomegaly"]
    classified = predictor.classify(images, names)
    for method in METHODS:
        explained = predictor.explain(images, names, method)
        assert explained[3]["error"]["code"] == "image_unreadable" and "maps" not in explained[3]
        for entry, scored, shape in zip(explained[:3], classified[:3], shapes, strict=True):
            assert entry["findings"] == scored["findings"] and entry["image"] == scored["image"]
            assert list(entry["maps"]) == names
            for values in entry["maps"].values():
                assert values.shape == shape and values.dtype == np.float32
                assert values.min() >= 0 and values.max() <= 1 and values.max() > 0.5
    with pytest.raises(ValueError, match="method 'saliency'"):
        predictor.explain([portrait], names, "saliency")


def test_a_map_over_the_square_returns_to_the_image_it_came_from() -> None:
    for height, width in ((90, 60), (60, 90), (64, 64), (1, 50)):
        image = np.zeros((height, width), np.float32)
        y, x = height * 2 // 3, width // 4
        image[max(0, y - 2) : y + 3, max(0, x - 2) : x + 3] = 1.0
        square = fit_square(image, 32).astype(np.float32) / 255
        back = unfit_square(square, height, width)
        assert back.shape == (height, width)
        peak = np.unravel_index(back.argmax(), back.shape)
        assert abs(peak[0] - y) <= max(2, height / 32 * 2) and abs(peak[1] - x) <= width / 32 * 2


def test_a_map_is_scaled_on_the_image_not_on_the_squares_padding() -> None:
    from umcl.imaging.images import square_placement

    new_h, new_w, top, left = square_placement(40, 20, 32)  # portrait: padded left and right
    square = np.full((32, 32), 5.0, np.float32)  # the padding holds the highest values
    inside = np.linspace(0, 1, new_h * new_w, dtype=np.float32).reshape(new_h, new_w)
    square[top : top + new_h, left : left + new_w] = inside
    values = image_map(square, 40, 20)
    assert values.shape == (40, 20) and values.max() == 1.0 and values.min() == 0.0
    assert np.unravel_index(values.argmax(), values.shape)[0] == 39  # the image's own peak
    assert (image_map(np.full((32, 32), 2.0, np.float32), 40, 20) == 0).all()  # flat: all 0


def test_the_demo_records_where_it_drew_each_finding(tiny_pipeline: dict) -> None:
    manifest = tiny_pipeline["manifest"]
    regions = manifest["regions"]
    demo = tiny_pipeline["root"] / "raw/demo"
    assert len(regions) > 20
    drawn_findings = {f for boxes in regions.values() for f in boxes}
    assert {"Pleural Effusion", "Cardiomegaly", "Support Devices"} <= drawn_findings
    for relative, boxes in list(regions.items())[:40]:
        path = demo / relative
        if not path.is_file():
            continue  # a planted missing file
        try:
            info = inspect_image(path)
        except ValueError:
            continue  # a planted corrupt file
        for box in boxes.values():
            x0, y0, x1, y1 = box
            assert 0 <= x0 < x1 <= info.width and 0 <= y0 < y1 <= info.height, (relative, box)
