"""The training loop on the tiny demo: it learns, saves a loadable model, resumes exactly."""

from __future__ import annotations

import csv
import json
import logging
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from hashlib import sha256
from pathlib import Path

import polars as pl
import pytest
import torch
import yaml

from tests.conftest import REPO
from tests.project import make_project, project_env
from tests.project import run as project_run
from tests.tiny import MODEL
from umcl.config import parse_settings, weight_params
from umcl.model.folder import input_size, read_provenance
from umcl.model.tokenizer import load_tokenizer
from umcl.model.umcl import UMCLModel
from umcl.train import train
from umcl.training.checkpoint import CHECKPOINT, CheckpointError


def params_for(pipeline: dict, **train) -> dict:
    params = yaml.safe_load(pipeline["params"].read_text())
    params["model"] = MODEL
    params["train"] = {
        "steps": 30,
        "batch_size": 8,
        "warmup_steps": 3,
        "checkpoint_every": 5,
        "log_every": 1,
        "lr": 2e-3,
    } | train
    return params


def run(pipeline: dict, out: Path, **train_knobs) -> dict:
    settings = parse_settings(params_for(pipeline, **train_knobs))
    return train(
        settings,
        pipeline["triplets"],
        pipeline["cache"],
        out / "model",
        out / "checkpoints",
        out / "live",
    )


def losses(live: Path) -> list[float]:
    with (live / "plots/metrics/train/loss.tsv").open() as f:
        return [float(row["loss"]) for row in csv.DictReader(f, delimiter="\t")]


def test_training_learns_and_the_model_loads_back(tiny_pipeline: dict, tmp_path: Path) -> None:
    summary = run(tiny_pipeline, tmp_path, select="last")
    history = losses(tmp_path / "live")
    assert len(history) == 30
    assert sum(history[-10:]) / 10 < sum(history[:10]) / 10
    assert summary["resumed_from"] == 0 and summary["world_size"] == 1
    assert summary["exported_step"] == 30

    loaded = UMCLModel.from_pretrained(tmp_path / "model")
    settings = parse_settings(params_for(tiny_pipeline, select="last"))
    rebuilt = UMCLModel.from_config(
        settings.model,
        loaded.prompts.settings,
        loaded.label_names,
        load_tokenizer(tmp_path / "model/tokenizer"),
        settings.preprocess.image_size,
    )
    rebuilt.load_state_dict(
        torch.load(tmp_path / "checkpoints" / CHECKPOINT, weights_only=True)["model"]
    )
    rebuilt.eval()
    images, texts = torch.rand(3, 1, 32, 32), ["no pleural effusion.", "cardiomegaly.", ""]
    with torch.no_grad():
        assert torch.equal(loaded.encode_image(images), rebuilt.encode_image(images))
        assert torch.equal(loaded.encode_text(texts), rebuilt.encode_text(texts))
        assert torch.equal(loaded.encode_findings()[0], rebuilt.encode_findings()[0])
    assert (tmp_path / "model/labels.json").is_file() and (tmp_path / "model/tokenizer").is_dir()
    stored = read_provenance(tmp_path / "model")["params"]  # what shapes the weights, no data paths
    assert stored == weight_params(settings)
    assert "data" not in stored and input_size(tmp_path / "model") == 32
    assert loaded.calibration is not None  # fitted on the validation split at export


def val_history(live: Path, name: str) -> dict[int, float]:
    with (live / f"plots/metrics/val/{name}.tsv").open() as f:
        return {int(row["step"]): float(row[name]) for row in csv.DictReader(f, delimiter="\t")}


def test_the_best_validation_checkpoint_is_the_one_exported(
    tiny_pipeline: dict, tmp_path: Path
) -> None:
    summary = run(tiny_pipeline, tmp_path, eval_every=3, steps=24)
    aurocs = val_history(tmp_path / "live", "zero_shot_auroc")
    assert (
        sorted(aurocs) == list(range(3, 25, 3)) and len(val_history(tmp_path / "live", "loss")) == 8
    )
    best_step = max(aurocs, key=lambda step: (aurocs[step], -step))  # ties keep the earlier
    assert summary["exported_step"] == best_step
    state = torch.load(tmp_path / "checkpoints" / CHECKPOINT, weights_only=True)
    assert state["best"]["step"] == best_step and state["step"] == 24
    exported = UMCLModel.from_pretrained(tmp_path / "model").state_dict()
    assert all(torch.equal(exported[k], v) for k, v in state["best"]["weights"].items())
    if best_step != 24:  # the last weights differ from the exported ones
        assert not all(torch.equal(exported[k], v) for k, v in state["model"].items())


