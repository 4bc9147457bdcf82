"""The trained model leaves training: the selected weights (best validation or last), the
calibration and operating points fitted on the validation split, and a self-contained
directory (`UMCLModel.save_pretrained`) that evaluation, the gate, the service and `umcl.load`
read."""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path

import polars as pl

from umcl.atomic import replacing_directory
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
        best.step,
        best.result.zero_shot_auroc,
        best.result.loss,
    )
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
    table = pl.read_parquet(triplets)
    model.calibration = fit_on_validation(model, table, Path(cache_dir), settings.evaluate)
    provenance = {
        "params": weight_params(settings),
        "train": training,
        "data": data_provenance(table),
        "card": settings.card.model_dump(mode="json"),  # what the model card declares
    }
    # The whole directory is replaced: no file of an earlier export survives beside the new one.
    with replacing_directory(out_dir) as folder:
        model.write_into(folder, provenance)
        shutil.copyfile(Path(triplets).parent / "labels.json", folder / "labels.json")


def data_provenance(table: pl.DataFrame) -> list[dict]:
    """Each source of the triplet table as the model card names it: its kind, samples per split,
    patients and a sha256 of its rows (the version of the data the weights were fitted and
    calibrated on; rows ordered by sample id, so the same rows give the same hash)."""
    sources = []
    for (name,), rows in sorted(table.group_by("source"), key=lambda group: group[0][0]):
        rows = rows.sort("sample_id")
        splits = rows["split"].value_counts()
        sources.append(
            {
                "source": name,
                "kind": sorted(rows["kind"].unique().to_list()),
                "samples": dict(sorted(zip(splits["split"], splits["count"], strict=True))),
                "patients": rows["patient_id"].n_unique(),
                "rows_sha256": hashlib.sha256(rows.write_csv().encode()).hexdigest(),
            }
        )
    return sources
