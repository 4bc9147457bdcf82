"""Training throughput, model FLOPs utilisation and peak memory of the GPU preset: eager vs
torch.compile, on one GPU and on N.

    python benchmarks/gpu_train.py [--preset configs/gpu.yaml] [--batch 256] [--steps 20] [--devices 1 8]
    python benchmarks/gpu_train.py --device cpu --batch 4 --steps 2 --devices 1 2   # a smoke run (gloo)

The training step itself (`umcl/training/step.py: optimiser_step`: three modality pairs, learned
prompts, per-finding term; forward, backward, clipping, fused AdamW, schedule), in bf16 autocast,
on a synthetic batch of the preset's shape per process: 224 px grayscale images, report-length
texts, CheXpert label sets. N processes run under torchrun with DDP exactly as the train stage
starts them (`umcl/training/launch.py`); samples/s counts every process's batch. FLOPs per step
are counted once with `torch.utils.flop_counter` (matmuls and convolutions, forward + backward);
MFU is achieved FLOP/s over the accelerators' dense bf16 peak (`--peak-tflops` per device,
default: H200 SXM, 989). Memory is the peak allocated on one device.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import PreTrainedTokenizerBase

from umcl.config import Settings, load_settings
from umcl.data.dataset import Batch, Collate, Sample
from umcl.labels import CHEXPERT_LABELS
from umcl.model.loss import UMCLLoss
from umcl.model.tokenizer import train_wordpiece
from umcl.model.umcl import UMCLModel
from umcl.training.runtime import distribute, start_runtime, stop_runtime
from umcl.training.step import optimiser_for, optimiser_step, unreached_parameters

ROOT = Path(__file__).resolve().parents[1]
WORDS = [
    "the",
    "heart",
    "size",
    "is",
    "normal",
    "mild",
    "moderate",
    "severe",
    "enlarged",
    "no",
    "focal",
    "consolidation",
    "pleural",
    "effusion",
    "pneumothorax",
    "edema",
    "atelectasis",
    "opacity",
    "left",
    "right",
    "lower",
    "lobe",
    "stable",
    "unchanged",
    "tube",
    "line",
]


def synthetic_tokenizer() -> PreTrainedTokenizerBase:
    """WordPiece over the synthetic reports' words and the label names (deterministic)."""
    return train_wordpiece(
        [" ".join(WORDS)] + [n.lower() for n in CHEXPERT_LABELS] + ["there is no"], 1000
    )


def synthetic_batch(
    n: int,
    size: int,
    words: int,
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    seed: int = 0,
) -> Batch:
    """A batch shaped like training: half image–report pairs, a quarter image-only, a quarter
    report-only, ~5 stated labels per sample. Collated (and tokenised) once, as the DataLoader
    workers do, so the step measured is the training step alone."""
    rng, g = random.Random(seed), torch.Generator().manual_seed(seed)
    kinds = [i % 4 for i in range(n)]  # 0, 1: pair; 2: image only; 3: report only
    known = torch.rand(n, len(CHEXPERT_LABELS), generator=g) < 0.4
    known[:, 0] = True
    images = torch.rand(n, 1, size, size, generator=g)
    positive = (torch.rand(n, len(CHEXPERT_LABELS), generator=g) < 0.3).float()
    samples = [
        Sample(
            sample_id=str(i),
            image=images[i] if kind != 3 else None,
            text=" ".join(rng.choices(WORDS, k=words)) + "." if kind != 2 else None,
            labels=torch.where(known[i], positive[i], torch.nan),
        )
        for i, kind in enumerate(kinds)
    ]
    return Collate(tokenizer, max_length, size)(samples)


def measure(
    settings: Settings,
    tokenizer: PreTrainedTokenizerBase,
    batch: Batch,
    device: str,
    compiled: bool,
    steps: int,
    warmup: int,
) -> dict | None:
    """Median seconds per optimiser step of this process (a DDP rank under torchrun), warm-up
    seconds, FLOPs of one eager step and peak memory; None on ranks other than 0."""
    # bf16 autocast on the GPU (what the preset trains in); fp32 for a CPU smoke run.
    runtime = start_runtime(device, "bf16" if device == "cuda" else "fp32")
    torch.manual_seed(0)
    model = UMCLModel.from_config(
        settings.model, settings.prompt, CHEXPERT_LABELS, tokenizer, settings.preprocess.image_size
    ).to(runtime.device)
    if compiled:
        model.image.backbone.compile()
        model.text.backbone.compile()
    optimiser, schedule = optimiser_for(model, settings.train, runtime.device)
    loss_fn = UMCLLoss(settings.loss.target, settings.loss.weights)
    unused = unreached_parameters(model, loss_fn, batch, runtime) if runtime.world > 1 else []
    batches = itertools.repeat(batch)
    step = functools.partial(
        optimiser_step,
        distribute(model, runtime, unused),
        model,
        loss_fn,
        batches,
        optimiser,
        schedule,
        settings.train,
        runtime,
    )

    def sync() -> None:
        if runtime.device.type == "cuda":
            torch.cuda.synchronize()
        runtime.barrier()

    started = time.perf_counter()
    for _ in range(warmup):
        step()
    sync()
    warmup_s = time.perf_counter() - started
    flops = None
    if not compiled:
        with FlopCounterMode(display=False) as counter:
            step()
        flops = counter.get_total_flops()
    if runtime.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps):
        sync()
        started = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - started)
    median = statistics.median(times)
    memory = torch.cuda.max_memory_allocated() / 2**30 if runtime.device.type == "cuda" else None
    result = {
        "step_s": median,
        "processes": runtime.world,
        "samples_per_s": len(batch["sample_ids"]) * runtime.world / median,
        "flops": flops,
        "warmup_s": warmup_s,
        "memory_gib": memory,
    }
    main_rank = runtime.main
    del step  # it holds the DDP module, which must be gone before the process group
    stop_runtime(runtime)
    return result if main_rank else None


