"""Seconds per training step on this machine's CPUs: `train.threads` alone and beside one busy
process.

    python benchmarks/cpu_threads.py [--steps 40] [--threads auto 1 2]

Each row is the real training loop (`umcl.train.train`, params.yaml's towers, batch and loader
workers, on the demo cache) for `--steps` steps in a fresh process with `train.threads` set as
named: alone, then beside one other process that keeps one core busy (a pure-Python spin loop,
as a second job on a shared machine would). The time is the loop's own (`seconds` of the
summary, after one warm-up run of 3 steps in the same process), divided by the steps. The rows
run interleaved (alone and beside, one setting after another) and the table reports the median
of `--repeats` runs. Needs the demo pipeline's cache: run `dvc repro preprocess` first.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TRIPLETS, CACHE = ROOT / "data/unified/triplets.parquet", ROOT / "data/cache"
SPIN = "while True: pass"


def one_run(threads: str, steps: int) -> dict:
    """Train `steps` steps in this process (after 3 warm-up steps); the loop's summary."""
    from umcl.config import parse_settings
    from umcl.train import train
    from umcl.training.runtime import intra_op_threads

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    value = threads if threads == "auto" else int(threads)
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        for n in (3, steps):
            raw["train"].update(
                steps=n, threads=value, eval_every=10_000, select="last", checkpoint_every=10_000
            )
            settings = parse_settings(raw)
            out = Path(scratch) / str(n)
            results.append(train(settings, TRIPLETS, CACHE, out / "model", out / "checkpoints"))
    summary = results[-1]
    used = intra_op_threads(value, raw["train"]["workers"])
    return {"seconds_per_step": summary["seconds"] / steps, "threads": used}


def measure(threads: str, steps: int, busy: bool) -> dict:
    spinner = subprocess.Popen([sys.executable, "-c", SPIN]) if busy else None
    try:
        done = subprocess.run(
            [sys.executable, __file__, "--one", threads, "--steps", str(steps)],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--threads", nargs="+", default=["auto", "1", "2"])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(one_run(args.one, args.steps)))
        return
    if not (CACHE / "meta.json").is_file():
        sys.exit("no demo cache: run `dvc repro preprocess` first")
    times: dict[tuple[str, bool], list[float]] = {}
    used: dict[str, int] = {}
    for _ in range(args.repeats):
        for threads in args.threads:
            for busy in (False, True):
                result = measure(threads, args.steps, busy)
                times.setdefault((threads, busy), []).append(result["seconds_per_step"])
                used[threads] = result["threads"]
                print(f"  threads={threads} busy={busy}: {result}", file=sys.stderr)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"\n{cpus} CPUs, {args.steps} steps, median of {args.repeats} runs\n")
    print(
        "| train.threads | intra-op threads | s/step alone | s/step beside a busy process | slow-down |"
    )
    print("|---|---:|---:|---:|---:|")
    for threads in args.threads:
        alone = statistics.median(times[(threads, False)])
        beside = statistics.median(times[(threads, True)])
        print(
            f"| {threads} | {used[threads]} | {alone:.2f} | {beside:.2f} | {beside / alone:.1f}× |"
        )


if __name__ == "__main__":
    main()
