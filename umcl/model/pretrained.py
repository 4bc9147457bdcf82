"""What a local pretrained folder holds, read without loading it: one backbone or a CLIP-style
pair of towers, the preprocessing its image processor states, and its identity.

A folder in Hugging Face format (`save_pretrained`, or a hub download) has a `config.json`; an
image checkpoint also has a `preprocessor_config.json` with the per-channel `image_mean` and
`image_std` it was trained with and its input `size` (`crop_size` when it centre-crops). A CLIP
or SigLIP folder's config holds a `vision_config` and a `text_config`: each tower takes its half.
The identity is the content hash of the folder (umcl/config/pretrained_id.py: `checkpoint_sha256`), so a moved
copy is the same checkpoint and a changed file is another.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from umcl.config import (
    ChannelValues,
    ImageTowerSettings,
    ModelSettings,
    TowerSettings,
    checkpoint_sha256,
)
from umcl.errors import InputError, MissingInputError

CONFIG_FILE = "config.json"
PREPROCESSOR_FILE = "preprocessor_config.json"
# The normalisation of a tower built from a config (no checkpoint to take it from).
DEFAULT_MEAN, DEFAULT_STD = 0.5, 0.25


@dataclass(frozen=True)
class Preprocessing:
    """What a checkpoint says its images were: per-channel mean and std of pixels in [0, 1],
    and the side of the square input (None where the folder does not say)."""

    mean: list[float] | None
    std: list[float] | None
    size: int | None


def read_config(folder: Path) -> dict:
    """The folder's `config.json`, or a message saying what `pretrained` must name."""
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        hint = ""
        if (Path(folder) / "open_clip_config.json").is_file():
            hint = (
                " It is an open_clip checkpoint (open_clip_config.json), which needs open_clip, "
                "timm and torchvision; UMCL loads Hugging Face folders "
                "(docs/pretrained-weights.md)."
            )
        raise MissingInputError(
            f"{folder}: not a local model directory (no {CONFIG_FILE}); 'pretrained' must point "
            f"to a downloaded checkpoint.{hint}"
        )
    return _json_object(path)


def _json_object(path: Path) -> dict:
    """A checkpoint's JSON file as a mapping, or a message naming the file (a truncated
    download, another tool's file)."""
    try:
        content = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(
            f"{path}: not readable JSON ({exc}); download the checkpoint again"
        ) from None
    if not isinstance(content, dict):
        raise InputError(f"{path}: expected a JSON object, found {type(content).__name__}")
    return content


def is_dual(config: dict) -> bool:
    """A CLIP-style config: one image and one text tower (CLIP, SigLIP, …)."""
    return isinstance(config.get("vision_config"), dict) and isinstance(
        config.get("text_config"), dict
    )


def preprocessing(folder: Path) -> Preprocessing:
    """The preprocessing facts `folder` states (preprocessor_config.json, else the config's
    image_size)."""
    folder = Path(folder)
    stated: dict = {}
    if (folder / PREPROCESSOR_FILE).is_file():
        stated = _json_object(folder / PREPROCESSOR_FILE)
    config = read_config(folder)
    vision = config["vision_config"] if is_dual(config) else config
    size = _side(stated.get("crop_size")) if stated.get("do_center_crop", True) else None
    size = size or _side(stated.get("size")) or _side(vision.get("image_size"))

    def channels(key: str) -> list[float] | None:
        value = stated.get(key)
        if value is None:
            return None
        values = value if isinstance(value, list) else [value]
        if not values or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in values
        ):
            raise InputError(
                f"{folder / PREPROCESSOR_FILE}: {key} must be a number or a list of numbers, "
                f"got {value!r}; or set model.image.mean/std in params"
            )
        return [float(v) for v in values]

    return Preprocessing(channels("image_mean"), channels("image_std"), size)


def _side(size: int | dict | list | None) -> int | None:
    """The side of a square input from an image processor's `size`/`crop_size`."""
    if isinstance(size, int):
        return size
    if isinstance(size, list) and size:
        return int(size[0])
    if isinstance(size, dict):
        for key in ("height", "shortest_edge", "width"):
            if isinstance(size.get(key), int):
                return size[key]
    return None


def normalisation(
    settings: ImageTowerSettings, channels: int
) -> tuple[ChannelValues, ChannelValues]:
    """The (mean, std) the image tower standardises with: `model.image.mean/std` where set, else
    the pretrained folder's own, else 0.5 / 0.25. Refuses per-channel values for another number
    of channels than the backbone's."""
    facts = preprocessing(settings.pretrained) if settings.pretrained is not None else None
    mean = settings.mean
    if mean is None:
        mean = facts.mean if facts and facts.mean else DEFAULT_MEAN
    std = settings.std
    if std is None:
        std = facts.std if facts and facts.std else DEFAULT_STD
    for name, value in (("mean", mean), ("std", std)):
        if isinstance(value, list) and len(value) not in (1, channels):
            raise InputError(
                f"model.image.{name} has {len(value)} values but the image backbone takes "
                f"{channels} channels: give one value, or one per channel"
            )
    return mean, std


def identity(folder: Path) -> dict:
    """What a saved model records of the checkpoint it started from: the folder's name (not its
    path, which is of the machine that trained) and its content hash."""
    return {"checkpoint": Path(folder).resolve().name, "sha256": checkpoint_sha256(folder)}


def require_weights(model: ModelSettings) -> None:
    """Stop before any work when a tower names a pretrained folder that is not there, saying
    how to fetch it on a machine with internet (`hub_id`): nothing is downloaded at run time."""
    for part in ("image", "text"):
        tower: TowerSettings = getattr(model, part)
        folder = tower.pretrained
        if folder is None or (Path(folder) / CONFIG_FILE).is_file():
            continue
        holds_something = Path(folder).is_dir() and any(Path(folder).iterdir())
        if tower.hub_id is None or holds_something:
            read_config(folder)  # says what the folder lacks (and names an open_clip one)
        raise MissingInputError(
            f"model.{part}.pretrained: {folder} holds no downloaded checkpoint. On a machine with "
            f"internet run `hf download {tower.hub_id} --local-dir {folder}` (pip install "
            f"huggingface_hub), then copy the folder here; UMCL downloads nothing at run time "
            "(docs/pretrained-weights.md)"
        )
