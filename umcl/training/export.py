"""The trained model leaves training: the selected weights (best validation or last), the
calibration and operating points fitted on the validation split, and a self-contained
directory (`UMCLModel.save_pretrained`) that evaluation, the gate, the service and `umcl.load`
read."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import polars as pl

from umcl.config import Settings, weight_params
from umcl.evaluate import fit_on_validation
from umcl.model.umcl import UMCLModel
from umcl.training.validation import Best

log = logging.getLogger(__name__)


def select_weights(model: UMCLModel, best: Best | None, select: str, last_step: int) -> int:
    """Load the weights `train.select` asks for into `model`; returns the step they are from."""
    if select == "last" or best is None:
        return last_step
    model.load_state_dict(best.weights)
    log.info(
        "exporting the best validation checkpoint: step %d (zero-shot AUROC %s, loss %s)",
        best.step, best.result.zero_shot_auroc, best.result.loss,
    )  # fmt: skip
    return best.step


def export_model(
    model: UMCLModel,
    settings: Settings,
    triplets: Path,
    cache_dir: Path,
    out_dir: Path,
    training: dict,
) -> None:
    """Calibrate `model` (weights already selected) on the validation split and save it. Only
    what the weights depend on is recorded: the same training, also when resumed, gives a
    byte-identical directory, so DVC and the registry see the same model."""
    model.eval()
    model.calibration = fit_on_validation(
        model, pl.read_parquet(triplets), Path(cache_dir), settings.evaluate
    )
    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)  # no file of an earlier export survives beside the new one
    model.save_pretrained(
        out_dir, provenance={"params": weight_params(settings), "train": training}
    )
    (out_dir / "labels.json").write_text((Path(triplets).parent / "labels.json").read_text())
