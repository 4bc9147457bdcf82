"""Flow `umcl-pipeline`: every stage of `dvc.yaml` as a Prefect task, in the DAG's order.

Each task is `dvc repro --single-item <stage>`, so DVC decides what is up to date and
`dvc.lock` records what ran, exactly as a `dvc repro` by hand would; each stage's output streams
into its task's log as it is written. Stages that read raw data
or write to the cache or the model store are retried with back-off on failure (storage can
fail for a moment); training, evaluation and the gate are not — a refused candidate is a
decision, not an accident. The flow publishes its metrics and the gate decision as an artifact,
and a promotion as the event `umcl.champion.promoted`.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.events import emit_event
from prefect.tasks import exponential_backoff

from umcl.dvcops import StageFailed, repro_stage, stage_order

STORAGE_STAGES = {"demo", "validate", "unify", "preprocess", "package"}
ARTIFACT_KEY = "umcl-pipeline"


PROGRESS_EVERY_S = 10.0  # a progress bar redraws several times a second; the run log needs less


class StageLog:
    """A stage's output into the task run's log as it is written: every line, except that a
    progress bar's redraws are logged at most every PROGRESS_EVERY_S (and the last one always)."""

    def __init__(self, logger) -> None:
        self.logger, self.last_progress, self.held = logger, float("-inf"), None

    def __call__(self, line: str) -> None:
        if re.search(r"\d+%\|", line):  # tqdm: "train:  50%|█████ | 1000/2000 [..]"
            if time.monotonic() - self.last_progress < PROGRESS_EVERY_S:
                self.held = line
                return
            self.last_progress = time.monotonic()
        else:
            self.close()  # a bar's last state before the line that follows it
        self.held = None
        self.logger.info(line)

    def close(self) -> None:
        if self.held:
            self.logger.info(self.held)
            self.held = None


@task(name="dvc-stage", task_run_name="{stage}")
def run_stage(project: str, stage: str, force: bool = False) -> bool:
    logger = get_run_logger()
    log = StageLog(logger)
    try:
        ran = repro_stage(Path(project), stage, force, on_line=log)
    finally:
        log.close()
    logger.info("%s: %s", stage, "ran" if ran else "up to date")
    return ran


PROMOTED = "umcl.champion.promoted"


def announce_promotion(project: Path) -> None:
    """Emit `umcl.champion.promoted` (tag, previous champion, gated metrics, bento) for
    automations to react to (docs/orchestration.md: "Reacting to a new champion")."""
    package = _read(project / "metrics/package.json")
    if not package or not package.get("promoted"):  # a rebuilt bento of the same champion
        return
    emit_event(
        event=PROMOTED,
        resource={
            "prefect.resource.id": f"umcl.model.{package['model']}",
            "prefect.resource.name": package["model"],
        },
        payload={
            "tag": package["model"],
            "previous_champion": package["previous_champion"],
            "metrics": package["gate"],
            "bento": package["bento"],
        },
    )


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def summary_markdown(project: Path, ran: dict[str, bool | None], failure: str | None) -> str:
    """Stages, the candidate's gated metrics, the gate's checks and what was packaged."""
    lines = ["## UMCL pipeline", "", "| stage | result |", "|---|---|"]
    shown = {True: "ran", False: "up to date", None: "FAILED"}
    lines += [f"| {s} | {shown[r]} |" for s, r in ran.items()]
    if failure:
        lines += ["", f"**Failed:** {failure}"]
    gate = _read(project / "metrics/gate.json") if "gate" in ran else None  # never a stale one
    if gate:
        champion = gate["champion"]["tag"] if gate["champion"] else "none (thresholds only)"
        measured = gate["candidate"]["metrics"]
        lines += [
            "",
            f"### Gate: {'passed' if gate['passed'] else 'REFUSED'} (against {champion})",
            "",
            "Candidate: " + ", ".join(f"{k} {v:.4f}" for k, v in measured.items() if v is not None),
            "",
            "| check | value | threshold | passed |",
            "|---|---:|---:|---|",
        ]
        for c in gate["checks"]:
            value = "—" if c["value"] is None else f"{c['value']:.4f}"
            lines.append(
                f"| {c['name']} | {value} | {c['threshold']:.4f} | {'yes' if c['passed'] else 'no'} |"
            )
    package = _read(project / "metrics/package.json")
    if package and ran.get("package"):
        lines += ["", f"Champion: `{package['model']}`, bento `{package['bento']}`"]
    return "\n".join(lines)


@flow(name="umcl-pipeline")
def pipeline(
    project: str = ".",
    force: bool = False,
    force_stages: list[str] | None = None,
    retries: int = 2,
    retry_delay_s: float = 10.0,
) -> dict[str, bool]:
    """Run the DVC pipeline stage by stage; returns stage → whether it ran. `force` reruns
    every stage, `force_stages` only those."""
    root = Path(project).resolve()
    retried = {
        "retries": retries,
        "retry_delay_seconds": exponential_backoff(backoff_factor=retry_delay_s),
    }
    ran: dict[str, bool | None] = {}
    failure = None
    try:
        for stage in stage_order(root):
            # `demo@data/raw/demo`: an instance of a `foreach` stage retries as its stage does.
            options = retried if stage.split("@")[0] in STORAGE_STAGES else {"retries": 0}
            again = force or stage in (force_stages or [])
            ran[stage] = None  # until it finishes
            ran[stage] = run_stage.with_options(**options)(str(root), stage, again)
        if ran.get("package"):
            announce_promotion(root)
    except StageFailed as exc:
        failure = str(exc)
        raise
    finally:
        create_markdown_artifact(
            key=ARTIFACT_KEY,
            markdown=summary_markdown(root, ran, failure),
            description="UMCL pipeline: stages, metrics, gate decision",
        )
    return ran


if __name__ == "__main__":
    pipeline()
