"""`save_pretrained` → `from_pretrained` round-trips bit-identically; `umcl.load(...).classify`
scores files and arrays as the decoded squares themselves, applies the calibration, and keeps
names outside the label space uncalibrated; `parameter_groups` splits the weights as AdamW needs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import umcl
from tests.conftest import REPO, shared_path, toy_calibration
from tests.hostile import radiograph
from tests.tiny import LABELS, tiny_model
from umcl.calibration import Calibration, FindingCalibration
from umcl.imaging.images import fit_square, load_image
from umcl.inference import Predictor
from umcl.model.folder import CALIBRATION_FILE, MODEL_FILE, TRAINING_FILE
from umcl.model.umcl import UMCLModel, finding_logits

SIZE = 32
PROVENANCE = {"params": {"seed": 5, "preprocess": {"image_size": SIZE}}, "train": {"steps": 6}}


def files_of(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


def saved(tmp_path: Path, prompt: dict | None = None, calibration: bool = False) -> Path:
    """A tiny model at SIZE saved to tmp_path/model, with a calibration when asked."""
    model = tiny_model(prompt, seed=1, image_size=SIZE)
    model.calibration = toy_calibration(LABELS) if calibration else None
    return model.save_pretrained(tmp_path / "model", provenance=PROVENANCE)


def image_files(tmp_path: Path) -> tuple[list[Path], np.ndarray]:
    """A non-square 8-bit PNG, a DICOM radiograph and the PNG's pixels as an array."""
    pixels = (np.random.default_rng(0).random((70, 48)) * 255).astype(np.uint8)
    png, dcm = tmp_path / "film.png", tmp_path / "study.dcm"
    Image.fromarray(pixels).save(png)
    dcm.write_bytes(radiograph(50, 72))
    return [png, dcm], pixels


def raw_probabilities(
    model: UMCLModel, squares: list[np.ndarray], names: list[str]
) -> torch.Tensor:
    """Uncalibrated zero-shot probabilities of uint8 squares, straight through the model."""
    pixels = torch.from_numpy(np.stack(squares).astype(np.float32) / 255.0)[:, None]
    with torch.no_grad():
        present, absent = model.encode_findings(names)
        return finding_logits(
            model.encode_image(pixels), present, absent, model.logit_scale.exp()
        ).sigmoid()


def test_save_load_save_is_bit_identical(tmp_path: Path) -> None:
    model = tiny_model({"class_specific": True, "n_ctx": 3}, seed=2, image_size=SIZE)
    model.calibration = toy_calibration(LABELS)
    first = model.save_pretrained(tmp_path / "a", provenance=PROVENANCE)
    loaded = UMCLModel.from_pretrained(first)
    second = loaded.save_pretrained(tmp_path / "b", provenance=PROVENANCE)

    original, restored = model.state_dict(), loaded.state_dict()
    assert list(original) == list(restored)
    for name, tensor in original.items():
        assert tensor.dtype == restored[name].dtype and torch.equal(tensor, restored[name]), name
    assert files_of(first) == files_of(second)
    assert {CALIBRATION_FILE, TRAINING_FILE, MODEL_FILE} <= set(files_of(first))
    assert loaded.image_size == SIZE and loaded.label_names == LABELS
    assert loaded.prompts.settings == model.prompts.settings
    assert loaded.calibration == model.calibration
    assert json.loads((first / TRAINING_FILE).read_text()) == PROVENANCE
    described = json.loads((first / MODEL_FILE).read_text())
    assert set(described) == {"model", "prompt", "labels", "image_size"}  # no params copy
    assert described["model"]["text"]["config"]["vocab_size"] == len(model.tokenizer)


def test_saving_without_calibration_or_provenance_leaves_no_stale_file(tmp_path: Path) -> None:
    directory = saved(tmp_path, calibration=True)
    model = UMCLModel.from_pretrained(directory)
    model.calibration = None
    model.save_pretrained(directory)
    assert not (directory / CALIBRATION_FILE).exists() and not (directory / TRAINING_FILE).exists()
    assert UMCLModel.from_pretrained(directory).calibration is None


def test_an_old_layout_directory_is_refused_with_a_reason(tmp_path: Path) -> None:
    directory = saved(tmp_path)
    old = json.loads((directory / MODEL_FILE).read_text())
    del old["model"]
    (directory / MODEL_FILE).write_text(json.dumps(old))
    with pytest.raises(ValueError, match="older UMCL layout"):
        UMCLModel.from_pretrained(directory)


def test_sigmoid_of_the_logits_is_the_two_way_softmax() -> None:
    g = torch.Generator().manual_seed(0)
    images, present, absent = (
        torch.nn.functional.normalize(torch.randn(n, 16, generator=g), dim=-1) for n in (9, 5, 5)
    )
    for scale in (1.0, 14.3, 100.0):
        softmax = torch.stack([scale * images @ present.T, scale * images @ absent.T], -1)
        expected = softmax.softmax(-1)[..., 0]
        logits = finding_logits(images, present, absent, scale)
        assert torch.allclose(logits.sigmoid(), expected, atol=1e-6)
        assert torch.allclose(logits, scale * images @ (present - absent).T, atol=1e-5)


