"""UMCL pretraining: the `train` stage.

One device (CPU or one GPU):
    umcl train
One node, N GPUs (or N CPU processes with the gloo backend):
    torchrun --standalone --nproc_per_node=N -m umcl.cli train
Several nodes:
    torchrun --nnodes=M --nproc_per_node=N --rdzv_backend=c10d --rdzv_endpoint=HOST:PORT -m umcl.cli train

Every knob is in `params.yaml: train` (and `model`, `prompt`, `loss`). A checkpoint is written
atomically every `train.checkpoint_every` steps; running the same command with the same params
and data resumes from it and ends with the same weights as an uninterrupted run. A checkpoint
from other params, data or code is set aside with a warning; one that cannot be read stops the run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import shutil
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from umcl.config import Settings, weight_params
from umcl.data.dataset import Batch, TripletDataset, collate
from umcl.model.loss import UMCLLoss
from umcl.model.prompts import label_phrase
from umcl.model.tokenizer import load_tokenizer, train_wordpiece
from umcl.model.umcl import LOGIT_SCALE_MAX, UMCLModel, build_model, save_model

log = logging.getLogger(__name__)
# ConvNeXt's depthwise-conv gradients arrive in another memory layout than DDP's buckets; DDP
# copies them (correct, slightly slower) and would warn on every step.
warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")

CHECKPOINT = "checkpoint.pt"


class CheckpointError(RuntimeError):
    """A checkpoint exists but cannot be resumed from; never silently replaced."""


@dataclass(frozen=True)
class Runtime:
    """Where this process trains: its device, rank and the world it belongs to."""

    device: torch.device
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def start_runtime(preference: str) -> Runtime:
    """Join the torchrun process group when launched by torchrun; else train alone."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if preference == "auto":
        preference = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(
        f"cuda:{local_rank}" if preference == "cuda" and world > 1 else preference
    )
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Runtime(device, dist.get_rank() if world > 1 else 0, world)


# -- one training step ---------------------------------------------------------------------


def model_inputs(
    model: UMCLModel, batch: Batch, device: torch.device
) -> tuple[dict, dict, torch.Tensor]:
    """The model's arguments for a batch, the per-modality presence masks and the labels (NaN
    where unknown)."""
    labels = torch.where(batch["label_known"], batch["labels"], torch.nan).to(device)
    present = {"image": batch["has_image"], "text": batch["has_text"], "label": batch["has_labels"]}
    present = {m: p.to(device) for m, p in present.items()}
    texts = [t for t, has in zip(batch["texts"], batch["has_text"].tolist(), strict=True) if has]
    tokens = model.tokenize(texts)
    inputs = {
        "images": batch["images"].to(device, non_blocking=True)[present["image"]],
        "input_ids": tokens["input_ids"],
        "attention_mask": tokens["attention_mask"],
        "label_sets": labels[present["label"]],
    }
    return inputs, present, labels


def contrastive_step(
    model: UMCLModel | DistributedDataParallel,
    loss_fn: UMCLLoss,
    batch: Batch,
    device: torch.device,
    autocast: torch.autocast | nullcontext,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Forward and loss of one (micro-)batch; the caller back-propagates."""
    core = model.module if isinstance(model, DistributedDataParallel) else model
    inputs, present, labels = model_inputs(core, batch, device)
    with autocast:
        embeddings = model(**inputs, findings=loss_fn.weights.label_prompts > 0)
    return loss_fn(embeddings, present, labels)


# -- data order ----------------------------------------------------------------------------


def epoch_batches(
    dataset_size: int, batch_size: int, seed: int, epoch: int, runtime: Runtime
) -> list[list[int]]:
    """This rank's batches of one epoch: a seeded shuffle split across ranks, full batches only
    (every rank must contribute the same number of rows to the gathered loss)."""
    sampler = DistributedSampler(
        range(dataset_size),
        num_replicas=runtime.world,
        rank=runtime.rank,
        shuffle=True,
        seed=seed,
        drop_last=True,
    )
    sampler.set_epoch(epoch)
    order = list(sampler)
    return [order[i : i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)]


def micro_batches(dataset: TripletDataset, settings: Settings, runtime: Runtime, start: int):
    """Endless micro-batches from micro-batch number `start` on (the resume position)."""
    per_epoch = len(
        epoch_batches(len(dataset), settings.train.batch_size, settings.seed, 0, runtime)
    )
    if per_epoch == 0:
        raise ValueError(
            f"train split has {len(dataset)} samples: too few for {runtime.world} × batch_size {settings.train.batch_size}"
        )
    epoch, offset = divmod(start, per_epoch)
    while True:
        batches = epoch_batches(
            len(dataset), settings.train.batch_size, settings.seed, epoch, runtime
        )[offset:]
        loader = DataLoader(
            dataset,
            batch_sampler=batches,
            collate_fn=collate,
            num_workers=settings.train.workers,
            pin_memory=runtime.device.type == "cuda",
            generator=loader_generator(settings.seed, epoch, runtime.rank),
        )
        yield from loader
        epoch, offset = epoch + 1, 0


def loader_generator(seed: int, epoch: int, rank: int) -> torch.Generator:
    """Where a loader draws its workers' base seed: one generator per epoch and rank. Drawn from
    the global generator instead, it moved the dropout RNG of a run resumed mid-epoch (that run
    makes its loader at the resume step, an uninterrupted one at the epoch's start)."""
    return torch.Generator().manual_seed(
        int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])
    )


