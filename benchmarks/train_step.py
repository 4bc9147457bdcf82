"""What the UMCL recipe costs per training step, and how its loss scales with the global batch.

    python benchmarks/train_step.py [--steps 20] [--params params.yaml]

1. Training samples/s of one full step (forward, backward, AdamW) on the same batch of demo
   image–report pairs with labels and the same towers, for
   - CLIP: identity targets, the image–text pair only, no prompts;
   - UMCL: `soft` targets, image–text + image–label + text–label pairs and learned prompts
     (label-set prompts), without and with the per-finding prompt term (`label_prompts`).
   The variants run interleaved (ABCABC…) so machine drift hits them alike; medians are reported.
2. The loss alone (forward + backward on given embeddings) as the global batch grows from 64
   to 4,096 rows, CLIP against UMCL: time, and the peak resident memory above the inputs,
   measured in a fresh process per size (Linux: the peak is reset through /proc/self/clear_refs
   after the inputs are built, then read as VmHWM).
Needs the demo pipeline's cache: run `dvc repro preprocess` first.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import torch
import torch.nn.functional as F

from umcl.config import LossWeights, load_settings
from umcl.data.dataset import Collate, TripletDataset
from umcl.model.loss import UMCLLoss
from umcl.model.tokenizer import train_wordpiece
from umcl.model.umcl import UMCLModel
from umcl.training.runtime import Runtime
from umcl.training.step import contrastive_step

ROOT = Path(__file__).resolve().parents[1]
TRIPLETS, CACHE = ROOT / "data/unified/triplets.parquet", ROOT / "data/cache"
VARIANTS = {
    "CLIP (identity, image–text)": (
        "identity",
        LossWeights(image_label=0, text_label=0, label_prompts=0),
    ),
    "UMCL (soft, 3 pairs, label-set prompts)": ("soft", LossWeights(label_prompts=0)),
    "UMCL full (+ per-finding prompt term)": ("soft", LossWeights()),
}
SIZES = [64, 256, 1024, 4096]
K, D = 14, 128


def step_benchmark(params: Path, steps: int) -> list[dict]:
    settings = load_settings(params)
    names = json.loads((TRIPLETS.parent / "labels.json").read_text())["names"]
    table = pl.read_parquet(TRIPLETS).filter(
        (pl.col("split") == "train") & (pl.col("kind") == "image_text")
    )
    dataset = TripletDataset(table, CACHE, names, uncertainty=settings.labels.uncertainty)
    tokenizer = train_wordpiece(
        table["text"].to_list() + [n.lower() for n in names] + ["there is no"],
        settings.model.text.vocab_size,
    )
    # Collated (and tokenised) once, as the DataLoader workers do: the step alone is timed. The
    # model is built at the cache's image size, the size its batch holds.
    samples = [dataset[i] for i in range(settings.train.batch_size)]
    batch = Collate(tokenizer, settings.model.text.max_length, dataset.image_size)(samples)
    models, optimizers, losses = {}, {}, {}
    for name, (target, weights) in VARIANTS.items():
        torch.manual_seed(0)
        models[name] = UMCLModel.from_config(
            settings.model, settings.prompt, names, tokenizer, dataset.image_size
        )
        optimizers[name] = torch.optim.AdamW(
            models[name].parameter_groups(settings.train.weight_decay, 1e-4), lr=1e-4
        )
        losses[name] = UMCLLoss(target, weights)
    runtime = Runtime(torch.device("cpu"), precision="fp32")

    def one_step(name: str) -> float:
        started = time.perf_counter()
        loss, _ = contrastive_step(models[name], losses[name], batch, runtime)
        loss.backward()
        optimizers[name].step()
        optimizers[name].zero_grad(set_to_none=True)
        return time.perf_counter() - started

    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for i in range(steps + 3):
        for name in VARIANTS:
            elapsed = one_step(name)
            if i >= 3:  # warm-up steps are not counted
                times[name].append(elapsed)
    clip = statistics.median(times[next(iter(VARIANTS))])
    rows = []
    for name, ts in times.items():
        median = statistics.median(ts)
        rows.append(
            {
                "variant": name,
                "ms_per_step": 1000 * median,
                "samples_per_s": len(batch["sample_ids"]) / median,
                "cost_vs_clip": median / clip - 1,
            }
        )
    return rows


def loss_inputs(rows: int, seed: int = 0) -> tuple[dict, dict, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    embeddings = {
        m: F.normalize(torch.randn(rows, D, generator=g), dim=-1).requires_grad_(True)
        for m in ("image", "text", "label")
    }
    embeddings["present"] = F.normalize(torch.randn(K, D, generator=g), dim=-1).requires_grad_(True)
    embeddings["absent"] = F.normalize(torch.randn(K, D, generator=g), dim=-1).requires_grad_(True)
    embeddings["logit_scale"] = torch.tensor(14.3, requires_grad=True)
    labels = (torch.rand(rows, K, generator=g) < 0.2).float()
    labels[torch.rand(rows, K, generator=g) < 0.6] = torch.nan
    present = {m: torch.ones(rows, dtype=torch.bool) for m in ("image", "text", "label")}
    return embeddings, present, labels


def loss_once(rows: int, variant: str, repeats: int) -> dict:
    """Run in a fresh process: time of forward + backward, and peak memory above the inputs."""
    target, weights = VARIANTS[variant]
    loss_fn = UMCLLoss(target, weights)
    embeddings, present, labels = loss_inputs(rows)
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS to the current RSS
    before = _status_kib("VmRSS")
    times = []
    for _ in range(repeats + 1):
        started = time.perf_counter()
        loss, _ = loss_fn(embeddings, present, labels)
        loss.backward()
        times.append(time.perf_counter() - started)
    return {
        "ms": 1000 * statistics.median(times[1:]),
        "peak_extra_mib": (_status_kib("VmHWM") - before) / 1024,
    }


def _status_kib(field: str) -> int:
    line = next(
        line
        for line in Path("/proc/self/status").read_text().splitlines()
        if line.startswith(field)
    )
    return int(line.split()[1])


def loss_benchmark() -> list[dict]:
    rows = []
    for size in SIZES:
        row = {"rows": size}
        for label, variant in (("clip", next(iter(VARIANTS))), ("umcl", list(VARIANTS)[-1])):
            repeats = 5 if size <= 1024 else 3
            code = f"import json, benchmarks.train_step as b; print(json.dumps(b.loss_once({size}, {variant!r}, {repeats})))"
            out = subprocess.run(
                [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
            ).stdout
            result = json.loads(out.strip().splitlines()[-1])
            row[f"{label}_ms"], row[f"{label}_mib"] = result["ms"], result["peak_extra_mib"]
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    args = parser.parse_args()
    if not (CACHE / "images.u8").is_file():
        sys.exit(f"no image cache at {CACHE}: run `dvc repro preprocess` first")
    torch.set_num_threads(torch.get_num_threads())
    print(
        f"## Training step, batch of {load_settings(args.params).train.batch_size} demo image–report pairs, {torch.get_num_threads()} threads\n"
    )
    print("| variant | ms/step | samples/s | extra cost vs CLIP |")
    print("|---|---:|---:|---:|")
    for r in step_benchmark(args.params, args.steps):
        print(
            f"| {r['variant']} | {r['ms_per_step']:.0f} | {r['samples_per_s']:.0f} | {100 * r['cost_vs_clip']:+.0f}% |"
        )
    print(
        f"\n## Loss alone (forward + backward), D={D}, K={K}, every row with image, text and labels\n"
    )
    print(
        "| global batch rows | CLIP ms | UMCL full ms | UMCL / CLIP | CLIP peak extra MiB | UMCL peak extra MiB |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for r in loss_benchmark():
        print(
            f"| {r['rows']} | {r['clip_ms']:.1f} | {r['umcl_ms']:.1f} | {r['umcl_ms'] / r['clip_ms']:.1f}× | {r['clip_mib']:.0f} | {r['umcl_mib']:.0f} |"
        )


if __name__ == "__main__":
    main()