def test_files_and_arrays_score_as_their_decoded_squares(tmp_path: Path) -> None:
    predictor = umcl.load(saved(tmp_path))
    (png, dcm), pixels = image_files(tmp_path)
    unit = pixels.astype(np.float64) / 255.0
    inputs = [png, str(dcm), pixels, unit]
    results = [entry["findings"] for entry in predictor.classify(inputs)]

    squares = [fit_square(load_image(path), SIZE) for path in (png, dcm)]
    squares += [fit_square(pixels.astype(np.float32) / 255.0, SIZE)]
    squares += [fit_square(unit.astype(np.float32), SIZE)]
    expected = raw_probabilities(predictor.model, squares, LABELS)
    assert len(results) == 4 and all(list(r) == LABELS for r in results)
    served = torch.tensor([[r[n]["probability"] for n in LABELS] for r in results])
    assert torch.allclose(served, expected, atol=1e-6)
    assert torch.allclose(served[2], served[0], atol=1e-6)  # the PNG's pixels as an array
    for result in results:  # no calibration: raw sigmoid, decided at 0.5
        assert all(
            not v["calibrated"] and v["positive"] == (v["probability"] >= 0.5)
            for v in result.values()
        )

    embeddings = predictor.embed_images(inputs)
    assert embeddings.shape == (4, 16) and np.allclose(
        np.linalg.norm(embeddings, axis=1), 1, atol=1e-5
    )
    texts = predictor.embed_texts(["no acute disease.", "cardiomegaly."])
    assert texts.shape == (2, 16) and np.allclose(np.linalg.norm(texts, axis=1), 1, atol=1e-5)


def test_a_real_dicom_scores_as_its_decoded_square(tmp_path: Path) -> None:
    dicom = shared_path("fixtures/siim-cr-chest.dcm")
    predictor = umcl.load(saved(tmp_path))
    result = predictor.classify([dicom])[0]["findings"]
    expected = raw_probabilities(predictor.model, [fit_square(load_image(dicom), SIZE)], LABELS)[0]
    assert np.allclose([result[n]["probability"] for n in LABELS], expected.numpy(), atol=1e-6)


def test_calibration_changes_probabilities_and_thresholds_decide(tmp_path: Path) -> None:
    directory = saved(tmp_path)
    raw = umcl.load(directory)
    images = [(np.random.default_rng(i).random((40, 40)) * 255).astype(np.uint8) for i in range(6)]
    with torch.no_grad():
        present, absent = raw.model.encode_findings()
        embeddings = torch.from_numpy(raw.embed_images(images))
        logits = finding_logits(embeddings, present, absent, raw.model.logit_scale.exp())
    # Fitted scalings for all but the last label; each threshold between the 2nd and 3rd largest
    # calibrated probability, so exactly two images are positive for every fitted finding.
    findings = {}
    for k, name in enumerate(LABELS[:-1]):
        a, b = 0.5 + k, 0.3 - 0.2 * k
        ranked = torch.sigmoid(a * logits[:, k] + b).sort(descending=True).values
        threshold = float(ranked[1:3].mean())
        findings[name] = FindingCalibration(a, b, threshold, 10, 10, fitted=True)
    model = UMCLModel.from_pretrained(directory)
    model.calibration = Calibration("platt", "youden", findings)
    model.save_pretrained(directory)

    calibrated = [entry["findings"] for entry in umcl.load(directory).classify(images)]
    uncalibrated = [entry["findings"] for entry in raw.classify(images)]
    for k, name in enumerate(LABELS):
        p = torch.tensor([r[name]["probability"] for r in calibrated])
        q = torch.tensor([r[name]["probability"] for r in uncalibrated])
        positive = [r[name]["positive"] for r in calibrated]
        if name in findings:
            entry = findings[name]
            assert torch.allclose(p, torch.sigmoid(entry.a * logits[:, k] + entry.b), atol=1e-6)
            assert not torch.allclose(p, q, atol=1e-3)
            assert positive == [v >= entry.threshold for v in p.tolist()] and sum(positive) == 2
            assert all(r[name]["calibrated"] for r in calibrated)
        else:  # no entry: the raw score, 0.5
            assert torch.allclose(p, q, atol=1e-6)
            assert positive == [v >= 0.5 for v in q.tolist()]
            assert not any(r[name]["calibrated"] for r in calibrated)


