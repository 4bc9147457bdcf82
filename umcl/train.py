"""UMCL pretraining: the `train` stage.

    umcl train        # one process, or one per device and node (`train.devices`, `train.nodes`)

Several processes are torchrun workers that `umcl train` starts itself
(umcl/training/launch.py); each runs this function as one DDP rank.

Every knob is in `params.yaml: train` (and `model`, `prompt`, `loss`). Training images and
reports are augmented in the data-loader workers (`train.augment`); the validation split is
scored every `train.eval_every` steps, and the exported model is the best validation checkpoint
(`train.select`), calibrated on that split (`evaluate.calibration`, `evaluate.operating_point`).
A checkpoint is written atomically every `train.checkpoint_every` steps; running the same command
with the same params and data resumes from it and ends with the same weights as an uninterrupted
run. A checkpoint from other params, data or code is set aside with a warning; one that cannot be
read stops the run. The pieces live in `umcl/training/`.
"""

from __future__ import annotations

import itertools
import json
import logging
import shutil
import time
from pathlib import Path

import polars as pl
import torch
from tqdm import tqdm

from umcl.config import Settings
from umcl.data.dataset import Collate, TripletDataset
from umcl.errors import InputError
from umcl.model.loss import UMCLLoss
from umcl.model.pretrained import require_weights
from umcl.model.prompts import label_phrase
from umcl.model.tokenizer import load_tokenizer, train_wordpiece
from umcl.model.umcl import UMCLModel
from umcl.training.checkpoint import (
    CHECKPOINT,
    fingerprint,
    gathered_rng_states,
    load_checkpoint,
    save_checkpoint,
    seed_fresh_run,
    set_rng_state,
)
from umcl.training.export import export_model, select_weights
from umcl.training.live import log_step, log_validation, open_live
from umcl.training.order import micro_batches
from umcl.training.runtime import (
    Runtime,
    agreed,
    distribute,
    intra_op_threads,
    prefers_channels_last,
    start_runtime,
    stop_runtime,
)
from umcl.training.step import optimiser_for, optimiser_step, unreached_parameters
from umcl.training.validation import Best, Validator, keep_best

log = logging.getLogger(__name__)


def prepare_tokenizer(
    settings: Settings, reports: pl.DataFrame, label_names: list[str], directory: Path
):
    """The run's tokenizer: the pretrained text tower's own, or WordPiece trained on the
    training reports (`text`, `patient_id`; saved, so a resumed run tokenises exactly as before)."""
    if settings.model.text.pretrained is not None:
        return load_tokenizer(settings.model.text.pretrained)
    if directory.is_dir():
        return load_tokenizer(directory)
    templates = [settings.prompt.templates.present, settings.prompt.templates.absent]
    if settings.prompt.init != "random":
        templates += [settings.prompt.init.present, settings.prompt.init.absent]
    tokenizer = train_wordpiece(
        reports["text"].to_list(),
        settings.model.text.vocab_size,
        patients=reports["patient_id"].to_list(),
        min_patients=settings.model.text.min_patients,
        required=[label_phrase(n) for n in label_names] + templates,
    )
    tokenizer.save_pretrained(directory)
    return tokenizer


def run_tokenizer(
    settings: Settings,
    train_rows: pl.DataFrame,
    label_names: list[str],
    checkpoint_dir: Path,
    fresh: bool,
    runtime: Runtime,
):
    """Rank 0 trains (or finds) the run's tokenizer; every rank then loads the same one."""
    directory = checkpoint_dir / "tokenizer"
    if runtime.main:
        if fresh and directory.exists():
            shutil.rmtree(directory)  # belongs to the run being replaced
        reports = train_rows.filter(pl.col("text").is_not_null()).select("text", "patient_id")
        prepare_tokenizer(settings, reports, label_names, directory)
    runtime.barrier()
    return load_tokenizer(settings.model.text.pretrained or directory)