def without_absent_weights(settings: Settings) -> Settings:
    """The preset's towers; one whose pretrained folder is not downloaded here is built from its
    `config` (the checkpoint's architecture) with random weights: the same speed."""
    towers = {}
    for part in ("image", "text"):
        tower = getattr(settings.model, part)
        if tower.pretrained is not None and not (tower.pretrained / "config.json").is_file():
            print(
                f"{tower.pretrained} not downloaded: the {part} tower gets random weights (same architecture and speed)",
                file=sys.stderr,
            )
            towers[part] = tower.model_copy(update={"pretrained": None})
    return settings.model_copy(update={"model": settings.model.model_copy(update=towers)})


def launched(argv: list[str], processes: int, compiled: bool) -> dict:
    """`measure` in `processes` DDP processes started by torchrun, as the train stage does."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "result.json"
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={processes}",
            __file__,
            *argv,
            "--worker",
            str(out),
        ]
        if compiled:
            command.append("--compiled")
        subprocess.run(command, check=True)
        return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument(
        "--preset", type=Path, default=ROOT / "configs/gpu.yaml", help="laid over --params"
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch", type=int, help="default: train.batch_size of the params")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--words", type=int, default=60, help="words per synthetic report")
    parser.add_argument(
        "--peak-tflops", type=float, default=989.0, help="dense bf16 peak of one accelerator"
    )
    parser.add_argument(
        "--devices", type=int, nargs="+", help="process counts (default: 1 and every GPU)"
    )
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)  # a torchrun worker
    parser.add_argument("--compiled", action="store_true", help=argparse.SUPPRESS)
    argv = sys.argv[1:]
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(
            "no CUDA device here: this benchmark measures a GPU (use --device cpu for a smoke run)"
        )
    settings = without_absent_weights(load_settings(args.params, overlay=args.preset))
    tokenizer = synthetic_tokenizer()
    batch = synthetic_batch(
        args.batch or settings.train.batch_size,
        settings.preprocess.image_size,
        args.words,
        tokenizer,
        settings.model.text.max_length,
    )
    if args.worker is not None:
        result = measure(
            settings, tokenizer, batch, args.device, args.compiled, args.steps, args.warmup
        )
        if result is not None:
            args.worker.write_text(json.dumps(result))
        return
    counts = args.devices or sorted({1, torch.cuda.device_count() if device.type == "cuda" else 1})
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(
        f"## UMCL training step, {args.params.name}: {settings.model.image.config.get('model_type')} + "
        f"{settings.model.text.config.get('model_type')}, batch {len(batch['sample_ids'])} per process, "
        f"{settings.preprocess.image_size} px, {name}, torch {torch.__version__}\n"
    )
    print(
        "| mode | processes | samples/s | ms/step | TFLOP/s | MFU | peak memory GiB (one device) | warm-up s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    flops = None
    for processes, compiled in itertools.product(counts, (False, True)):
        if processes == 1:
            r = measure(settings, tokenizer, batch, args.device, compiled, args.steps, args.warmup)
        else:
            if device.type == "cuda":  # this process's cached blocks would crowd rank 0's GPU
                torch.cuda.empty_cache()
            r = launched(argv, processes, compiled)
        flops = r["flops"] or flops
        tflops = flops * processes / r["step_s"] / 1e12 if flops else float("nan")
        mfu = (
            f"{100 * tflops / (args.peak_tflops * processes):.1f}%"
            if device.type == "cuda"
            else "n/a"
        )
        memory = f"{r['memory_gib']:.1f}" if r["memory_gib"] is not None else "n/a"
        mode = "torch.compile" if compiled else "eager"
        print(
            f"| {mode} | {processes} | {r['samples_per_s']:.0f} | {1000 * r['step_s']:.0f} | {tflops:.1f} | {mfu} | {memory} | {r['warmup_s']:.0f} |"
        )
    print(
        f"\nFLOPs per step and process (counted, eager): {flops / 1e12:.2f} TFLOP ({flops / len(batch['sample_ids']) / 1e9:.1f} GFLOP per sample)"
    )


if __name__ == "__main__":
    main()
