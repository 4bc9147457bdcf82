"""Unification at scale: 1,000,000 synthetic rows across three sources — seconds and peak memory.

    python benchmarks/unify_scale.py [--rows 1000000]

Rows are shaped like the validate stage's output (de-identified, labels as strings). All three
sources carry dataset labels here, so the time is polars' (concatenate, split by patient hash,
cast, sort, write); reports without labels add the labeler's cost on top (~1,800 reports/s per
core, see the labeler benchmark). Peak memory is the child process's maximum resident set.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from umcl.config import SplitSettings
from umcl.ingest.unify import build_triplets, summarise
from umcl.labels import CHEXPERT_LABELS, LabelSpace

NAMES = list(CHEXPERT_LABELS)


def synthetic(source: str, kind: str, n: int, rng: np.random.Generator) -> pl.DataFrame:
    values = np.array(["1", "0", "-1", None], dtype=object)
    labels = {
        name: values[rng.choice(4, size=n, p=[0.15, 0.25, 0.05, 0.55])].tolist() for name in NAMES
    }
    return pl.DataFrame(
        {
            "sample_id": [f"{source}:{i:08d}" for i in range(n)],
            "source": source,
            "kind": kind,
            "patient_id": [f"pt-{p:012x}" for p in rng.integers(0, n // 3, size=n)],
            "image": None
            if kind == "text_label"
            else [f"data/raw/{source}/{i}.dcm" for i in range(n)],
            "text": None
            if kind == "image_label"
            else "Small left pleural effusion. No pneumothorax.",
            **labels,
            "label_origin": "dataset",
        },
        schema_overrides={"image": pl.String, "text": pl.String, **dict.fromkeys(NAMES, pl.String)},
    )


def run(rows: int, queue: mp.Queue) -> None:
    rng = np.random.default_rng(0)
    shares = {"image_text": 0.5, "image_label": 0.3, "text_label": 0.2}
    frames = [
        synthetic(f"s{i}", kind, int(rows * share), rng)
        for i, (kind, share) in enumerate(shares.items())
    ]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    triplets = build_triplets(frames, LabelSpace(), 42, SplitSettings())
    with tempfile.TemporaryDirectory() as tmp:
        triplets.write_parquet(Path(tmp) / "triplets.parquet")
    summarise(triplets, NAMES)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    queue.put((triplets.height, seconds, before / 1024, peak / 1024))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    context = mp.get_context("spawn")  # a fresh process: its peak RSS is this run's alone
    queue = context.Queue()
    child = context.Process(target=run, args=(args.rows, queue))
    child.start()
    child.join()
    if child.exitcode:
        raise SystemExit(f"benchmark process failed (exit {child.exitcode})")
    height, seconds, inputs_mb, peak_mb = queue.get(timeout=10)
    print(
        "| rows | seconds (unify + write + summary) | rows/s | peak RSS, inputs built | peak RSS, after unify |"
    )
    print("|---:|---:|---:|---:|---:|")
    print(
        f"| {height:,} | {seconds:.1f} | {height / seconds:,.0f} | {inputs_mb:,.0f} MiB | {peak_mb:,.0f} MiB |"
    )


if __name__ == "__main__":
    main()
