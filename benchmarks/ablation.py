"""The ablation behind UMCL's claims: same data, seeds and budget, one change at a time.

    python benchmarks/ablation.py [--seeds 0 1 2] [--params params.yaml] [--variants A E]
                                  [--augment on off]

Variants (each trains with `params.yaml: train` and is scored by `umcl.evaluate` on the test
split of the demo triplet table; run `dvc repro preprocess` first):
- A  CLIP: identity targets, image–report pairs only, hand-crafted prompts at evaluation;
- B  A + the image-only and report-only sources (unification): image–label and text–label
     pairs with hand-crafted label-set prompts, still identity targets;
- C  B + `exact` targets;   D  B + `soft` targets (the label-aware loss);
- E  the better of C and D + learned continuous prompts, also trained per finding (full UMCL);
     when C or D is not run, E takes `loss.target` from the params.
Each variant trains with `train.augment` on, off, or both (`--augment on off`: both, side by side).
Reports mean ± sd over seeds of macro zero-shot AUROC (E: learned prompts; A–D: their
hand-crafted templates), 5×N accuracy and image→text Recall@5, plus the linear probe's macro
AUROC (what the image features hold). Writes benchmarks/results/ablation.json and prints the
markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import polars as pl
import yaml

from umcl.config import parse_settings
from umcl.evaluate import evaluate_model
from umcl.model.umcl import UMCLModel
from umcl.train import train

ROOT = Path(__file__).resolve().parents[1]
TRIPLETS, CACHE = ROOT / "data/unified/triplets.parquet", ROOT / "data/cache"
RESULTS = ROOT / "benchmarks/results/ablation.json"
NO_LABEL_TERMS = {"image_text": 1.0, "image_label": 0.0, "text_label": 0.0, "label_prompts": 0.0}
ALL_PAIRS = {"image_text": 1.0, "image_label": 1.0, "text_label": 1.0, "label_prompts": 0.0}
HANDCRAFTED = {"mode": "handcrafted"}


def variants(best_of_c_d: str = "soft") -> dict[str, dict]:
    return {
        "A CLIP": {
            "loss": {"target": "identity", "weights": NO_LABEL_TERMS},
            "prompt": HANDCRAFTED,
            "train": {"kinds": ["image_text"]},
        },
        "B +unification": {
            "loss": {"target": "identity", "weights": ALL_PAIRS},
            "prompt": HANDCRAFTED,
        },
        "C +exact targets": {
            "loss": {"target": "exact", "weights": ALL_PAIRS},
            "prompt": HANDCRAFTED,
        },
        "D +soft targets": {
            "loss": {"target": "soft", "weights": ALL_PAIRS},
            "prompt": HANDCRAFTED,
        },
        "E full UMCL": {
            "loss": {"target": best_of_c_d, "weights": ALL_PAIRS | {"label_prompts": 1.0}},
            "prompt": {"mode": "learned"},
        },
    }


def settings_for(base: dict, change: dict, seed: int, augment: bool):
    params = yaml.safe_load(yaml.safe_dump(base))
    params["seed"] = seed
    for block, values in change.items():
        params[block] = {**params.get(block, {}), **values}
    train_block = params.setdefault("train", {})
    train_block["augment"] = {**train_block.get("augment", {}), "enabled": augment}
    return parse_settings(params)


def run_variant(
    base: dict,
    name: str,
    change: dict,
    seed: int,
    augment: bool,
    work: Path,
    triplets: pl.DataFrame,
) -> dict:
    settings = settings_for(base, change, seed, augment)
    out = work / f"{name.split()[0]}-{seed}-{'aug' if augment else 'plain'}"
    started = time.perf_counter()
    train(settings, TRIPLETS, CACHE, out / "model", out / "checkpoints")
    metrics, _ = evaluate_model(
        UMCLModel.from_pretrained(out / "model"),
        triplets,
        CACHE,
        settings.evaluate,
        settings.labels.uncertainty,
        settings.seed,
    )
    zero_shot = metrics["zero_shot"].get("learned") or metrics["zero_shot"]["handcrafted"]
    return {
        "variant": name,
        "augment": augment,
        "seed": seed,
        "minutes": (time.perf_counter() - started) / 60,
        "zero_shot_macro_auroc": zero_shot["macro_auroc"],
        "zero_shot_handcrafted_macro_auroc": metrics["zero_shot"]["handcrafted"]["macro_auroc"],
        "five_by_n_accuracy": metrics["five_by_n"]["accuracy"],
        "image_to_text_recall@5": metrics["retrieval"]["image_to_text"]["recall@5"],
        "linear_probe_macro_auroc": metrics["linear_probe"]["macro_auroc"],
        "labels_evaluated": sorted(zero_shot["per_label"]),
    }


def summarise(runs: list[dict]) -> list[dict]:
    keys = [
        "zero_shot_macro_auroc",
        "five_by_n_accuracy",
        "image_to_text_recall@5",
        "linear_probe_macro_auroc",
    ]
    rows = []
    for name, augment in dict.fromkeys((r["variant"], r["augment"]) for r in runs):
        mine = [r for r in runs if r["variant"] == name and r["augment"] == augment]
        row = {"variant": name, "augment": augment, "seeds": [r["seed"] for r in mine]}
        for key in keys:
            values = [r[key] for r in mine]
            row[key] = (
                statistics.mean(values),
                statistics.stdev(values) if len(values) > 1 else 0.0,
            )
        row["minutes"] = statistics.mean(r["minutes"] for r in mine)
        rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    lines = [
        "| variant | augmentation | zero-shot macro AUROC | 5×N accuracy | image→text R@5 | linear probe macro AUROC | minutes per run |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        cells = [
            f"{r[k][0]:.3f} ± {r[k][1]:.3f}"
            for k in (
                "zero_shot_macro_auroc",
                "five_by_n_accuracy",
                "image_to_text_recall@5",
                "linear_probe_macro_auroc",
            )
        ]
        augment = "on" if r["augment"] else "off"
        lines.append(
            f"| {r['variant']} | {augment} | " + " | ".join(cells) + f" | {r['minutes']:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--variants", nargs="+", choices=list("ABCDE"), default=list("ABCDE"))
    parser.add_argument("--augment", nargs="+", choices=["on", "off"], default=["on"])
    args = parser.parse_args()
    if not (CACHE / "images.u8").is_file():
        raise SystemExit(f"no image cache at {CACHE}: run `dvc repro preprocess` first")
    base = yaml.safe_load(args.params.read_text())
    triplets = pl.read_parquet(TRIPLETS)
    augments = [a == "on" for a in dict.fromkeys(args.augment)]
    best = base.get("loss", {}).get("target", "soft")
    runs: list[dict] = []

    def run(name: str, change: dict) -> None:
        for augment in augments:
            for seed in args.seeds:
                runs.append(run_variant(base, name, change, seed, augment, Path(work), triplets))
                print(json.dumps(runs[-1]), flush=True)

    with tempfile.TemporaryDirectory() as work:
        plan = variants()
        for name in plan:
            if name[0] in args.variants and name[0] != "E":
                run(name, plan[name])
        if "C" in args.variants and "D" in args.variants:
            means = {
                t: statistics.mean(
                    r["zero_shot_macro_auroc"] for r in runs if r["variant"].startswith(v)
                )
                for v, t in (("C", "exact"), ("D", "soft"))
            }
            best = max(means, key=means.get)
        if "E" in args.variants:
            run("E full UMCL", variants(best)["E full UMCL"])
    rows = summarise(runs)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {"seeds": args.seeds, "e_targets": best, "summary": rows, "runs": runs}, indent=2
        )
    )
    print(f"\nE uses `{best}` targets.\n")
    print(markdown(rows))


if __name__ == "__main__":
    main()
