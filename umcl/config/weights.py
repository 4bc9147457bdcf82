"""What of the params shapes the weights (`WEIGHT_PARAMS`), what only changes how a stage runs
(`RUN_ONLY`), and those values of one `Settings` (`weight_params`): one list for the resume
fingerprint, the exported model's record and the train stage of `dvc.yaml`."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from umcl.config.pretrained_id import checkpoint_sha256
from umcl.config.settings import Settings

# The params that shape the weights, and only those (no data paths, no keys): what a checkpoint
# must match to be resumed, what the exported model records, and what the train stage of dvc.yaml
# must list (tests/test_dvc_deps.py). The input size is the preprocess cache's, which the model
# also records (`umcl.json: image_size`); how uncertain validation labels are read decides which
# step `best_val` exports.
WEIGHT_PARAMS = (
    "seed",
    "labels",
    "model",
    "prompt",
    "loss",
    "train",
    "preprocess.image_size",
    "evaluate.uncertainty",
)
# Knobs that change how a stage runs (processes, how often it saves or logs), never what it
# writes: no stage lists them in dvc.yaml, and a resumed run may change them.
RUN_ONLY = frozenset(
    {
        "train.checkpoint_every",
        "train.log_every",
        "train.workers",
        "train.threads",
        "train.rendezvous",
        "preprocess.workers",
    }
)


def weight_params(settings: Settings) -> dict:
    """The values of WEIGHT_PARAMS (nested as in params.yaml), without the RUN_ONLY knobs; only
    those keys are read."""
    params: dict = {}
    for key in WEIGHT_PARAMS:
        *parents, leaf = key.split(".")
        value: Any = settings
        target = params
        for part in parents:
            value, target = getattr(value, part), target.setdefault(part, {})
        value = getattr(value, leaf)
        if isinstance(value, BaseModel):
            run_only = {k.removeprefix(f"{key}.") for k in RUN_ONLY if k.startswith(f"{key}.")}
            value = value.model_dump(mode="json", exclude=run_only or None)
        target[leaf] = value
    for tower in ("image", "text"):  # a pretrained folder counts by its content, not its path
        settings_tower = getattr(settings.model, tower) if settings.model else None
        if settings_tower is not None and settings_tower.pretrained is not None:
            digest = checkpoint_sha256(settings_tower.pretrained)
            params["model"][tower]["pretrained"] = f"sha256:{digest}"
        if settings_tower is not None:  # where to download it names it; the hash is what counts
            params["model"][tower].pop("hub_id", None)
    return params