def test_a_cache_of_another_size_is_refused(tiny_pipeline: dict, tmp_path: Path) -> None:
    params = params_for(tiny_pipeline)
    params["preprocess"] = {**params.get("preprocess", {}), "image_size": 48}
    with pytest.raises(ValueError, match=r"32×32.*48×48"):
        train(
            parse_settings(params),
            tiny_pipeline["triplets"],
            tiny_pipeline["cache"],
            tmp_path / "model",
            tmp_path / "checkpoints",
        )
    assert not (tmp_path / "model").exists()


def test_a_corrupt_checkpoint_stops_the_run(tiny_pipeline: dict, tmp_path: Path) -> None:
    checkpoint = tmp_path / "checkpoints" / CHECKPOINT
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"PK\x03\x04 torn in half")
    with pytest.raises(CheckpointError, match=r"cannot resume.*Delete it"):
        run(tiny_pipeline, tmp_path, steps=4)
    assert checkpoint.read_bytes() == b"PK\x03\x04 torn in half"
    assert not (tmp_path / "model").exists()


def test_a_checkpoint_from_other_params_is_not_resumed(
    tiny_pipeline: dict, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert run(tiny_pipeline, tmp_path, steps=4)["resumed_from"] == 0
    assert run(tiny_pipeline, tmp_path, steps=4)["resumed_from"] == 4  # same params: nothing to do
    with caplog.at_level(logging.WARNING):
        assert run(tiny_pipeline, tmp_path, steps=4, lr=1e-3)["resumed_from"] == 0
    assert "other params, data or code" in caplog.text


def train_arguments(pipeline: dict, out: Path) -> list[str]:
    """`umcl train` options for the tiny pipeline's data, writing under `out`."""
    return [
        "--triplets",
        str(pipeline["triplets"]),
        "--cache",
        str(pipeline["cache"]),
        "--out",
        str(out / "model"),
        "--checkpoints",
        str(out / "checkpoints"),
        "--live",
        str(out / "live"),
    ]


# The kill-and-resume run: a kill less than a checkpoint interval past the first checkpoint
# lands well before the end even on a loaded machine (0.03 s a step on 2 idle cores, 0.1 s busy).
KILL_STEPS, KILL_ACCUMULATE, KILL_BATCH = 160, 2, 8


def kill_test_params(project: Path) -> int:
    """Params of a run that a resume can get wrong: dropout on (the restored RNG draws its masks)
    and gradient accumulation, with the first checkpoint mid-epoch (the resumed loader starts
    part-way through an epoch). Returns `checkpoint_every`."""
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["model"]["text"]["config"].update(
        hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1
    )
    rows = pl.read_parquet(project / "data/unified/triplets.parquet").filter(
        pl.col("split") == "train"
    )
    per_epoch = rows.height // KILL_BATCH  # micro-batches
    every = next(c for c in range(8, 64) if c * KILL_ACCUMULATE % per_epoch)
    # threads pinned: on a CPU the intra-op thread count decides the order of some sums, and
    # `threads: auto` subtracts the loader workers, which this test changes between runs.
    params["train"].update(
        steps=KILL_STEPS,
        batch_size=KILL_BATCH,
        accumulate=KILL_ACCUMULATE,
        warmup_steps=5,
        checkpoint_every=every,
        log_every=1,
        lr=2e-3,
        workers=0,
        threads=1,
        eval_every=7,
        select="best_val",
    )
    params["train"]["augment"]["enabled"] = True
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return every


def logged_step(project: Path) -> int:
    """The last step dvclive logged; 0 before the first or while the file is being rewritten."""
    try:
        return int(json.loads((project / "metrics/train/metrics.json").read_text())["step"])
    except (FileNotFoundError, ValueError, KeyError):
        return 0


def loss_history(project: Path) -> list[tuple[str, str]]:
    with (project / "metrics/train/plots/metrics/train/loss.tsv").open() as f:
        return [(row["step"], row["loss"]) for row in csv.DictReader(f, delimiter="\t")]


def kill_repro_train(project: Path, past: int, log: Path, timeout: float = 300) -> int:
    """Start `dvc repro train` in a process group of its own and SIGKILL the whole group once
    the checkpoint exists and the logged step has reached `past`; the step last seen."""
    with log.open("w") as out:
        process = subprocess.Popen(
            ["dvc", "repro", "train"],
            cwd=project,
            env=project_env(project),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    checkpoint, deadline = project / "models/checkpoints" / CHECKPOINT, time.monotonic() + timeout
    seen = 0
    while not (checkpoint.exists() and seen >= past):
        assert process.poll() is None, f"ended before step {past}:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"no step {past} in {timeout} s (last: {seen})"
        time.sleep(0.02)
        seen = logged_step(project)
    os.killpg(process.pid, signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL
    while True:  # until no process of the group is left to write a checkpoint
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return seen
        assert time.monotonic() < deadline + 60, "the killed process group lingers"
        time.sleep(0.05)


def model_digest(directory: Path) -> dict[str, str]:
    """sha256 of every file of an exported model: weights, calibration, training record."""
    return {
        str(f.relative_to(directory)): sha256(f.read_bytes()).hexdigest()
        for f in sorted(directory.rglob("*"))
        if f.is_file()
    }


@pytest.mark.slow
def test_kill_and_resume_ends_with_the_uninterrupted_weights(tmp_path: Path) -> None:
    """Augmentation on, validation every 7 steps with the best checkpoint exported; the killed
    and resumed runs augment in a loader worker, the uninterrupted one in the main process."""
    project = make_project(tmp_path / "project")
    project_run("dvc", "repro", "preprocess", cwd=project)
    every = kill_test_params(project)
    weights, model = project / "models/candidate/model.safetensors", project / "models/candidate"
    assert f"train: steps 0 → {KILL_STEPS}" in project_run("dvc", "repro", "train", cwd=project)
    expected, expected_losses = model_digest(model), loss_history(project)
    expected_validation = (project / "metrics/train/plots/metrics/val/loss.tsv").read_text()
    shutil.rmtree(project / "models")
    shutil.rmtree(project / "metrics/train")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"]["workers"] = 1  # a run-only knob: the checkpoint stays resumable
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    kill_at = every + random.randint(1, every - 1)  # some steps past the first checkpoint
    seen = kill_repro_train(project, kill_at, tmp_path / "killed.log")
    assert seen < KILL_STEPS and not weights.exists(), f"killed at step {seen}: too late"

    resumed = project_run("dvc", "repro", "train", cwd=project)
    start = int(re.search(rf"train: steps (\d+) → {KILL_STEPS}", resumed)[1])
    assert start % every == 0 and every <= start <= seen, (start, every, seen)
    assert model_digest(model) == expected, (
        f"killed at step {seen} (aimed at {kill_at}), resumed from {start}: another model"
    )
    assert loss_history(project) == expected_losses
    assert (project / "metrics/train/plots/metrics/val/loss.tsv").read_text() == expected_validation


@pytest.mark.slow
def test_torchrun_trains_with_two_gloo_processes(tiny_pipeline: dict, tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(params_for(tiny_pipeline, steps=6, batch_size=4)))
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "umcl.cli",
        "--params",
        str(params),
        "train",
        *train_arguments(tiny_pipeline, tmp_path),
    ]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (
        "on 2× cpu" in done.stdout and done.stdout.count("train: steps 0 → 6") == 1
    )  # rank 0 reports
    assert read_provenance(tmp_path / "model")["train"]["world_size"] == 2
    assert len(losses(tmp_path / "live")) == 6
    UMCLModel.from_pretrained(tmp_path / "model")


def test_accumulation_and_bf16_autocast_run(tiny_pipeline: dict, tmp_path: Path) -> None:
    summary = run(tiny_pipeline, tmp_path, steps=3, batch_size=4, accumulate=2, precision="bf16")
    assert summary["precision"] == "bf16" and summary["steps"] == 3
    assert len(losses(tmp_path / "live")) == 3
    assert summary["final_loss"] == summary["final_loss"]  # not NaN


def with_val(pipeline: dict, tmp_path: Path, keep_in_val: pl.Expr) -> dict:
    """The pipeline with only the validation rows `keep_in_val` selects left in that split (the
    others join train), as a small site's patient split can fall."""
    table = pl.read_parquet(pipeline["triplets"])
    moved = pl.when((pl.col("split") == "val") & ~keep_in_val).then(pl.lit("train"))
    table = table.with_columns(split=moved.otherwise(pl.col("split")))
    triplets = tmp_path / "unified/triplets.parquet"
    triplets.parent.mkdir(parents=True)
    table.write_parquet(triplets)
    shutil.copy(pipeline["triplets"].parent / "labels.json", triplets.parent / "labels.json")
    return pipeline | {"triplets": triplets}


def test_a_validation_split_of_reports_only_trains_and_exports_raw_probabilities(
    tiny_pipeline: dict, tmp_path: Path
) -> None:
    pipeline = with_val(tiny_pipeline, tmp_path, pl.col("image").is_null())
    summary = run(pipeline, tmp_path, steps=10, eval_every=5, select="best_val")
    assert summary["exported_step"] in (5, 10)  # selected by the validation loss of the reports
    calibration = UMCLModel.from_pretrained(tmp_path / "model").calibration
    assert calibration is not None and not any(e.fitted for e in calibration.findings.values())


def test_an_empty_validation_split_cannot_select_the_best_step(
    tiny_pipeline: dict, tmp_path: Path
) -> None:
    pipeline = with_val(tiny_pipeline, tmp_path, pl.lit(False))
    with pytest.raises(ValueError, match=r"validation split is empty.*train.select: last"):
        run(pipeline, tmp_path, select="best_val")
    assert run(pipeline, tmp_path, steps=5, select="last")["exported_step"] == 5