def test_a_finding_outside_the_label_space_is_uncalibrated(tmp_path: Path) -> None:
    predictor = umcl.load(saved(tmp_path, calibration=True))
    image = (np.random.default_rng(3).random((32, 32)) * 255).astype(np.uint8)
    result = predictor.classify([image], findings=["Cardiomegaly", "Nodule"])[0]["findings"]
    assert list(result) == ["Cardiomegaly", "Nodule"]
    assert result["Cardiomegaly"]["calibrated"] and not result["Nodule"]["calibrated"]
    square = fit_square(image.astype(np.float32) / 255.0, SIZE)
    raw = raw_probabilities(predictor.model, [square], ["Nodule"])
    assert result["Nodule"]["probability"] == pytest.approx(float(raw[0, 0]), abs=1e-6)
    assert result["Nodule"]["positive"] == (result["Nodule"]["probability"] >= 0.5)

    specific = umcl.load(saved(tmp_path / "specific", {"class_specific": True}))
    with pytest.raises(ValueError, match="outside this model's label space"):
        specific.classify([image], findings=["Nodule"])
    with pytest.raises(ValueError, match="duplicates"):
        predictor.classify([image], findings=["Edema", "Edema"])


def test_one_bad_file_in_a_batch_gets_an_error_entry_and_the_rest_are_scored(
    tmp_path: Path,
) -> None:
    predictor = Predictor(UMCLModel.from_pretrained(saved(tmp_path)), batch_size=2)
    (png, dcm), _ = image_files(tmp_path)
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(png.read_bytes()[: png.stat().st_size // 2])
    files = [png, dcm, truncated, str(png), dcm]  # the bad one in the second batch of two
    entries = predictor.classify(files)
    assert [e["image"] for e in entries] == [str(f) for f in files]
    assert ["error" in e for e in entries] == [False, False, True, False, False]
    assert entries[2]["error"]["code"] == "image_unreadable"
    assert entries[2]["error"]["message"].startswith("image 2: ")
    alone = [predictor.classify([f])[0]["findings"] for f in (png, dcm)]
    for entry, expected in zip([entries[i] for i in (0, 1, 3, 4)], alone * 2, strict=True):
        got = [entry["findings"][n]["probability"] for n in LABELS]
        assert got == pytest.approx([expected[n]["probability"] for n in LABELS], abs=1e-6)
    everything_bad = predictor.classify([truncated, tmp_path / "gone.png"])
    assert [e["error"]["code"] for e in everything_bad] == ["image_unreadable", "image_missing"]


def test_inputs_that_are_not_images_are_refused(tmp_path: Path) -> None:
    predictor = umcl.load(saved(tmp_path))
    with pytest.raises(TypeError, match="one image"):
        predictor.classify(tmp_path / "x.png")
    for image, reason in (
        (np.zeros((3, 8, 8), np.uint8), "2-D grayscale"),
        (np.full((8, 8), 2.0), r"\[0, 1\]"),
        (np.zeros((8, 8), np.int64), "uint8 or float"),
    ):
        with pytest.raises(ValueError, match=reason):
            predictor.embed_images([image])
        (entry,) = predictor.classify([image])
        assert entry["error"]["code"] == "image_invalid" and "findings" not in entry
    with pytest.raises(FileNotFoundError, match="neither a model directory nor a store tag"):
        umcl.load(tmp_path / "missing")


def test_a_store_tag_loads_the_stored_model(tmp_path: Path, empty_store: Path) -> None:
    from umcl import registry
    from umcl.inference import resolve

    with pytest.raises(registry.RegistryError, match="no champion"):
        resolve("umcl:champion")
    directory = saved(tmp_path, calibration=True)
    entry, _ = registry.add(directory, {"test": True})
    registry.promote(entry.tag)
    image = (np.random.default_rng(4).random((30, 50)) * 255).astype(np.uint8)
    expected = umcl.load(directory).classify([image])
    assert umcl.load(entry.tag).classify([image]) == expected
    assert umcl.load("umcl:champion").classify([image]) == expected


def test_parameter_groups_cover_every_parameter_once() -> None:
    model = tiny_model({"class_specific": True})
    decay, rest = model.parameter_groups(0.05)
    assert (decay["weight_decay"], rest["weight_decay"]) == (0.05, 0.0)
    # Every trainable one: the text tower pools by mean, so BERT's pooler is frozen (unused).
    named = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert {n for n, p in model.named_parameters() if not p.requires_grad} == {
        "text.backbone.pooler.dense.weight",
        "text.backbone.pooler.dense.bias",
    }
    ids = [id(p) for p in decay["params"] + rest["params"]]
    assert len(ids) == len(set(ids)) == len(named)
    decayed = {name for name, p in named.items() if any(p is q for q in decay["params"])}
    assert decayed == {n for n, p in named.items() if p.ndim >= 2 and n != "prompts.context"}
    assert {"prompts.context", "logit_scale"} <= set(named) - decayed
    assert any(n.endswith("LayerNorm.weight") for n in set(named) - decayed)
    assert all(not n.endswith(".bias") for n in decayed)
    torch.optim.AdamW(model.parameter_groups(0.05), lr=1e-3)  # refuses a parameter twice


def test_importing_umcl_does_not_import_torch() -> None:
    code = "import sys, umcl; print('torch' in sys.modules, callable(umcl.load))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.stdout.split() == ["False", "True"], out.stderr
