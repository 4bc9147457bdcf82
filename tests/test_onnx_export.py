"""`umcl export --onnx`: the exported graph and prompt matrix score as the PyTorch model does, in
ONNX Runtime alone, and the ONNX Runtime example in docs/your-tools.md says what `classify`
says."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from PIL import Image

from tests.conftest import REPO, toy_calibration
from tests.tiny import LABELS, MODEL, tiny_tokenizer
from umcl.cli import main
from umcl.config import ModelSettings, PromptSettings
from umcl.imaging.limits import DecodeLimits, ImageDecodeError
from umcl.inference import image_pixels, load
from umcl.model.folder import CARD_FILE
from umcl.model.umcl import UMCLModel
from umcl.onnx_export import FINDINGS_FILE, IMAGE_ENCODER, export_onnx, onnx_scores

TOLERANCE = 1e-4


def frontal_dicoms(pipeline: dict, n: int) -> list[Path]:
    """`n` of the demo's frontal DICOMs that decode (the demo plants broken ones too)."""
    readable = []
    for path in sorted((pipeline["root"] / "raw/demo/chexpert").rglob("view1_frontal.dcm")):
        try:
            image_pixels(path, "x", DecodeLimits())
        except ImageDecodeError:
            continue
        readable.append(path)
    assert len(readable) >= n
    return readable[:n]


def test_the_export_scores_as_the_pytorch_model_in_onnx_runtime(
    candidates: dict, tiny_pipeline: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    model_dir = candidates["trained"]["model"]
    out = tmp_path / "exported"
    assert main(["export", "--onnx", str(out), "--model", str(model_dir)]) == 0
    assert "checked in ONNX Runtime" in capsys.readouterr().out
    assert {p.name for p in out.iterdir()} == {IMAGE_ENCODER, FINDINGS_FILE, CARD_FILE}
    table = json.loads((out / FINDINGS_FILE).read_text())
    session = onnxruntime.InferenceSession(str(out / IMAGE_ENCODER))
    predictor = load(model_dir)
    assert table["findings"] == predictor.labels and table["image_size"] == predictor.image_size
    files = frontal_dicoms(tiny_pipeline, 5)
    squares = np.stack([predictor.square(f) for f in files])
    expected = predictor.embed_squares(squares)
    results = predictor.classify(files)
    for batch in (slice(0, 1), slice(0, 5)):  # the batch axis is free
        pixels = (squares[batch].astype(np.float32) / 255)[:, None]
        embeddings, probabilities = onnx_scores(session, table, pixels)
        assert np.abs(embeddings - expected[batch]).max() < TOLERANCE
        for row, result in zip(probabilities, results[batch], strict=True):
            for k, name in enumerate(table["findings"]):
                finding = result["findings"][name]
                assert abs(row[k] - finding["probability"]) < TOLERANCE, name
                if abs(row[k] - table["thresholds"][k]) > TOLERANCE:
                    assert (row[k] >= table["thresholds"][k]) == finding["positive"], name

    # An existing export is never overwritten.
    assert main(["export", "--onnx", str(out), "--model", str(model_dir)]) == 1
    assert "not an empty directory" in capsys.readouterr().err


@pytest.mark.parametrize(
    "image",
    [
        dict(MODEL["image"], standardise="percentile"),
        {
            "config": {
                "model_type": "vit",
                "image_size": 32,
                "patch_size": 8,
                "num_channels": 1,
                "hidden_size": 16,
                "num_hidden_layers": 1,
                "num_attention_heads": 2,
                "intermediate_size": 32,
            },
            "pooling": "cls",
        },
        {
            "config": {
                "model_type": "swin",
                "image_size": 32,
                "patch_size": 4,
                "num_channels": 1,
                "embed_dim": 8,
                "depths": [1, 1],
                "num_heads": [1, 2],
                "window_size": 4,
            },
            "pooling": "pooler",
        },
    ],
    ids=["convnext-percentile", "vit", "swin"],
)
def test_other_towers_export_within_the_tolerance(image: dict, tmp_path: Path) -> None:
    settings = ModelSettings.model_validate(dict(MODEL, image=image))
    model = UMCLModel.from_config(settings, PromptSettings(), LABELS, tiny_tokenizer(), 32)
    model.calibration = toy_calibration(LABELS)
    model.save_pretrained(tmp_path / "model")
    report = export_onnx(tmp_path / "model", tmp_path / "exported")
    assert report["checked"]["max_abs_difference"] < TOLERANCE
    assert report["checked"]["max_abs_difference_probability"] < TOLERANCE
    # Images unlike the export's own probes: a film narrower than its square, a bright one.
    predictor = load(tmp_path / "model")
    table = json.loads((tmp_path / "exported" / FINDINGS_FILE).read_text())
    session = onnxruntime.InferenceSession(str(tmp_path / "exported" / IMAGE_ENCODER))
    rng = np.random.default_rng(1)
    images = [rng.random((40, 23)), 0.7 + 0.3 * rng.random((32, 32))]
    squares = np.stack([predictor.square(image) for image in images])
    _, probabilities = onnx_scores(session, table, (squares / 255).astype(np.float32)[:, None])
    expected = predictor.score(predictor.embed_squares(squares))[0].numpy()
    assert np.abs(probabilities - expected).max() < TOLERANCE


def documented_example() -> str:
    text = (REPO / "docs" / "your-tools.md").read_text()
    found = re.search(r"<!-- onnx-example -->\n```python\n(.*?)```", text, re.DOTALL)
    assert found, "docs/your-tools.md has no ONNX Runtime example"
    return found.group(1)


def test_the_documented_example_scores_a_png_with_onnx_runtime_alone(
    candidates: dict, tiny_pipeline: dict, tmp_path: Path
) -> None:
    model_dir = candidates["trained"]["model"]
    export_onnx(model_dir, tmp_path / "exported")
    # A real decoded demo X-ray, cut narrower than it is tall, as an 8-bit PNG.
    grey = image_pixels(frontal_dicoms(tiny_pipeline, 1)[0], "x", DecodeLimits())
    grey = grey[:, grey.shape[1] // 5 :]
    Image.fromarray(np.rint(grey * 255).astype(np.uint8)).save(tmp_path / "chest.png")
    (tmp_path / "example.py").write_text(documented_example())
    # Only ONNX Runtime, NumPy and Pillow: the example must not need umcl or torch.
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.modules['torch'] = sys.modules['umcl'] = None; "
            "exec(open('example.py').read())",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    printed = dict(line.rsplit(": ", 1) for line in run.stdout.splitlines())
    (result,) = load(model_dir).classify([tmp_path / "chest.png"])
    assert set(printed) == set(result["findings"])
    for name, finding in result["findings"].items():
        probability, decision = printed[name].split()
        assert float(probability) == pytest.approx(finding["probability"], abs=2e-4), name
        assert decision == ("positive" if finding["positive"] else "negative"), name