# -- schedule, checkpoints -----------------------------------------------------------------


def warmup_cosine(warmup: int, total: int):
    """Linear warm-up to the base rate, then cosine decay to zero at `total`."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def fingerprint(settings: Settings, triplets: Path, runtime: Runtime) -> str:
    """What a checkpoint must match to be resumed: everything that shapes the weights."""
    knobs = {
        **weight_params(settings),
        "world": runtime.world,
        "triplets": hashlib.sha256(Path(triplets).read_bytes()).hexdigest(),
        "code": _code_digest(),
    }
    return hashlib.sha256(json.dumps(knobs, sort_keys=True).encode()).hexdigest()[:16]


def _code_digest() -> str:
    """The source that shapes the weights: a fix to the model or loop must not be skipped by
    resuming a finished run of the old code."""
    package = Path(__file__).parent
    files = sorted(
        [
            *package.glob("model/*.py"),
            package / "train.py",
            package / "data/dataset.py",
            package / "labels.py",
        ]
    )
    return hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()


def rng_state() -> dict:
    numpy_state = np.random.get_state(legacy=False)
    numpy_state["state"]["key"] = numpy_state["state"][
        "key"
    ].tolist()  # weights_only loads plain data
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


def save_checkpoint(path: Path, state: dict) -> None:
    """Write to a temporary file, then rename: a kill mid-write never leaves a torn file."""
    temporary = path.with_suffix(".tmp")
    torch.save(state, temporary)
    os.replace(temporary, path)


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


# -- the loop ------------------------------------------------------------------------------


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


def train(
    settings: Settings,
    triplets: Path,
    cache_dir: Path,
    out_dir: Path,
    checkpoint_dir: Path,
    log_dir: Path | None = None,
) -> dict:
    """Train UMCL on the train split of `triplets`; write the model to `out_dir`."""
    if settings.model is None:
        raise ValueError("params has no 'model' block: the towers to train are not defined")
    runtime = start_runtime(settings.train.device)
    config = settings.train
    label_names = json.loads((Path(triplets).parent / "labels.json").read_text())["names"]
    table = pl.read_parquet(triplets).filter(
        (pl.col("split") == "train") & pl.col("kind").is_in(config.kinds)
    )
    dataset = TripletDataset(
        table, Path(cache_dir), label_names, uncertainty=settings.labels.uncertainty
    )

    checkpoint_dir = Path(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    run_id = fingerprint(settings, triplets, runtime)
    resumed = load_checkpoint(checkpoint_dir / CHECKPOINT, run_id)
    tokenizer_dir = checkpoint_dir / "tokenizer"
    if resumed is None and runtime.main and tokenizer_dir.exists():
        shutil.rmtree(tokenizer_dir)  # belongs to the run being replaced
    if runtime.main:
        reports = table.filter(pl.col("text").is_not_null()).select("text", "patient_id")
        prepare_tokenizer(settings, reports, label_names, tokenizer_dir)
    if runtime.world > 1:
        dist.barrier()
    tokenizer = load_tokenizer(settings.model.text.pretrained or tokenizer_dir)

    torch.manual_seed(settings.seed)  # identical initial weights on every rank
    model = build_model(settings.model, settings.prompt, label_names, tokenizer).to(runtime.device)
    decay, rest = [], []  # no weight decay on biases, norms, the logit scale or prompt contexts
    for name, parameter in model.named_parameters():
        (decay if parameter.ndim >= 2 and "context" not in name else rest).append(parameter)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": rest, "weight_decay": 0.0}],
        lr=config.lr, fused=runtime.device.type == "cuda",
    )  # fmt: skip
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(config.warmup_steps, config.steps)
    )
    start_step = 0
    if resumed is not None:
        model.load_state_dict(resumed["model"])
        optimizer.load_state_dict(resumed["optimizer"])
        scheduler.load_state_dict(resumed["scheduler"])
        start_step = resumed["step"]
        set_rng_state(resumed["rng"][runtime.rank])
        log.info(
            "resuming from step %d of %d (%s)",
            start_step,
            config.steps,
            checkpoint_dir / CHECKPOINT,
        )
    else:
        torch.manual_seed(settings.seed + runtime.rank)  # dropout differs across ranks
        # Seeded too, though training draws from neither: checkpoints then hold the same bytes
        # on every run, so DVC records the same hash for the same training.
        random.seed(settings.seed + runtime.rank)
        np.random.seed(settings.seed + runtime.rank)
    # Some CPU kernels (seen: the second step's loss differed in the last bit between reruns)
    # accumulate in a thread-dependent order unless told not to.
    torch.use_deterministic_algorithms(config.deterministic, warn_only=True)

    if config.compile:
        model.image.backbone = torch.compile(model.image.backbone)
        model.text.backbone = torch.compile(model.text.backbone)
    trained = (
        DistributedDataParallel(model, find_unused_parameters=True) if runtime.world > 1 else model
    )
    loss_fn = UMCLLoss(settings.loss.target, settings.loss.weights)
    precision = (
        config.precision
        if config.precision != "auto"
        else ("bf16" if runtime.device.type == "cuda" else "fp32")
    )
    autocast = (
        torch.autocast(runtime.device.type, dtype=torch.bfloat16)
        if precision == "bf16"
        else nullcontext()
    )
    batches = micro_batches(dataset, settings, runtime, start_step * config.accumulate)

    live = (
        _live(log_dir, resume=resumed is not None, step=start_step)
        if runtime.main and log_dir
        else None
    )
    progress = tqdm(
        total=config.steps,
        initial=start_step,
        desc="train",
        disable=not runtime.main,
        dynamic_ncols=True,
    )
    started, samples, history = time.perf_counter(), 0, []
    for step in range(start_step, config.steps):
        parts_sum: dict[str, float] = {}
        loss_sum = 0.0
        for micro in range(config.accumulate):
            batch = next(batches)
            last = micro == config.accumulate - 1
            sync = nullcontext() if last or runtime.world == 1 else trained.no_sync()
            with sync:
                loss, parts = contrastive_step(trained, loss_fn, batch, runtime.device, autocast)
                (loss / config.accumulate).backward()
            loss_sum += loss.item() / config.accumulate
            for k, v in parts.items():
                parts_sum[k] = parts_sum.get(k, 0.0) + v / config.accumulate
            samples += len(batch["sample_ids"]) * runtime.world
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            model.logit_scale.clamp_(0, LOGIT_SCALE_MAX)
        history.append(loss_sum)
        progress.update(1)
        progress.set_postfix(loss=f"{loss_sum:.3f}")
        done = step + 1
        if live is not None and (done % config.log_every == 0 or done == config.steps):
            _log_step(
                live,
                done,
                loss_sum,
                parts_sum,
                scheduler.get_last_lr()[0],
                model.logit_scale.exp().item(),
                grad_norm.item(),
            )
        if done % config.checkpoint_every == 0 or done == config.steps:
            rng = [rng_state()]
            if runtime.world > 1:
                rng = [None] * runtime.world
                dist.all_gather_object(rng, rng_state())
            if runtime.main:
                state = {
                    "fingerprint": run_id, "step": done, "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng,
                    "data": {"micro_batch": done * config.accumulate},
                }  # fmt: skip
                save_checkpoint(checkpoint_dir / CHECKPOINT, state)
                log.info("checkpoint at step %d written to %s", done, checkpoint_dir / CHECKPOINT)
    progress.close()
    elapsed = time.perf_counter() - started

    summary = {
        "steps": config.steps, "resumed_from": start_step, "world_size": runtime.world,
        "precision": precision, "device": runtime.device.type,
        "first_loss": history[0] if history else None, "final_loss": history[-1] if history else None,
        "samples_per_s": samples / elapsed if elapsed > 0 and samples else None, "seconds": elapsed,
    }  # fmt: skip
    if runtime.main:
        save_model(
            model,
            Path(out_dir),
            # Only what the weights depend on: the same training (also when resumed) must give a
            # byte-identical model directory, so DVC and the registry see the same model.
            extra={
                "params": weight_params(settings),
                "train": {
                    k: summary[k]
                    for k in ("steps", "world_size", "precision", "device", "final_loss")
                },
            },
        )
        (Path(out_dir) / "labels.json").write_text(
            (Path(triplets).parent / "labels.json").read_text()
        )
        if live is not None:
            live.end()
    if runtime.world > 1:
        # All gloo/NCCL work done and DDP's reducer freed before the group goes: tearing the
        # group down under a live reducer deadlocked gloo's worker thread on the GIL (seen here).
        dist.barrier()
        del trained
        dist.destroy_process_group()
    return summary


def _live(directory: Path, resume: bool, step: int):
    """A dvclive logger whose history never runs past the resumed step (a killed run may have
    logged steps after its last checkpoint; they are rewritten)."""
    from dvclive import Live

    live = Live(str(directory), resume=resume, save_dvc_exp=False, dvcyaml=None, report=None)
    if resume:
        for tsv in Path(live.plots_dir).rglob("*.tsv"):
            lines = tsv.read_text().splitlines()
            column = lines[0].split("\t").index("step")
            kept = [
                lines[0],
                *(line for line in lines[1:] if int(line.split("\t")[column]) <= step),
            ]
            tsv.write_text("\n".join(kept) + "\n")
    return live


def _log_step(
    live, step: int, loss: float, parts: dict[str, float], lr: float, scale: float, grad_norm: float
) -> None:
    live.step = step
    live.log_metric("train/loss", loss)
    for name, value in parts.items():
        live.log_metric(f"train/{name}", value)
    live.log_metric("train/lr", lr, plot=False)
    live.log_metric("train/logit_scale", scale)
    live.log_metric("train/grad_norm", grad_norm, plot=False)
    live.make_summary()
