"""Training throughput and model FLOPs utilisation of the GPU preset, eager vs torch.compile.

    python benchmarks/gpu_train.py [--preset configs/gpu.yaml] [--batch 256] [--steps 20]
    python benchmarks/gpu_train.py --device cpu --batch 4 --steps 2     # a smoke run of the script

One full UMCL step (three modality pairs, learned prompts, per-finding term; forward, backward,
fused AdamW) in bf16 autocast on a synthetic batch of the preset's shape: 224 px grayscale
images, report-length texts, CheXpert label sets. FLOPs per step are counted once with
`torch.utils.flop_counter` (matmuls and convolutions, forward + backward); MFU is achieved
FLOP/s over the accelerator's dense bf16 peak (`--peak-tflops`, default: H200 SXM, 989).
"""

from __future__ import annotations

import argparse
import random
import statistics
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
from umcl.training.runtime import Runtime
from umcl.training.step import contrastive_step

ROOT = Path(__file__).resolve().parents[1]
WORDS = ["the", "heart", "size", "is", "normal", "mild", "moderate", "severe", "enlarged", "no", "focal", "consolidation", "pleural", "effusion", "pneumothorax", "edema", "atelectasis", "opacity", "left", "right", "lower", "lobe", "stable", "unchanged", "tube", "line"]  # fmt: skip


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
    device: torch.device,
    compiled: bool,
    steps: int,
    warmup: int,
) -> dict:
    torch.manual_seed(0)
    model = UMCLModel.from_config(
        settings.model, settings.prompt, CHEXPERT_LABELS, tokenizer, settings.preprocess.image_size
    ).to(device)
    if compiled:
        model.image.backbone = torch.compile(model.image.backbone)
        model.text.backbone = torch.compile(model.text.backbone)
    optimizer = torch.optim.AdamW(
        model.parameter_groups(settings.train.weight_decay), lr=1e-4, fused=device.type == "cuda"
    )
    loss_fn = UMCLLoss(settings.loss.target, settings.loss.weights)
    # bf16 autocast on the GPU (what the preset trains in); fp32 for a CPU smoke run.
    runtime = Runtime(device, precision="bf16" if device.type == "cuda" else "fp32")

    def step() -> None:
        loss, _ = contrastive_step(model, loss_fn, batch, runtime)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

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
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps):
        sync()
        started = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - started)
    median = statistics.median(times)
    memory = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    return {
        "step_s": median,
        "samples_per_s": len(batch["sample_ids"]) / median,
        "flops": flops,
        "warmup_s": warmup_s,
        "memory_gib": memory,
    }


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
        "--peak-tflops", type=float, default=989.0, help="dense bf16 peak of the accelerator"
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(
            "no CUDA device here: this benchmark measures a GPU (use --device cpu for a smoke run)"
        )
    settings = load_settings(args.params, overlay=args.preset)
    tokenizer = synthetic_tokenizer()
    batch = synthetic_batch(
        args.batch or settings.train.batch_size,
        settings.preprocess.image_size,
        args.words,
        tokenizer,
        settings.model.text.max_length,
    )
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"## UMCL training step, {args.params.name}: {settings.model.image.config.get('model_type')} + "
          f"{settings.model.text.config.get('model_type')}, batch {len(batch['sample_ids'])}, "
          f"{settings.preprocess.image_size} px, {name}, torch {torch.__version__}\n")  # fmt: skip
    print("| mode | samples/s | ms/step | TFLOP/s | MFU | peak memory GiB | warm-up s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    flops = None
    for compiled in (False, True):
        r = measure(settings, tokenizer, batch, device, compiled, args.steps, args.warmup)
        flops = r["flops"] or flops
        tflops = flops / r["step_s"] / 1e12 if flops else float("nan")
        mfu = f"{100 * tflops / args.peak_tflops:.1f}%" if device.type == "cuda" else "n/a"
        memory = f"{r['memory_gib']:.1f}" if r["memory_gib"] is not None else "n/a"
        print(
            f"| {'torch.compile' if compiled else 'eager'} | {r['samples_per_s']:.0f} | {1000 * r['step_s']:.0f} | {tflops:.1f} | {mfu} | {memory} | {r['warmup_s']:.0f} |"
        )
    print(
        f"\nFLOPs per step (counted, eager): {flops / 1e12:.2f} TFLOP ({flops / len(batch['sample_ids']) / 1e9:.1f} GFLOP per sample)"
    )


if __name__ == "__main__":
    main()
