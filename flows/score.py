"""Flow `umcl-score`: score the image files that reached a folder since the last run.

Each run is `umcl classify SOURCE --out OUT/scores-<UTC time>.parquet --not-in OUT` in the project
(its own process, as `umcl drift` runs in flows/monitor.py): a file that any earlier run scored is
left out, so each run's predictions file holds the new files' rows only, and a run with nothing
new leaves no file. A run that was stopped leaves its parts in OUT; the next run finishes it
before starting another. The `score` deployment in prefect.yaml runs it hourly once a site
enables its schedule; `python -m flows.serve --score-source DIR` serves it on one machine.
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from umcl.batch_classify import PARTS_SUFFIX

ARTIFACT_KEY = "umcl-score"


def run_out(project: Path, out: str) -> str:
    """This run's predictions file, relative to the project: an unfinished run's, else a new one."""
    unfinished = sorted((project / out).glob(f"*{PARTS_SUFFIX}"))
    if unfinished:
        return str(Path(out) / unfinished[0].name.removesuffix(PARTS_SUFFIX))
    return str(Path(out) / f"scores-{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}.parquet")


@task
def classify_new(project: str, source: str, out: str, model: str | None) -> dict:
    """`umcl classify` over the files no earlier run scored; its counts."""
    target = run_out(Path(project), out)
    command = ["umcl", "classify", source, "--out", target, "--not-in", out]
    if model:
        command += ["--model", model]
    result = subprocess.run(command, cwd=project, capture_output=True, text=True)
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        raise RuntimeError(lines[-1] if lines else f"umcl classify exited with {result.returncode}")
    counts = json.loads(result.stdout.strip().splitlines()[-1])
    if counts["files"] == 0:  # nothing new: no empty file every hour
        (Path(project) / target).unlink()
        counts["out"] = None
    return counts


@flow(name="umcl-score")
def score(
    project: str = ".",
    source: str = "data/incoming",
    out: str = "predictions",
    model: str | None = None,
) -> dict:
    """Score the files of `source` (a folder or a CSV of paths, relative to `project`) that no
    predictions file in `out` holds yet, with `model` (default: the champion)."""
    log = get_run_logger()
    counts = classify_new(project, source, out, model)
    if counts["out"] is None:
        message = f"nothing new in {source}: every file was scored by an earlier run"
    else:
        message = (
            f"{counts['files']} new files → {counts['out']}: {counts['classified']} classified, "
            f"{counts['refused']} refused, {counts['skipped']} skipped"
        )
    log.info(message)
    create_markdown_artifact(
        key=ARTIFACT_KEY, markdown=f"## Scoring\n\n{message}", description="UMCL batch scoring"
    )
    return counts
