"""Flow `umcl-sweep`: train every candidate in `params.yaml: sweep` as a DVC experiment, pick
the best by the gate's primary metric, and send only that one through the gate and packaging.

Candidates differ only in training params (model, prompt, loss, train): all of them are
scored on the same test split, and the data stages stay shared in DVC's cache. Each runs as
`dvc exp run --temp` (its own copy of the workspace), `sweep.parallel` at a time. The winner's
params, lock and outputs are applied to the workspace (`dvc exp apply`), then the pipeline
flow runs: only `gate` and `package` have anything left to do.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from flows.pipeline import pipeline
from umcl.atomic import write_json
from umcl.config import load_settings
from umcl.dvcops import exp_apply, exp_file, exp_run
from umcl.errors import InputError
from umcl.gate import PRIMARY, gated_metrics

SHARED_KEYS = (
    "seed",
    "labels",
    "demo",
    "data",
    "validate",
    "preprocess",
    "evaluate",
    "gate",
    "sweep",
)


@task(task_run_name="candidate-{name}")
def run_candidate(project: str, name: str, experiment: str, overrides: dict) -> dict:
    exp_run(Path(project), experiment, overrides, target="evaluate")
    metrics = json.loads(exp_file(Path(project), experiment, "metrics/eval.json"))
    return {
        "name": name,
        "experiment": experiment,
        "overrides": overrides,
        **gated_metrics(metrics),
    }


def comparison_markdown(results: list[dict], winner: dict) -> str:
    lines = [
        "## UMCL sweep",
        "",
        f"Ranked by `{PRIMARY}`; the winner goes on to the gate.",
        "",
        "| candidate | overrides | zero-shot macro AUROC | R@5 | |",
        "|---|---|---:|---:|---|",
    ]
    for r in sorted(results, key=lambda r: r[PRIMARY] or 0, reverse=True):
        shown = [f"{r[k]:.4f}" if r[k] is not None else "—" for k in (PRIMARY, "recall_at_5")]
        overrides = ", ".join(f"{k}={v}" for k, v in r["overrides"].items())
        lines.append(
            f"| {r['name']} | {overrides} | {shown[0]} | {shown[1]} | {'winner' if r is winner else ''} |"
        )
    return "\n".join(lines)


@flow(name="umcl-sweep")
def sweep(project: str = ".", retry_delay_s: float = 10.0) -> dict:
    """Returns the comparison (also in `metrics/sweep.json` and the `umcl-sweep` artifact)."""
    log = get_run_logger()
    root = Path(project).resolve()
    settings = load_settings(root / "params.yaml").sweep
    if len(settings.candidates) < 2:
        raise InputError("params.yaml: sweep.candidates needs at least two candidates to compare")
    for candidate in settings.candidates:
        shared = [k for k in candidate.overrides if k.split(".")[0] in SHARED_KEYS]
        if shared:
            raise InputError(
                f"sweep candidate {candidate.name} overrides {shared}: candidates may only change training params, so that all are scored on the same test data"
            )
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    results = []
    for start in range(0, len(settings.candidates), settings.parallel):
        batch = settings.candidates[start : start + settings.parallel]
        futures = [
            run_candidate.submit(str(root), c.name, f"{c.name}-{stamp}", c.overrides) for c in batch
        ]
        results += [f.result() for f in futures]
    scored = [r for r in results if r[PRIMARY] is not None]
    if not scored:
        raise InputError(f"no candidate has a {PRIMARY} to rank by")
    winner = max(scored, key=lambda r: r[PRIMARY])
    log.info("winner: %s (%s %.4f)", winner["name"], PRIMARY, winner[PRIMARY])
    exp_apply(root, winner["experiment"])
    report = {"metric": PRIMARY, "winner": winner["name"], "candidates": results}
    write_json(root / "metrics/sweep.json", report)
    create_markdown_artifact(
        key="umcl-sweep",
        markdown=comparison_markdown(results, winner),
        description="UMCL sweep: candidates compared on the same test split",
    )
    pipeline(str(root), retry_delay_s=retry_delay_s)
    return report


if __name__ == "__main__":
    sweep()