def split_sets(
    settings: Settings, triplets: Path, cache_dir: Path
) -> tuple[list[str], pl.DataFrame, TripletDataset, TripletDataset]:
    """The label names, the training rows, the (augmented) training set and the validation
    set, both refusing a cache of another image size than `preprocess.image_size`."""
    label_names = json.loads((Path(triplets).parent / "labels.json").read_text())["names"]
    table = pl.read_parquet(triplets).filter(pl.col("kind").is_in(settings.train.kinds))
    common = {
        "uncertainty": settings.labels.uncertainty,
        "image_size": settings.preprocess.image_size,
    }
    train_rows = table.filter(pl.col("split") == "train")
    train_set = TripletDataset(
        train_rows,
        Path(cache_dir),
        label_names,
        augment=settings.train.augment,
        seed=settings.seed,
        **common,
    )
    val_set = TripletDataset(
        table.filter(pl.col("split") == "val"), Path(cache_dir), label_names, **common
    )
    if settings.train.select == "best_val" and len(val_set) == 0:
        raise InputError(
            "the validation split is empty, so train.select: best_val has nothing to select "
            "by: set data.split.val > 0, or train.select: last"
        )
    return label_names, train_rows, train_set, val_set


def train(
    settings: Settings,
    triplets: Path,
    cache_dir: Path,
    out_dir: Path,
    checkpoint_dir: Path,
    log_dir: Path | None = None,
) -> dict:
    """Train UMCL on the train split of `triplets`; write the selected, calibrated model to
    `out_dir`. The caller's intra-op thread count is restored afterwards."""
    previous = torch.get_num_threads()
    try:
        return _train(settings, triplets, cache_dir, out_dir, checkpoint_dir, log_dir)
    finally:
        torch.set_num_threads(previous)


