"""Batch scoring speed: `umcl classify` over the demo's PACS export with 1 and 2 decode processes,
side by side in one run.

The export is written by `umcl demo` (params.yaml's demo settings, other sources shrunk) once at
the demo's DICOM width and once at a radiograph's (`--large`, default 1024 px: real CR/DX files
are 2–3k px, where decoding rather than the model sets the pace). The model is params.yaml's
architecture at random initialisation (speed does not depend on the weights), saved once. Each
(width, workers) setting runs `--rounds` times in alternation — 1, 2, 1, 2, … — so that a slow
moment of this shared machine falls on both; reported: the median files/s over all files of the
export (every file gets a row: frontal images classified, laterals, reports and viewer files
skipped) and the ratio to 1 process.

    python benchmarks/batch_classify.py [--rounds 3] [--large 1024] [--studies 120] [--results FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
UMCL = str(Path(sys.executable).parent / "umcl")


def write_params(folder: Path, width: int, studies: int) -> Path:
    """params.yaml with the demo written under `folder`: a PACS export of `studies` studies at
    `width` px, the other sources as small as they may be."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["demo"].update(
        out=[str(folder / "demo")],
        image_text_studies=40,
        image_label_studies=30,
        text_label_studies=30,
        pacs_studies=studies,
        image_size=width,
    )
    for source in params["data"]["sources"]:  # the sources read the demo where it is written
        for key in ("path", "reports"):
            if key in source:
                source[key] = str(folder / "demo" / Path(source[key]).relative_to("data/raw/demo"))
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def random_model(params: Path, out: Path) -> Path:
    """params.yaml's model at random initialisation, saved as `umcl train` saves one."""
    import torch

    from umcl.config import load_settings
    from umcl.labels import LabelSpace
    from umcl.model.tokenizer import train_wordpiece
    from umcl.model.umcl import UMCLModel

    settings = load_settings(params)
    labels = list(LabelSpace.from_settings(settings.labels).names)
    tokenizer = train_wordpiece([n.lower() for n in labels] + ["no acute disease"], 200)
    torch.manual_seed(0)
    model = UMCLModel.from_config(
        settings.model, settings.prompt, labels, tokenizer, settings.preprocess.image_size
    )
    return model.save_pretrained(out)


def timed_run(params: Path, export: Path, model: Path, out: Path, workers: int) -> dict:
    out.unlink(missing_ok=True)
    command = [
        UMCL,
        "--params",
        str(params),
        "classify",
        str(export),
        "--out",
        str(out),
        "--model",
        str(model),
        "--workers",
        str(workers),
    ]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, **json.loads(result.stdout.strip().splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--large", type=int, default=1024, help="the radiograph-sized width")
    parser.add_argument("--studies", type=int, default=120, help="PACS studies in each export")
    parser.add_argument(
        "--results", type=Path, default=REPO / "benchmarks/results/batch_classify.json"
    )
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for width in (128, args.large):
            folder = root / f"w{width}"
            folder.mkdir()
            params = write_params(folder, width, args.studies)
            subprocess.run([UMCL, "--params", str(params), "demo"], check=True, capture_output=True)
            model = random_model(params, folder / "model") if width == 128 else root / "w128/model"
            export = folder / "demo/pacs/dicom"
            runs: dict[int, list[dict]] = {1: [], 2: []}
            for _ in range(args.rounds):
                for workers in runs:
                    runs[workers].append(
                        timed_run(params, export, model, folder / "predictions.parquet", workers)
                    )
            base = statistics.median(r["files"] / r["seconds"] for r in runs[1])
            for workers, done in runs.items():
                rate = statistics.median(r["files"] / r["seconds"] for r in done)
                rows.append(
                    {
                        "width": width,
                        "workers": workers,
                        "files": done[0]["files"],
                        "classified": done[0]["classified"],
                        "files_per_s": rate,
                        "ratio": rate / base,
                    }
                )
    print(
        "| DICOM width | decode processes | files (classified) | files/s (median) | vs 1 process |"
    )
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['width']} px | {r['workers']} | {r['files']} ({r['classified']}) | "
            f"{r['files_per_s']:.1f} | {r['ratio']:.2f}× |"
        )
    args.results.write_text(json.dumps({"rounds": args.rounds, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
