"""`umcl export --onnx DIR`: the model for a hospital's own inference stack (ONNX Runtime,
Triton). The image tower and its projection become one ONNX graph (pixels → L2-normalised
embedding); the findings' prompts are encoded once into a matrix, so zero-shot scoring needs no
text tower and no PyTorch:

    z = embedding @ weights.T          (n, F) log-odds, weights = s·(w_present − w_absent)
    p = sigmoid(a · z + b)             the model's calibration, per finding
    positive = p ≥ threshold           its operating point

Every export is run in ONNX Runtime beside the PyTorch model and refused if they disagree."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import onnxruntime
import torch
from torch import nn

from umcl.atomic import replacing_directory
from umcl.calibration import Calibration
from umcl.errors import InputError, UMCLError
from umcl.inference import Predictor, resolve
from umcl.model.folder import CARD_FILE
from umcl.model.umcl import UMCLModel
from umcl.registry import model_digest, version_tag

IMAGE_ENCODER = "image_encoder.onnx"
FINDINGS_FILE = "findings.json"
OPSET = 17  # ONNX Runtime ≥ 1.12 and Triton's onnxruntime backend run it
TOLERANCE = 1e-4  # largest |ONNX − PyTorch| of an embedding value the export accepts
INPUT = (
    "pixels: float32 (n, 1, S, S) in [0, 1]: the grey image scaled (bilinear) so that its long "
    "side is S, centred on a black S×S square, rounded to multiples of 1/255 "
    "(umcl.imaging.images.fit_square)"
)


class ImageEncoder(nn.Module):
    """The exported graph: the image tower's own preprocessing (percentile stretch, channel
    expansion, normalisation), backbone, pooling and projection."""

    def __init__(self, model: UMCLModel) -> None:
        super().__init__()
        self.tower = model.image

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.tower(pixels)


def findings_table(predictor: Predictor) -> dict:
    """The findings' scoring constants: names, the (F, D) prompt matrix, calibration a and b,
    thresholds (as `Predictor.classify` applies them)."""
    names = predictor.labels
    present, absent, scale = (t.cpu() for t in predictor.prompt_embeddings(names))
    calibration = predictor.model.calibration or Calibration.identity(names)
    entries = [calibration.findings.get(name) for name in names]  # as Calibration.probabilities
    return {
        "findings": names,
        "weights": (scale * (present - absent)).tolist(),
        "a": [1.0 if e is None else e.a for e in entries],
        "b": [0.0 if e is None else e.b for e in entries],
        "thresholds": [calibration.threshold(n) for n in names],
        "calibrated": [calibration.calibrated(n) for n in names],
    }


class ExportMismatch(UMCLError, RuntimeError):
    """The ONNX graph does not compute what the PyTorch model computes (an operator the exporter
    translated differently): nothing is written."""


def onnx_scores(
    session: onnxruntime.InferenceSession, table: dict, pixels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings, probabilities) of `pixels` through an ONNX Runtime session and the findings
    table: the scoring docs/your-tools.md shows, used here to check the export."""
    (embeddings,) = session.run(None, {"pixels": pixels})
    logits = embeddings @ np.asarray(table["weights"], np.float32).T
    a, b = np.asarray(table["a"], np.float32), np.asarray(table["b"], np.float32)
    return embeddings, 1 / (1 + np.exp(-(a * logits + b)))


def probe_pixels(size: int, n: int = 3) -> np.ndarray:
    """Inputs to compare the two runtimes on: noise, a smooth ramp, and a padded square (the
    black border the percentile stretch leaves out)."""
    rng = np.random.default_rng(0)
    images = [rng.random((size, size)), np.add.outer(np.linspace(0, 1, size), np.zeros(size))]
    padded = np.zeros((size, size))
    padded[:, size // 4 : size - size // 4] = rng.random((size, size - 2 * (size // 4)))
    images.append(padded)
    squares = np.round(np.stack(images[:n]) * 255) / 255
    return squares[:, None].astype(np.float32)


def export_onnx(source: str | Path, out: Path) -> dict:
    """Write `out`/image_encoder.onnx, findings.json and the model card; returns the report
    (also in findings.json: what was checked and how far apart the runtimes were). Written in a
    hidden folder beside `out`, renamed when complete: a failed export leaves nothing."""
    model_dir = resolve(source)
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out}: exists and is not an empty directory; choose a new one")
    predictor = Predictor(UMCLModel.from_pretrained(model_dir))
    with replacing_directory(out) as partial:
        return _write_export(predictor, model_dir, partial)


def _write_export(predictor: Predictor, model_dir: Path, partial: Path) -> dict:
    """The export's files in `partial`, checked; the report."""
    size = predictor.image_size
    encoder = ImageEncoder(predictor.model).eval()
    pixels = probe_pixels(size)
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer notes each Python-level shape check it fixes: the graph's shapes are those.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            encoder,
            (torch.from_numpy(pixels),),
            partial / IMAGE_ENCODER,
            input_names=["pixels"],
            output_names=["embedding"],
            opset_version=OPSET,
            dynamic_axes={"pixels": {0: "n"}, "embedding": {0: "n"}},
            dynamo=False,
        )
        expected = encoder(torch.from_numpy(pixels)).numpy()
    table = findings_table(predictor)
    session = onnxruntime.InferenceSession(
        str(partial / IMAGE_ENCODER), providers=["CPUExecutionProvider"]
    )
    embeddings, probabilities = onnx_scores(session, table, pixels)
    apart = float(np.abs(embeddings - expected).max())
    reference = predictor.scorer()(expected)[0].numpy()
    apart_p = float(np.abs(probabilities - reference).max())
    if apart > TOLERANCE or apart_p > TOLERANCE:
        raise ExportMismatch(
            f"the ONNX graph does not reproduce the model: embeddings differ by up to {apart:.2e},"
            f" probabilities by {apart_p:.2e} (tolerance {TOLERANCE:g}); nothing was written"
        )
    report = {
        "model": version_tag(model_digest(model_dir)),
        "image_size": size,
        "embed_dim": int(expected.shape[1]),
        "input": INPUT,
        "opset": OPSET,
        "checked": {
            "onnxruntime": onnxruntime.__version__,
            "max_abs_difference": apart,
            "max_abs_difference_probability": apart_p,
        },
    }
    (partial / FINDINGS_FILE).write_text(json.dumps(report | table, indent=1) + "\n")
    if (model_dir / CARD_FILE).is_file():
        shutil.copyfile(model_dir / CARD_FILE, partial / CARD_FILE)
    return report
