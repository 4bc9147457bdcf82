"""The resumable state of a run: what it must match (the fingerprint), what it holds (weights,
optimiser, schedule, RNGs, the best validation weights so far), and its atomic save and restore."""

from __future__ import annotations

import hashlib
import json
import logging
import random
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from umcl.atomic import write_with
from umcl.config import Settings, weight_params
from umcl.errors import UMCLError
from umcl.imports import import_closure, source_digest
from umcl.training.runtime import Runtime

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
# The code a run executes: a fix to the model, the data a step sees, the loop or the validation
# score must not be skipped by resuming a finished run of the old code. The same import closure
# is what `dvc.yaml`'s train stage must depend on (tests/test_dvc_deps.py).
TRAINING_ENTRY = "umcl.train"


class CheckpointError(UMCLError, RuntimeError):
    """A checkpoint exists but cannot be resumed from; never silently replaced."""


def fingerprint(settings: Settings, triplets: Path, runtime: Runtime) -> str:
    """What a checkpoint must match to be resumed: everything that shapes the weights."""
    knobs = {
        **weight_params(settings),
        "world": runtime.world,
        "triplets": hashlib.sha256(Path(triplets).read_bytes()).hexdigest(),
        "code": code_digest(),
    }
    return hashlib.sha256(json.dumps(knobs, sort_keys=True).encode()).hexdigest()[:16]


def code_digest() -> str:
    return source_digest(import_closure([TRAINING_ENTRY]))


def rng_state() -> dict:
    numpy_state = np.random.get_state(legacy=False)
    # weights_only loads plain data: the key array travels as a list
    numpy_state["state"]["key"] = numpy_state["state"]["key"].tolist()
    state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    numpy_state = dict(state["numpy"], state=dict(state["numpy"]["state"]))
    numpy_state["state"]["key"] = np.array(numpy_state["state"]["key"], dtype=np.uint32)
    np.random.set_state(numpy_state)
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_fresh_run(seed: int, runtime: Runtime) -> None:
    """The RNGs of a run that starts from step 0: dropout differs across ranks. Python's and
    NumPy's are seeded too, though training draws from neither: checkpoints then hold the same
    bytes on every run, so DVC records the same hash for the same training."""
    torch.manual_seed(seed + runtime.rank)
    random.seed(seed + runtime.rank)
    np.random.seed(seed + runtime.rank)


def gathered_rng_states(runtime: Runtime) -> list:
    """Every rank's RNG state, in rank order (each rank resumes its own)."""
    if runtime.world == 1:
        return [rng_state()]
    states = [None] * runtime.world
    dist.all_gather_object(states, rng_state())
    return states


def save_checkpoint(path: Path, state: dict) -> None:
    """Write to a temporary file, then rename: a kill mid-write never leaves a torn file."""
    write_with(path, lambda temporary: torch.save(state, temporary))


def load_checkpoint(path: Path, expected: str) -> dict | None:
    """The checkpoint to resume from, or None to start fresh (none there, or another run's)."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        found = state["fingerprint"]
    except Exception as exc:  # a torn or foreign file: stop rather than retrain from scratch
        raise CheckpointError(
            f"{path}: cannot resume from this checkpoint ({type(exc).__name__}: {exc}). "
            "Delete it to start training from scratch."
        ) from None
    if found != expected:
        log.warning(
            "%s was written with other params, data or code (%s ≠ %s); starting a new run",
            path,
            found,
            expected,
        )
        return None
    return state
