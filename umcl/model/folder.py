"""A model folder, as `UMCLModel.save_pretrained` (`umcl/model/umcl.py`) writes it, and what can be
read from it without building the model:

    umcl.json         model settings (backbones as their full transformers configs, so no
                      checkpoint directory is needed to load), prompt settings, labels, image_size
    model.safetensors weights
    tokenizer/        the tokenizer
    calibration.json  per-finding calibration and thresholds (only when the model carries one)
    training.json     provenance: what the training recorded (only when given)
    README.md         the model card (`umcl/model_card.py`)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from umcl.errors import MissingInputError, UMCLError

if TYPE_CHECKING:
    from umcl.calibration import Calibration

WEIGHTS_FILE = "model.safetensors"
MODEL_FILE = "umcl.json"
CALIBRATION_FILE = "calibration.json"
TRAINING_FILE = "training.json"
ADAPTATION_KEY = "adaptation"  # in training.json, beside what the base model's training recorded
CARD_FILE = "README.md"  # the model card (umcl/model_card.py)
TOKENIZER_DIR = "tokenizer"


def describe_model(directory: str | Path) -> dict:
    """The model's `umcl.json`: its settings, prompts, labels and image size."""
    path = Path(directory) / MODEL_FILE
    if not path.is_file():
        raise MissingInputError(f"{directory}: not a UMCL model directory (no {MODEL_FILE})")
    return json.loads(path.read_text())


class ModelLayoutError(UMCLError, ValueError):
    """A model directory written by an older UMCL, before `save_pretrained`'s layout."""


def check_layout(directory: Path, description: dict) -> None:
    if "model" not in description or "image_size" not in description:
        raise ModelLayoutError(
            f"{directory}/{MODEL_FILE} is from an older UMCL layout (no model settings or "
            "image_size): train the model again, or load it with that version and re-save it"
        )


def input_size(directory: Path) -> int:
    """Side of the square images the model in `directory` takes (the cache size it trained on)."""
    description = describe_model(directory)
    check_layout(Path(directory), description)
    return int(description["image_size"])


def read_provenance(directory: str | Path) -> dict:
    """What the training recorded (`training.json`: its weight params and summary); {} if none."""
    path = Path(directory) / TRAINING_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def read_calibration(directory: str | Path) -> Calibration | None:
    """The model's calibration (`calibration.json`), or None when it has none (identity)."""
    path = Path(directory) / CALIBRATION_FILE
    if not path.is_file():
        return None
    from umcl.calibration import Calibration

    return Calibration.from_dict(json.loads(path.read_text()))