def _train(
    settings: Settings,
    triplets: Path,
    cache_dir: Path,
    out_dir: Path,
    checkpoint_dir: Path,
    log_dir: Path | None,
) -> dict:
    if settings.model is None:
        raise InputError("params has no 'model' block: the towers to train are not defined")
    require_weights(settings.model)
    config = settings.train
    runtime = start_runtime(config.device, config.precision)
    torch.set_num_threads(intra_op_threads(config.threads, config.workers))
    label_names, train_rows, train_set, val_set = split_sets(settings, triplets, cache_dir)

    checkpoint_dir = Path(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    run_id = fingerprint(settings, triplets, runtime)
    resumed = load_checkpoint(checkpoint_dir / CHECKPOINT, run_id)
    tokenizer = run_tokenizer(
        settings, train_rows, label_names, checkpoint_dir, resumed is None, runtime
    )
    torch.manual_seed(settings.seed)  # identical initial weights on every rank
    model = UMCLModel.from_config(
        settings.model, settings.prompt, label_names, tokenizer, settings.preprocess.image_size
    ).to(runtime.device)
    if runtime.device.type == "cuda" and prefers_channels_last(model.image):
        model.image.to(memory_format=torch.channels_last)
    optimiser, schedule = optimiser_for(model, config, runtime.device)
    start_step, best, last_loss = 0, None, None
    if resumed is not None:
        model.load_state_dict(resumed["model"])
        optimiser.load_state_dict(resumed["optimizer"])
        schedule.load_state_dict(resumed["scheduler"])
        set_rng_state(resumed["rng"][runtime.rank])
        start_step, best = resumed["step"], Best.from_state(resumed["best"])
        last_loss = resumed["final_loss"]  # a run resumed at its last step exports the same record
        log.info(
            "resuming from step %d of %d (%s)",
            start_step,
            config.steps,
            checkpoint_dir / CHECKPOINT,
        )
    else:
        seed_fresh_run(settings.seed, runtime)
    # Some CPU kernels (seen: the second step's loss differed in the last bit between reruns)
    # accumulate in a thread-dependent order unless told not to.
    torch.use_deterministic_algorithms(config.deterministic, warn_only=True)
    if config.compile:  # in place: the weights keep their names in checkpoints and the export
        model.image.backbone.compile()
        model.text.backbone.compile()
    loss_fn = UMCLLoss(settings.loss.target, settings.loss.weights)
    collate = Collate(model.tokenizer, model.max_length, settings.preprocess.image_size)
    batches = micro_batches(
        train_set,
        collate,
        config.batch_size,
        config.workers,
        settings.seed,
        runtime,
        start_step * config.accumulate,
    )
    unused: list[str] = []
    if runtime.world > 1:  # which parameters DDP must expect without a gradient
        first = next(batches)
        unused = agreed(unreached_parameters(model, loss_fn, first, runtime), runtime)
        batches = itertools.chain([first], batches)
    trained = distribute(model, runtime, unused)
    validate = Validator(val_set, collate, config.batch_size, settings.evaluate.uncertainty)
    live = open_live(log_dir, resumed is not None, start_step) if runtime.main and log_dir else None

    progress = tqdm(
        total=config.steps,
        initial=start_step,
        desc="train",
        disable=not runtime.main,
        dynamic_ncols=True,
    )
    started, samples, first_loss = time.perf_counter(), 0, None
    for step in range(start_step, config.steps):
        result = optimiser_step(
            trained, model, loss_fn, batches, optimiser, schedule, config, runtime
        )
        samples += result.samples
        done = step + 1
        progress.update(1)
        logged = done % config.log_every == 0 or done == config.steps
        saved = done % config.checkpoint_every == 0 or done == config.steps
        # Reading a number waits for the device: only on the steps that report or save one.
        if logged or saved or step == start_step:
            loss, parts, grad_norm = result.read()
            first_loss = loss if first_loss is None else first_loss
            last_loss = loss
            progress.set_postfix(loss=f"{loss:.3f}")
            if live is not None and logged:
                scale = model.logit_scale.exp().item()
                log_step(live, done, loss, parts, grad_norm, schedule.get_last_lr()[0], scale)
        # Rank 0 alone validates and exports (validation takes no collective and no RNG draw).
        if (
            runtime.main
            and len(validate)
            and (done % config.eval_every == 0 or done == config.steps)
        ):
            checked = validate(model, loss_fn, runtime)
            best = keep_best(best, done, checked, model)
            progress.set_postfix(loss=f"{last_loss:.3f}", val_auroc=_shown(checked.zero_shot_auroc))
            if live is not None:
                log_validation(live, done, checked)
        if saved:
            rng = gathered_rng_states(runtime)
            if runtime.main:
                state = {
                    "fingerprint": run_id,
                    "step": done,
                    "model": model.state_dict(),
                    "optimizer": optimiser.state_dict(),
                    "scheduler": schedule.state_dict(),
                    "rng": rng,
                    "best": best.to_state() if best else None,
                    "final_loss": last_loss,
                    "data": {"micro_batch": done * config.accumulate},
                }
                save_checkpoint(checkpoint_dir / CHECKPOINT, state)
                log.info("checkpoint at step %d written to %s", done, checkpoint_dir / CHECKPOINT)
    progress.close()
    elapsed = time.perf_counter() - started

    summary = {
        "steps": config.steps,
        "resumed_from": start_step,
        "world_size": runtime.world,
        "precision": runtime.precision,
        "device": runtime.device.type,
        "first_loss": first_loss,
        "final_loss": last_loss,
        "samples_per_s": samples / elapsed if elapsed > 0 and samples else None,
        "seconds": elapsed,
    }
    if runtime.main:
        exported = select_weights(model, best, config.select, config.steps)
        summary["exported_step"] = exported
        summary["best_val"] = best.to_state() | {"weights": None} if best else None
        training = {
            k: summary[k]
            for k in ("steps", "world_size", "precision", "device", "final_loss", "exported_step")
        }
        export_model(model, settings, triplets, cache_dir, out_dir, training)
        if live is not None:
            live.end()
    del trained  # its reducer must be gone before the process group (stop_runtime)
    stop_runtime(runtime)
    return summary


def _shown(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"
